"""The fast paths the sandbox's code generator writes into compiled templates (engine.render.sandbox.
_BudgetCodeGenerator: `x.name` on plain dicts, `{{ value }}` of short strings, one joined yield per output
node) against the same sandbox compiling
with Jinja's own code for both: for random data and templates, the same text or the same error, and the same
size charged to the render's budget."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError

from engine.render import budget
from engine.render.budget import BudgetExceeded, RenderLimits, guarded
from engine.render.sandbox import TEXT_ENV, HTML_ENV, _BudgetCodeGenerator, _make_env, _Sandbox


class _JinjasCode(_BudgetCodeGenerator):
    """Everything the sandbox compiles, but getattr and finalize called as Jinja writes them."""

    write_commons = CodeGenerator.write_commons
    visit_Getattr = CodeGenerator.visit_Getattr  # noqa: N815 - Jinja's visitor name
    _output_child_pre = CodeGenerator._output_child_pre
    _output_child_post = CodeGenerator._output_child_post
    visit_Output = CodeGenerator.visit_Output  # noqa: N815 - Jinja's visitor name (one yield per piece)


class _Reference(_Sandbox):
    code_generator_class = _JinjasCode


REF_TEXT, REF_HTML = _make_env(False, _Reference), _make_env(True, _Reference)

_KEYS = ["a", "b", "name", "items", "get", "keys", "__class__", "x"]
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, width=16),
                     st.text(max_size=8), st.text(min_size=60, max_size=70), st.sampled_from(["", "a" * 65]))
_values = st.recursive(_scalars, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                        st.dictionaries(st.sampled_from(_KEYS), kids, max_size=4),
                                                        st.lists(kids, max_size=2).map(tuple)), max_leaves=8)
_paths = st.lists(st.sampled_from(_KEYS), min_size=1, max_size=3).map(lambda ks: "d." + ".".join(ks))
_exprs = st.one_of(_paths, _paths.map(lambda p: f"{p} ~ d.a"), _paths.map(lambda p: f"{p}|join(', ')"),
                   _paths.map(lambda p: f"{p} or 'none'"), _paths.map(lambda p: f"{p}.get('a')"),
                   _paths.map(lambda p: f"({p} if {p} else d.b)"), st.sampled_from(["d", "d['a']", "missing_name.a"]))
_statements = st.one_of(_exprs.map(lambda e: "{{ " + e + " }}"),
                        _exprs.map(lambda e: "{% if " + e + " %}y{% else %}n{% endif %}"),
                        _paths.map(lambda p: "{% for i in " + p + " %}[{{ i.a }}{{ i }}]{% endfor %}"),
                        _exprs.map(lambda e: "{% set v = " + e + " %}{{ v.name }}"),
                        st.sampled_from(["text ", "\n"]))


def _render(env: Any, source: str, data: Any, limits: RenderLimits) -> tuple:
    template = env.from_string(source)

    def run() -> tuple:
        try:
            out: Any = template.render(d=data)
        except BudgetExceeded as exc:
            out = ("budget", exc.reason)
        except Exception as exc:  # noqa: BLE001 - compared, not hidden
            out = ("error", type(exc).__name__, str(exc))
        return out, budget._local.slot.spent
    return guarded(limits, run)


_data = st.dictionaries(st.sampled_from(_KEYS), _values, max_size=5)


@given(source=st.lists(_statements, min_size=1, max_size=5).map("".join), data=_data,
       output=st.sampled_from([40, 100, 10_000]), html=st.booleans())
@settings(max_examples=600, deadline=None)
def test_inline_fast_paths_render_as_jinjas_code(source, data, output, html):
    limits = RenderLimits(time_ms=1000, output_chars=output)
    ours, reference = (HTML_ENV, REF_HTML) if html else (TEXT_ENV, REF_TEXT)
    assert _render(ours, source, data, limits) == _render(reference, source, data, limits)


_CASES = {"short": "Li", "edge": "a" * 64, "long": "b" * 65, "int": 7, "float": 1.5, "none": None, "true": True,
          "markup": "<b>&'", "list": ["x", 1], "tuple": ("x",), "dict": {"name": "N", "items": "I"}, "long_list": ["c" * 70]}


@pytest.mark.parametrize("source", [
    *[f"{{{{ d.{key} }}}}" for key in _CASES], *[f"{{{{ d.{key}.name }}}}" for key in _CASES],
    "{{ d.dict.items }}", "{{ d.dict.items() }}", "{{ d.absent }}", "{{ d.absent.name }}", "{{ d.__class__ }}",
    "{{ d.dict.__class__ }}", "{{ d.long_list|join(', ') }}", "{{ d.long ~ d.short }}", "{{ d.short.upper() }}",
    "{% for i in d.list %}{{ i }}{% endfor %}", "{{ d.dict['items'] }}", "{{ nothing.name }}"])
@pytest.mark.parametrize("output", [60, 10_000])
@pytest.mark.parametrize("html", [False, True])
def test_each_kind_of_value_renders_as_jinjas_code(source, output, html):
    limits = RenderLimits(time_ms=1000, output_chars=output)
    ours, reference = (HTML_ENV, REF_HTML) if html else (TEXT_ENV, REF_TEXT)
    assert _render(ours, source, _CASES, limits) == _render(reference, source, _CASES, limits)


def test_the_generated_code_takes_the_fast_paths():
    """The text sandbox's compiled code reads `x.name` and prints short strings inline; the reference does not."""
    source = "{{ candidate.name }}"
    ours, reference = TEXT_ENV.compile(source, raw=True), REF_TEXT.compile(source, raw=True)
    assert "environment.getattr(" in reference and "environment.finalize(" in reference
    assert "_hg_o.get('name', missing)" in ours and "len(_hg_v) <= 64" in ours
    assert TEXT_ENV.from_string(source).render(candidate={"name": "Li"}) == "Li"


