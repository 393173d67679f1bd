"""Tests of the wslab Python package: the workloads against the values Go's
tasks package gives, the framing, the keys' checks in the host's words, the
metrics' text format, the trace context, and both strategies served over a
real socketpair, as the host drives them.

    /usr/bin/python3 -m unittest discover -s plugins/python
"""

import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from wslab import aio, control, frame, keys, metrics, pool, tasks, trace, worker
from wslab import executor_pb2 as pb
from wslab.log import Logger
from wslab.control import Config

# A timeline's stages, in the order a task passes them.
STAGES = ("plugin_recv", "task_start", "task_end", "plugin_sent")
LIMITS = pb.Limits(max_fib_n=100_000, max_cpu_n=1_000_000_000, max_io_bytes=100_000_000, max_sleep_ms=100_000)
QUIET = Logger("test", "off")


class TasksTest(unittest.TestCase):
    def test_results_are_go_s(self):
        # tasks/tasks_test.go and the README's example.
        self.assertEqual(tasks.run("fib", 0), "0")
        self.assertEqual(tasks.run("fib", 1), "1")
        self.assertEqual(tasks.run("fib", 90), "2880067194370816120")
        self.assertEqual(len(tasks.run("fib", 100_000)), 20899)
        self.assertEqual(tasks.run("cpu", 1_000_000), "499999500000")
        self.assertEqual(tasks.run("cpu", 0), "0")
        self.assertEqual(tasks.run("noop", 0), "")
        self.assertEqual(tasks.run("sleep", 1), "Request done")

    def test_io_writes_reads_back_and_removes(self):
        with tempfile.TemporaryDirectory() as d:
            for n in (0, 1, 65536, 65537, 1_000_000):
                path = tasks.io_path(d, "large_file.txt")
                self.assertEqual(tasks.run("io", n, path), str(n))
                self.assertEqual(os.listdir(d), [])

    def test_io_file_names_are_go_s(self):
        # tasks/io_test.go: FuzzFilePattern's seeds and TestFilePattern.
        cases = {"large_file.txt": "large_file-*.txt", "../../etc/passwd": "passwd-*", "name": "name-*",
                 "archive.tar.gz": "archive.tar-*.gz", "": "large_file-*.txt", "/": "large_file-*.txt",
                 "//": "large_file-*.txt", ".": "large_file-*.txt", "a*b.txt": "ab-*.txt",
                 "*large*.t*xt": "large-*.txt", "dir*/x*.log": "x-*.log", "trailing/": "trailing-*"}
        for name, want in cases.items():
            got = os.path.basename(tasks.io_path("/data", name))
            self.assertRegex(got, "^" + re.escape(want).replace(r"\*", "[0-9a-f]{16}") + "$", name)
            self.assertEqual(os.path.dirname(tasks.io_path("/data", name)), "/data")

    def test_checks(self):
        tasks.check("fib", 100_000, LIMITS)
        with self.assertRaises(tasks.TaskError) as e:
            tasks.check("fib", 100_001, LIMITS)
        self.assertEqual((e.exception.code, e.exception.message),
                         ("out_of_range", "fib n must be between 0 and 100000, got 100001"))
        with self.assertRaises(tasks.TaskError) as e:
            tasks.check("dance", 1, LIMITS)
        self.assertEqual(e.exception.code, "unknown_task")
        with self.assertRaises(tasks.TaskError):
            tasks.check("sleep", -1, LIMITS)

    def test_deadline_stops_a_long_task(self):
        start = time.monotonic()
        with self.assertRaises(tasks.TaskError) as e:
            tasks.cpu(10**10, deadline=start + 0.05)
        self.assertEqual(e.exception.code, "timeout")
        self.assertLess(time.monotonic() - start, 1)


class FrameTest(unittest.TestCase):
    def test_frames_split_anywhere(self):
        reqs = [pb.ExecuteRequest(task=pb.Task(seq=i, kind="fib", n=i)) for i in range(1, 50)]
        data = b"".join(frame.encode(r) for r in reqs)
        for step in (1, 3, 7, len(data)):
            d, got = frame.Decoder(), []
            for i in range(0, len(data), step):
                got += d.feed(data[i:i + step])
            self.assertEqual(got, reqs)

    def test_oversized_frame_breaks_the_channel(self):
        with self.assertRaises(frame.FrameError):
            frame.Decoder().feed((frame.MAX_FRAME + 1).to_bytes(4, "big"))

    def test_outbox_stamps_timed_replies_when_taken(self):
        plain = frame.reply(1, "x")
        self.assertIsInstance(plain, bytes)
        out = frame.Outbox()
        out.add(plain)
        out.add(frame.reply(2, "y", timing={"plugin_recv": 5}))
        before = monotonic_ns()
        data = out.take()
        after = monotonic_ns()
        self.assertFalse(out)
        self.assertEqual(data[:len(plain)], plain)
        m = pb.ExecuteResponse.FromString(data[len(plain) + 4:])
        self.assertEqual((m.seq, m.result, set(m.timing)), (2, "y", {"plugin_recv", "plugin_sent"}))
        self.assertTrue(before <= m.timing["plugin_sent"] <= after)


