"""A Python strategy plugin's whole main, as taskproto/plugin.Serve is a Go
plugin's: the handshake, the control service, then the data channel,
until the host closes it, asks the plugin to stop, or dies."""

import os
import signal
import socket
import sys
import threading

from . import control, handshake, keys, metrics
from .log import Logger

DATA_FD_ENV = "WSLAB_DATA_FD"
# How often the plugin looks at whether its parent is still the host
# (serve.go: ExitWithParent).
PARENT_POLL_S = 0.25
# How long the control server lets calls in progress end when it stops
# (go-plugin's own plugins stop at once; the reply to Shutdown needs a moment).
STOP_GRACE_S = 0.25


class Strategy:
    """What a strategy plugin implements. name, description and keys (a
    sequence of keys.Key) describe it before it is configured. registry is
    where its own metrics are (metrics.py): the SDK reports what it holds
    with every Stats; the process's metrics.registry() unless the strategy
    sets another (a test's, for counts of its own)."""

    name = ""
    description = ""
    keys = ()
    registry = metrics.registry()

    def prepare(self, log):
        """Runs before the control service starts any thread."""

    def configure(self, config, log):
        """Builds the strategy from config (a control.Config) and returns its
        pb.StrategyInfo; ValueError refuses the configuration."""
        raise NotImplementedError

    def serve(self, sock):
        """Serves tasks on the data channel sock until it ends or stop is
        called; every task it read has had its reply when it returns."""
        raise NotImplementedError

    def stop(self):
        """Makes serve return soon; safe from any thread and from a signal
        handler."""
        raise NotImplementedError

    def stats(self):
        """A pb.StatsResponse; called from the control service's threads."""
        raise NotImplementedError

    def close(self):
        """Releases what configure started (workers); serve has returned,
        or never ran."""


class ParentWatch:
    """Exits the process once its parent, the host, is gone: go-plugin does
    not notice a dead host (go-plugin #10), and the data channel is not read
    before Configure."""

    def __init__(self, log):
        self._log = log
        self._parent = os.getppid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="parent-watch", daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._stop.wait(PARENT_POLL_S):  # bounded: ends at stop, or exits
            if os.getppid() != self._parent:
                self._log.error("parent process exited, exiting", parent=self._parent)
                os._exit(3)

    def stop(self):
        self._stop.set()
        self._thread.join()


class _Main:
    """What the main thread is told to do next, once: serve the data
    channel (after Configure) or stop (Shutdown, SIGTERM)."""

    def __init__(self, strategy):
        self._strategy = strategy
        # Reentrant: SIGTERM's handler runs on the main thread, which may
        # hold it in wait.
        self._cond = threading.Condition(threading.RLock())
        self._next = None
        self._stopping = False

    def configured(self):
        with self._cond:
            if self._next is None:
                self._next = "serve"
                self._cond.notify()

    def shutdown(self):
        with self._cond:
            self._stopping = True
            if self._next is None:
                self._next = "stop"
                self._cond.notify()
        self._strategy.stop()

    def wait(self):
        with self._cond:
            self._cond.wait_for(lambda: self._next is not None)
            return self._next

    def stopping(self):
        with self._cond:
            return self._stopping


def data_channel(log):
    """The socket the host passed as WSLAB_DATA_FD."""
    fd = os.environ.get(DATA_FD_ENV, "")
    if not fd.isdigit() or int(fd) < 3:
        log.error("no data channel: this is a wslab strategy plugin, started by the host",
                  error=f"{DATA_FD_ENV}={fd!r} is not a file descriptor a parent passes")
        sys.exit(1)
    try:
        sock = socket.socket(fileno=int(fd))
    except OSError as e:
        log.error("no data channel: this is a wslab strategy plugin, started by the host", error=str(e))
        sys.exit(1)
    sock.set_inheritable(False)  # workers must not keep the host's channel open
    return sock


def run(strategy):
    """Serves strategy as the host's plugin, and exits the process."""
    log = Logger(strategy.name, os.environ.get("WSLAB_LOG_LEVEL"))
    # Ctrl-C in a terminal is for the host, which stops its plugin in order
    # (go-plugin's plugins ignore it too).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    handshake.check_cookie()
    problem = keys.check(strategy.keys)
    if problem:
        handshake.fail(f"{strategy.name}: the strategy declares its configuration wrongly: {problem}")
    version = handshake.negotiate_version()
    sock = data_channel(log)
    tls = handshake.auto_mtls()
    stdio = control.Stdio()
    strategy.prepare(log)
    main = _Main(strategy)
    listener = handshake.Listener()
    ctl = control.Control(strategy, log, main.configured, main.shutdown)
    server = control.server(ctl.handlers(stdio), listener.path, tls.credentials() if tls else None)
    watch = ParentWatch(log)
    signal.signal(signal.SIGTERM, lambda *_: main.shutdown())
    stdio.announce(handshake.line(version, listener.path, tls))
    log.debug("plugin address", network="unix", address=listener.path, tls=tls is not None)

    if main.wait() == "serve" and not main.stopping():
        _serve(strategy, sock, main, log)
    strategy.close()
    server.stop(STOP_GRACE_S).wait()
    listener.close()
    watch.stop()
    stdio.stop()
    log.debug("plugin stopped")
    sys.exit(0)


def _serve(strategy, sock, main, log):
    try:
        strategy.serve(sock)
    except Exception as e:  # a broken channel: the host sees its end and restarts us
        log.error("data channel failed", error=repr(e))
    else:
        log.debug("stopped serving tasks: the host asked" if main.stopping() else "data channel closed by the host")

