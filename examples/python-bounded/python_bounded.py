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

It is the SDK's wslab.aio.LoopStrategy with a policy of its own: the base
serves the channel on the loop, runs and answers the tasks, and answers a
task it holds back when it is cancelled, reaches its deadline or is there
when the plugin stops; this file only says when a task gets its slot.

Its metric, besides the SDK's wslab_python_tasks_total:
wslab_python_bounded_wait_seconds, how long each task that ran waited for
its slot.

Installed as a plugin, this file's first line names the interpreter of the
virtual environment wslab is installed in (README.md)."""

import collections
import time

from wslab import aio, keys, serve

CONCURRENCY = keys.Key("python_bounded", "concurrency", keys.INT, "4",
                       "how many tasks are in progress at once on the event loop; the rest wait in arrival order",
                       min=1, max=1024)


class BoundedStrategy(aio.LoopStrategy):
    name = "python-bounded"
    description = "one asyncio event loop (Python, out of tree), at most [python_bounded] concurrency tasks at once"
    keys = (CONCURRENCY,)
    worker = "bounded"

    def __init__(self, registry=None):
        super().__init__(registry)
        self._wait = self.registry.histogram("wslab_python_bounded_wait_seconds",
                                             "How long a task waited for one of the strategy's slots.")
        self._busy = 0  # jobs holding a slot
        self._waiting = collections.deque()  # jobs without one, in arrival order (answered ones skipped)

    def configure(self, config, log):
        self.capacity = config.int(CONCURRENCY.id)
        return super().configure(config, log)

    def admit(self, job):
        if self._busy < self.capacity:
            self._give(job)
        else:
            self._waiting.append(job)

    def finished(self, job):
        """job's slot is free: the oldest waiting job that is not answered gets it."""
        self._busy -= 1
        while self._busy < self.capacity and self._waiting:
            job = self._waiting.popleft()
            if not job.answered:
                self._give(job)

    def _give(self, job):
        self._busy += 1
        self._wait.observe(time.monotonic() - job.task.received)
        self.run(job)


if __name__ == "__main__":
    serve.run(BoundedStrategy())
