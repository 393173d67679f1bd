"""The Python lab's multiprocessing strategy, without that lab's defects: a
pool of [other] multiprocessing_processes worker processes, one task at a
time each, fed in arrival order; exactly one reply per task; each io task
its own file.

One thread, the main one, owns the pool: it reads the data channel, hands
tasks to idle workers, reads their results, sees their deaths (a process
sentinel) and the deadlines, and writes the replies of each turn in one
write. So the pool's state needs no lock but the one Stats reads it under.

A queued task whose cancel or deadline comes is dropped and answered at
once. A running one is answered at once too, and its worker is killed and
replaced at once: a Python task cannot be interrupted, and a free slot is
what the host is owed. A worker that dies by itself fails its task with
executor_failed and is restarted with wslab's backoff (100 ms doubling to
5 s, back to 100 ms after 10 s up).

Workers come from a forkserver, started before the control service's
threads exist: each is forked from that one single-threaded process (cheap
to replace, never forked from a process with gRPC threads), inherits
neither the data channel nor the control socket, and stays in the plugin's
process group, which the host kills as a whole.

Its metrics, besides the SDK's wslab_python_tasks_total: the worker
processes alive and the tasks waiting for one (read when the host asks),
workers' exits by reason (died by themselves, or replaced because their
task was stopped), and the handover: how long a task's trip to its worker
and its result's trip back took, beyond the task's own run time."""

import collections
import heapq
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import threading
import time

from . import executor_pb2 as pb
from . import frame, keys, metrics, tasks, worker
from .serve import Strategy

MIN_BACKOFF_S, MAX_BACKOFF_S, STABLE_AFTER_S = 0.1, 5.0, 10.0
# Tasks waiting for a worker at most; the host's window keeps far fewer here.
MAX_QUEUED = 65536
# How long close waits for a killed worker to be reaped.
REAP_TIMEOUT_S = 2.0
# Why a worker process left (wslab_python_multiprocessing_worker_exits_total).
DIED, REPLACED = "died", "replaced"
# A handover is pickling over a pipe and two wake-ups: 10 µs to 1 s.
HANDOVER_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                    0.025, 0.05, 0.1, 0.25, 0.5, 1)

PROCESSES = keys.Key("other", "multiprocessing_processes", keys.INT, "4", min=1, max=1024,
                     help="worker processes of the python-multiprocessing strategy, one task at a time each")


class _Job:
    """A task from its receipt to its one reply."""

    __slots__ = ("task", "path", "sent", "sent_ns", "slot", "answered")

    def __init__(self, task):
        self.task = task
        self.path = None  # its io file
        self.sent = None  # when a worker got it
        self.sent_ns = None  # when it had been written to its worker, for a task that asks for its timeline
        self.slot = None  # the worker running it
        self.answered = False


class _Slot:
    """One worker position: its process comes and goes, the slot stays."""

    def __init__(self, index):
        self.id = f"w{index}"
        self.proc = None
        self.conn = None
        self.job = None
        self.tasks = 0
        self.restarts = 0
        self.backoff = 0.0
        self.started_at = 0.0
        self.restart_at = None

    def state(self):
        if self.proc is None:
            return "restarting"
        return "busy" if self.job else "idle"


