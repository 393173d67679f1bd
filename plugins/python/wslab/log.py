"""Logging as hclog's JSON format, which the host's go-plugin client reads
from the plugin's stderr and re-levels on its own logger (a line it cannot
parse is logged verbatim at debug level)."""

import datetime
import json
import os
import threading

LEVELS = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4, "off": 5}


class Logger:
    """Writes one JSON line per entry to file descriptor 2, whole: entries
    from several threads never interleave."""

    def __init__(self, name, level="info"):
        self.name = name
        # hclog reads an unknown level as info, and so do we.
        self.level = LEVELS.get((level or "").strip().lower(), LEVELS["info"])
        self._lock = threading.Lock()

    def enabled(self, level):
        return LEVELS[level] >= self.level

    def log(self, level, message, **kv):
        if not self.enabled(level):
            return
        entry = {
            "@level": level,
            "@message": message,
            "@module": self.name,
            # hclog.TimeFormatJSON, which go-plugin's parser insists on.
            "@timestamp": datetime.datetime.now().astimezone().isoformat(timespec="microseconds"),
        }
        entry.update(kv)
        line = (json.dumps(entry, default=str, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                os.write(2, line)
            except OSError:
                pass  # nobody reads stderr any more: nothing to tell

    def debug(self, message, **kv):
        self.log("debug", message, **kv)

    def info(self, message, **kv):
        self.log("info", message, **kv)

    def warn(self, message, **kv):
        self.log("warn", message, **kv)

    def error(self, message, **kv):
        self.log("error", message, **kv)
