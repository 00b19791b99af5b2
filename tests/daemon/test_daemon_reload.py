"""Reload: a valid edit is validated, swapped in and recorded; a broken one leaves the running set and shows in /metrics."""
from __future__ import annotations

import pytest

import re

import httpx

from daemon_support import TEMPLATE, outcome, post, wait_for
from engine.daemon.reload import reload
from engine.store import SQLiteStore


def version(d) -> str:
    return httpx.get(d.url + "/healthz").json()["ruleset"]


def note(d, nid: str) -> dict:
    return httpx.get(d.url + "/v1/notifications/" + nid.replace("#", "%23")).json()


@pytest.mark.slow
def test_valid_edit_is_picked_up_and_old_notifications_keep_their_version(deploy, daemons):
    d = daemons(deploy, watch=True)
    old = version(d)
    post(d.url, outcome("rl-1", decision="hold"))  # waits an hour: still queued during the edit
    (deploy / "templates" / "any" / "generic.j2").write_text(TEMPLATE.replace("MARK", "v2"))
    new = wait_for(lambda: version(d) != old and version(d), timeout=15)
    post(d.url, outcome("rl-2", decision="hold"))
    first, second = note(d, "rl-1#1"), note(d, "rl-2#1")
    assert (first["ruleset_version"], first["messages"][0]["body"]) == (old, "Hello Ann, v1")
    assert (second["ruleset_version"], second["messages"][0]["body"]) == (new, "Hello Ann, v2")
    with SQLiteStore(deploy / "herald.db") as s:
        assert s.latest_ruleset().version == new and s.get_ruleset(old).ok
        assert any(f.endswith("generic.j2") for f in s.get_ruleset(new).files)
    metrics = httpx.get(d.url + "/metrics").text
    assert f'herald_ruleset_info{{rules="3",version="{new}"}} 1.0' in metrics
    assert 'herald_ruleset_reloads_total{result="success"}' in metrics
    assert "herald_ruleset_reload_failed 0.0" in metrics


@pytest.mark.slow
def test_broken_edit_keeps_the_running_set_and_shows_in_metrics(deploy, daemons):
    d = daemons(deploy, watch=True)
    old = version(d)
    rules = deploy / "rules" / "10-rules.yaml"
    good = rules.read_text()
    rules.write_text(good.replace("template: any/generic\n", "template: any/missing\n", 1) + "  - {id: [broken\n")
    wait_for(lambda: "herald_ruleset_reload_failed 1.0" in httpx.get(d.url + "/metrics").text, timeout=15)
    health = httpx.get(d.url + "/healthz").json()
    assert health["ruleset"] == old and health["reload_failed"] is True
    assert post(d.url, outcome("rb-1")).json()["items"][0]["status"] == "matched"  # still routed by the old set
    with SQLiteStore(deploy / "herald.db") as s:
        failed = s.latest_ruleset(ok=False)
        assert failed is not None and failed.errors and s.latest_ruleset().version == old
    failures = re.search(r'herald_ruleset_reloads_total\{result="failure"\} (\S+)', httpx.get(d.url + "/metrics").text)
    assert float(failures.group(1)) >= 1
    rules.write_text(good)  # fixed: the same version as before comes back
    assert reload(d.runtime, "test") is True
    assert "herald_ruleset_reload_failed 0.0" in httpx.get(d.url + "/metrics").text and version(d) == old