class KeysTest(unittest.TestCase):
    def test_values_in_the_host_s_words(self):
        k = pool.PROCESSES
        self.assertEqual(keys.apply({}, [k])[k.id], "4")
        self.assertEqual(keys.apply({k.id: " 8 "}, [k])[k.id], "8")
        for value, problem in (("0", "must be a whole number between 1 and 1024, got 0"),
                               ("x", '"x" is not a whole number, must be a whole number between 1 and 1024'),
                               ("1_0", '"1_0" is not a whole number, must be a whole number between 1 and 1024'),
                               ("99999999999999999999", '"99999999999999999999" is out of range, '
                                                        'must be a whole number between 1 and 1024')):
            with self.assertRaises(keys.KeyValueError) as e:
                keys.apply({k.id: value}, [k])
            self.assertEqual(str(e.exception), "[other] multiprocessing_processes: " + problem)


_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)')
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def parse_text(text):
    """The samples of a text exposition: (name, ((label, value), ...)) ->
    value, label values unescaped; what Go's parser makes of it, for these
    tests."""
    out = {}
    for line in text.decode().splitlines():
        if line.startswith("#"):
            continue
        m = _SAMPLE.fullmatch(line)
        if m is None:
            raise AssertionError(f"not a sample line: {line!r}")
        name, labels, value = m.groups()
        pairs = []
        pos = 0
        while labels and pos < len(labels):  # bounded: each turn consumes a pair or fails
            p = _PAIR.match(labels, pos)
            if p is None:
                raise AssertionError(f"bad labels in {line!r}")
            pairs.append((p.group(1), re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1),
                                             p.group(2))))
            pos = p.end()
        out[(name, tuple(sorted(pairs)))] = float(value)
    return out


def total(samples, name, **labels):
    """The sum of name's samples whose labels include labels."""
    want = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and want <= set(pairs))


class GuideMetricsSnippetTest(unittest.TestCase):
    """docs/writing-a-strategy.md's metrics snippet, line for line, in a
    strategy's method: self is the strategy, with a registry of its own."""

    def setUp(self):
        self.registry = metrics.Registry()
        self._alive = [101, 102]

    def test_snippet(self):
        from wslab import metrics

        reg = self.registry  # metrics.registry(), unless the strategy sets its own
        batches = reg.counter("wslab_mine_batches_total", "Batches run, by kind.", ("kind",))
        batches.labels("fib").inc()
        reg.gauge("wslab_mine_workers_alive", "Worker processes running now.", collect=lambda: len(self._alive))
        reg.histogram("wslab_mine_wait_seconds", "Time a batch waited.", buckets=metrics.DURATION_BUCKETS).observe(0.02)

        samples = parse_text(reg.encode())
        self.assertEqual(samples[("wslab_mine_batches_total", (("kind", "fib"),))], 1)
        self.assertEqual(samples[("wslab_mine_workers_alive", ())], 2)
        self.assertEqual(samples[("wslab_mine_wait_seconds_count", ())], 1)