def test_an_output_node_is_one_yield_of_its_pieces():
    source = "{% block b %}Hi {{ d.a }}, {{ d.b }}!{% if d.c %}[{{ d.c }}]{% endif %}{% endblock %}"
    pieces = list(TEXT_ENV.from_string(source).blocks["b"](TEXT_ENV.from_string(source).new_context({"d": {
        "a": "A", "b": "B", "c": "C"}})))
    assert pieces == ["Hi A, B!", "[C]"]
    assert list(REF_TEXT.from_string(source).blocks["b"](REF_TEXT.from_string(source).new_context({"d": {
        "a": "A", "b": "B", "c": "C"}}))) == ["Hi ", "A", ", ", "B", "!", "[", "C", "]"]


@pytest.mark.parametrize("html", [False, True])
def test_a_failing_piece_of_a_joined_output_is_located_at_its_own_line(tmp_path, html):
    """An error in the middle of one output node spanning lines: the same template line as Jinja's code names."""
    from engine.render.templates import _frame_line

    source = "{% block b %}A {{ d.a }}\nB {{ d.b }}\nC {{ d.c ** 1000 }}\nD {{ d.a }}{% endblock %}"
    lines = []
    for env in (HTML_ENV, REF_HTML) if html else (TEXT_ENV, REF_TEXT):
        template = env.from_string(source)
        with pytest.raises(SecurityError) as info:
            list(template.blocks["b"](template.new_context({"d": {"a": "x", "b": "y", "c": 10}})))
        lines.append(_frame_line(info.value, "<template>", template))
    assert lines == [3, 3]


class _NoGetattr(_Sandbox):
    def getattr(self, obj: Any, attribute: str) -> Any:
        raise AssertionError(f"environment.getattr({attribute!r}) called")


def test_a_key_a_dict_lacks_is_undefined_without_the_sandboxs_getattr():
    """`d.note` of a dict without "note": the environment's undefined, made in the compiled code (as
    _Sandbox.getattr makes it), chaining and printing as empty text."""
    env = _make_env(False, _NoGetattr)
    template = env.from_string("[{{ d.note }}][{{ 'y' if d.note else 'n' }}][{{ d.a }}]")
    assert template.render(d={"a": "A"}) == "[][n][A]"
    assert TEXT_ENV.from_string("{{ d.note is defined }}").render(d={}) == "False"
    with pytest.raises(AssertionError):
        env.from_string("{{ d.items }}").render(d={})  # a dict attribute: the sandbox's checks, as before
