"""wslab's plugin contract in Python: what a strategy plugin written in
Python needs to be served by the Go host exactly as a Go plugin is.

The pieces mirror taskproto/plugin: handshake (go-plugin's handshake line,
AutoMTLS), control (the gRPC services: Executor, health, controller,
stdio; Config, what Configure gives a strategy), frame (the data channel's
length-prefixed protobuf frames, and the handling of its requests that
every strategy shares), tasks (the workloads, byte for byte the Go
results), keys (declared configuration keys, checked as taskproto/keys.go
checks them), log (hclog's JSON lines), metrics (the strategy's own
metrics, reported with every Stats, as plugin.Metrics()), trace (the
task's W3C trace context, for log lines) and serve (a plugin's whole main).

Only Debian's python3-grpcio, python3-protobuf and python3-cryptography
are needed (for /usr/bin/python3).
"""
