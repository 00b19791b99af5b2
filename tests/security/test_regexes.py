"""Item 2: catastrophic regexes. `matches` runs on RE2 (linear time); validate checks RE2 syntax, located."""
from __future__ import annotations

import threading

from engine.rules.when import compile_when, parse_when


def test_a_catastrophic_pattern_matches_in_linear_time() -> None:
    pred = compile_when('candidate.name matches "^(a+)+$"')
    box: list = []
    t = threading.Thread(target=lambda: box.append(pred({"candidate": {"name": "a" * 40 + "!"}})), daemon=True)
    t.start()
    t.join(5)  # a hang guard only: backtracking would need ~2**40 steps, RE2 needs ~41
    assert box == [False], "matching did not end within 5 s"
    assert pred({"candidate": {"name": "aaaa"}}) is True


def test_patterns_re2_cannot_run_in_linear_time_are_refused_located() -> None:
    for source, offset in (('candidate.name matches "(a)\\\\1"', 23), ('role matches "(?<=x)y"', 13)):
        expr, errors = parse_when(source)
        assert expr is None
        [err] = errors
        assert (err.offset, err.code) == (offset, "bad-regex"), err
        assert "not valid RE2 syntax" in err.message, err.message


def test_validate_names_the_rule_file_line_and_column(deployment, run_cli) -> None:
    root = deployment({
        "rules/10.yaml": ("version: 1\nrules:\n  - id: r\n    match: {decision: reject}\n"
                          '    when: candidate.name matches "(x+)\\\\1"\n    template: t\n'
                          "    channels: [email]\n"),
        "templates/t.j2": "{# herald: decisions=[reject] #}\n{% block email %}x{% endblock %}\n"
                          "{% block subject %}s{% endblock %}\n"})
    res = run_cli(["validate", str(root)])
    assert res.exit_code == 1
    assert "10.yaml:5:34: error: when: bad regular expression" in res.output and "RE2" in res.output, res.output
