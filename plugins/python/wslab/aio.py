"""Strategies that run their tasks on one asyncio event loop in the plugin
process.

LoopStrategy is the base of such a strategy, in the tree or out of it: it
serves the data channel on the loop, turns requests into jobs
(frame.Requests), runs a job's task (execute: a sleep awaits asyncio.sleep;
io makes plain, blocking file calls; fib and cpu compute in the loop's
thread), answers every task once (its replies of one turn of the loop leave
in one write), counts what Stats reports and wslab_python_tasks_total, and
stops: every task it read has its reply when serve returns. What is left
to a subclass is its policy: when a job runs (admit, run, finished), and
what it measures.

AsyncioStrategy is the Python lab's asyncio strategy, python-asyncio: every
task runs at once, as that lab's asyncio server ran them. CPU-bound work
blocks the loop, and every other task, read and reply waits behind it: that
is what the lab measures. It sets no bound of its own (concurrency 0), and
reports, besides wslab_python_tasks_total, how late the loop runs what is
due (wslab_python_asyncio_loop_lag_seconds), which is how long a task that
became ready waits behind CPU work holding the loop."""

import asyncio
import os
import time

from . import executor_pb2 as pb
from . import frame, metrics, tasks
from .serve import Strategy

# LoopStrategy.worker unless a subclass names its own.
WORKER = "loop"
# How often AsyncioStrategy samples the loop's lag: a callback asks to run
# this much later, and how late it runs is the lag.
LAG_INTERVAL_S = 0.1


class Job:
    """A task from its receipt to its one reply, as a LoopStrategy's policy
    sees it. task is the frame.Task; started is when its turn began
    (time.monotonic()), None before; answered is whether its reply is out.
    A job admit held back may be answered while it waits (cancelled, past
    its deadline, stopping): a policy must not run it then."""

    __slots__ = ("task", "started", "answered", "_coro", "_why", "_timer")

    def __init__(self, task):
        self.task = task
        self.started = None
        self.answered = False
        self._coro = None  # its asyncio.Task, once it is given its turn
        self._why = None  # the TaskError it was stopped with after it was given its turn
        self._timer = None  # the deadline's call_at handle while admit holds it back


