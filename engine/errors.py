"""Diagnostics: problems found in rules, templates, config or input, as values with a location."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from collections.abc import Iterable

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem at file:line:column (1-based; 0 when the file as a whole is meant)."""

    file: str
    line: int
    column: int
    severity: str
    code: str
    message: str

    def format(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message} [{self.code}]"

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR


@dataclass(frozen=True)
class Loc:
    """Where something was written: file, 1-based line and column."""

    file: str
    line: int = 0
    column: int = 0

    def error(self, code: str, message: str) -> Diagnostic:
        return Diagnostic(self.file, self.line, self.column, ERROR, code, message)

    def warning(self, code: str, message: str) -> Diagnostic:
        return Diagnostic(self.file, self.line, self.column, WARNING, code, message)

    def shifted(self, line_offset: int = 0, column: int | None = None) -> Loc:
        """The location `line_offset` lines below, at `column` (or the same column)."""
        return Loc(self.file, self.line + line_offset, self.column if column is None else column)


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by file, line, column; exact duplicates removed."""
    return sorted(set(diags))


def has_errors(diags: Iterable[Diagnostic], strict: bool = False) -> bool:
    return any(d.is_error or strict for d in diags)


def to_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps([d.as_dict() for d in diags], ensure_ascii=False, indent=2)


class HeraldError(Exception):
    """Raised where a caller must stop; carries the diagnostics that explain why."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.format() for d in diagnostics))
