#!/usr/bin/env python3
"""python-bounded: a wslab strategy written outside the wslab tree, on the
wslab Python package as pip installs it (README.md says how).

Every task runs on one asyncio event loop, as python-asyncio's do, but at
most [python_bounded] concurrency of them are in progress at once; the rest
wait for a slot in arrival order. A waiting task that is cancelled, or whose
deadline comes, is answered at once and never runs. The strategy declares
its bound (StrategyInfo.concurrency), so the host sends it that many tasks
and a few more, and keeps the rest in its own fair queue. CPU work still
holds the loop while it computes: the bound is on what is in progress (the
sleeps and io a slow backend would be), not on cores.

Its metric, besides the SDK's wslab_python_tasks_total:
wslab_python_bounded_wait_seconds, how long each task that ran waited for
its slot.

Installed as a plugin, this file's first line names the interpreter of the
virtual environment wslab is installed in (README.md)."""

import asyncio
import collections
import os
import time

from wslab import executor_pb2 as pb
from wslab import frame, keys, metrics, serve, tasks

CONCURRENCY = keys.Key("python_bounded", "concurrency", keys.INT, "4",
                       "how many tasks are in progress at once on the event loop; the rest wait in arrival order",
                       min=1, max=1024)
WORKER = "bounded"


class _Job:
    """A task from its receipt to its one reply."""

    __slots__ = ("task", "coro", "timer", "started", "answered", "why")

    def __init__(self, task):
        self.task = task
        self.coro = None  # its asyncio.Task, once it has a slot
        self.timer = None  # the deadline's call_at handle while it waits
        self.started = None  # when it got its slot (time.monotonic)
        self.answered = False
        self.why = None  # the TaskError it was stopped with while it ran


class BoundedStrategy(serve.Strategy):
    name = "python-bounded"
    description = "one asyncio event loop (Python, out of tree), at most [python_bounded] concurrency tasks at once"
    keys = (CONCURRENCY,)

    def __init__(self, registry=None):
        if registry is not None:
            self.registry = registry
        self._outcomes = metrics.TaskOutcomes(self.registry)
        self._wait = self.registry.histogram("wslab_python_bounded_wait_seconds",
                                             "How long a task waited for one of the strategy's slots.")
        self.limit = 0
        self._config = self._log = self._requests = None
        self._loop = self._ended = self._transport = None
        self._stop_requested = False
        self._jobs = {}  # seq -> _Job, received and not yet answered
        self._waiting = collections.deque()  # jobs without a slot, in arrival order (answered ones skipped)
        self._out = frame.Outbox()  # the replies of this turn of the loop
        self.queued = self.running = self.completed = self.failed = 0

    # serve.Strategy

    def configure(self, config, log):
        self._config, self._log = config, log
        self.limit = config.int(CONCURRENCY.id)
        self._requests = frame.Requests(self._jobs, config.bounds, log, self._start, self._refuse, self._cancel)
        return pb.StrategyInfo(name=self.name, description=self.description, concurrency=self.limit, pid=os.getpid())

    def serve(self, sock):
        try:
            asyncio.run(self._serve(sock))
        finally:
            self._loop = None

    def stop(self):
        self._stop_requested = True
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._end)
            except RuntimeError:  # the loop has closed: serving has ended
                pass

    def stats(self):
        # From a control thread: each counter is one int, read whole.
        return pb.StatsResponse(running=self.running, queued=self.queued, completed=self.completed,
                                failed=self.failed, capacity=self.limit)

    # The loop

    async def _serve(self, sock):
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()
        self._loop = loop  # stop sets its flag, then reads _loop: one of us sees the other
        if self._stop_requested:
            return
        self._transport, _ = await loop.connect_accepted_socket(lambda: _Channel(self), sock)
        await self._ended
        # Stopping: what waits is answered now, what runs is stopped.
        for job in list(self._jobs.values()):
            self._stop(job, frame.shutting_down())
        await asyncio.gather(*(j.coro for j in self._jobs.values() if j.coro), return_exceptions=True)
        self._flush()
        self._transport.close()

    def _end(self):
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    def _start(self, task):
        job = _Job(task)
        self._jobs[task.seq] = job
        if self._ended.done():  # stopping: nothing new runs
            self._answer(job, "", frame.shutting_down())
            return
        if self.running < self.limit:
            self._run(job)
            return
        self.queued += 1
        self._waiting.append(job)
        if task.deadline is not None:
            # The loop's clock is time.monotonic, the deadline's.
            job.timer = self._loop.call_at(task.deadline, self._expire, job)

    def _expire(self, job):
        """A waiting task's deadline has come."""
        if job.coro is None and not job.answered:
            self._stop(job, tasks.timed_out())

    def _refuse(self, task, error):
        self._count(task, error)
        self._reply(frame.reply(task.seq, worker=WORKER, error=error, timing=task.timing))

    def _cancel(self, job):
        self._stop(job, frame.cancelled())

    def _stop(self, job, why):
        """A waiting job is answered why at once and gives up its place; a
        running one is cancelled (a sleep ends at once, CPU work when it
        lets go of the loop) and answers why."""
        if job.answered:
            return
        if job.coro is None:
            self.queued -= 1
            self._answer(job, "", why)
        elif job.why is None:
            job.why = why
            job.coro.cancel()

    def _run(self, job):
        """Gives job a slot."""
        if job.timer is not None:
            job.timer.cancel()
        self.running += 1
        job.started = time.monotonic()
        self._wait.observe(job.started - job.task.received)
        job.coro = self._loop.create_task(self._execute(job))

    def _admit(self):
        """Gives the freed slots to the oldest waiting jobs."""
        while self.running < self.limit and self._waiting:
            job = self._waiting.popleft()
            if not job.answered:
                self.queued -= 1
                self._run(job)

    async def _execute(self, job):
        t = job.task
        value, error = "", None
        if t.timing is not None:
            t.timing[frame.TASK_START] = frame.monotonic_ns()
        try:
            value = await self._work(t)
        except tasks.TaskError as e:
            error = e
        except asyncio.CancelledError:
            error = job.why or frame.shutting_down()
        except Exception as e:  # a bug or an OS error: the task fails, the loop goes on
            error = tasks.TaskError(tasks.INTERNAL, str(e))
            self._log.warn("task failed", error=str(e), **t.log_fields())
        if t.timing is not None:
            t.timing[frame.TASK_END] = frame.monotonic_ns()
        self.running -= 1
        self._answer(job, value, error)
        self._admit()

    async def _work(self, t):
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

    def _answer(self, job, value, error):
        job.answered = True
        del self._jobs[job.task.seq]
        t, now = job.task, time.monotonic()
        self._count(t, error)
        started = job.started or now
        self._reply(frame.reply(t.seq, value, WORKER, started - t.received, now - started, error, t.timing))

    def _count(self, task, error):
        if error is None:
            self.completed += 1
        else:
            self.failed += 1
        self._outcomes.count(task.kind, error.code if error else "")

    def _reply(self, data):
        """Queues a reply: the replies of one turn of the loop leave in one write."""
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.add(data)

    def _flush(self):
        if self._out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(self._out.take())
        self._out.clear()

    def handle(self, req):
        self._requests.handle(req)

    def broken(self, error):
        self._log.error("data channel broken", error=str(error))


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
        self._strategy._end()


if __name__ == "__main__":
    serve.run(BoundedStrategy())
