"""A python-multiprocessing worker process: it runs one task at a time,
as the plugin hands them over its pipe, and answers each. It is started
from the forkserver, which preloads this module, and killed by the plugin
when its task is cancelled or overruns its deadline."""

import os
import signal
import threading
import time

from . import tasks, trace
from .log import Logger


def main(conn, worker_id, lifeline):
    """Serves tasks from conn until the plugin closes it.

    Request: (seq, kind, n, path, timing, traceparent); reply: (seq,
    result, error_code, error_message, run_seconds, stamps). path is the io
    task's file, chosen by the plugin so that it can remove the file of a
    worker it kills. timing says the task asks for its timeline: stamps is
    then the instants it started and ended, (task_start, task_end) in ns of
    CLOCK_MONOTONIC, which every process on the machine shares; None
    otherwise. traceparent is the task's, as the host sent it, for the log
    lines about it. lifeline is the read end of a pipe only the plugin
    writes: it ends when the plugin does, however it dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the host's to handle
    _exit_with_plugin(lifeline)
    # The plugin's stderr, inherited through the forkserver, which the host reads.
    log = Logger("worker." + worker_id, os.environ.get("WSLAB_LOG_LEVEL"))
    while True:  # bounded: ends when the plugin closes the pipe
        try:
            request = conn.recv()
        except EOFError:
            return
        conn.send(run(request, worker_id, log))


def run(request, worker_id, log):
    """Runs one request (see main) to its reply; a task that fails for want
    of something (internal: a bug, an OS error) is logged, naming its trace."""
    seq, kind, n, path, timing, traceparent = request
    started_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC) if timing else 0
    start = time.monotonic()
    value, code, message = "", "", ""
    try:
        value = tasks.run(kind, n, path)
    except tasks.TaskError as e:
        code, message = e.code, e.message
    except Exception as e:  # a bug or an OS error fails the task, not the worker
        code, message = tasks.INTERNAL, f"worker {worker_id}: {e}"
    run_s = time.monotonic() - start
    stamps = (started_ns, time.clock_gettime_ns(time.CLOCK_MONOTONIC)) if timing else None
    if code == tasks.INTERNAL:
        log.warn("task failed", worker=worker_id, seq=seq, kind=kind if kind in tasks.KINDS else tasks.OTHER_KIND,
                 error=message, **trace.log_fields(traceparent))
    return seq, value, code, message, run_s, stamps


def _exit_with_plugin(lifeline):
    """Exits once the plugin is gone, even while a task holds the main
    thread. The parent is the forkserver, which outlives the plugin while
    its children run, so the lifeline is watched, not the parent: a daemon
    thread that lives as long as the process, which it ends."""

    def watch():
        lifeline.poll(None)  # readable only at its end: the plugin never writes
        os._exit(3)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