class LoopStrategy(Strategy):
    """A serve.Strategy that runs every task on one asyncio event loop.

    A subclass sets name, description, keys if it has any, and worker (the
    ExecuteResponse.worker of its replies) and capacity (its bound, as
    StrategyInfo.concurrency and StatsResponse.capacity say; 0: none), and
    may override, each called on the loop:

    - admit(job): a task arrived; run(job) now, or keep the job and run it
      later, from finished or a timer. The default runs it at once. A job
      kept back that is cancelled, reaches its deadline or is there when
      serving stops is answered at once (job.answered), and never runs.
    - finished(job): the turn run(job) gave has ended and job is answered;
      the place to run what waits.
    - execute(task): the work, a coroutine that returns the reply's text or
      raises tasks.TaskError.
    - opened() and closing(): serving began (the channel is open; nothing
      read yet) and ends (after the last reply, unless serving failed,
      before the channel closes): for what lives as long as serving.

    A subclass that overrides __init__ or configure calls the base's; its
    own metrics go in self.registry, which the constructor's registry
    replaces (a test's). configure gives it config (a control.Config) and
    log before it returns. queued (received, its turn not begun), running,
    completed and failed are what Stats reports: read them, do not set
    them. loop is the running loop while serving (for call_at), else None."""

    worker = WORKER
    capacity = 0

    def __init__(self, registry=None):
        if registry is not None:
            self.registry = registry
        self._outcomes = metrics.TaskOutcomes(self.registry)
        self.config = self.log = None
        self._loop = None
        self._ended = None  # resolved when serving must end
        self._stop_requested = False
        self._transport = None
        self._jobs = {}  # seq -> Job, received and not yet answered
        self._requests = None  # a frame.Requests, once configured
        self._out = frame.Outbox()  # replies to write at the end of this turn of the loop
        self.queued = self.running = self.completed = self.failed = 0

    # The policy's hooks

    def admit(self, job):
        """A task arrived and the bounds allow it: the default runs it at once."""
        self.run(job)

    def finished(self, job):
        """job's turn has ended and it is answered."""

    async def execute(self, task):
        """Runs task (a frame.Task) on the loop to its reply's text: a sleep
        awaits, the rest compute in the loop's thread, each until task's
        deadline at most."""
        if task.deadline is not None and time.monotonic() >= task.deadline:
            raise tasks.timed_out()
        if task.kind == "sleep":
            try:
                async with asyncio.timeout_at(task.deadline):
                    await asyncio.sleep(task.n / 1000)
            except TimeoutError:
                raise tasks.timed_out() from None
            return tasks.SLEEP_DONE
        path = tasks.io_path(self.config.data_dir, self.config.large_file_name) if task.kind == "io" else None
        return tasks.run(task.kind, task.n, path, task.deadline)

    def opened(self):
        """Serving has begun: the channel is open, no request read yet."""

    def closing(self):
        """Serving ends: every task is answered (unless serving failed);
        the channel closes next."""

    # What the policy calls

    @property
    def loop(self):
        return self._loop

    def run(self, job):
        """Gives job its turn: on the loop's next turn its task begins
        (job.started), runs execute and is answered, then finished(job)
        is called. A job runs once, and not once answered."""
        if job.answered or job._coro is not None:
            raise RuntimeError(f"task {job.task.seq} cannot run: it is answered or has had its turn")
        if job._timer is not None:
            job._timer.cancel()
            job._timer = None
        job._coro = self._loop.create_task(self._run(job))

    # serve.Strategy

    def configure(self, config, log):
        self.config, self.log = config, log
        self._requests = frame.Requests(self._jobs, config.bounds, log, self._start, self._refuse, self._cancel)
        return pb.StrategyInfo(name=self.name, description=self.description, concurrency=self.capacity,
                               pid=os.getpid())

    def serve(self, sock):
        try:
            asyncio.run(self._serve(sock))
        finally:
            self._loop = None  # closed: a late stop has nothing to wake

    def stop(self):
        self._stop_requested = True
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self.end)
            except RuntimeError:  # the loop closed meanwhile: serving has ended
                pass

    def stats(self):
        # Read from a control thread: each counter is one int, read whole.
        return pb.StatsResponse(running=self.running, queued=self.queued, completed=self.completed,
                                failed=self.failed, capacity=self.capacity)

    # The loop

    async def _serve(self, sock):
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()
        # stop sets the flag, then reads _loop; we set _loop, then read the
        # flag: one of us sees the other.
        self._loop = loop
        if self._stop_requested:
            return
        self._transport, _ = await loop.connect_accepted_socket(lambda: _Channel(self), sock)
        self.opened()
        try:
            await self._ended
            await self._stop_all()
        finally:
            self.closing()
        self._transport.close()

    async def _stop_all(self):
        """Stops every task still out, each with its reply: one kept back
        is answered now, one whose turn has begun is cancelled."""
        for job in list(self._jobs.values()):
            self._stop(job, frame.shutting_down())
        await asyncio.gather(*(j._coro for j in list(self._jobs.values()) if j._coro), return_exceptions=True)
        self._flush()

    def end(self):
        """Ends serving (on the loop)."""
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    def handle(self, req):
        """Acts on one request from the host (on the loop)."""
        self._requests.handle(req)

    def broken(self, error):
        """The channel carries something that is not a frame (on the loop)."""
        self.log.error("data channel broken", error=str(error))

    def _start(self, task):
        job = Job(task)
        self._jobs[task.seq] = job
        self.queued += 1
        if self._ended.done():  # stopping: nothing new runs
            self._stop(job, frame.shutting_down())
            return
        self.admit(job)
        if job._coro is None and not job.answered and task.deadline is not None:
            # Kept back: its deadline answers it where it waits. The loop's
            # clock is time.monotonic, the deadline's.
            job._timer = self._loop.call_at(task.deadline, self._expire, job)

    def _expire(self, job):
        if job._coro is None:
            self._stop(job, tasks.timed_out())

    def _refuse(self, task, error):
        self._count(task, error)
        self._reply(frame.reply(task.seq, worker=self.worker, error=error, timing=task.timing))

    def _cancel(self, job):
        self._stop(job, frame.cancelled())

    def _stop(self, job, why):
        """Stops job with why: one admit kept back is answered why at once;
        one given its turn that has not begun answers why when it begins; a
        running sleep is cancelled at once; CPU work cannot be interrupted
        (it holds the loop), so it ends first."""
        if job.answered or job._why is not None:
            return
        if job._coro is None:
            if job._timer is not None:
                job._timer.cancel()
                job._timer = None
            self.queued -= 1
            self._answer(job, "", why)
            return
        job._why = why
        if job.started is not None:
            job._coro.cancel()

    async def _run(self, job):
        t = job.task
        job.started = time.monotonic()
        self.queued -= 1
        self.running += 1
        value, error = "", job._why
        timing = t.timing if error is None else None  # a task stopped before its turn has no stages of its own
        try:
            if error is None:
                if timing is not None:
                    timing[frame.TASK_START] = frame.monotonic_ns()
                value = await self.execute(t)
        except tasks.TaskError as e:
            error = e
        except asyncio.CancelledError:
            error = job._why or frame.shutting_down()
        except Exception as e:  # a bug or an OS error: the task fails, the loop goes on
            error = tasks.TaskError(tasks.INTERNAL, str(e))
        if timing is not None:
            timing[frame.TASK_END] = frame.monotonic_ns()
        self.running -= 1
        if error is not None and error.code == tasks.INTERNAL:
            self.log.warn("task failed", error=error.message, **t.log_fields())
        self._answer(job, value, error)
        self.finished(job)

    def _answer(self, job, value, error):
        job.answered = True
        del self._jobs[job.task.seq]
        t, now = job.task, time.monotonic()
        self._count(t, error)
        started = now if job.started is None else job.started
        self._reply(frame.reply(t.seq, value, self.worker, started - t.received, now - started, error, t.timing))

    def _count(self, task, error):
        if error is None:
            self.completed += 1
        else:
            self.failed += 1
        self._outcomes.count(task.kind, error.code if error else "")

    def _reply(self, data):
        """Queues a reply; the replies of one turn of the loop leave in one write."""
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.add(data)

    def _flush(self):
        if self._out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(self._out.take())
        self._out.clear()


