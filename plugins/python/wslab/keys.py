"""Configuration keys a strategy declares (Describe) and checks (Configure),
with the same rules and the same words as taskproto/keys.go: the host
checks the file's values before Configure, and the plugin checks them again
so that a host, or a conformance kit, that sends a wrong value is refused
with INVALID_ARGUMENT naming "[section] key"."""

import re
from dataclasses import dataclass, field

from . import executor_pb2 as pb

INT, STRING, BOOL = pb.KEY_TYPE_INT, pb.KEY_TYPE_STRING, pb.KEY_TYPE_BOOL
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

# strconv.ParseInt(s, 10, 64)'s syntax: Python's int() also takes "1_000"
# and Unicode digits, which the host refuses.
_WHOLE = re.compile(r"[+-]?[0-9]+\Z")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


_NAME = re.compile(r"^[a-z0-9_]+$")


class KeyValueError(ValueError):
    """A declared key whose value is wrong; str() is "[section] name: problem"."""

    def __init__(self, key, problem):
        super().__init__(f"[{key.section}] {key.name}: {problem}")


@dataclass(frozen=True)
class Key:
    section: str
    name: str
    type: int
    default: str
    help: str
    min: int = INT64_MIN
    max: int = INT64_MAX
    choices: tuple = field(default_factory=tuple)

    @property
    def id(self):
        """The key's name in Config.settings."""
        return f"{self.section}.{self.name}"

    def accepted(self):
        """The values the key takes, in the host's words."""
        if self.type == INT:
            if self.min == INT64_MIN and self.max == INT64_MAX:
                return "a whole number"
            if self.max == INT64_MAX:
                return f"a whole number ≥ {self.min}"
            if self.min == INT64_MIN:
                return f"a whole number ≤ {self.max}"
            return f"a whole number between {self.min} and {self.max}"
        if self.type == BOOL:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(c or "(empty)" for c in self.choices)
        return "any text"

    def parse(self, value):
        """The value as the strategy reads it (trimmed; an int or a bool in
        canonical form), or ValueError saying what is wrong."""
        s = value.strip()
        if self.type == INT:
            if not _WHOLE.match(s):
                raise ValueError(f"{_quote(s)} is not a whole number, must be {self.accepted()}")
            n = int(s)
            if not INT64_MIN <= n <= INT64_MAX:
                raise ValueError(f"{_quote(s)} is out of range, must be {self.accepted()}")
            if not self.min <= n <= self.max:
                raise ValueError(f"must be {self.accepted()}, got {n}")
            return str(n)
        if self.type == BOOL:
            if s.lower() in _TRUE:
                return "true"
            if s.lower() in _FALSE:
                return "false"
            raise ValueError(f"{_quote(s)} is not true or false")
        if self.choices and s not in self.choices:
            raise ValueError(f"{_quote(s)} is not {self.accepted()}")
        return s

    def to_pb(self):
        return pb.ConfigKey(section=self.section, name=self.name, type=self.type, default_value=self.default,
                            min=self.min, max=self.max, choices=list(self.choices), help=self.help)


def check(keys):
    """What is wrong with the declarations themselves, as taskproto's
    CheckKeys says it; None when nothing is."""
    seen = set()
    for key in keys:
        if not _NAME.match(key.section) or not _NAME.match(key.name):
            return f"key {key.id!r}: section and name must be lower-case letters, digits and '_'"
        if key.type not in (INT, STRING, BOOL):
            return f"key {key.id}: unknown type {key.type}"
        if key.type == INT and key.min > key.max:
            return f"key {key.id}: min {key.min} is above max {key.max}"
        if not key.help.strip() or "\n" in key.help or "\r" in key.help:
            return f"key {key.id}: help must be one line"
        try:
            key.parse(key.default)
        except ValueError as e:
            return f"key {key.id}: default: {e}"
        if key.id in seen:
            return f"key {key.id} is declared twice"
        seen.add(key.id)
    return None


def apply(settings, keys):
    """settings with every declared key set to its checked effective value
    (the value settings holds, else the key's default); KeyValueError if one is
    wrong."""
    out = dict(settings)
    for key in keys:
        try:
            out[key.id] = key.parse(settings.get(key.id, key.default))
        except ValueError as e:
            raise KeyValueError(key, str(e)) from None
    return out


def _quote(s):
    """s as Go's %q writes it, near enough for a message."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