class MultiprocessingStrategy(Strategy):
    name = "python-multiprocessing"
    description = "a pool of Python worker processes (multiprocessing, forkserver), one task at a time each"
    keys = (PROCESSES,)

    def __init__(self, registry=None):
        if registry is not None:
            self.registry = registry
        self._metrics(self.registry)
        self._ctx = None
        self._log = None
        self._config = None
        self._slots = []
        self._lock = threading.Lock()  # Stats reads the pool under it
        self._jobs = {}  # seq -> _Job, received and not yet answered: queued or running
        self._running = 0  # slots holding a job
        self._requests = None  # a frame.Requests, once configured
        self._queue = collections.deque()  # of _Job waiting for a worker; answered ones: see _compact
        self._deadlines = []  # heap of (deadline, seq); answered ones: see _compact
        self._idle = {}  # id -> _Slot, in the order they became idle
        self._restarting = {}  # id -> _Slot waiting for restart_at
        self._dying = {}  # sentinel -> (process, io file), killed and not yet reaped
        self._out = frame.Outbox()  # replies of this turn
        self._sock = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lifeline = None  # (read end, write end): see worker.main
        self._stopping = False
        self._closed = False
        self.completed = self.failed = 0

    def _metrics(self, reg):
        self._outcomes = metrics.TaskOutcomes(reg)
        prefix = "wslab_python_multiprocessing_"
        reg.gauge(prefix + "workers_alive", "Worker processes running now (the rest are being restarted).",
                  collect=self._alive)
        reg.gauge(prefix + "tasks_queued", "Tasks waiting for an idle worker process.", collect=self._queued)
        exits = reg.counter(prefix + "worker_exits_total",
                            "Worker processes that left: died by themselves (died), or killed and replaced "
                            "because their task was cancelled or overran its deadline (replaced).", ("reason",))
        self._exits = {r: exits.labels(r) for r in (DIED, REPLACED)}
        self._handover = reg.histogram(
            prefix + "handover_seconds",
            "Time from handing a task to its worker process to reading its result, less the task's run time: "
            "the pipe both ways, pickling, and the wake-ups.", HANDOVER_BUCKETS)

    def _alive(self):
        with self._lock:
            return sum(1 for s in self._slots if s.proc is not None)

    def _queued(self):
        with self._lock:
            return len(self._jobs) - self._running

    def prepare(self, log):
        self._ctx = multiprocessing.get_context("forkserver")
        # The forkserver gets the plugin's sys.path and imports the worker
        # module once; each worker is a fork of it. (Each worker also runs
        # the plugin's main file as __mp_main__, which only sets sys.path.)
        self._ctx.set_forkserver_preload([worker.__name__])
        multiprocessing.forkserver.ensure_running()
        self._lifeline = self._ctx.Pipe(duplex=False)
        log.debug("forkserver running")

    def configure(self, config, log):
        self._config, self._log = config, log
        self._requests = frame.Requests(self._jobs, config.bounds, log, self._admit, self._refuse, self._cancel)
        self._slots = [_Slot(i) for i in range(config.int(PROCESSES.id))]
        for slot in self._slots:
            try:
                self._start(slot)
            except OSError as e:
                self.close()
                raise ValueError(f"start worker {slot.id}: {e}") from None
        return pb.StrategyInfo(name=self.name, pid=os.getpid(), concurrency=len(self._slots),
                               description=f"{len(self._slots)} Python worker processes (multiprocessing), "
                                           "one task at a time each")

    # -- the owner's loop

    def serve(self, sock):
        self._sock = sock
        decoder = frame.Decoder()
        while not self._stopping:  # bounded: ends at the channel's end or at stop
            ready = multiprocessing.connection.wait(self._waitables(), self._timeout())
            with self._lock:
                more = self._turn(set(ready), decoder)
            self._flush()
            if not more:
                return

    def _waitables(self):
        out = [self._sock, self._wake_r]
        for slot in self._slots:
            if slot.proc is not None:
                out.append(slot.proc.sentinel)
                if slot.job is not None:
                    out.append(slot.conn)
        out.extend(self._dying)
        return out

    def _timeout(self):
        """Seconds until the next deadline or restart; None: no such thing."""
        soonest = [s.restart_at for s in self._restarting.values()]
        if self._deadlines:
            soonest.append(self._deadlines[0][0])
        return max(0.0, min(soonest) - time.monotonic()) if soonest else None

    def _turn(self, ready, decoder):
        """Acts on what is ready; False once the host closed the channel."""
        if self._wake_r in ready:
            self._drain_wake()
        more = self._sock not in ready or self._read(decoder)
        for slot in self._slots:
            if slot.proc is not None and slot.job is not None and slot.conn in ready:
                self._result(slot)
            if slot.proc is not None and slot.proc.sentinel in ready:
                self._lose(slot, None)
        for sentinel in ready & self._dying.keys():
            self._reap(sentinel)
        now = time.monotonic()
        self._expire(now)
        self._compact()
        self._restart_due(now)
        self._dispatch()
        return more

    def _read(self, decoder):
        data = self._sock.recv(frame.READ_SIZE)
        if not data:
            return False
        for req in decoder.feed(data):
            self._requests.handle(req)
        return True

    def _admit(self, task):
        """Queues a checked task, or refuses it: too many are waiting, or an
        io task has no directory for its file."""
        if len(self._jobs) - self._running >= MAX_QUEUED:  # the live queued ones
            self._refuse(task, tasks.TaskError(tasks.OVERLOADED, f"all {len(self._slots)} workers busy and "
                                                                 f"{MAX_QUEUED} tasks queued; retry later"))
            return
        job = _Job(task)
        if task.kind == "io":
            try:
                job.path = tasks.io_path(self._config.data_dir, self._config.large_file_name)
            except tasks.TaskError as e:
                self._refuse(task, e)
                return
        self._jobs[task.seq] = job
        self._queue.append(job)
        if task.deadline is not None:
            heapq.heappush(self._deadlines, (task.deadline, task.seq))

    def _refuse(self, task, error):
        """Answers a task that never got a job."""
        self.failed += 1
        self._outcomes.count(task.kind, error.code)
        self._out.add(frame.reply(task.seq, queue_s=time.monotonic() - task.received, error=error,
                                  timing=task.timing))

    def _cancel(self, job):
        self._stop(job, frame.cancelled())

    def _stop(self, job, why):
        """Answers job with why; its worker, if it has one, is replaced."""
        slot = job.slot
        self._answer(job, error=why)
        if slot is not None:
            self._lose(slot, why)

    def _expire(self, now):
        while self._deadlines and self._deadlines[0][0] <= now:  # bounded: pops one a turn
            _, seq = heapq.heappop(self._deadlines)
            job = self._jobs.get(seq)
            if job is not None:
                self._stop(job, tasks.timed_out())

    def _compact(self):
        """Answered tasks stay in the queue until their turn and their
        deadlines in the heap until their time: each is rebuilt once they
        outnumber the live ones."""
        if len(self._deadlines) > 2 * len(self._jobs) + 64:
            self._deadlines = [(j.task.deadline, s) for s, j in self._jobs.items() if j.task.deadline is not None]
            heapq.heapify(self._deadlines)
        if len(self._queue) > 2 * (len(self._jobs) - self._running) + 64:
            self._queue = collections.deque(j for j in self._queue if not j.answered)

    def _dispatch(self):
        while self._queue and self._idle:  # bounded: each turn takes a job off the queue
            job = self._queue.popleft()
            if job.answered:
                continue
            slot = self._idle.pop(next(iter(self._idle)))
            job.slot, job.sent, slot.job = slot, time.monotonic(), job
            self._running += 1
            t = job.task
            try:
                slot.conn.send((t.seq, t.kind, t.n, job.path, t.timing is not None, t.traceparent))
            except OSError:
                self._lose(slot, None)
                continue
            if t.timing is not None:
                job.sent_ns = frame.monotonic_ns()

    def _result(self, slot):
        try:
            seq, value, code, message, run_s, stamps = slot.conn.recv()
        except (EOFError, OSError):
            self._lose(slot, None)
            return
        job = slot.job
        if job is None or seq != job.task.seq:
            self._log.warn("worker answered a task it does not hold", worker=slot.id, seq=seq)
            return
        self._handover.observe(max(0.0, time.monotonic() - job.sent - run_s))
        slot.job, job.slot = None, None
        if stamps is not None and job.task.timing is not None:  # the worker's own, on the shared clock
            job.task.timing[frame.TASK_START], job.task.timing[frame.TASK_END] = stamps
        self._running -= 1
        slot.tasks += 1
        self._idle[slot.id] = slot
        self._answer(job, value, tasks.TaskError(code, message) if code else None, run_s, slot.id)

    def _answer(self, job, value="", error=None, run_s=0.0, worker_id=None):
        if job.answered:
            return
        job.answered = True
        del self._jobs[job.task.seq]
        t = job.task
        if error is None:
            self.completed += 1
        else:
            self.failed += 1
        self._outcomes.count(t.kind, error.code if error else "")
        queued = (job.sent or time.monotonic()) - t.received
        if worker_id is None:
            worker_id = job.slot.id if job.slot else ""
        if t.timing is not None and job.slot is not None and job.sent_ns is not None:
            # Stopped on its worker, or lost with it: the worker never said
            # when the task ran, so the plugin's view stands in for it, from
            # the handover to now (its worker is killed right after).
            t.timing[frame.TASK_START] = job.sent_ns
            t.timing[frame.TASK_END] = frame.monotonic_ns()
        self._out.add(frame.reply(t.seq, value, worker_id, queued, run_s, error, t.timing))

    def _flush(self):
        if not self._out:
            return
        data = self._out.take()
        try:
            self._sock.sendall(data)
        except OSError as e:  # the host is gone: its end of the channel says so next
            self._log.debug("write replies", error=str(e))

    # -- workers

    def _start(self, slot):
        ours, theirs = self._ctx.Pipe()
        proc = self._ctx.Process(target=worker.main, args=(theirs, slot.id, self._lifeline[0]),
                                 name=f"wslab-{slot.id}", daemon=True)
        try:
            proc.start()
        finally:
            theirs.close()
        slot.proc, slot.conn, slot.started_at, slot.restart_at = proc, ours, time.monotonic(), None
        self._restarting.pop(slot.id, None)
        self._idle[slot.id] = slot
        self._log.debug("worker started", worker=slot.id, pid=proc.pid)

    def _lose(self, slot, why):
        """Takes slot's process out of service and schedules its
        replacement. why is the TaskError its task was stopped with
        (answered already): the replacement starts at once. None: the
        worker died or broke by itself, its task fails with
        executor_failed, and it restarts after a backoff."""
        proc, job = slot.proc, slot.job
        if proc is None:
            return
        about = job.task.log_fields() if job is not None else {}
        if why is None:
            detail = _exit_status(proc)  # before the kill, which would be its cause
            self._log.warn("worker died, restarting it", worker=slot.id, pid=proc.pid, reason=detail, **about)
            if job is not None:
                self._answer(job, error=tasks.TaskError(
                    tasks.EXECUTOR_FAILED, f"worker {slot.id} (pid {proc.pid}) died under the task: {detail}"))
        self._take_out(slot)
        slot.restarts += 1
        self._exits[DIED if why is None else REPLACED].inc()
        now = time.monotonic()
        if why is None:
            ran = now - slot.started_at
            slot.backoff = MIN_BACKOFF_S if ran >= STABLE_AFTER_S or not slot.backoff else min(
                2 * slot.backoff, MAX_BACKOFF_S)
            slot.restart_at = now + slot.backoff
        else:
            self._log.debug("worker replaced: its task was stopped", worker=slot.id, pid=proc.pid, why=why.code,
                            **about)
            slot.restart_at = now
        self._restarting[slot.id] = slot

    def _take_out(self, slot):
        """Kills slot's process (harmless when it is dead already) and stops
        using it; it is reaped once its sentinel says it has gone."""
        proc, job = slot.proc, slot.job
        proc.kill()
        slot.conn.close()
        self._dying[proc.sentinel] = (proc, job.path if job else None)
        self._idle.pop(slot.id, None)
        slot.proc = slot.conn = slot.job = None
        if job is not None:
            job.slot = None
            self._running -= 1

    def _restart_due(self, now):
        for slot in [s for s in self._restarting.values() if s.restart_at <= now]:
            try:
                self._start(slot)
            except OSError as e:
                slot.backoff = min(2 * slot.backoff, MAX_BACKOFF_S) if slot.backoff else MIN_BACKOFF_S
                slot.restart_at = now + slot.backoff
                self._log.error("start worker", worker=slot.id, error=str(e), retry_in_s=slot.backoff)

    def _reap(self, sentinel, timeout=0):
        proc, path = self._dying.pop(sentinel)
        proc.join(timeout)
        if proc.exitcode is not None:
            proc.close()
        if path is not None:  # its file, now that nothing writes it
            try:
                os.remove(path)
            except FileNotFoundError:
                pass

    # -- from other threads

    def stop(self):
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # a wake-up is pending already

    def _drain_wake(self):
        try:
            os.read(self._wake_r, 512)
        except BlockingIOError:
            pass

    def stats(self):
        with self._lock:
            workers = [pb.WorkerStats(id=s.id, pid=s.proc.pid if s.proc else 0, state=s.state(), tasks=s.tasks,
                                      restarts=s.restarts) for s in self._slots]
            running = self._running
            return pb.StatsResponse(running=running, queued=len(self._jobs) - running, completed=self.completed,
                                    failed=self.failed, capacity=len(self._slots),
                                    restarts=sum(s.restarts for s in self._slots), workers=workers)

    def close(self):
        """Answers what is left with shutting_down, and kills and reaps
        every worker: none outlives the plugin."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for job in list(self._jobs.values()):
                self._answer(job, error=frame.shutting_down())
            for slot in self._slots:
                if slot.proc is not None:
                    self._take_out(slot)
            self._restarting.clear()
            for sentinel in list(self._dying):
                self._reap(sentinel, REAP_TIMEOUT_S)
        if self._sock is not None:
            self._flush()
        # The wake-up pipe stays open until the process ends: a late stop
        # (SIGTERM) must not write to a descriptor that has been reused.


def _exit_status(proc):
    proc.join(0)
    code = proc.exitcode
    if code is None:
        return "its pipe closed before it exited"
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"
