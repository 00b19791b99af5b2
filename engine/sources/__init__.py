"""Sources: interview results taken straight from an ATS's signed webhooks (`POST /v1/sources/NAME`).

Owns the `sources:` section of herald.yaml (`config.py`: kinds, secrets from the environment, field
mappings with bracket paths, located diagnostics, vocabulary checks), one module per kind behind one small
interface (`base.Kind`: verify(request) -> ok / 401, parse(request) -> SourceEvent, map(event, mapping) ->
outcome, withdrawal or unmapped), and `receive.py`, which takes a verified, mapped event through herald's
normal intake (routing, approval holds, sending) and keeps what could not be mapped as `unmapped`.

Kinds: greenhouse, ashby, moka, generic, lever, feishu (`KIND_NAMES`). The HTTP route lives in engine/daemon/sources.py; the
store keeps one row per event (engine/store/sources.py) for deduplication and the unmapped list.
"""
from __future__ import annotations

from engine.sources.base import Kind, Mapped, SourceEvent, SourceRequest

KIND_NAMES = ("greenhouse", "ashby", "moka", "generic", "lever", "feishu")


def kind(name: str) -> Kind:
    """The implementation of one kind (imported on first use)."""
    from importlib import import_module

    if name not in KIND_NAMES:
        raise KeyError(name)
    return import_module(f"engine.sources.{name}").KIND


__all__ = ["KIND_NAMES", "Kind", "Mapped", "SourceEvent", "SourceRequest", "kind"]
