"""One redaction for every transport (issue 13): error texts go through engine.channels.signing.redact; no
transport keeps a redaction function of its own (aliyun_sms and dingtalk had a `_redact`, the older set's)."""
from __future__ import annotations

import ast
from pathlib import Path

CHANNELS = Path(__file__).resolve().parents[2] / "engine" / "channels"


def _redaction_functions(source: str) -> list[str]:
    """Functions and methods named like a redaction of their own (`redact` itself lives in signing.py)."""
    return [node.name for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "redact" in node.name]


def test_transports_redact_with_the_shared_function_only():
    found = [f"{path.name}: {name}" for path in sorted(CHANNELS.glob("*.py")) if path.name != "signing.py"
             for name in _redaction_functions(path.read_text("utf-8"))]
    assert found == []


def test_the_shared_redaction_hides_each_form_of_a_secret():
    from engine.channels.signing import Secret, redact

    text = "bad key s3cr/t x, sent as s3cr%2Ft%20x and s3cr%2Ft+x"
    assert redact(text, [Secret("s3cr/t x"), None, ""]) == "bad key ***, sent as *** and ***"
