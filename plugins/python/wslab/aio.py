"""The Python lab's asyncio strategy: every task runs on one asyncio event
loop in the plugin process, as that lab's asyncio server ran them. A sleep
awaits asyncio.sleep; io makes plain (blocking) file calls; fib and cpu
compute in the loop's thread. So CPU-bound work blocks the loop, and every
other task, read and reply waits behind it: that is what the lab measures.
The strategy sets no bound of its own (concurrency 0).

Its metrics, besides the SDK's wslab_python_tasks_total: how late the loop
runs what is due (wslab_python_asyncio_loop_lag_seconds), which is how long
a task that became ready waits behind CPU work holding the loop."""

import asyncio
import os
import time

from . import executor_pb2 as pb
from . import frame, metrics, tasks
from .serve import Strategy

WORKER = "loop"
# How often the loop's lag is sampled: a callback asks to run this much
# later, and how late it runs is the lag.
LAG_INTERVAL_S = 0.1


class _Job:
    """A task from its receipt to its one reply."""

    __slots__ = ("task", "coro", "started", "why")

    def __init__(self, task):
        self.task = task
        self.coro = None  # its asyncio.Task
        self.started = False
        self.why = None  # the TaskError it is stopped with, once it is


class AsyncioStrategy(Strategy):
    name = "python-asyncio"
    description = "one asyncio event loop in the plugin process (Python): CPU-bound tasks block it"

    def __init__(self, registry=None):
        if registry is not None:
            self.registry = registry
        self._outcomes = metrics.TaskOutcomes(self.registry)
        self._lag = self.registry.histogram(
            "wslab_python_asyncio_loop_lag_seconds",
            f"How late the event loop ran a callback that was due, sampled every {LAG_INTERVAL_S} s: "
            "the time a ready task waits behind CPU work holding the loop.")
        self._lag_timer = None
        self._config = None
        self._log = None
        self._loop = None
        self._ended = None  # resolved when serving must end
        self._stop_requested = False
        self._transport = None
        self._jobs = {}  # seq -> _Job, received and not yet answered
        self._requests = None  # a frame.Requests, once configured
        self._out = frame.Outbox()  # replies to write at the end of this turn of the loop
        self.queued = self.running = self.completed = self.failed = 0

    def configure(self, config, log):
        self._config, self._log = config, log
        self._requests = frame.Requests(self._jobs, config.bounds, log, self._start, self._refuse, self._cancel)
        return pb.StrategyInfo(name=self.name, description=self.description, concurrency=0, pid=os.getpid())

    def serve(self, sock):
        try:
            asyncio.run(self._serve(sock))
        finally:
            self._loop = None  # closed: a late stop has nothing to wake

    async def _serve(self, sock):
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()
        # stop sets the flag, then reads _loop; we set _loop, then read the
        # flag: one of us sees the other.
        self._loop = loop
        if self._stop_requested:
            return
        self._transport, _ = await loop.connect_accepted_socket(lambda: _Channel(self), sock)
        self._next_lag_sample()
        try:
            await self._ended
            await self._stop_all()
        finally:
            self._lag_timer.cancel()
        self._transport.close()

    def _next_lag_sample(self):
        due = self._loop.time() + LAG_INTERVAL_S
        self._lag_timer = self._loop.call_at(due, self._sample_lag, due)

    def _sample_lag(self, due):
        """Observes how late this callback, due at due, ran."""
        self._lag.observe(max(0.0, self._loop.time() - due))
        self._next_lag_sample()

    async def _stop_all(self):
        """Stops every task still out, each with its reply."""
        jobs = list(self._jobs.values())
        for job in jobs:
            self._stop(job, frame.shutting_down())
        await asyncio.gather(*(j.coro for j in jobs if j.coro), return_exceptions=True)
        self._flush()

    def stop(self):
        self._stop_requested = True
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self.end)
            except RuntimeError:  # the loop closed meanwhile: serving has ended
                pass

    def end(self):
        """Ends serving (on the loop)."""
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    def handle(self, req):
        """Acts on one request from the host (on the loop)."""
        self._requests.handle(req)

    def _start(self, task):
        job = _Job(task)
        self._jobs[task.seq] = job
        self.queued += 1
        job.coro = self._loop.create_task(self._run(job))

    def _refuse(self, task, error):
        self.failed += 1
        self._outcomes.count(task.kind, error.code)
        self._reply(frame.reply(task.seq, worker=WORKER, error=error, timing=task.timing))

    def _cancel(self, job):
        self._stop(job, frame.cancelled())

    def _stop(self, job, why):
        """Stops job with why: a job not yet started answers why when its
        turn comes; a running sleep is cancelled at once; CPU work cannot be
        interrupted (it holds the loop), so it ends first."""
        if job.why is not None:
            return
        job.why = why
        if job.started:
            job.coro.cancel()

    async def _run(self, job):
        t = job.task
        start = time.monotonic()
        self.queued -= 1
        self.running += 1
        job.started = True
        value, error = "", job.why
        timing = t.timing if error is None else None  # a task stopped before its turn has no stages of its own
        try:
            if error is None:
                if timing is not None:
                    timing[frame.TASK_START] = frame.monotonic_ns()
                value = await self._execute(t)
        except tasks.TaskError as e:
            error = e
        except asyncio.CancelledError:
            error = job.why or frame.shutting_down()
        except Exception as e:  # a bug or an OS error: the task fails, the loop goes on
            error = tasks.TaskError(tasks.INTERNAL, str(e))
        if timing is not None:
            timing[frame.TASK_END] = frame.monotonic_ns()
        self.running -= 1
        if error is not None and error.code == tasks.INTERNAL:
            self._log.warn("task failed", error=error.message, **t.log_fields())
        self._answer(job, value, error, start)

    async def _execute(self, t):
        if t.deadline is not None and time.monotonic() >= t.deadline:
            raise tasks.timed_out()
        if t.kind == "sleep":
            try:
                async with asyncio.timeout_at(t.deadline):
                    await asyncio.sleep(t.n / 1000)
            except TimeoutError:
                raise tasks.timed_out() from None
            return tasks.SLEEP_DONE
        path = tasks.io_path(self._config.data_dir, self._config.large_file_name) if t.kind == "io" else None
        return tasks.run(t.kind, t.n, path, t.deadline)

    def _answer(self, job, value, error, start):
        del self._jobs[job.task.seq]
        t = job.task
        if error is None:
            self.completed += 1
        else:
            self.failed += 1
        self._outcomes.count(t.kind, error.code if error else "")
        now = time.monotonic()
        self._reply(frame.reply(t.seq, value, WORKER, start - t.received, now - start, error, t.timing))

    def _reply(self, data):
        """Queues a reply; the replies of one turn of the loop leave in one write."""
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.add(data)

    def _flush(self):
        if self._out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(self._out.take())
        self._out.clear()

    def broken(self, error):
        self._log.error("data channel broken", error=str(error))

    def stats(self):
        # Read from a control thread: each counter is one int, read whole.
        return pb.StatsResponse(running=self.running, queued=self.queued, completed=self.completed,
                                failed=self.failed, capacity=0)


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
