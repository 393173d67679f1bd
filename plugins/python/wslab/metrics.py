"""A strategy's own metrics, which the host serves on its /metrics beside
its own: the SDK sends what registry() holds, in Prometheus's text
exposition format (version 0.0.4), with every Stats (StatsResponse.metrics),
as the Go SDK sends plugin.Metrics(). The host parses it with expfmt's
TextParser; python3-prometheus-client is not needed.

    from wslab import metrics
    done = metrics.registry().counter("wslab_mystrategy_batches_total", "Batches run.", ("kind",))
    done.labels("fib").inc()

Names: a wslab_ prefix and a part of the strategy's own
(wslab_python_asyncio_...), so that none is one of the host's (wslab_tasks_total,
wslab_worker_tasks_total, ...); base units (_seconds, _bytes); counters
end in _total. Label values must come from bounded sets (task kinds,
error codes, worker ids): the host serves every series as it comes, and
nothing a client sends may make a new one. A family holds at most
MAX_SERIES series.

Counters, gauges and histograms (fixed buckets) are safe to use from any
thread; a family made with collect= reads its values when the host asks,
from a control thread, so it must take whatever lock guards them."""

import bisect
import math
import re
import threading

from . import tasks

# Series one family may hold: a label fed from something unbounded fails
# loudly here, not on the host's /metrics.
MAX_SERIES = 1000
# What one Stats may carry of metrics: the host's gRPC client refuses
# messages past 4 MiB, and a scrape should stay small.
MAX_TEXT = 1 << 20

# The duration buckets of wslab's own histograms (internal/telemetry):
# 50 µs to 60 s.
DURATION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def escape_help(text):
    """HELP text as the text format writes it: backslash and newline escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(value):
    """A label value as the text format writes it between double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(v):
    """A sample's value as Go's parser reads it: integers without a
    fraction, +Inf, -Inf, NaN."""
    if isinstance(v, bool):
        raise TypeError(f"metric value must be a number, got {v!r}")
    if isinstance(v, int):
        return str(v)
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _check_name(name):
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"metric name {name!r} is not a Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*)")


def _check_labels(name, labels, reserved=()):
    labels = tuple(labels)
    for label in labels:
        if not isinstance(label, str) or not _LABEL.fullmatch(label) or label.startswith("__"):
            raise ValueError(f"metric {name}: label name {label!r} is not a Prometheus label name "
                             "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)")
        if label in reserved:
            raise ValueError(f"metric {name}: label name {label!r} is reserved for its type")
    if len(set(labels)) != len(labels):
        raise ValueError(f"metric {name}: label names {labels} repeat")
    return labels


class _Family:
    """A metric family: its name, help, type, label names and series, by
    label values."""

    type = ""
    reserved = ()

    def __init__(self, name, help, labels, collect):
        _check_name(name)
        if not isinstance(help, str) or not help.strip():
            raise ValueError(f"metric {name}: no help text (say what it counts, and in which unit)")
        self.name, self.help = name, help
        self.label_names = _check_labels(name, labels, self.reserved)
        self._collect = collect
        self._lock = threading.Lock()
        self._series = {}  # label values -> series

    def claims(self):
        """The sample names this family writes."""
        return (self.name,)

    def labels(self, *values, **by_name):
        """The series of these label values (strings), made on first use."""
        if by_name:
            if values or set(by_name) != set(self.label_names):
                raise ValueError(f"metric {self.name}: labels {sorted(by_name)} given, "
                                 f"want {list(self.label_names)}")
            values = tuple(by_name[n] for n in self.label_names)
        values = self._values(values)
        with self._lock:
            series = self._series.get(values)
            if series is None:
                if len(self._series) >= MAX_SERIES:
                    raise ValueError(f"metric {self.name}: more than {MAX_SERIES} series; "
                                     "its label values must come from a bounded set")
                series = self._series[values] = self._new()
            return series

    def _values(self, values):
        if self._collect is not None:
            raise ValueError(f"metric {self.name} reads its values when collected; it has no series to set")
        if len(values) != len(self.label_names):
            raise ValueError(f"metric {self.name}: {len(values)} label values for labels {list(self.label_names)}")
        for v in values:
            if not isinstance(v, str):
                raise TypeError(f"metric {self.name}: label value {v!r} is not a string")
        return tuple(values)

    def _unlabelled(self):
        if self.label_names:
            raise ValueError(f"metric {self.name} has labels {list(self.label_names)}: use labels(...)")
        return self.labels()

    def samples(self):
        """(suffix, label pairs, value) of each sample, series in the order
        of their label values."""
        out = []
        for values, series in self._snapshot():
            pairs = tuple(zip(self.label_names, values))
            out.extend(self._series_samples(pairs, series))
        return out

    def _snapshot(self):
        if self._collect is None:
            with self._lock:
                items = [(values, s.value()) for values, s in self._series.items()]
        else:
            items = self._collected()
        items.sort(key=lambda item: item[0])
        return items

    def _collected(self):
        got = self._collect()
        if not self.label_names:
            return [((), got)]
        items = []
        for values, v in dict(got).items():
            values = (values,) if isinstance(values, str) else tuple(values)
            if len(values) != len(self.label_names) or not all(isinstance(x, str) for x in values):
                raise ValueError(f"metric {self.name}: collected label values {values!r} do not fit "
                                 f"labels {list(self.label_names)}")
            items.append((values, v))
        if len(items) > MAX_SERIES:
            raise ValueError(f"metric {self.name}: collected {len(items)} series, more than {MAX_SERIES}")
        return items

    def _series_samples(self, pairs, value):
        return [("", pairs, value)]


