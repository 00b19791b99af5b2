"""The sandbox's hand-written fast paths against the plain implementations: the one-pass `join` against the
generic budgeted filter (the same result, the same size charged to the render, the same budget errors), and the
Undefined that sets its slots itself against Jinja's Undefined.__init__."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import filters as jinja_filters
from jinja2.nodes import EvalContext

from engine.render import budget
from engine.render.budget import BudgetExceeded, RenderLimits, guarded
from engine.render.sandbox import TEXT_ENV, _check_filter_args

_items = st.one_of(st.text(max_size=30), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2))
_values = st.one_of(st.lists(_items, max_size=8), st.lists(_items, max_size=8).map(tuple), st.text(max_size=20))
_seps = st.one_of(st.none(), st.text(max_size=5), st.integers(min_value=0, max_value=3))


def _plain_join(ctx, value, *args, **kwargs):
    """The generic path every other filter takes (_budgeted_filter without the join special case)."""
    _check_filter_args("join", value, args, kwargs)
    return budget.charge(jinja_filters.sync_do_join(ctx, value, *args, **kwargs))


def _run(join, value, sep, limits):
    def body():
        args = () if sep is None else (sep,)
        try:
            out = join(EvalContext(TEXT_ENV), value, *args)
        except BudgetExceeded as exc:
            out = ("budget", exc.reason)
        except Exception as exc:  # noqa: BLE001 - compared, not hidden
            out = ("error", type(exc).__name__)
        return out, budget._local.slot.spent
    return guarded(limits, body)


def test_the_sandbox_uses_the_one_pass_join():
    assert TEXT_ENV.filters["join"].__code__ is not _plain_join.__code__
    assert TEXT_ENV.filters["join"].__qualname__.startswith("_budgeted_join")


@given(value=_values, sep=_seps, output=st.sampled_from([8, 64, 10_000]))
@settings(max_examples=400)
def test_one_pass_join_charges_as_the_generic_filter(value, sep, output):
    limits = RenderLimits(time_ms=1000, output_chars=output)
    assert _run(TEXT_ENV.filters["join"], value, sep, limits) == _run(_plain_join, value, sep, limits)


@pytest.mark.parametrize("kwargs", [{"d": ", "}, {"d": 3}, {}])
def test_one_pass_join_reads_the_separator_keyword(kwargs):
    value = ["a" * 10] * 5
    limits = RenderLimits(time_ms=1000, output_chars=60)

    def run(join):
        return guarded(limits, lambda: (join(EvalContext(TEXT_ENV), value, **kwargs), budget._local.slot.spent))
    assert run(TEXT_ENV.filters["join"]) == run(_plain_join)
    assert TEXT_ENV.filters["join"](EvalContext(TEXT_ENV), value, **kwargs) == _plain_join(EvalContext(TEXT_ENV), value, **kwargs)


@pytest.mark.parametrize("args, kwargs", [((), {}), (("hint",), {}), ((None, {"a": 1}, "name"), {}),
                                          ((), {"obj": 3, "name": "x"}), ((), {"hint": "h", "exc": KeyError})])
def test_lenient_undefined_sets_what_jinjas_undefined_sets(args, kwargs):
    """The sandbox's Undefined assigns its four slots itself (no super() call): as Jinja's Undefined.__init__ does."""
    from jinja2.runtime import Undefined

    from engine.render.sandbox import _LenientUndefined

    ours, plain = _LenientUndefined(*args, **kwargs), Undefined.__new__(_LenientUndefined)
    Undefined.__init__(plain, *args, **kwargs)
    assert [getattr(ours, s) for s in Undefined.__slots__] == [getattr(plain, s) for s in Undefined.__slots__]


def test_lenient_undefined_still_raises_at_once_for_unsafe_access():
    from jinja2.exceptions import SecurityError

    from engine.render.sandbox import _LenientUndefined

    with pytest.raises(SecurityError):
        _LenientUndefined(hint="unsafe", exc=SecurityError)
