"""The W3C trace context a task carries (Task.traceparent). The Python
strategies record no spans: they pass the value on unchanged wherever they
hand the task on (to a worker process), and name its trace in their log
lines about the task, as the Go SDK does (trace_id)."""

import re

_HEX = re.compile(r"[0-9a-f]+")  # lower case only, as W3C writes it
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
# version-traceid-spanid-flags: 2+1+32+1+16+1+2
_LENGTH = 55


def trace_id(traceparent):
    """The trace id (32 hex digits) of a well-formed traceparent, as the
    host's OpenTelemetry propagator reads one; "" for anything else. The
    value comes from whoever wrote the task, so nothing of a malformed one
    is ever logged."""
    tp = traceparent
    if not isinstance(tp, str) or len(tp) < _LENGTH:
        return ""
    head = tp[:_LENGTH]
    if head[2] != "-" or head[35] != "-" or head[52] != "-":
        return ""
    version, tid, sid, flags = head[0:2], head[3:35], head[36:52], head[53:55]
    if not _HEX.fullmatch(version + tid + sid + flags) or version == "ff":
        return ""
    if version == "00":
        # Version 00 has nothing after its flags, and only the sampled and
        # random flags.
        if len(tp) != _LENGTH or int(flags, 16) > 3:
            return ""
    elif len(tp) > _LENGTH and tp[_LENGTH] != "-":
        return ""  # a later version may add fields, after a dash
    if tid == _ZERO_TRACE or sid == _ZERO_SPAN:
        return ""
    return tid


def log_fields(traceparent):
    """What a log line about a task carries of its trace: {"trace_id": id},
    or nothing when the task is not traced or its traceparent is malformed."""
    tid = trace_id(traceparent) if traceparent else ""
    return {"trace_id": tid} if tid else {}
