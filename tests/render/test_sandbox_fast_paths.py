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


def _contexts_of(tmp_path, text: str, channel: str = "dingtalk"):
    from engine.render.templates import TemplateStore

    (tmp_path / "t.j2").write_text("{# herald: decisions=[reject] #}\n" + text, encoding="utf-8")
    store = TemplateStore(tmp_path)
    entry = store._entry("t", ())
    return store, store._plan(entry, channel, True)


@pytest.mark.parametrize("html", [False, True])
def test_block_contexts_equal_jinjas_context(tmp_path, html):
    """The single-block fast path's Context (engine.render.templates._BlockContexts) against the one
    _new_context builds through Jinja's Context(): the same attributes, the same eval context."""
    from engine.render.templates import _new_context

    channel = "email_html" if html else "dingtalk"
    text = "{% block " + channel + " %}Hi {{ candidate.name }} {{ channel }}{% endblock %}"
    if html:
        text = "{% block email %}x{% endblock %}" + text
    _store, plan = _contexts_of(tmp_path, text, "email" if html else "dingtalk")
    if html:  # (the email channel wants two blocks: compare on the HTML template the store compiled)
        from engine.render.templates import _BlockContexts

        template = _store._compiled(_store._entry("t", ()), True)
        contexts = _BlockContexts(template)
    else:
        template, contexts = plan.template, plan.contexts
    data = {"candidate": {"name": "Li"}, "decision": "reject", "position": None, "range": "data's own"}
    ours, jinjas = contexts.new(data, channel), _new_context(template, data, channel)
    assert isinstance(ours, type(jinjas))
    theirs = dict(vars(jinjas))
    assert set(theirs) <= set(dir(ours))
    assert vars(ours.eval_ctx) == vars(theirs.pop("eval_ctx"))
    # the fast context's own name lookup (the parent's, in C) answers as Jinja's method does, globals included
    for name in ("candidate", "position", "channel", "range", "dict", "namespace", "nothing", "self"):
        assert ours.resolve_or_missing(name) is jinjas.resolve_or_missing(name)
        assert ours.resolve(name) == jinjas.resolve(name) or name in ("nothing", "self")
    # the parent holds the data (the globals are looked up, not copied); vars and exports empty and read-only
    assert dict(theirs.pop("parent")) == {**dict(template.globals), **dict(ours.parent)}
    assert ours.vars == theirs.pop("vars") == {} and ours.exported_vars == theirs.pop("exported_vars") == set()
    with pytest.raises(TypeError):
        ours.vars["x"] = 1
    with pytest.raises(AttributeError):
        ours.exported_vars.add("x")
    assert {name: getattr(ours, name) for name in theirs} == theirs


@pytest.mark.parametrize("source, shared", [
    ("{% block dingtalk %}Hi {{ candidate.name }}{% endblock %}", True),
    ("{% block dingtalk %}{% autoescape true %}<{{ candidate.name }}>{% endautoescape %}{% endblock %}", False),
])
def test_block_contexts_share_the_eval_context_only_when_nothing_changes_it(tmp_path, source, shared):
    """A template with `{% autoescape %}` changes its eval context while it runs: each render gets its own."""
    _store, plan = _contexts_of(tmp_path, source)
    data = {"candidate": {"name": "<Li>"}, "decision": "reject"}
    first, second = plan.contexts.new(data, "dingtalk"), plan.contexts.new(data, "dingtalk")
    assert (first.eval_ctx is second.eval_ctx) is shared
    assert "".join(plan.block(first)) == "".join(plan.block(second))


@given(name=st.text(max_size=20), missing=st.booleans())
@settings(max_examples=50, deadline=None)
def test_fast_path_renders_as_the_plain_context(tmp_path_factory, name, missing):
    from engine.render.templates import _new_context

    tmp = tmp_path_factory.mktemp("t")
    _store, plan = _contexts_of(tmp, "{% block dingtalk %}{% set x = 1 %}{{ candidate.name }}{{ x }}"
                                     "{% if position %}{{ position.title }}{% endif %}{{ self.dingtalk is defined }}"
                                     "{% endblock %}")
    data = {"candidate": {"name": name}, "decision": "reject"} | ({} if missing else {"position": {"title": "T"}})
    fast = "".join(plan.block(plan.contexts.new(data, "dingtalk")))
    plain = "".join(plan.block(_new_context(plan.template, data, "dingtalk")))
    assert fast == plain


@given(extras=st.dictionaries(st.sampled_from(["company", "links", "decision", "candidate", "channel", "x"]),
                              st.one_of(st.text(max_size=5), st.fixed_dictionaries({"name": st.text(max_size=5)})),
                              max_size=4),
       channel=st.sampled_from(["dingtalk", "email", "sms"]), main_only=st.booleans())