class AsyncioStrategy(LoopStrategy):
    """python-asyncio: every task runs at once on the loop (admit's
    default), and the loop's lag is sampled while it serves."""

    name = "python-asyncio"
    description = "one asyncio event loop in the plugin process (Python): CPU-bound tasks block it"

    def __init__(self, registry=None):
        super().__init__(registry)
        self._lag = self.registry.histogram(
            "wslab_python_asyncio_loop_lag_seconds",
            f"How late the event loop ran a callback that was due, sampled every {LAG_INTERVAL_S} s: "
            "the time a ready task waits behind CPU work holding the loop.")
        self._lag_timer = None

    def opened(self):
        self._next_lag_sample()

    def closing(self):
        self._lag_timer.cancel()

    def _next_lag_sample(self):
        due = self.loop.time() + LAG_INTERVAL_S
        self._lag_timer = self.loop.call_at(due, self._sample_lag, due)

    def _sample_lag(self, due):
        """Observes how late this callback, due at due, ran."""
        self._lag.observe(max(0.0, self.loop.time() - due))
        self._next_lag_sample()


class _Channel(asyncio.Protocol):
    """The data channel on the loop."""

    def __init__(self, strategy):
        self._strategy = strategy
        self._decoder = frame.Decoder()
        self._transport = None

    def connection_made(self, transport):
        self._transport = transport

    def data_received(self, data):
        try:
            requests = self._decoder.feed(data)
        except frame.FrameError as e:
            self._strategy.broken(e)
            self._transport.close()
            return
        for req in requests:
            self._strategy.handle(req)

    def connection_lost(self, exc):
        self._strategy.end()