class _Value:
    __slots__ = ("_lock", "_v")

    def __init__(self, lock):
        self._lock, self._v = lock, 0

    def value(self):
        return self._v


class CounterSeries(_Value):
    __slots__ = ()

    def inc(self, amount=1):
        if amount < 0:
            raise ValueError(f"a counter only goes up; inc({amount})")
        with self._lock:
            self._v += amount


class GaugeSeries(_Value):
    __slots__ = ()

    def set(self, value):
        with self._lock:
            self._v = value

    def inc(self, amount=1):
        with self._lock:
            self._v += amount

    def dec(self, amount=1):
        with self._lock:
            self._v -= amount


class Counter(_Family):
    """A count that only goes up; its name ends in _total. collect, when
    given, is called at each report and returns the value (no labels) or a
    mapping of label values (a tuple, or one string) to values."""

    type = "counter"

    def __init__(self, name, help, labels=(), collect=None):
        if isinstance(name, str) and not name.endswith("_total"):
            raise ValueError(f"counter {name}: a counter's name ends in _total")
        super().__init__(name, help, labels, collect)

    def _new(self):
        return CounterSeries(self._lock)

    def inc(self, amount=1):
        self._unlabelled().inc(amount)


class Gauge(_Family):
    """A value that goes up and down; collect as for Counter."""

    type = "gauge"

    def _new(self):
        return GaugeSeries(self._lock)

    def set(self, value):
        self._unlabelled().set(value)

    def inc(self, amount=1):
        self._unlabelled().inc(amount)

    def dec(self, amount=1):
        self._unlabelled().dec(amount)


class HistogramSeries:
    __slots__ = ("_lock", "_bounds", "_counts", "_sum")

    def __init__(self, lock, bounds):
        self._lock, self._bounds = lock, bounds
        self._counts = [0] * (len(bounds) + 1)  # the last is +Inf's own
        self._sum = 0.0

    def observe(self, v):
        # A bucket's upper bound is inclusive (le), hence bisect_left.
        i = bisect.bisect_left(self._bounds, v)
        with self._lock:
            self._counts[i] += 1
            self._sum += v

    def value(self):
        return list(self._counts), self._sum


