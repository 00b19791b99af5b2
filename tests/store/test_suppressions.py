"""The suppression list in the store: normalised addresses, idempotent entries, removal, and the migration that
adds it (and the `suppressed` state) to a store written before it."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from engine.model import Message
from engine.store import Accepted, PlannedNotification, SQLiteStore
from engine.store.migrations import MIGRATIONS
from engine.store.suppressions import normal_address
from store_support import statements_run

T0 = 1_800_000_000.0


@pytest.mark.parametrize("given, kept", [
    ("Ann@Example.COM ", "ann@example.com"),
    ("13800000000", "+8613800000000"),
    ("+86 138-0000-0000", "+8613800000000"),
    ("+1 (415) 555-0100", "+14155550100"),
    ("dt-user-0001", "dt-user-0001"),
])
def test_addresses_are_kept_in_one_form(given, kept):
    assert normal_address(given) == kept


def test_suppress_is_idempotent_and_keeps_who_and_why(store):  # both backends (tests/store/conftest.py)
    assert store.suppress("email", "Ann@Example.com", reason="unsubscribed", actor="candidate", at=T0)
    assert not store.suppress("email", "ann@example.com", reason="again", actor="li.wei", at=T0 + 1)
    entry = store.suppression("email", "ANN@example.com")
    assert entry is not None and (entry.reason, entry.actor, entry.created_at) == ("unsubscribed", "candidate", T0)
    assert store.suppression("sms", "ann@example.com") is None
    assert [r.address for r in store.suppressions()] == ["ann@example.com"]
    assert store.unsuppress("email", "ann@example.com") and not store.unsuppress("email", "ann@example.com")
    assert store.suppressions() == []

def test_suppressed_among_answers_a_batch_in_one_query_as_the_pairs_were_given(store):  # both backends
    store.suppress("email", "ann@example.com", at=T0)
    store.suppress("sms", "+8613800000000", at=T0)
    pairs = [("email", "Ann@Example.COM "), ("email", "bo@example.com"), ("sms", "138-0000-0000"),
             ("email", "ann@example.com"), ("sms", "ann@example.com")]
    with statements_run(store) as statements:
        found = store.suppressed_among(pairs)
    assert found == {("email", "Ann@Example.COM "), ("sms", "138-0000-0000"), ("email", "ann@example.com")}
    assert len(statements) == 1, statements
    with statements_run(store) as statements:
        assert store.suppressed_among([]) == set()
    assert statements == []  # nothing to ask



def test_a_suppressed_notification_ends_suppressed(store):
    msg = (Message("email", "hello", subject="s"),)
    note = PlannedNotification(channels=("email",), messages=msg, send_at=T0, rule="r1", ruleset_version="v1",
                               template="t/x")
    store.accept_outcomes([Accepted(id="b", raw=json.dumps({"id": "b"}), decision="reject", notification=note)], at=T0)
    [claimed] = store.claim_due(T0, 10, "me", 60)
    assert store.mark_suppressed(claimed.id, "email: suppressed", at=T0)
    detail = store.get_notification(claimed.id)
    assert detail.notification.state == "suppressed" and "suppressed" in [e.kind for e in detail.events]
    assert store.notification_counts_by_state()["suppressed"] == 1


def test_an_older_store_gets_the_list_and_the_suppressed_state(tmp_path: Path):
    path = tmp_path / "h.db"
    cut = next(m.version for m in MIGRATIONS if m.name == "suppressions")
    before = tuple(m for m in MIGRATIONS if m.version < cut)  # a store written before the suppressions step
    with SQLiteStore(path, migrations=before):
        pass
    # its rows as that herald wrote them (today's writes name columns later steps added)
    c = sqlite3.connect(path)
    with c:
        c.execute("INSERT INTO outcomes (id, raw, received_at, occurred_at, decision, status, updated_at) "
                  "VALUES ('a', ?, ?, ?, 'reject', 'matched', ?)", (json.dumps({"id": "a"}), T0, T0, T0))
        c.execute("INSERT INTO notifications (id, outcome_id, outcome_rev, rule_id, ruleset_version, template, channels, "
                  "channel_count, channel, messages, send_at, next_attempt_at, state, created_at, updated_at) "
                  "VALUES ('a#1', 'a', 1, 'r1', 'v1', 't/x', '[\"email\"]', 1, 'email', ?, ?, ?, 'scheduled', ?, ?)",
                  (json.dumps([{"channel": "email", "body": "hello", "subject": "s"}]), T0, T0, T0, T0))
    c.close()
    with SQLiteStore(path) as s:
        assert s.schema_version() == MIGRATIONS[-1].version
        [claimed] = s.claim_due(T0, 10, "me", 60)
        assert s.mark_suppressed(claimed.id, "email: suppressed", at=T0)
        assert s.get_notification(claimed.id).notification.state == "suppressed"
        assert s.suppress("email", "a@example.com")
    c = sqlite3.connect(path)
    try:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        c.close()
