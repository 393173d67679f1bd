"""The workloads, as tasks/tasks.go and tasks/io.go define them: the same
arguments, the same checks, and results byte-identical to Go's. They are
workloads, not answers: fib does its n big-integer additions, cpu loops over
the integers in the interpreter, io writes a file and reads it back.

A deadline (time.monotonic()) makes a long task stop itself with timeout,
as a Go task stops when its context ends."""

import os
import secrets
import sys
import time

# Error codes of the WebSocket protocol (taskproto/task.go).
BAD_REQUEST = "bad_request"
UNKNOWN_TASK = "unknown_task"
OUT_OF_RANGE = "out_of_range"
OVERLOADED = "overloaded"
TIMEOUT = "timeout"
EXECUTOR_FAILED = "executor_failed"
SHUTTING_DOWN = "shutting_down"
INTERNAL = "internal"
# The task did what its sandbox forbids; the Python strategies run none.
SANDBOX_DENIED = "sandbox_denied"
# The task needed more memory than its sandbox grants; the Python
# strategies cap none.
RESOURCE_EXHAUSTED = "resource_exhausted"
CODES = (BAD_REQUEST, UNKNOWN_TASK, OUT_OF_RANGE, OVERLOADED, TIMEOUT, EXECUTOR_FAILED, SHUTTING_DOWN, INTERNAL,
         SANDBOX_DENIED, RESOURCE_EXHAUSTED)

KINDS = ("fib", "cpu", "io", "sleep", "noop")
# What a kind outside KINDS is named as where names must come from a fixed
# set (metrics' labels, log lines).
OTHER_KIND = "other"
SLEEP_DONE = "Request done"
# The sum of 0..n-1 must fit an int64, as Go's does.
MAX_CPU_N = 4_000_000_000

_IO_CHUNK = 64 << 10
_PATTERN = bytes(ord("a") + i % 26 for i in range(_IO_CHUNK))
# Loop iterations between looks at the deadline (tasks.go: checkEvery and
# fib's 1024).
_CPU_CHECK_EVERY = 1 << 16
_FIB_CHECK_EVERY = 1024

# F(100000) has 20899 digits; Python refuses to print more than 4300 unless
# told, and Go prints them all.
sys.set_int_max_str_digits(0)


class TaskError(Exception):
    """A task failure that carries a protocol error code."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def timed_out():
    """What a task that ran past its deadline gets (taskproto.AsError)."""
    return TaskError(TIMEOUT, "task ran past its deadline")


def unknown(kind):
    return TaskError(UNKNOWN_TASK, f'unknown task "{kind}"; accepted: {", ".join(KINDS)}')


class Bounds:
    """The highest n of each kind under limits (a pb.Limits; None: no
    bounds), worked out once, so that checking a task is a lookup."""

    __slots__ = ("_hi",)

    def __init__(self, limits):
        self._hi = None if limits is None else {
            "fib": limits.max_fib_n, "cpu": min(limits.max_cpu_n, MAX_CPU_N), "io": limits.max_io_bytes,
            "sleep": limits.max_sleep_ms}

    def check(self, kind, n):
        """Refuses a task whose kind is unknown or whose n is outside the
        bounds, before it costs anything (tasks.Check)."""
        if kind == "noop":
            return
        if self._hi is None:
            if kind not in KINDS:
                raise unknown(kind)
            return
        hi = self._hi.get(kind)
        if hi is None:
            raise unknown(kind)
        if not 0 <= n <= hi:
            raise TaskError(OUT_OF_RANGE, f"{kind} n must be between 0 and {hi}, got {n}")


def check(kind, n, limits):
    """Bounds(limits).check(kind, n), for a one-off check."""
    Bounds(limits).check(kind, n)


def run(kind, n, path=None, deadline=None):
    """Runs a checked task to its reply text. io writes path (see io_path);
    sleep blocks the calling thread (an event loop sleeps its own way)."""
    if kind == "fib":
        return str(fib(n, deadline))
    if kind == "cpu":
        return str(cpu(n, deadline))
    if kind == "io":
        return str(io(path, n, deadline))
    if kind == "sleep":
        time.sleep(n / 1000)
        return SLEEP_DONE
    if kind == "noop":
        return ""
    raise unknown(kind)


def _check_deadline(deadline):
    if deadline is not None and time.monotonic() >= deadline:
        raise timed_out()


def fib(n, deadline=None):
    """F(n), F(0)=0, F(1)=1, by n big-integer additions."""
    a, b = 0, 1
    for start in range(0, n, _FIB_CHECK_EVERY):
        _check_deadline(deadline)
        for _ in range(min(_FIB_CHECK_EVERY, n - start)):
            a, b = b, a + b
    return a


def cpu(n, deadline=None):
    """The sum of 0..n-1, by a loop: the CPU-bound workload."""
    total = 0
    for start in range(0, n, _CPU_CHECK_EVERY):
        for i in range(start, min(start + _CPU_CHECK_EVERY, n)):
            total += i
        _check_deadline(deadline)
    return total


def io_path(data_dir, large_file_name):
    """A new file name in data_dir for an io task: large_file_name's base
    name with a unique part before its extension, as tasks/io.go's
    filePattern and os.CreateTemp make it ("large_file-<random>.txt").
    Nothing in large_file_name can lead outside data_dir."""
    if not data_dir:
        raise TaskError(INTERNAL, "io task: no data directory configured")
    base = _go_base(large_file_name)
    if base in (".", "/", ""):
        base = "large_file.txt"
    base = base.replace("*", "")
    dot = base.rfind(".")
    ext = base[dot:] if dot >= 0 else ""
    return os.path.join(data_dir, f"{base[:len(base) - len(ext)]}-{secrets.token_hex(8)}{ext}")


def _go_base(path):
    """Go's filepath.Base: the last element, trailing slashes ignored."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    return stripped.rsplit("/", 1)[-1]


