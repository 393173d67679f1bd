"""The data channel's framing (taskproto/plugin/frame.go): each message is a
4-byte big-endian length and a serialized ExecuteRequest (host to plugin)
or ExecuteResponse (plugin to host). The decoder does no I/O, so that a
thread's blocking reads and an event loop's callbacks share it; and replies
that are ready together are joined into one write (Outbox). Requests is
what every strategy does with what the decoder gives.

A task that asks for its timeline (Task.timing) carries its stamps as stage
name -> instant in ns of CLOCK_MONOTONIC, the clock every process on the
machine shares (taskproto/timing.go): plugin_recv when its frame has been
read, task_start and task_end where it runs (the strategy's, or its
worker's, stamps), plugin_sent right before its reply is written. A stage
the task did not reach (refused; stopped before it started) is left out.
A task that does not ask costs no clock read more."""

import time

from . import executor_pb2 as pb
from . import tasks, trace

# MaxFrame: the largest message either side accepts.
MAX_FRAME = 16 << 20
# How much one read of the channel asks for: several small frames a read.
READ_SIZE = 64 << 10

# The stages of a task's timeline the plugin stamps, named as
# taskproto.Stage names them.
PLUGIN_RECV = "plugin_recv"
TASK_START = "task_start"
TASK_END = "task_end"
PLUGIN_SENT = "plugin_sent"


def monotonic_ns():
    """Now on CLOCK_MONOTONIC in ns: the instant of a timeline's stage."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class FrameError(Exception):
    """The channel carries something that is not a frame: it is broken."""


def encode(message):
    """message as one frame."""
    body = message.SerializeToString()
    if len(body) > MAX_FRAME:
        raise FrameError(f"encode frame: {len(body)} bytes exceed {MAX_FRAME}")
    return len(body).to_bytes(4, "big") + body


class Decoder:
    """Turns the bytes read from a channel into ExecuteRequests."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data):
        """The whole requests that data completes, in order."""
        self._buf += data
        out, pos, end = [], 0, len(self._buf)
        while end - pos >= 4:  # bounded: each turn consumes a frame or stops
            size = int.from_bytes(self._buf[pos:pos + 4], "big")
            if size > MAX_FRAME:
                raise FrameError(f"frame of {size} bytes exceeds {MAX_FRAME}")
            if end - pos - 4 < size:
                break
            req = pb.ExecuteRequest()
            try:
                req.ParseFromString(bytes(self._buf[pos + 4:pos + 4 + size]))
            except Exception as e:  # protobuf's DecodeError, whichever backend raises it
                raise FrameError(f"decode frame: {e}") from None
            out.append(req)
            pos += 4 + size
        del self._buf[:pos]
        return out


class Task:
    """A task as received: its deadline is counted from its receipt, as the
    Go side's TaskDeadline counts it. timing is None, or, when the task asks
    for its timeline, its stamps so far (stage name -> ns), which the
    strategy adds to and gives its reply. traceparent is the task's trace
    context as it came ("" when it is not traced): a strategy that hands
    the task on passes it on unchanged, and log lines about the task name
    its trace with log_fields()."""

    __slots__ = ("seq", "kind", "n", "received", "deadline", "timing", "traceparent")

    def __init__(self, m):
        self.timing = {PLUGIN_RECV: monotonic_ns()} if m.timing else None
        self.seq, self.kind, self.n, self.traceparent = m.seq, m.kind, m.n, m.traceparent
        self.received = time.monotonic()
        self.deadline = self.received + m.timeout_ms / 1000 if m.timeout_ms > 0 else None

    def log_fields(self):
        """What a log line about the task says of it: its seq, its kind
        (one of the protocol's), and its trace when it carries a
        well-formed one."""
        fields = {"seq": self.seq, "kind": self.kind if self.kind in tasks.KINDS else tasks.OTHER_KIND}
        fields.update(trace.log_fields(self.traceparent))
        return fields


class Requests:
    """What every strategy does with the host's requests, however it reads
    them (an event loop, a select loop): a task whose sequence number is out
    already is ignored, with a warning; one the bounds refuse goes to
    refuse(task, error), which owes it its reply; the rest go to
    start(task). A cancel goes to cancel(job), job being jobs[seq] (jobs:
    the strategy's unanswered tasks by sequence number)."""

    __slots__ = ("_jobs", "_bounds", "_log", "_start", "_refuse", "_cancel")

    def __init__(self, jobs, bounds, log, start, refuse, cancel):
        self._jobs, self._bounds, self._log = jobs, bounds, log
        self._start, self._refuse, self._cancel = start, refuse, cancel

    def handle(self, req):
        """Acts on one ExecuteRequest."""
        which = req.WhichOneof("msg")
        if which == "task":
            task = Task(req.task)
            if task.seq in self._jobs:
                self._log.warn("task sequence number already running, ignoring the second", **task.log_fields())
                return
            try:
                self._bounds.check(task.kind, task.n)
            except tasks.TaskError as e:
                self._refuse(task, e)
                return
            self._start(task)
        elif which == "cancel":
            job = self._jobs.get(req.cancel.seq)
            if job is not None:  # a finished or unknown task's cancel is ignored
                self._cancel(job)


def reply(seq, result="", worker="", queue_s=0.0, run_s=0.0, error=None, timing=None):
    """The frame that answers task seq, for an Outbox; error is a
    tasks.TaskError. timing is the task's (Task.timing): a task that asked
    for its timeline gets a Timed reply, encoded when it is written."""
    m = pb.ExecuteResponse(seq=seq, worker=worker, queue_us=int(queue_s * 1e6), run_us=int(run_s * 1e6))
    if error is None:
        m.result = result
    else:
        m.error_code, m.error_message = error.code, error.message
    if timing is not None:
        m.timing.update(timing)
        return Timed(m)
    return encode(m)


class Timed:
    """A reply that carries its task's timeline: it is stamped plugin_sent
    and encoded only when its write is due (Outbox.take)."""

    __slots__ = ("message",)

    def __init__(self, message):
        self.message = message


class Outbox:
    """The replies of one turn of a strategy's loop, which leave in one
    write: frames (bytes), and Timed replies, which take() stamps."""

    __slots__ = ("_parts", "_timed")

    def __init__(self):
        self._parts = []
        self._timed = False  # some part is a Timed

    def __bool__(self):
        return bool(self._parts)

    def __len__(self):
        return len(self._parts)

    def add(self, data):
        """Queues a reply (frame.reply's)."""
        self._parts.append(data)
        if data.__class__ is not bytes:
            self._timed = True

    def take(self):
        """Every queued reply as one write, which the caller makes at once:
        the Timed ones are stamped plugin_sent now. The outbox is left empty."""
        parts, self._parts = self._parts, []
        if self._timed:
            self._timed = False
            now = monotonic_ns()
            parts = [p if p.__class__ is bytes else _sent(p.message, now) for p in parts]
        return b"".join(parts)

    def clear(self):
        """Drops the queued replies: there is no channel to write them to."""
        self._parts.clear()
        self._timed = False


def _sent(m, now):
    m.timing[PLUGIN_SENT] = now
    return encode(m)


def cancelled():
    """What a task the host cancelled gets: Go's ServeTasks names a
    cancelled context this way (taskproto.AsError); the host has answered
    the request already and drops it, but every task gets its one reply."""
    return tasks.TaskError(tasks.SHUTTING_DOWN, "task cancelled: context canceled")


def shutting_down():
    return tasks.TaskError(tasks.SHUTTING_DOWN, "the plugin is stopping")
