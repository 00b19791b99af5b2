"""'Did you mean' suggestions for misspelt keys, fields and names."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate closest to `word`, or None when nothing is close enough."""
    pool = [c for c in candidates if isinstance(c, str)]
    found = difflib.get_close_matches(word, pool, n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean "x"?)' or ''."""
    best = closest(word, candidates)
    return f' (did you mean "{best}"?)' if best else ""
