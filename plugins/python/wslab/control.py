"""The control connection's gRPC services, the glue written by hand with
generic handlers (grpc_tools' generated stubs are not needed):

- wslab.taskproto.v3.Executor: Describe, Configure (once), Stats;
- grpc.health.v1.Health/Check: go-plugin pings it (service "plugin");
- plugin.GRPCController/Shutdown: go-plugin's Kill asks the plugin to stop;
- plugin.GRPCStdio/StreamStdio: what the plugin writes to stdout after the
  handshake, streamed to the host as go-plugin's own plugins do.

go-plugin's broker (plugin.GRPCBroker) is not served: it exists for
plugins that call back into the host, which no wslab strategy does, and
go-plugin's client ignores its absence.

The health, controller and stdio messages are tiny, and grpc_health is not
packaged by Debian, so they are encoded here by hand."""

import os
import queue
import select
import sys
import threading
from concurrent import futures

import grpc

from . import executor_pb2 as pb
from . import keys as keyslib
from . import tasks

# The control service's threads: the stdio stream holds one for good; the
# host's pings, Describe, Configure and Stats come one at a time.
_THREADS = 4
# How long a stream or a copier waits before it looks at whether it must stop.
_POLL_S = 0.25

# grpc.health.v1: HealthCheckRequest{service: ""} and {service: "plugin"}
# (go-plugin's GRPCServiceName), and HealthCheckResponse{status: SERVING}.
_HEALTHY_REQUESTS = (b"", b"\n\x06plugin")
_SERVING = b"\x08\x01"


def _raw(handler, streaming=False):
    """A handler whose messages are passed as bytes."""
    make = grpc.unary_stream_rpc_method_handler if streaming else grpc.unary_unary_rpc_method_handler
    return make(handler, request_deserializer=None, response_serializer=None)


def _typed(handler, request, response):
    return grpc.unary_unary_rpc_method_handler(handler, request_deserializer=request.FromString,
                                               response_serializer=response.SerializeToString)


class Config:
    """What the host sent in Configure, with the declared keys checked and
    set to their effective values in settings, and the limits' bounds
    worked out once for every task's check."""

    def __init__(self, config, settings):
        self.data_dir = config.data_dir
        self.large_file_name = config.large_file_name
        # An empty Limits gives none, as Go's Serve reads it.
        lim = config.limits
        self.bounds = tasks.Bounds(
            lim if (lim.max_fib_n or lim.max_cpu_n or lim.max_io_bytes or lim.max_sleep_ms) else None)
        self.settings = settings

    def int(self, key):
        return int(self.settings[key])


class Control:
    """The plugin's side of the control connection. configured and
    shutdown are called once each, from a gRPC thread, and tell the main
    thread what to do next."""

    def __init__(self, strategy, log, configured, shutdown):
        self._strategy = strategy
        self._log = log
        self._configured_cb = configured
        self._shutdown_cb = shutdown
        self._lock = threading.Lock()
        self._configured = False

    def handlers(self, stdio):
        return [
            grpc.method_handlers_generic_handler("wslab.taskproto.v3.Executor", {
                "Describe": _typed(self.describe, pb.DescribeRequest, pb.DescribeResponse),
                "Configure": _typed(self.configure, pb.ConfigureRequest, pb.ConfigureResponse),
                "Stats": _typed(self.stats, pb.StatsRequest, pb.StatsResponse),
            }),
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": _raw(self.health)}),
            grpc.method_handlers_generic_handler("plugin.GRPCController", {"Shutdown": _raw(self.shutdown)}),
            grpc.method_handlers_generic_handler("plugin.GRPCStdio", {"StreamStdio": _raw(stdio.stream, True)}),
        ]

    def describe(self, _request, _context):
        s = self._strategy
        return pb.DescribeResponse(name=s.name, description=s.description, keys=[k.to_pb() for k in s.keys])

    def configure(self, request, context):
        with self._lock:
            if self._configured:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "plugin is already configured")
            try:
                settings = keyslib.apply(dict(request.config.settings), self._strategy.keys)
            except keyslib.KeyValueError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            try:
                info = self._strategy.configure(Config(request.config, settings), self._log)
            except ValueError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"build executor: {e}")
            self._configured = True
        self._log.info("configured", strategy=info.name, concurrency=info.concurrency)
        self._configured_cb()
        return pb.ConfigureResponse(info=info)

    def stats(self, _request, context):
        with self._lock:
            configured = self._configured
        if not configured:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "plugin is not configured")
        response = self._strategy.stats()
        try:
            response.metrics = self._strategy.registry.encode()
        except Exception as e:  # a strategy's collect callback, or a family past its bounds
            context.abort(grpc.StatusCode.INTERNAL, f"stats: encode metrics: {e}")
        return response

    def health(self, request, context):
        if request not in _HEALTHY_REQUESTS:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return _SERVING

    def shutdown(self, _request, _context):
        self._log.debug("the host asks the plugin to shut down")
        self._shutdown_cb()
        return b""


