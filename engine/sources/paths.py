"""Field paths into an ATS event: dotted names with list indexes (`application.jobs[0].name`), parsed once."""
from __future__ import annotations

import re
from typing import Any

MISSING = object()
_PART = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]|\.")
MAX_DEPTH = 32


class PathError(ValueError):
    """A path that cannot be parsed; the message says where."""


def parse_path(text: str) -> tuple:
    """`a.b[0].c` -> ("a", "b", 0, "c"); PathError for an empty path, empty parts or unclosed brackets."""
    if not isinstance(text, str) or not text.strip():
        raise PathError("a path must be a non-empty string such as application.jobs[0].name")
    parts: list = []
    pos, expect_name = 0, True
    while pos < len(text):
        m = _PART.match(text, pos)
        if m is None:
            raise PathError(f"{text!r}: unexpected {text[pos]!r} at character {pos + 1}")
        if m.group(1) is not None:
            if not expect_name:
                raise PathError(f"{text!r}: a '.' is missing before {m.group(1)!r} (character {pos + 1})")
            parts.append(m.group(1))
            expect_name = False
        elif m.group(2) is not None:
            if expect_name:
                raise PathError(f"{text!r}: an index needs a name before it (character {pos + 1})")
            parts.append(int(m.group(2)))
        else:  # "."
            if expect_name:
                raise PathError(f"{text!r}: empty part at character {pos + 1}")
            expect_name = True
        pos = m.end()
    if expect_name:
        raise PathError(f"{text!r}: ends with '.'")
    if len(parts) > MAX_DEPTH:
        raise PathError(f"{text!r}: deeper than {MAX_DEPTH} parts")
    return tuple(parts)


def get_path(value: Any, parts: tuple) -> Any:
    """The value at `parts` inside parsed JSON, or MISSING when any step is absent or of the wrong type."""
    for part in parts:
        if isinstance(part, int):
            if not isinstance(value, list) or not -len(value) <= part < len(value):
                return MISSING
            value = value[part]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


def format_path(parts: tuple) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out