@settings(max_examples=150, deadline=None)
def test_extras_given_apart_render_as_the_merged_context(tmp_path_factory, extras, channel, main_only):
    """TemplateStore.render(..., outcome, extras=...) (merged once, into the render's own context) gives what
    rendering build_context(outcome, extras) gives: the same message, or the same error."""
    from engine.render.sandbox import build_context

    tmp = tmp_path_factory.mktemp("t")
    store, _plan = _contexts_of(tmp, "{% block subject %}S {{ company.name }}{% endblock %}"
                                     "{% block dingtalk %}{{ candidate.name }} {{ company.name }} {{ links }} "
                                     "{{ decision }} {{ x }} {{ channel }}{% endblock %}"
                                     "{% block sms %}{{ candidate.name }}{{ company }}{% endblock %}"
                                     "{% block email %}{{ candidate.name }}/{{ channel }}/{{ x }}{% endblock %}")
    outcome = {"id": "o", "decision": "reject", "candidate": {"name": "Li"}}
    apart = store.render("t", (), channel, outcome, main_only=main_only, extras=extras)
    merged = store.render("t", (), channel, build_context(outcome, extras, trusted=True), main_only=main_only)
    assert (apart.message, apart.error, apart.code) == (merged.message, merged.error, merged.code)


@pytest.mark.parametrize("text, tidy", [
    ("\n a \n\tb\t\n\n\n\nc  \n", "a\n\tb\n\nc"), ("x\ty\n", "x\ty"), ("a\t\n b", "a\n b"),
    ("一 \n二\t\n\n\n三", "一\n二\n\n三"), ("一\t二", "一\t二"), ("a \n", "a"),
])
def test_tidy_drops_trailing_blanks_and_blank_runs_in_text_blocks(text, tidy):
    from engine.render.templates import _TRAILING_WS_RE, _BLANK_RUN_RE, _tidy

    assert _tidy(text, "dingtalk") == tidy == _BLANK_RUN_RE.sub("\n\n", _TRAILING_WS_RE.sub("\n", text.strip()))
    assert _tidy(text, "webhook") == _tidy(text, "email_html") == text.strip()


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(["a", "一", " ", "\t", "\n", "\r", "\x0b"]), max_size=40))
def test_tidy_lines_equals_the_expressions(text):
    """The fast exits of _tidy_lines (one line; no trailing blank; no blank-line run) change nothing."""
    from engine.render.templates import _TRAILING_WS_RE, _BLANK_RUN_RE, _tidy_lines

    stripped = text.strip()
    assert _tidy_lines(stripped) == _BLANK_RUN_RE.sub("\n\n", _TRAILING_WS_RE.sub("\n", stripped))


@pytest.mark.parametrize("channel", ["dingtalk", "webhook", "sms"])
def test_fast_path_result_is_what_the_classes_make(tmp_path, channel):
    """The single-block fast path fills Message from the plan's copy of its fields (render wraps it in a
    RenderResult): the same instances (fields, their order, equality, hash) as their own __init__ makes."""
    from engine.model import Message
    from engine.render.templates import RenderResult

    store, plan = _contexts_of(tmp_path, "{% block " + channel + " %} Hi {{ candidate.name }} {% endblock %}", channel)
    assert plan.block is not None
    got = store.render("t", (), channel, {"decision": "reject", "candidate": {"name": "Li"}}, main_only=True)
    file = store.resolve("t", ())
    chars = (5, 1) if channel == "sms" else (None, None)
    want = RenderResult(file, None, Message(channel, "Hi Li", sms_chars=chars[0], sms_segments=chars[1]), None)
    assert type(got) is RenderResult and type(got.message) is Message
    assert list(vars(got).items()) == list(vars(want).items())
    assert list(vars(got.message).items()) == list(vars(want.message).items())
    assert got == want and hash(got.message) == hash(want.message) and got.ok


def test_fields_of_refuses_a_field_left_without_a_value():
    from engine.model import Message
    from engine.render.templates import _fields_of

    with pytest.raises(TypeError):
        _fields_of(Message, channel="sms")
    assert _fields_of(Message, channel="sms", body="b")["subject"] is None


def test_a_scoped_block_inside_the_channels_block_sees_the_globals(tmp_path):
    """Jinja runs a scoped block in context.derived(), a copy of the parent: the fast path's parent, which
    looks the globals up rather than holding them, would lose range(); such a template takes the plain path."""
    source = ("{% block dingtalk %}A{% for i in range(2) %}{% block inner scoped %}[{{ i }}{{ range(2) | list }}"
              "{{ candidate.name }}{{ channel }}]{% endblock %}{% endfor %}{% endblock %}")
    store, plan = _contexts_of(tmp_path, source)
    result = store.render("t", (), "dingtalk", {"decision": "reject", "candidate": {"name": "Li"}}, main_only=True)
    assert result.error is None
    assert result.message.body == "A[0[0, 1]Lidingtalk][1[0, 1]Lidingtalk]"
    assert plan.block is None  # the plain path
