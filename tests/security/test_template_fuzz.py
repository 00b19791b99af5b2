"""Item 13: templates built from the sandbox's allowed syntax (loops, sets, ~, +, *, **, slices, replace, join,
macros) never get past the render budget: every render ends within its CPU time, its output within its size,
and failures are errors, never exceptions."""
from __future__ import annotations

import time
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.render.budget import RenderLimits
from engine.render.templates import TemplateStore

LIMITS = RenderLimits(time_ms=50, output_chars=4096)
HEADER = "{# herald: decisions=[reject] #}\n"

small = st.integers(min_value=0, max_value=12).map(str)
big = st.sampled_from(["10000", "100000", "1000000", "9999999"])
atoms = st.one_of(small, big, st.sampled_from(["'ab'", "'x' * 1000", "ns.s", "[1, 2, 3]", "range(1000)",
                                                 "candidate.name", "i", "j"]))


def binary(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.tuples(children, st.sampled_from([" ~ ", " + ", " * ", " ** ", " % "]), children).map("".join),
        st.tuples(children, st.sampled_from(["|replace('a', ns.s)", "|join", "|list", "|string", "|upper",
                                             "|center(900)", "|indent(999)", "[1:]", "[::-1]", ".replace('', ns.s)",
                                             "|length", "|wordwrap(3)"])).map("".join),
        children.map(lambda e: f"({e})"),
    )


exprs = st.recursive(atoms, binary, max_leaves=6)


def blocks(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.tuples(st.sampled_from(["i", "j"]), st.sampled_from(["range(10000)", "range(3)", "[ns.s] * 100"]),
                  st.lists(children, max_size=3)).map(lambda t: f"{{% for {t[0]} in {t[1]} %}}{''.join(t[2])}{{% endfor %}}"),
        st.lists(children, max_size=3).map(lambda xs: f"{{% macro m() %}}{''.join(xs)}{{% endmacro %}}{{{{ m() }}}}"),
        st.lists(children, max_size=3).map(lambda xs: f"{{% set b %}}{''.join(xs)}{{% endset %}}{{{{ b }}}}"),
    )


statements = st.recursive(
    st.one_of(exprs.map(lambda e: f"{{{{ {e} }}}}"), exprs.map(lambda e: f"{{% set ns.s = {e} %}}"),
              st.sampled_from(["x", "text ", "\n"])),
    blocks, max_leaves=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(body=st.lists(statements, min_size=1, max_size=4).map("".join))
def test_the_budget_always_holds(tmp_path: Path, body: str) -> None:
    source = HEADER + "{% block dingtalk %}{% set ns = namespace(s='ab') %}" + body + "{% endblock %}\n"
    name = f"t{abs(hash(source))}"
    (tmp_path / f"{name}.j2").write_text(source)
    store = TemplateStore(tmp_path, LIMITS)
    context = {"decision": "reject", "candidate": {"name": "Ann"}}
    store.render(name, (), "dingtalk", context)  # compiles (outside the budget)
    started = time.thread_time()
    result = store.render(name, (), "dingtalk", context)
    used = time.thread_time() - started
    assert used < LIMITS.time_ms / 1000 + 0.25, (used, source)  # the watchdog looks every 10 ms
    if result.ok:
        event("rendered")
        assert len(result.message.body) <= LIMITS.output_chars
    else:
        event("over budget" if "render budget exceeded" in result.error else "refused or failed")
        assert isinstance(result.error, str) and result.error