def server(handlers, address, credentials):
    """The control server listening on address (a Unix socket path)."""
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="control"),
                    handlers=handlers)
    target = "unix:" + address
    if credentials is None:
        s.add_insecure_port(target)
    else:
        s.add_secure_port(target, credentials)
    s.start()
    return s


class Stdio:
    """Takes over stdout: what the plugin, its libraries or its workers
    write to file descriptor 1 after the handshake is streamed to the host's
    StreamStdio call, as go-plugin's own plugins do (grpc_stdio.go); the
    handshake line alone goes to the host's pipe, which is then closed.
    Writers block while nobody streams, as in go-plugin."""

    # StdioData.Channel STDOUT, as field 1 of StdioData.
    _STDOUT = b"\x08\x01"

    def __init__(self):
        sys.stdout.flush()
        self._handshake_fd = os.dup(1)  # not inherited (PEP 446): children never hold the host's pipe
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 1)
        os.close(write_fd)
        self._fd = read_fd
        self._chunks = queue.Queue(maxsize=64)
        self._stopping = threading.Event()
        # stop writes here, so that the copier's select wakes at once rather
        # than at its next poll: a plugin's every stop would wait for it.
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._copy, name="stdio", daemon=True)
        self._thread.start()

    def announce(self, line):
        """Writes the handshake line to the host's stdout pipe, and closes it."""
        os.write(self._handshake_fd, line.encode())
        os.close(self._handshake_fd)

    def _copy(self):
        # Children may hold the pipe open past our own end: stop (its wake-up), not EOF, ends it.
        while not self._stopping.is_set():  # bounded: ends at EOF or stop
            ready, _, _ = select.select([self._fd, self._wake_r], [], [], _POLL_S)
            if self._fd not in ready:
                continue
            data = os.read(self._fd, 1024)
            if not data:
                break
            self._put(data)
        os.close(self._fd)

    def _put(self, data):
        while not self._stopping.is_set():  # bounded: ends once taken or at stop
            try:
                self._chunks.put(data, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def stream(self, _request, context):
        while context.is_active() and not self._stopping.is_set():  # bounded: the call's life
            try:
                data = self._chunks.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if data is None:  # stop's wake-up
                return
            yield self._STDOUT + b"\x12" + _varint(len(data)) + data

    def stop(self):
        self._stopping.set()
        os.write(self._wake_w, b"\0")
        self._thread.join()
        # The stream's thread is joined at the interpreter's exit: wake it
        # too (a full queue has a reader that sees _stopping soon anyway).
        try:
            self._chunks.put_nowait(None)
        except queue.Full:
            pass
        os.close(self._wake_r)
        os.close(self._wake_w)


def _varint(n):
    out = bytearray()
    while n >= 0x80:  # bounded: n shrinks by 7 bits a turn
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