class Histogram(_Family):
    """Observations counted in fixed buckets (upper bounds, increasing;
    +Inf is added), with their sum and count."""

    type = "histogram"
    reserved = ("le",)

    def __init__(self, name, help, buckets, labels=()):
        super().__init__(name, help, labels, None)
        bounds = [float(b) for b in buckets]
        if not bounds or any(math.isnan(b) for b in bounds) or any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise ValueError(f"histogram {name}: buckets {list(buckets)} must be increasing numbers")
        if bounds[-1] == math.inf:
            bounds.pop()  # always there
        self.buckets = tuple(bounds)

    def claims(self):
        return tuple(self.name + s for s in _HISTOGRAM_SUFFIXES) + (self.name,)

    def _new(self):
        return HistogramSeries(self._lock, self.buckets)

    def observe(self, v):
        self._unlabelled().observe(v)

    def _series_samples(self, pairs, value):
        counts, total = value
        out, cumulative = [], 0
        for bound, n in zip(self.buckets + (math.inf,), counts):
            cumulative += n
            out.append(("_bucket", pairs + (("le", format_value(bound)),), cumulative))
        out.append(("_sum", pairs, total))
        out.append(("_count", pairs, cumulative))
        return out


class Registry:
    """The metric families a strategy reports, by name."""

    def __init__(self):
        self._lock = threading.Lock()
        self._families = {}
        self._claimed = {}  # sample name -> family name

    def register(self, family):
        """Adds family; a name that one already holds, or writes among its
        samples (a histogram's x_count), is refused."""
        with self._lock:
            taken = [n for n in family.claims() if n in self._claimed]
            if taken:
                owner = self._claimed[taken[0]]
                if owner == family.name:
                    raise ValueError(f"register metric {family.name}: it is registered already")
                raise ValueError(f"register metric {family.name}: the name {taken[0]} is metric {owner}'s")
            self._families[family.name] = family
            for n in family.claims():
                self._claimed[n] = family.name
        return family

    def counter(self, name, help, labels=(), collect=None):
        return self.register(Counter(name, help, labels, collect))

    def gauge(self, name, help, labels=(), collect=None):
        return self.register(Gauge(name, help, labels, collect))

    def histogram(self, name, help, buckets=DURATION_BUCKETS, labels=()):
        return self.register(Histogram(name, help, buckets, labels))

    def encode(self):
        """Every family in the text exposition format 0.0.4, families by
        name and series by label values; b"" when there is none. A family
        with no series yet is left out, as Go's registry leaves it."""
        with self._lock:
            families = sorted(self._families.values(), key=lambda f: f.name)
        lines = []
        for f in families:
            samples = f.samples()
            if not samples:
                continue
            lines.append(f"# HELP {f.name} {escape_help(f.help)}")
            lines.append(f"# TYPE {f.name} {f.type}")
            for suffix, pairs, value in samples:
                labels = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in pairs)
                lines.append(f"{f.name}{suffix}{{{labels}}} {format_value(value)}" if labels
                             else f"{f.name}{suffix} {format_value(value)}")
        if not lines:
            return b""
        text = ("\n".join(lines) + "\n").encode("utf-8", "replace")
        if len(text) > MAX_TEXT:
            raise ValueError(f"metrics: {len(text)} bytes of text, more than {MAX_TEXT}")
        return text


_default = Registry()


def registry():
    """The registry the SDK reports to the host (plugin.Metrics() in Go)."""
    return _default


# Outcomes of a task, as the host's wslab_tasks_total has them: ok, or the
# error code of its reply; "other" for a code outside the protocol.
OK = "ok"
OTHER = tasks.OTHER_KIND
OUTCOMES = (OK,) + tasks.CODES + (OTHER,)


class TaskOutcomes:
    """wslab_python_tasks_total{kind,outcome}: the tasks a Python
    strategy answered, by kind and outcome. Every series exists from the
    start (a rate over them needs no first sample to appear); kinds
    outside the protocol count as "other", and so do codes."""

    NAME = "wslab_python_tasks_total"

    def __init__(self, reg):
        family = reg.counter(self.NAME, "Tasks the Python strategy answered, by task kind and outcome "
                                        "(ok, or the error code of its reply).", ("kind", "outcome"))
        self._by = {kind: {o: family.labels(kind, o) for o in OUTCOMES} for kind in tasks.KINDS + (OTHER,)}

    def count(self, kind, code=""):
        """Counts a task of kind answered with error code ("" for a result)."""
        by = self._by.get(kind) or self._by[OTHER]
        (by.get(code or OK) or by[OTHER]).inc()
