"""Text from outside (ids, replies, names) made safe to show: control characters escaped, never written raw.

A newline in an id would forge a log line; an escape sequence in a reply would clear or retitle the
terminal of whoever runs `herald replies`. Every log line and terminal output goes through here.
"""
from __future__ import annotations

import re

# C0 controls, DEL, C1 controls (0x9b is a one-byte CSI), and the Unicode line and paragraph separators
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # keeps \t and \n
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029]")  # what json.dumps(ensure_ascii=False) leaves raw

# The outcome schema's patterns: single-line fields, and multi-line text (tabs and line breaks allowed)
SINGLE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
MULTI_LINE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]*$"
TEXT_PATTERNS = frozenset({SINGLE_LINE_PATTERN, MULTI_LINE_PATTERN})
_MULTI_LINE_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, keep_newlines: bool = False) -> str:
    """`text` with control characters written as `\\xNN` / `\\uNNNN` (tabs and newlines kept on request)."""
    return (_CONTROLS_BUT_LINES if keep_newlines else _CONTROLS).sub(_escape, text)


def first_control(text: str, keep_newlines: bool = False) -> int:
    """Index of the first control character the field's pattern refuses in `text` (-1: none)."""
    m = (_MULTI_LINE_REFUSED if keep_newlines else _CONTROLS).search(text)
    return m.start() if m else -1


def json_safe(text: str) -> str:
    """JSON text (from json.dumps(ensure_ascii=False)) with the controls json leaves raw escaped as `\\uNNNN`."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