def io(path, n, deadline=None):
    """Writes n bytes to the new file path, reads them back, checks them,
    removes the file and returns the number of bytes read back."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise TaskError(INTERNAL, f"io task: create file: {e}") from None
    try:
        with os.fdopen(fd, "r+b", buffering=0) as f:
            _write_pattern(f, n, deadline)
            f.seek(0)
            read = _read_back(f, n, deadline)
    finally:
        try:
            os.remove(path)
        except OSError as e:
            raise TaskError(INTERNAL, f"io task: remove file: {e}") from None
    return read


def _write_pattern(f, n, deadline):
    left = n
    while left > 0:  # bounded: left shrinks by a chunk each turn
        _check_deadline(deadline)
        chunk = min(left, _IO_CHUNK)
        _write_all(f, memoryview(_PATTERN)[:chunk])
        left -= chunk


def _write_all(f, view):
    """Writes all of view, as Go's File.Write does, or raises."""
    while view:  # bounded: each turn writes a byte or more, or raises
        try:
            written = f.write(view)
        except OSError as e:
            raise TaskError(INTERNAL, f"io task: write: {e}") from None
        if not written:
            raise TaskError(INTERNAL, "io task: write made no progress")
        view = view[written:]


def _read_back(f, n, deadline):
    read = 0
    while read < n:  # bounded: each turn reads at least a byte or raises
        _check_deadline(deadline)
        want = min(n - read, _IO_CHUNK)
        buf = f.read(want)
        if len(buf) < want:
            buf += _read_rest(f, want - len(buf))
        if len(buf) < want:
            raise TaskError(INTERNAL, f"io task: read back at offset {read} of {n}: unexpected EOF")
        if buf != _PATTERN[:want]:
            raise TaskError(INTERNAL, f"io task: read back different bytes at offset {read}")
        read += want
    # The file must end where the writes did.
    if f.read(1):
        raise TaskError(INTERNAL, f"io task: file longer than the {n} bytes written")
    return read


def _read_rest(f, want):
    """What a short read left out, until EOF (io.ReadFull)."""
    parts = []
    while want > 0:  # bounded: each turn reads a byte or more, or stops at EOF
        part = f.read(want)
        if not part:
            break
        parts.append(part)
        want -= len(part)
    return b"".join(parts)