class MetricsTest(unittest.TestCase):
    def test_text_format(self):
        reg = metrics.Registry()
        # Registered out of order: families come out by name, series by label values.
        g = reg.gauge("wslab_test_temperature_celsius", "Heat.\nIn \\ degrees.", ("room",))
        c = reg.counter("wslab_test_events_total", "Events seen.", ("kind", "code"))
        c.labels("b", "x").inc()
        c.labels(kind="a", code="y").inc(2)
        c.labels("a", "x").inc(0.5)
        g.labels('back\\slash "quoted"\nnewline').set(-1.25)
        g.labels("attic").set(float("inf"))
        reg.gauge("wslab_test_nothing", "No series yet: left out.", ("x",))
        self.assertEqual(reg.encode().decode(), "\n".join([
            "# HELP wslab_test_events_total Events seen.",
            "# TYPE wslab_test_events_total counter",
            'wslab_test_events_total{kind="a",code="x"} 0.5',
            'wslab_test_events_total{kind="a",code="y"} 2',
            'wslab_test_events_total{kind="b",code="x"} 1',
            "# HELP wslab_test_temperature_celsius Heat.\\nIn \\\\ degrees.",
            "# TYPE wslab_test_temperature_celsius gauge",
            'wslab_test_temperature_celsius{room="attic"} +Inf',
            'wslab_test_temperature_celsius{room="back\\\\slash \\"quoted\\"\\nnewline"} -1.25',
        ]) + "\n")
        samples = parse_text(reg.encode())
        self.assertEqual(samples[("wslab_test_temperature_celsius", (("room", 'back\\slash "quoted"\nnewline'),))],
                         -1.25)

    def test_histogram(self):
        reg = metrics.Registry()
        h = reg.histogram("wslab_test_wait_seconds", "Waits.", buckets=(0.005, 0.1, 1))
        for v in (0.001, 0.005, 0.05, 0.1, 3, 7):  # a value on a bound is in that bucket (le)
            h.observe(v)
        by_kind = reg.histogram("wslab_test_run_seconds", "Runs.", buckets=(1,), labels=("kind",))
        by_kind.labels("fib").observe(0.5)
        self.assertEqual(reg.encode().decode(), "\n".join([
            "# HELP wslab_test_run_seconds Runs.",
            "# TYPE wslab_test_run_seconds histogram",
            'wslab_test_run_seconds_bucket{kind="fib",le="1"} 1',
            'wslab_test_run_seconds_bucket{kind="fib",le="+Inf"} 1',
            'wslab_test_run_seconds_sum{kind="fib"} 0.5',
            'wslab_test_run_seconds_count{kind="fib"} 1',
            "# HELP wslab_test_wait_seconds Waits.",
            "# TYPE wslab_test_wait_seconds histogram",
            'wslab_test_wait_seconds_bucket{le="0.005"} 2',
            'wslab_test_wait_seconds_bucket{le="0.1"} 4',
            'wslab_test_wait_seconds_bucket{le="1"} 4',
            'wslab_test_wait_seconds_bucket{le="+Inf"} 6',
            "wslab_test_wait_seconds_sum 10.156",
            "wslab_test_wait_seconds_count 6",
        ]) + "\n")
        self.assertEqual(reg.histogram("wslab_test_b_seconds", "B.", buckets=(1, math.inf)).buckets, (1.0,))

    def test_values(self):
        for v, text in ((3, "3"), (3.0, "3"), (0.5, "0.5"), (5e-05, "5e-05"), (-2, "-2"), (1e20, "1e+20"),
                        (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (float("nan"), "NaN")):
            self.assertEqual(metrics.format_value(v), text)
        with self.assertRaises(TypeError):
            metrics.format_value(True)

    def test_names_and_labels_are_checked(self):
        reg = metrics.Registry()
        reg.histogram("wslab_test_h_seconds", "H.")
        reg.counter("wslab_test_c_total", "C.")
        reg.gauge("wslab_test_k_seconds_bucket", "K.")
        bad = [
            lambda: reg.counter("wslab-test_total", "Dash."),
            lambda: reg.counter("0wslab_total", "Digit first."),
            lambda: reg.counter("wslab_test_c", "No _total."),
            lambda: reg.gauge("wslab_test_g", ""),
            lambda: reg.gauge("wslab_test_g", "G.", ("bad-label",)),
            lambda: reg.gauge("wslab_test_g", "G.", ("__reserved",)),
            lambda: reg.gauge("wslab_test_g", "G.", ("a", "a")),
            lambda: reg.histogram("wslab_test_h2_seconds", "H.", labels=("le",)),
            lambda: reg.histogram("wslab_test_h3_seconds", "H.", buckets=(1, 1)),
            lambda: reg.histogram("wslab_test_h4_seconds", "H.", buckets=()),
            lambda: reg.counter("wslab_test_c_total", "Again."),
            lambda: reg.gauge("wslab_test_h_seconds_count", "A histogram's sample name."),
            lambda: reg.histogram("wslab_test_k_seconds", "Its _bucket samples are a gauge's name."),
        ]
        for i, make in enumerate(bad):
            with self.assertRaises(ValueError, msg=f"case {i}"):
                make()
        g = reg.gauge("wslab_test_g", "G.", ("a", "b"))
        for use in (lambda: g.labels("x"), lambda: g.labels(a="x"), lambda: g.set(1), lambda: g.labels("x", 2)):
            with self.assertRaises((ValueError, TypeError)):
                use()
        with self.assertRaises(ValueError):
            reg.counter("wslab_test_d_total", "D.").inc(-1)

    def test_series_are_bounded(self):
        g = metrics.Registry().gauge("wslab_test_g", "G.", ("id",))
        for i in range(metrics.MAX_SERIES):
            g.labels(str(i)).set(i)
        g.labels("0").set(1)  # an existing series is fine
        with self.assertRaises(ValueError):
            g.labels("one too many")

    def test_collected(self):
        reg = metrics.Registry()
        state = {"n": 2, "by": {("idle",): 3, "busy": 1}}
        reg.gauge("wslab_test_n", "N.", collect=lambda: state["n"])
        reg.gauge("wslab_test_workers", "Workers.", ("state",), collect=lambda: state["by"])
        state["n"] = 5  # read when encoded
        samples = parse_text(reg.encode())
        self.assertEqual(samples[("wslab_test_n", ())], 5)
        self.assertEqual(total(samples, "wslab_test_workers", state="idle"), 3)
        self.assertEqual(total(samples, "wslab_test_workers", state="busy"), 1)
        state["by"] = {("a", "b"): 1}
        with self.assertRaises(ValueError):
            reg.encode()

    def test_empty(self):
        self.assertEqual(metrics.Registry().encode(), b"")

    def test_task_outcomes(self):
        reg = metrics.Registry()
        outcomes = metrics.TaskOutcomes(reg)
        outcomes.count("fib")
        outcomes.count("fib", "")
        outcomes.count("sleep", "timeout")
        outcomes.count("a kind a client made up", "unknown_task")
        outcomes.count("io", "a code outside the protocol")
        samples = parse_text(reg.encode())
        name = "wslab_python_tasks_total"
        self.assertEqual(total(samples, name, kind="fib", outcome="ok"), 2)
        self.assertEqual(total(samples, name, kind="sleep", outcome="timeout"), 1)
        self.assertEqual(total(samples, name, kind="other", outcome="unknown_task"), 1)
        self.assertEqual(total(samples, name, kind="io", outcome="other"), 1)
        self.assertEqual(total(samples, name), 5)
        # Every series is there from the start, and only those.
        self.assertEqual(len(samples), (len(tasks.KINDS) + 1) * (len(tasks.CODES) + 2))

    @unittest.skipUnless(shutil.which("promtool"), "promtool not installed (Debian package prometheus)")
    def test_promtool_finds_nothing_to_say(self):
        reg = metrics.Registry()
        metrics.TaskOutcomes(reg).count("fib")
        reg.histogram("wslab_test_wait_seconds", "Waits, with \\ and\na newline.", labels=("kind",)).labels(
            'odd "value"\\\n').observe(0.01)
        reg.gauge("wslab_test_workers", "Workers.", collect=lambda: 4)
        out = subprocess.run(["promtool", "check", "metrics"], input=reg.encode(), capture_output=True, timeout=30)
        self.assertEqual((out.returncode, out.stdout + out.stderr), (0, b""))


# A traceparent W3C's examples use.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class Recorder(Logger):
    """A logger that keeps its entries: (level, message, fields)."""

    def __init__(self):
        super().__init__("test", "trace")
        self.entries = []

    def log(self, level, message, **kv):
        self.entries.append((level, message, kv))


class TraceTest(unittest.TestCase):
    def test_well_formed(self):
        self.assertEqual(trace.trace_id(TRACEPARENT), TRACE_ID)
        self.assertEqual(trace.trace_id(f"00-{TRACE_ID}-00f067aa0ba902b7-00"), TRACE_ID)
        # A later version may carry more, after a dash.
        self.assertEqual(trace.trace_id(f"01-{TRACE_ID}-00f067aa0ba902b7-09-more"), TRACE_ID)
        self.assertEqual(trace.log_fields(TRACEPARENT), {"trace_id": TRACE_ID})

    def test_malformed(self):
        for tp in ("", None, 42, "00", TRACEPARENT + "\n", TRACEPARENT + "-x", TRACEPARENT.upper(),
                   " " + TRACEPARENT, TRACEPARENT[:-1], TRACEPARENT.replace("-", "_"),
                   f"00-{'0' * 32}-00f067aa0ba902b7-01", f"00-{TRACE_ID}-{'0' * 16}-01",
                   f"ff-{TRACE_ID}-00f067aa0ba902b7-01", f"00-{TRACE_ID}-00f067aa0ba902b7-ff",
                   f"01-{TRACE_ID}-00f067aa0ba902b7-01x", f"0g-{TRACE_ID}-00f067aa0ba902b7-01",
                   f"00-{TRACE_ID[:-1]}z-00f067aa0ba902b7-01", f"00-{TRACE_ID}-00f067aa0ba902b7-0\u0661",
                   "00-" + "\u0661" * 32 + "-00f067aa0ba902b7-01", "x" * 100_000):
            self.assertEqual(trace.trace_id(tp), "", repr(tp))
            self.assertEqual(trace.log_fields(tp), {}, repr(tp))

    def test_task_carries_it(self):
        for tp, fields in ((TRACEPARENT, {"trace_id": TRACE_ID}), ('00-"evil"\n', {}), ("", {})):
            t = frame.Task(pb.Task(seq=7, kind="fib", n=3, traceparent=tp))
            self.assertEqual(t.traceparent, tp, "passed on as it came")
            self.assertEqual(t.log_fields(), {"seq": 7, "kind": "fib", **fields})
        made_up = frame.Task(pb.Task(seq=8, kind="made up\n" * 10))
        self.assertEqual(made_up.log_fields(), {"seq": 8, "kind": "other"})

    def test_duplicate_seq_logs_its_trace(self):
        log = Recorder()
        jobs = {5: object()}
        requests = frame.Requests(jobs, tasks.Bounds(LIMITS), log, None, None, None)
        requests.handle(pb.ExecuteRequest(task=pb.Task(seq=5, kind="noop", traceparent=TRACEPARENT)))
        requests.handle(pb.ExecuteRequest(task=pb.Task(seq=5, kind="noop", traceparent="00-forged\n-line")))
        self.assertEqual([e[2] for e in log.entries],
                         [{"seq": 5, "kind": "noop", "trace_id": TRACE_ID}, {"seq": 5, "kind": "noop"}])

    def test_worker_logs_a_failed_task_s_trace(self):
        log = Recorder()
        missing = os.path.join(tempfile.gettempdir(), "wslab-no-such-dir-" + os.urandom(8).hex(), "f.txt")
        seq, value, code, message, _, stamps = worker.run((3, "io", 10, missing, False, TRACEPARENT), "w1", log)
        self.assertEqual((seq, value, code, stamps), (3, "", "internal", None))
        self.assertEqual(len(log.entries), 1)
        level, msg, kv = log.entries[0]
        self.assertEqual((level, msg, kv["worker"], kv["seq"], kv["kind"], kv["trace_id"]),
                         ("warn", "task failed", "w1", 3, "io", TRACE_ID))
        self.assertIn("create file", kv["error"])
        # A malformed traceparent leaves no trace in the line; a task that ran leaves no line.
        worker.run((4, "io", 10, missing, False, "00-" + "a" * 52 + "\n"), "w1", log)
        self.assertNotIn("trace_id", log.entries[1][2])
        self.assertNotIn("aaaa", repr(log.entries[1]))
        self.assertEqual(worker.run((5, "fib", 10, None, True, TRACEPARENT), "w1", log)[:3], (5, "55", ""))
        self.assertEqual(len(log.entries), 2)


class Host:
    """The host's end of a data channel to a strategy served in a thread."""

    def __init__(self, strategy, settings=None):
        self.dir = tempfile.TemporaryDirectory()
        config = pb.Config(data_dir=self.dir.name, large_file_name="large_file.txt", limits=LIMITS)
        strategy.configure(Config(config, keys.apply(settings or {}, strategy.keys)), QUIET)
        self.strategy = strategy
        self.sock, self.theirs = socket.socketpair()
        self.thread = threading.Thread(target=strategy.serve, args=(self.theirs,))
        self.thread.start()
        self.buf = b""

    def send(self, *reqs):
        self.sock.sendall(b"".join(frame.encode(r) for r in reqs))

    def replies(self, count, timeout=10):
        self.sock.settimeout(timeout)
        out = []
        while len(out) < count:
            while len(self.buf) < 4 or len(self.buf) < 4 + int.from_bytes(self.buf[:4], "big"):
                self.buf += self.sock.recv(65536)
            size = int.from_bytes(self.buf[:4], "big")
            out.append(pb.ExecuteResponse.FromString(self.buf[4:4 + size]))
            self.buf = self.buf[4 + size:]
        return {r.seq: r for r in out}

    def close(self):
        self.sock.shutdown(socket.SHUT_WR)  # EOF: the strategy stops
        self.thread.join(10)
        self.strategy.close()
        self.sock.close()
        self.theirs.close()
        left = os.listdir(self.dir.name)
        self.dir.cleanup()
        return left


def task(seq, kind, n=0, timeout_ms=0, timing=False, traceparent=""):
    return pb.ExecuteRequest(task=pb.Task(seq=seq, kind=kind, n=n, timeout_ms=timeout_ms, timing=timing,
                                          traceparent=traceparent))


def monotonic_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def cancel(seq):
    return pb.ExecuteRequest(cancel=pb.Cancel(seq=seq))


class Context:
    """A gRPC call's context, as far as Control uses it."""

    def abort(self, code, details):
        raise AssertionError(f"aborted: {code} {details}")


class StrategyCases:
    """The contract's cases, for each strategy. make builds one that
    reports to a registry of its own (self.registry)."""

    def make(self):
        raise NotImplementedError

    def setUp(self):
        self.host = Host(self.make())

    def tearDown(self):
        self.assertEqual(self.host.close(), [], "io files left behind")

    def test_every_kind_once(self):
        self.host.send(task(1, "fib", 90), task(2, "cpu", 1000), task(3, "io", 100_000), task(4, "sleep", 10),
                       task(5, "noop"), task(6, "dance"), task(7, "fib", 10**6))
        r = self.host.replies(7)
        self.assertEqual([r[i].result for i in range(1, 6)], ["2880067194370816120", "499500", "100000",
                                                              "Request done", ""])
        self.assertEqual((r[6].error_code, r[7].error_code), ("unknown_task", "out_of_range"))
        # Counted before each reply is written, so the replies' reader sees them.
        samples = parse_text(self.registry.encode())
        name = "wslab_python_tasks_total"
        for kind in ("cpu", "io", "sleep", "noop"):
            self.assertEqual(total(samples, name, kind=kind, outcome="ok"), 1, kind)
        self.assertEqual(total(samples, name, kind="fib", outcome="ok"), 1)
        self.assertEqual(total(samples, name, kind="fib", outcome="out_of_range"), 1)
        self.assertEqual(total(samples, name, kind="other", outcome="unknown_task"), 1)
        self.assertEqual(total(samples, name), 7)

    def test_stats_carry_the_metrics(self):
        self.host.send(task(1, "noop"), task(2, "sleep", 5000, timeout_ms=50))
        self.assertEqual(self.host.replies(2)[2].error_code, "timeout")
        ctl = control.Control(self.host.strategy, QUIET, lambda: None, lambda: None)
        ctl._configured = True  # the Host configured the strategy itself
        response = ctl.stats(pb.StatsRequest(), Context())
        self.assertEqual((response.completed, response.failed), (1, 1))
        self.assertEqual(response.metrics, self.registry.encode())
        samples = parse_text(response.metrics)
        self.assertEqual(total(samples, "wslab_python_tasks_total", kind="noop", outcome="ok"), 1)
        self.assertEqual(total(samples, "wslab_python_tasks_total", kind="sleep", outcome="timeout"), 1)
        if shutil.which("promtool"):
            out = subprocess.run(["promtool", "check", "metrics"], input=response.metrics, capture_output=True,
                                 timeout=30)
            self.assertEqual((out.returncode, out.stdout + out.stderr), (0, b""))

    def test_cancel_and_deadline(self):
        self.host.send(task(1, "sleep", 5000), task(2, "sleep", 5000, timeout_ms=100))
        time.sleep(0.2)
        self.host.send(cancel(1), cancel(99))
        r = self.host.replies(2, timeout=3)
        self.assertEqual((r[1].error_code, r[2].error_code), ("shutting_down", "timeout"))
        self.host.send(task(3, "noop"))
        self.assertEqual(self.host.replies(1)[3].error_code, "")

    def test_timeline(self):
        before = monotonic_ns()
        self.host.send(task(1, "sleep", 20, timing=True), task(2, "fib", 90, timing=True), task(3, "fib", 90),
                       task(4, "dance", timing=True), task(5, "sleep", 5000, timing=True))
        time.sleep(0.2)
        # 5 is stopped while it runs; 6 before it starts (the same read).
        self.host.send(cancel(5), task(6, "sleep", 5000, timing=True), cancel(6))
        r = self.host.replies(6)
        after = monotonic_ns()
        self.assertEqual(([r[i].error_code for i in range(1, 7)]),
                         ["", "", "", "unknown_task", "shutting_down", "shutting_down"])
        self.assertEqual(dict(r[3].timing), {}, "a task that did not ask got a timeline")
        reached = {1: STAGES, 2: STAGES, 4: ("plugin_recv", "plugin_sent"), 5: STAGES,
                   6: ("plugin_recv", "plugin_sent")}
        for seq, stages in reached.items():
            tl = dict(r[seq].timing)
            self.assertEqual(set(tl), set(stages), f"task {seq}'s stages")
            at = [tl[s] for s in stages]
            self.assertEqual(at, sorted(at), f"task {seq}'s stages out of order: {tl}")
            self.assertTrue(before <= at[0] and at[-1] <= after, f"task {seq}'s stages outside the test's "
                                                                 f"[{before}, {after}]: {tl}")
        # The task's own stages are where it ran: the 20 ms sleep is between.
        self.assertGreaterEqual(r[1].timing["task_end"] - r[1].timing["task_start"], 15_000_000)
        self.assertGreaterEqual(r[5].timing["task_end"] - r[5].timing["task_start"], 100_000_000)


class AsyncioTest(StrategyCases, unittest.TestCase):
    def make(self):
        self.registry = metrics.Registry()
        return aio.AsyncioStrategy(self.registry)

    def test_loop_lag_shows_cpu_work(self):
        time.sleep(3 * aio.LAG_INTERVAL_S)  # an idle loop runs its samples about on time
        self.host.send(task(1, "cpu", 15_000_000))  # holds the loop for a few tenths of a second
        self.host.replies(1)
        time.sleep(2 * aio.LAG_INTERVAL_S)
        samples = parse_text(self.registry.encode())
        name = "wslab_python_asyncio_loop_lag_seconds"
        count = samples[(name + "_count", ())]
        self.assertGreaterEqual(count, 4)
        self.assertGreater(count, samples[(name + "_bucket", (("le", "0.1"),))], "no sample saw the loop held")
        self.assertGreater(samples[(name + "_sum", ())], 0.05)



class Serial(aio.LoopStrategy):
    """A LoopStrategy policy: one task at a time, the rest kept back in
    arrival order; it records its hooks' calls."""

    name = "serial"
    worker = "serial"
    capacity = 1

    def __init__(self, registry):
        super().__init__(registry)
        self.waiting, self.busy, self.calls = [], False, []

    def admit(self, job):
        if self.busy:
            self.waiting.append(job)
        else:
            self.busy = True
            self.run(job)

    def finished(self, job):
        self.busy = False
        while self.waiting and not self.busy:
            nxt = self.waiting.pop(0)
            if not nxt.answered:
                self.busy = True
                self.run(nxt)

    def opened(self):
        self.calls.append("opened")

    def closing(self):
        self.calls.append(("closing", self.stats().running, self.stats().queued))


class LoopStrategyTest(StrategyCases, unittest.TestCase):
    """The contract's cases on a policy that keeps tasks back, and what the
    base does with a job it keeps."""

    def make(self):
        self.registry = metrics.Registry()
        return Serial(self.registry)

    def test_kept_back_tasks_are_answered_where_they_wait(self):
        h = self.host
        h.send(task(1, "sleep", 300), task(2, "noop"), task(3, "noop", timeout_ms=50, timing=True), task(4, "noop"))
        time.sleep(0.02)
        st = h.strategy.stats()
        self.assertEqual((st.running, st.queued, st.capacity), (1, 3, 1))
        h.send(cancel(2))
        r = h.replies(2, timeout=1)  # 2 at once, 3 at its deadline: neither waits for 1
        self.assertEqual((r[2].error_code, r[3].error_code), ("shutting_down", "timeout"))
        self.assertEqual(set(r[3].timing), {"plugin_recv", "plugin_sent"}, "the expired task ran")
        self.assertEqual({r[2].worker, r[3].worker}, {"serial"})
        r = h.replies(2, timeout=2)
        self.assertEqual((r[1].error_code, r[4].error_code), ("", ""))
        self.assertGreaterEqual(r[4].queue_us, 250_000, "4 waited for 1")
        st = h.strategy.stats()
        self.assertEqual((st.running, st.queued, st.completed, st.failed), (0, 0, 2, 2))

    def test_stopping_answers_kept_and_running_tasks(self):
        h = self.host
        h.send(task(1, "sleep", 5000), task(2, "sleep", 5000), task(3, "noop"))
        time.sleep(0.05)
        h.strategy.stop()
        r = h.replies(3, timeout=2)
        self.assertEqual([r[i].error_code for i in (1, 2, 3)], ["shutting_down"] * 3)
        h.thread.join(2)
        self.assertFalse(h.thread.is_alive())
        self.assertEqual(h.strategy.calls, ["opened", ("closing", 0, 0)])

    def test_a_job_runs_once(self):
        job = aio.Job(frame.Task(pb.Task(seq=1, kind="noop")))
        job.answered = True
        with self.assertRaisesRegex(RuntimeError, "task 1 cannot run"):
            self.host.strategy.run(job)


class Recording:
    """A worker's pipe that keeps what the plugin sends on it."""

    def __init__(self, conn, sent):
        self._conn, self._sent = conn, sent

    def send(self, obj):
        self._sent.append(obj)
        self._conn.send(obj)

    def __getattr__(self, name):
        return getattr(self._conn, name)


class MultiprocessingTest(StrategyCases, unittest.TestCase):
    def make(self):
        self.registry = metrics.Registry()
        s = pool.MultiprocessingStrategy(self.registry)
        s.prepare(QUIET)
        return s

    def sample(self, name, **labels):
        return total(parse_text(self.registry.encode()), "wslab_python_multiprocessing_" + name, **labels)

    def test_pool_metrics(self):
        self.assertEqual((self.sample("workers_alive"), self.sample("tasks_queued")), (4, 0))
        self.host.send(*(task(i, "sleep", 5000) for i in range(1, 7)))  # 4 run, 2 wait
        time.sleep(0.3)
        self.assertEqual((self.sample("workers_alive"), self.sample("tasks_queued")), (4, 2))
        self.host.send(cancel(1), cancel(5))  # a running one (its worker is replaced) and a queued one
        self.host.replies(2)
        self.assertEqual(self.sample("worker_exits_total", reason="replaced"), 1)
        self.host.send(*(cancel(i) for i in (2, 3, 4, 6)))
        self.host.replies(4)
        # 6 ran on 1's replacement: five workers stopped under their tasks.
        self.assertEqual(self.sample("worker_exits_total", reason="replaced"), 5)
        self.assertEqual(self.sample("worker_exits_total", reason="died"), 0)
        self.assertEqual(self.sample("handover_seconds_count"), 0, "no task came back from its worker")
        self.host.send(*(task(i, "fib", 90) for i in range(10, 15)))
        self.host.replies(5)
        self.assertEqual(self.sample("handover_seconds_count"), 5)
        self.assertLess(self.sample("handover_seconds_sum"), 5)
        deadline = time.monotonic() + 5
        while self.sample("workers_alive") < 4 and time.monotonic() < deadline:  # bounded: 5 s
            time.sleep(0.05)
        self.assertEqual(self.sample("workers_alive"), 4)

    def test_the_trace_context_goes_to_the_worker_unchanged(self):
        sent = []
        for slot in self.host.strategy._slots:
            slot.conn = Recording(slot.conn, sent)
        odd = "00-not-a-trace-context-but-passed-on-as-it-came"
        self.host.send(task(1, "fib", 10, traceparent=TRACEPARENT), task(2, "noop", traceparent=odd), task(3, "noop"))
        self.host.replies(3)
        self.assertEqual(sorted((m[0], m[-1]) for m in sent), [(1, TRACEPARENT), (2, odd), (3, "")])

    def test_a_killed_worker_fails_its_task_and_is_replaced(self):
        log = Recorder()
        self.host.strategy._log = log
        self.host.send(task(1, "sleep", 5000, traceparent=TRACEPARENT))
        time.sleep(0.3)
        busy = [w for w in self.host.strategy.stats().workers if w.state == "busy"]
        os.kill(busy[0].pid, 9)
        r = self.host.replies(1, timeout=3)
        self.assertEqual(r[1].error_code, "executor_failed")
        died = [kv for _, msg, kv in log.entries if msg == "worker died, restarting it"]
        self.assertEqual([(kv["seq"], kv["trace_id"]) for kv in died], [(1, TRACE_ID)])
        self.assertEqual(self.sample("worker_exits_total", reason="died"), 1)
        self.assertEqual(total(parse_text(self.registry.encode()), "wslab_python_tasks_total", kind="sleep",
                               outcome="executor_failed"), 1)
        time.sleep(0.3)  # the backoff
        st = self.host.strategy.stats()
        self.assertEqual((st.restarts, len(st.workers), {w.state for w in st.workers}), (1, 4, {"idle"}))

    def test_cancelled_queued_tasks_leave_room(self):
        self.host.send(*(task(i, "sleep", 5000) for i in range(1, 5)))  # every worker busy
        time.sleep(0.3)
        self.assertEqual(self.host.strategy.stats().running, 4)
        saved, pool.MAX_QUEUED = pool.MAX_QUEUED, 2
        try:
            for base in range(100, 300, 2):  # each queued, then cancelled
                self.host.send(task(base, "sleep", 5000), task(base + 1, "sleep", 5000), cancel(base),
                               cancel(base + 1))
                r = self.host.replies(2)
                self.assertEqual({r[base].error_code, r[base + 1].error_code}, {"shutting_down"})
            # The dead entries are dropped from the queue, not kept until dispatch.
            self.assertLess(len(self.host.strategy._queue), 100)
            self.host.send(task(1000, "noop"), task(1001, "noop"), task(1002, "noop"))
            self.assertEqual(self.host.replies(1)[1002].error_code, "overloaded")
        finally:
            pool.MAX_QUEUED = saved

    def test_a_stopped_io_task_leaves_no_file(self):
        self.host.send(task(1, "io", 100_000_000, timeout_ms=30))
        self.assertEqual(self.host.replies(1)[1].error_code, "timeout")


if __name__ == "__main__":
    unittest.main()
