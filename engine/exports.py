"""Lazy package exports: a package's `__init__` lists its public names by submodule and resolves them on first
use (PEP 562 module `__getattr__`), so `from engine.rules import load_ruleset` works while importing one
submodule (`engine.rules.when`) does not import its siblings: `herald --help` and the CLI's lazy imports stay
as cheap as they are, and no package `__init__` adds an import cycle.

    _EXPORTS = {"loader": ("load_ruleset",), "when": ("parse_when",)}
    __all__ = exported(_EXPORTS)

    def __getattr__(name: str) -> Any:
        return resolve(__name__, _EXPORTS, name)
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any


def exported(exports: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The names of `exports` (submodule -> its public names), in order: a package's `__all__`."""
    return [name for names in exports.values() for name in names]


def resolve(package: str, exports: Mapping[str, tuple[str, ...]], name: str) -> Any:
    """`name` from the submodule of `package` that exports it, kept on the package for the next lookup;
    AttributeError for any other name (so `from package import submodule` still imports the submodule)."""
    module = next((m for m, names in exports.items() if name in names), None)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{package}.{module}"), name)
    setattr(sys.modules[package], name, value)
    return value
