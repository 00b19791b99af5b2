"""The gate's vocabulary check at the daemon's door: an outcome with values outside the rule set's `vocabulary:`
is accepted and routed, and the answer says which values are outside it (HTTP, `herald post`)."""
from __future__ import annotations

import json
import subprocess

import pytest

from daemon_support import HERALD, RULES, make_deployment, outcome, post

VOCAB = "version: 1\nvocabulary:\n  role: [backend, frontend]\n  stage: [first_round]\n  attributes: {source: [campus]}\n"


@pytest.fixture
def vocab_deploy(tmp_path):
    root = make_deployment(tmp_path, rules=RULES)
    (root / "rules" / "05-vocabulary.yaml").write_text(VOCAB)
    return root


@pytest.mark.slow
def test_http_accepts_an_outcome_outside_the_vocabulary_with_a_warning(vocab_deploy, daemons):
    d = daemons(vocab_deploy)
    r = post(d.url, [outcome("v-in"), outcome("v-out", role="robotic_engineer", attributes={"source": "campsu"})])
    assert r.status_code == 202, r.text
    inside, outside = r.json()["items"]
    assert inside["status"] == "matched" and inside.get("warning") is None
    assert outside["status"] == "matched" and outside["notification"] == "v-out#1"
    assert 'role "robotic_engineer" is not in the vocabulary' in outside["warning"]
    assert 'attributes.source "campsu" is not in the vocabulary (did you mean "campus"?)' in outside["warning"]


@pytest.mark.slow
def test_post_prints_the_warnings_and_counts_them(vocab_deploy, daemons):
    d = daemons(vocab_deploy)
    (vocab_deploy / "o.jsonl").write_text("\n".join(json.dumps(o) for o in (
        outcome("p-in"), outcome("p-out", role="robotic_engineer"), outcome("p-out2", stage="fist_round"))) + "\n")
    r = subprocess.run([HERALD, "post", str(vocab_deploy / "o.jsonl"), "--url", d.url],
                       capture_output=True, text=True, timeout=60, cwd=vocab_deploy)
    assert r.returncode == 0, r.stderr
    assert "posted 3" in r.stdout and "3 matched" in r.stdout and "2 outside the vocabulary" in r.stdout
    assert 'p-out: role "robotic_engineer" is not in the vocabulary' in r.stderr
    assert 'p-out2: stage "fist_round" is not in the vocabulary (did you mean "first_round"?)' in r.stderr
