"""Tests for engine.model: quick_init keeps a frozen dataclass's constructor exactly as dataclasses makes it."""
from __future__ import annotations

import dataclasses
import inspect

import pytest

from engine.intake.gate import GateResult
from engine.model import Message, Plan, quick_init
from engine.render.templates import RenderResult
from engine.schedule.timing import Schedule

QUICK = [Plan, Message, GateResult, RenderResult, Schedule]


def _reference(cls: type) -> type:
    """The same class as dataclasses would make it, with the generated __init__."""
    fields = [(f.name, f.type, dataclasses.field(default=f.default, compare=f.compare, repr=f.repr))
              if f.default is not dataclasses.MISSING else (f.name, f.type) for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(cls.__name__, fields, frozen=True)


@pytest.mark.parametrize("cls", QUICK, ids=lambda c: c.__name__)
def test_same_signature_defaults_and_instances(cls):
    ref = _reference(cls)
    assert [(p.name, p.default, p.kind) for p in inspect.signature(cls).parameters.values()] == \
        [(p.name, p.default, p.kind) for p in inspect.signature(ref).parameters.values()]
    names = [f.name for f in dataclasses.fields(cls)]
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    for values in ({n: f"v-{n}" for n in required}, {n: (i, n) for i, n in enumerate(names)}):
        mine, theirs = cls(**values), ref(**values)
        assert vars(mine) == vars(theirs)
        positional = cls(*[values.get(n, getattr(theirs, n)) for n in names])
        assert positional == mine and hash(positional) == hash(mine)
        with pytest.raises(dataclasses.FrozenInstanceError):
            mine.__setattr__(names[0], "changed")
    with pytest.raises(TypeError):
        cls()  # the required fields stay required
    with pytest.raises(TypeError):
        cls(*range(len(names) + 1))


def test_refused_where_it_cannot_keep_the_contract():
    @dataclasses.dataclass(frozen=True)
    class WithFactory:
        items: list = dataclasses.field(default_factory=list)

    @dataclasses.dataclass
    class NotFrozen:
        x: int = 0

    for cls in (WithFactory, NotFrozen):
        with pytest.raises(TypeError):
            quick_init(cls)
