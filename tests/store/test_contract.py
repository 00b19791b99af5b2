"""The store contract: what every backend (SQLite, PostgreSQL) must do, through the Store interface only.

Each test runs once per backend (the `store`/`target` fixtures in conftest.py). Intake, claims, leases,
attempts, the state machine, withdraw/amend races, receipts, escalation, replies, rule sets, dead letters.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone, UTC

import pytest
from store_support import T0, item, plan

from engine.channels.base import SendResult
from engine.model import Message, Plan
from engine.store import NOTIFICATION_STATES, Accepted, Store, StoreError, open_store, utc


def test_naive_times_are_refused(store: Store):
    with pytest.raises(StoreError, match="naive"):
        store.claim_due(datetime(2026, 1, 1), 10, "x", 30)


# ---------------------------------------------------------------------------------------------- intake

def test_accept_batch_with_duplicates_in_and_across_batches(store: Store):
    raw = '{"id": "a",  "note": "spacing and 中文 kept"}'
    assert store.accept_outcomes([item("a", raw=raw), item("b"), item("a"), item("c", with_plan=False,
                                                                             status="unmatched")],
                                 at=T0) == ["accepted", "accepted", "duplicate", "accepted"]
    assert store.accept_outcomes([item("b"), item("d")], at=T0 + 1) == ["duplicate", "accepted"]
    assert store.get_outcome("a").raw == raw
    assert store.get_outcome("a").received_at == T0
    assert sum(store.outcome_counts().values()) == 4
    assert sum(store.notification_counts_by_state().values()) == 3  # a, b, d; c is unmatched
    assert sum(len(store.outcome_history(o)) for o in "abcd") == 4
    kinds = [e.kind for e in store.get_notification("a#1").events]
    assert kinds == ["queued"]
    assert [o.id for o in store.unmatched()] == ["c"]
    assert store.outcome_counts() == {"matched": 3, "unmatched": 1}
    assert store.notification_counts_by_state() == dict.fromkeys(NOTIFICATION_STATES, 0) | {"scheduled": 3}


def test_accepted_from_a_plan(store: Store):
    send = datetime(2026, 11, 20, 12, 30, tzinfo=timezone(timedelta(hours=8)))
    p = Plan(outcome_id="x1", status="matched", rule="r", rule_version="v9", template="t", locale="zh-CN",
             channels=("dingtalk", "email"), send_at=send, deadline_at=send + timedelta(hours=24),
             escalations=(send + timedelta(hours=2),), messages=(Message("dingtalk", "d"), Message("email", "e")),
             outcome={"id": "x1", "decision": "reject", "occurred_at": "2026-11-20T10:30:00+08:00"})
    assert store.accept_outcomes([Accepted.from_plan('{"id":"x1"}', p, source="http")]) == ["accepted"]
    n = store.get_notification("x1#1").notification
    assert (n.ruleset_version, n.escalate_after_s, n.send_at) == ("v9", 7200.0, send.timestamp())
    assert utc(n.send_at) == send
    assert n.message("email").body == "e" and n.message().channel == "dingtalk"
    assert store.get_outcome("x1").occurred_at == datetime(2026, 11, 20, 2, 30, tzinfo=UTC).timestamp()


def test_dead_letters_keep_the_raw_body_byte_exact(store: Store):
    bodies = [b'{"id": "x", \xff\xfe broken', b"", "text with 中文".encode(), b"\x00\x01nul"]
    ids = [store.dead_letter("http", "not JSON", None, b, remote="10.0.0.1") for b in bodies]
    surrogate = b"caf\xe9".decode("utf-8", errors="surrogateescape")
    ids.append(store.dead_letter("file", "schema", "decision", surrogate))
    rows = {r.id: r for r in store.dead_letters(limit=10)}
    assert [rows[i].raw for i in ids] == [*bodies, b"caf\xe9"]
    assert rows[ids[0]].remote == "10.0.0.1" and rows[ids[4]].field == "decision"
    assert "\ufffd" in rows[ids[0]].text
    assert store.dead_letter_count() == 5


def test_rulesets_are_recorded(store: Store):
    store.record_ruleset("h1", {"rules/a.yaml": "x: 1"}, True, at=T0)
    store.record_ruleset("h2", {"rules/a.yaml": "x: ["}, False, ["rules/a.yaml:1:5: error: bad"], at=T0 + 1)
    assert store.latest_ruleset().version == "h1"
    assert store.latest_ruleset(ok=None).errors == ("rules/a.yaml:1:5: error: bad",)
    store.record_ruleset("h1", {"rules/a.yaml": "x: 1"}, True, at=T0 + 2)
    r = store.get_ruleset("h1")
    assert (r.loaded_at, r.last_loaded_at, r.files) == (T0, T0 + 2, {"rules/a.yaml": "x: 1"})


def test_claims_respect_due_time_limit_order_and_approval(store: Store):
    store.accept_outcomes([item("late", note=plan(send_at=T0 + 5)), item("early", note=plan(send_at=T0 - 5)),
                           item("held", with_plan=False, approved=False, status="held"),
                           item("future", note=plan(send_at=T0 + 100))])
    with pytest.raises(StoreError, match="not approved"):
        store.add_notification("held", plan(send_at=T0 - 9))
    with pytest.raises(StoreError, match="not approved"):
        store.accept_outcomes([item("held2", approved=False)])
    assert store.get_outcome("held2") is None
    assert [o.id for o in store.outcomes_with_status("held")] == ["held"]
    assert store.next_due_time() == T0 - 5
    assert [n.id for n in store.claim_due(T0, 1, "me", 30)] == ["early#1"]
    assert [n.id for n in store.claim_due(T0 + 10, 10, "me", 30)] == ["late#1"]
    assert store.approve("held", at=T0 + 11).approved
    assert store.approve("held", at=T0 + 12).approved_at == T0 + 11  # idempotent
    assert [c.kind for c in store.outcome_history("held")] == ["received", "approved"]
    assert store.approve("nope") is None
    assert store.add_notification("held", plan(send_at=T0 - 9), T0 + 11) == "held#1"
    assert store.get_outcome("held").status == "matched"
    rows = store.claim_due(T0 + 11, 10, "me", 30)
    assert [(n.id, n.state, n.lease_owner, n.lease_until) for n in rows] == [("held#1", "sending", "me", T0 + 41)]
    assert store.claim_due(T0 + 11, 10, "other", 30) == []


def test_expired_leases_return_claims(store: Store):
    store.accept_outcomes([item("a"), item("b")])
    assert len(store.claim_due(T0, 10, "crashed", 30)) == 2
    assert store.next_due_time() == T0 + 30
    assert store.release_expired_leases(T0 + 29) == 0
    assert store.release_expired_leases(T0 + 30) == 2
    rows = store.claim_due(T0 + 31, 10, "second", 30)
    assert sorted(n.id for n in rows) == ["a#1", "b#1"] and {n.lease_owner for n in rows} == {"second"}


def test_a_crash_mid_send_resends_with_the_same_attempt_key(target: str):
    with open_store(target) as s:
        s.accept_outcomes([item("a")])
        n = s.claim_due(T0, 1, "d1", 30)[0]
        first = s.begin_attempt(n.id, n.channel, "outbox", at=T0)
        # kill -9 here: the transport may or may not have been called; nothing else is recorded
    with open_store(target) as s:
        assert s.claim_due(T0 + 1, 1, "d2", 30) == []  # still leased
        assert s.release_expired_leases(T0 + 31) == 1
        n = s.claim_due(T0 + 31, 1, "d2", 30)[0]
        assert s.pending_attempt(n.id) == first
        again = s.begin_attempt(n.id, n.channel, "outbox", at=T0 + 31)
        assert again == first and again.status == "pending" and again.attempt_key == "a#1:0:1"
        assert s.begin_attempt(n.id, n.channel, "outbox", attempt_key=first.attempt_key) == first
        assert s.mark_sent(n.id, T0 + 32, attempt_id=again.id, result=SendResult("accepted", provider_id="p1"))
        d = s.get_notification(n.id)
        assert d.notification.state == "sent" and len(d.attempts) == 1
        assert d.attempts[0].status == "accepted" and d.attempts[0].provider_id == "p1"
        assert [e.kind for e in d.events] == ["queued", "sent"]
        with pytest.raises(StoreError):
            s.begin_attempt(n.id, "sms", "outbox")


def test_an_attempt_records_the_hash_of_its_template_file(store: Store):
    store.accept_outcomes([item("a")])
    n = store.claim_due(T0, 1, "d1", 30)[0]
    digest = "0123456789abcdef" * 4
    a = store.begin_attempt(n.id, n.channel, "outbox", at=T0, template_hash=digest)
    assert a.template_hash == digest
    assert store.begin_attempt(n.id, n.channel, "outbox", at=T0 + 1, template_hash="other") == a  # the resend keeps it
    store.mark_sent(n.id, T0 + 2, attempt_id=a.id, result=SendResult("accepted", provider_id="p1"))
    assert [x.template_hash for x in store.get_notification(n.id).attempts] == [digest]
    store.accept_outcomes([item("b")])
    m = store.claim_due(T0, 1, "d1", 30)[0]
    assert store.begin_attempt(m.id, m.channel, "outbox", at=T0).template_hash is None   # no template file known


def test_a_crash_after_the_provider_accepted_is_not_sent_again(store: Store):
    store.accept_outcomes([item("a")])
    n = store.claim_due(T0, 1, "d1", 30)[0]
    a = store.begin_attempt(n.id, n.channel, "outbox", at=T0)
    store.finish_attempt(a.id, "accepted", provider_id="p1", at=T0 + 1)
    # crash before mark_sent
    assert store.release_expired_leases(T0 + 60) == 1
    d = store.get_notification(n.id)
    assert d.notification.state == "sent" and d.notification.sent_at == T0 + 1
    assert d.events[-1].kind == "sent" and d.events[-1].detail["recovered"] is True
    assert store.claim_due(T0 + 61, 10, "d2", 30) == []


def test_retry_fallback_and_failure(store: Store):
    store.accept_outcomes([item("a", note=plan(channels=("dingtalk", "sms", "email")))])
    n = store.claim_due(T0, 1, "d", 30)[0]
    a1 = store.begin_attempt(n.id, "dingtalk", "outbox")
    assert store.schedule_retry(n.id, T0 + 60, attempt_id=a1.id, result=SendResult("recoverable", error="timeout"))
    assert store.claim_due(T0 + 59, 1, "d", 30) == []
    n = store.claim_due(T0 + 60, 1, "d", 30)[0]
    assert n.attempt_count == 1 and n.last_error == "timeout"
    a2 = store.begin_attempt(n.id, "dingtalk", "outbox")
    assert a2.attempt_key == "a#1:0:2"
    assert store.advance_channel(n.id, 1, T0 + 61, "no such user", attempt_id=a2.id,
                                 result=SendResult("permanent", error="no such user", code="33012"))
    assert not store.advance_channel(n.id, 1, T0 + 61, "again")  # forward only
    n = store.claim_due(T0 + 61, 1, "d", 30)[0]
    assert (n.channel, n.channel_index, n.attempt_count) == ("sms", 1, 0)
    a3 = store.begin_attempt(n.id, "sms", "outbox")
    assert a3.attempt_key == "a#1:1:1"
    assert store.mark_failed(n.id, "gave up", T0 + 62, attempt_id=a3.id)
    d = store.get_notification(n.id)
    assert d.notification.state == "failed"
    assert [a.status for a in d.attempts] == ["recoverable", "permanent", "permanent"]
    assert d.attempts[1].code == "33012"
    assert [e.kind for e in d.events] == ["queued", "escalated", "failed"]


def test_withdraw_cancels_queued_and_nothing_is_sendable(store: Store):
    store.accept_outcomes([item("a"), item("b")])
    claimed = store.claim_due(T0, 1, "d", 30)[0]  # one of them is being sent right now
    other = "b#1" if claimed.id == "a#1" else "a#1"
    assert store.still_sendable(claimed.id) and store.still_sendable(other)
    oid_claimed, oid_other = claimed.outcome_id, other.split("#")[0]
    assert store.withdraw(oid_other, T0 + 1, "un-reject") == 1
    assert store.withdraw(oid_other, T0 + 2) == 0
    assert store.withdraw("nope") is None
    assert not store.still_sendable(other)
    d = store.get_notification(other)
    assert d.notification.state == "cancelled" and d.events[-1].kind == "cancelled"
    assert store.withdraw(oid_claimed, T0 + 1) == 0  # it is 'sending': left to the dispatcher
    assert not store.still_sendable(claimed.id)
    assert store.cancel(claimed.id, T0 + 2, "withdrawn")
    assert store.get_outcome(oid_other).state == "withdrawn"
    assert [c.kind for c in store.outcome_history(oid_other)] == ["received", "withdrawn"]
    assert store.claim_due(T0 + 100, 10, "d", 30) == []
    assert store.next_due_time() is None


def test_withdraw_during_a_send_then_crash_cancels_on_lease_expiry(store: Store):
    store.accept_outcomes([item("a")])
    n = store.claim_due(T0, 1, "d", 30)[0]
    store.begin_attempt(n.id, n.channel, "outbox")
    store.withdraw("a", T0 + 1)
    assert store.release_expired_leases(T0 + 31) == 1
    assert store.get_notification(n.id).notification.state == "cancelled"


def test_amend_supersedes_the_queued_notification(store: Store):
    store.accept_outcomes([item("a"), item("b")])
    n = store.claim_due(T0, 10, "d", 30)
    assert store.amend(item("a", raw='{"id":"a","decision":"pass"}', note=plan(send_at=T0 + 5)), T0 + 1) == 0
    assert not store.still_sendable("a#1")  # the old revision, being sent now, must not go out
    assert store.still_sendable("a#2")
    assert store.get_outcome("a").rev == 2 and store.get_outcome("a").raw == '{"id":"a","decision":"pass"}'
    assert store.amend(item("zz")) is None
    assert store.supersede("b", T0 + 2, by="b2") == 0
    assert store.get_outcome("b").state == "superseded" and not store.still_sendable("b#1")
    assert sorted(x.id for x in n) == ["a#1", "b#1"]
    assert store.release_expired_leases(T0 + 100) == 2
    assert store.get_notification("a#1").notification.state == "cancelled"
    assert store.get_notification("b#1").notification.state == "cancelled"
    assert [x.id for x in store.claim_due(T0 + 100, 10, "d", 30)] == ["a#2"]
    assert [c.kind for c in store.outcome_history("a")] == ["received", "amended"]


def test_values_outside_the_vocabulary_are_kept_per_revision(store: Store):
    marks = {"role": "robotic_engineer", "attributes.offfice": None}
    store.accept_outcomes([item("a", outside_vocabulary=marks), item("b")], at=T0)
    assert store.get_outcome("a").outside_vocabulary == marks
    assert store.get_outcome("b").outside_vocabulary is None
    store.amend(item("a", raw='{"id":"a","decision":"pass"}'), T0 + 1)  # the typo corrected
    assert store.get_outcome("a").outside_vocabulary is None
    store.amend(item("b", raw='{"id":"b","decision":"pass"}', outside_vocabulary={"stage": "fist"}), T0 + 2)
    assert store.get_outcomes(["b"])["b"].outside_vocabulary == {"stage": "fist"}


def test_a_send_that_races_a_withdrawal(store: Store):
    store.accept_outcomes([item("a"), item("b"), item("c")])
    claimed = {n.outcome_id: n for n in store.claim_due(T0, 10, "d", 30)}
    attempts = {k: store.begin_attempt(n.id, n.channel, "outbox") for k, n in claimed.items()}
    for oid in "abc":
        store.withdraw(oid, T0 + 1)
    # a: the transport failed recoverably; b: permanently; neither may be rescheduled
    assert not store.schedule_retry("a#1", T0 + 60, "timeout", attempt_id=attempts["a"].id)
    assert not store.advance_channel("b#1", 1, T0 + 2, "no user", attempt_id=attempts["b"].id)
    # c: still_sendable said no, the dispatcher cancelled it, but the provider had it already
    assert store.cancel("c#1", T0 + 2, "withdrawn")
    assert not store.mark_sent("c#1", T0 + 3, "p-c", attempt_id=attempts["c"].id)
    assert not store.mark_sent("c#1", T0 + 3, "p-c", attempt_id=attempts["c"].id)
    for nid in ("a#1", "b#1", "c#1"):
        assert store.get_notification(nid).notification.state == "cancelled"
    assert [e.detail for e in store.get_notification("c#1").events if e.kind == "sent"] == [
        {"provider_id": "p-c", "after": "cancelled"}]
    assert store.next_due_time() is None


def test_unmatched_routed_by_hand(store: Store):
    store.accept_outcomes([item("u", with_plan=False, status="unmatched")])
    assert [o.id for o in store.unmatched()] == ["u"]
    nid = store.add_notification("u", plan(), T0, status="routed", handled_by="hr@example.com")
    assert nid == "u#1"
    assert store.add_notification("u", plan(), T0) == "u#1"  # idempotent
    assert store.unmatched() == []
    o = store.get_outcome("u")
    assert (o.status, o.handled_by, o.handled_at) == ("routed", "hr@example.com", T0)
    assert store.add_notification("nope", plan()) is None
    assert store.outcomes_with_status("routed")[0].id == "u"


def _send(store: Store, oid: str, provider_id: str, at: float = T0, **kw):
    n = store.claim_due(at, 1, "d", 30)[0]
    a = store.begin_attempt(n.id, n.channel, "outbox")
    assert store.mark_sent(n.id, at, provider_id, attempt_id=a.id, **kw)
    return n


def test_receipts_are_idempotent_and_never_go_back(store: Store):
    store.accept_outcomes([item("a")])
    n = _send(store, "a", "p1")
    assert store.record_receipt("p1", "delivered", T0 + 1) == n.id
    assert store.record_receipt("p1", "delivered", T0 + 2) == n.id
    assert store.record_receipt("p1", "read", T0 + 3) == n.id
    assert store.record_receipt("p1", "delivered", T0 + 4) == n.id
    assert store.record_receipt("p1", "clicked", T0 + 5, {"url": "x"}) == n.id
    assert store.record_receipt("p1", "clicked", T0 + 5, {"url": "x"}) == n.id
    assert store.record_receipt("p1", "clicked", T0 + 6) == n.id
    assert store.record_receipt("unknown", "delivered") is None
    d = store.get_notification(n.id)
    assert (d.notification.state, d.notification.delivered_at, d.notification.read_at) == ("read", T0 + 1, T0 + 3)
    assert [e.kind for e in d.events] == ["queued", "sent", "delivered", "read", "clicked", "clicked"]
    assert d.events[4].detail == {"url": "x", "provider_id": "p1"}
    assert store.add_event(n.id, "rated", T0 + 7, detail={"score": 5}, dedupe_key="rating:1")
    assert not store.add_event(n.id, "rated", T0 + 8, detail={"score": 4}, dedupe_key="rating:1")
    counts = {(c.rule_id, c.kind): c.count for c in store.event_counts()}
    assert counts[("r1", "clicked")] == 2 and counts[("r1", "rated")] == 1


def test_escalation_after_silence_and_on_undelivered(store: Store):
    store.accept_outcomes([item("a", note=plan(escalate_after=60)), item("b", note=plan(escalate_after=60)),
                           item("c", note=plan(escalate_after=60, channels=("dingtalk",)))])
    for oid in ("a", "b", "c"):
        _send(store, oid, f"p-{oid}", await_read=(oid == "a"))
    assert store.get_notification("c#1").notification.escalate_at is None  # no next channel
    store.record_receipt("p-a", "delivered", T0 + 10)  # a awaits a read: delivery is not enough
    store.record_receipt("p-b", "delivered", T0 + 10)  # b: delivered stops escalation
    assert store.due_escalations(T0 + 59) == []
    assert store.next_due_time() == T0 + 60
    assert [n.id for n in store.due_escalations(T0 + 60)] == ["a#1"]
    assert store.advance_channel("a#1", 1, T0 + 60, "not read in 60s", at=T0 + 60)
    assert not store.advance_channel("a#1", 1, T0 + 60, "not read in 60s")
    n = store.claim_due(T0 + 60, 10, "d", 30)
    assert [(x.id, x.channel) for x in n] == [("a#1", "email")]
    store.record_receipt("p-a", "read", T0 + 61)  # a late read of the earlier channel: event only
    assert store.get_notification("a#1").notification.state == "sending"
    store.record_receipt("p-c", "undelivered", T0 + 62)  # last channel: failed
    assert store.get_notification("c#1").notification.state == "failed"


def test_undelivered_makes_the_next_channel_due_now(store: Store):
    store.accept_outcomes([item("a", note=plan(escalate_after=3600))])
    _send(store, "a", "p1")
    store.record_receipt("p1", "undelivered", T0 + 5, {"code": "bounced"})
    assert [n.id for n in store.due_escalations(T0 + 5)] == ["a#1"]


def test_late_is_flagged_when_sent_after_the_deadline(store: Store):
    store.accept_outcomes([item("a", note=plan(deadline_at=T0 + 10)), item("b", note=plan(deadline_at=T0 + 10))])
    _send(store, "a", "p1", at=T0 + 5)
    _send(store, "b", "p2", at=T0 + 11)
    assert not store.get_notification("a#1").notification.late
    d = store.get_notification("b#1")
    assert d.notification.late and [e.kind for e in d.events] == ["queued", "sent", "late"]


def test_replies(store: Store):
    store.accept_outcomes([item("a")])
    rid = store.add_reply("a#1", "谢谢", T0, channel="sms")
    assert [r.content for r in store.replies()] == ["谢谢"]
    assert store.mark_reply_handled(rid, T0 + 1) and store.replies() == []
    assert store.get_notification("a#1").events[-1].kind == "replied"



# --------------------------------------------------------------------------------------- concurrency

def test_threads_share_one_store(store: Store):
    errors = []

    def worker(k: int) -> None:
        try:
            for b in range(10):
                store.accept_outcomes([item(f"t{k}-{b}-{i}") for i in range(20)])
                store.claim_due(T0, 5, f"w{k}", 30)
        except Exception as e:  # noqa: BLE001 - any failure in a thread is reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counts = store.notification_counts_by_state()
    assert sum(counts.values()) == 800 and counts["sending"] == 200


def test_concurrent_claimers_on_separate_stores_never_claim_the_same_notification(target: str):
    """Two dispatchers (two Store objects, as two replicas would hold) drain one queue together."""
    with open_store(target) as s:
        for k in range(4):
            s.accept_outcomes([item(f"o{k}-{i}", note=plan(send_at=T0 + (i % 10))) for i in range(100)])
    stores = [open_store(target) for _ in range(2)]
    got: list[list[str]] = [[], []]
    ready = threading.Barrier(2)

    def claim(w: int) -> None:
        ready.wait(30)
        while rows := stores[w].claim_due(T0 + 10, 7, f"w{w}", 300):
            got[w].extend(r.id for r in rows)

    threads = [threading.Thread(target=claim, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for s in stores:
        s.close()
    a, b = got
    assert len(a) == len(set(a)) and len(b) == len(set(b)) and not set(a) & set(b)
    assert len(a) + len(b) == 400


def test_source_events_dedup_unmapped_and_resolve(store: Store):
    assert store.record_source_event("ats", "e1", "unmapped", b"{\xff}", error="no decision", field="decision", at=T0)
    assert not store.record_source_event("ats", "e1", "accepted", b"{}", at=T0 + 1)  # a replay changes nothing
    assert store.record_source_event("ats", "e2", "accepted", "{}", outcome_id="ats:2", at=T0)
    [u] = store.unmapped_source_events()
    assert (u.event_id, u.raw, u.field) == ("e1", b"{\xff}", "decision")
    assert store.resolve_source_event(u.id, "accepted", "ats:1", at=T0 + 2)
    assert not store.resolve_source_event(u.id, "accepted", at=T0 + 3)
    assert store.unmapped_source_events() == [] and store.source_event("ats", "e1").outcome_id == "ats:1"


# ------------------------------------------------------------------------------------------ lost leases

def _claim_and_begin(store: Store, owner: str, at: float):
    n = store.claim_due(at, 1, owner, 30)[0]
    return n, store.begin_attempt(n.id, n.channel, "outbox", at=at)


def test_a_dispatcher_that_lost_its_lease_to_another_records_a_possible_duplicate(store: Store):
    store.accept_outcomes([item("a")])
    _, a1 = _claim_and_begin(store, "A", T0)  # A hangs in the provider call past its lease
    assert store.release_expired_leases(T0 + 31) == 1
    n, again = _claim_and_begin(store, "B", T0 + 32)
    assert again.attempt_key == a1.attempt_key  # B resends with the same idempotency key
    assert not store.mark_sent(n.id, T0 + 33, attempt_id=a1.id, result=SendResult("accepted", provider_id="pA"),
                               owner="A")
    d = store.get_notification(n.id)
    assert (d.notification.state, d.notification.lease_owner) == ("sending", "B")  # not overwritten
    assert [e.detail["holder"] for e in d.events if e.kind == "possible_duplicate"] == ["B"]
    assert not store.schedule_retry(n.id, T0 + 99, "late timeout", attempt_id=a1.id, owner="A")
    assert store.mark_sent(n.id, T0 + 34, attempt_id=again.id, result=SendResult("accepted", provider_id="pB"),
                           owner="B")
    d = store.get_notification(n.id)
    assert d.notification.state == "sent" and [e.kind for e in d.events].count("sent") == 1


def test_a_late_finish_after_the_lease_was_returned_but_not_taken_is_kept(store: Store):
    store.accept_outcomes([item("a")])
    n, a1 = _claim_and_begin(store, "A", T0)
    assert store.release_expired_leases(T0 + 31) == 1  # back to scheduled; nobody claimed it yet
    assert store.mark_sent(n.id, T0 + 32, attempt_id=a1.id, result=SendResult("accepted", provider_id="pA"),
                           owner="A")
    assert store.get_notification(n.id).notification.state == "sent"
    assert store.claim_due(T0 + 40, 10, "B", 30) == []  # not sent a second time


def test_a_claim_that_ran_out_before_its_send_began_is_not_sent(store: Store):
    from engine.store import LeaseLost

    store.accept_outcomes([item("a")])
    n = store.claim_due(T0, 1, "A", 30)[0]  # A's batch is slow: this one waits past its lease
    assert store.release_expired_leases(T0 + 31) == 1
    store.claim_due(T0 + 32, 1, "B", 30)
    with pytest.raises(LeaseLost):
        store.begin_attempt(n.id, n.channel, "outbox", at=T0 + 33, owner="A", lease_seconds=30)
    a = store.begin_attempt(n.id, n.channel, "outbox", at=T0 + 34, owner="B", lease_seconds=30)
    d = store.get_notification(n.id)
    assert [x.id for x in d.attempts] == [a.id] and d.notification.lease_until == T0 + 64  # renewed from now


def test_a_source_delivery_is_kept_in_the_transaction_of_its_outcome(store: Store):
    from dataclasses import replace

    from engine.store import SourceDelivery

    d = SourceDelivery("ats", "e1", b'{"x": 1}', "matched", action="stage", outcome_id="ats:a")
    assert store.accept_outcomes([item("ats:a")], at=T0, deliveries=[d]) == ["accepted"]
    row = store.source_event("ats", "e1")
    assert (row.status, row.outcome_id, row.raw, row.action, row.received_at) == ("matched", "ats:a", b'{"x": 1}',
                                                                                   "stage", T0)
    assert store.accept_outcomes([item("ats:c")], at=T0, deliveries=[replace(d, status="x")]) == ["accepted"]
    assert store.source_event("ats", "e1").status == "matched", "a replayed delivery changes nothing"
    assert store.amend(item("ats:a", raw='{"id":"ats:a","decision":"pass"}'), T0 + 1,
                       delivery=replace(d, event_id="e2", status="amended")) == 1
    assert store.source_event("ats", "e2").status == "amended"
    assert store.amend(item("zz"), T0 + 2, delivery=replace(d, event_id="e3")) is None
    assert store.source_event("ats", "e3") is None, "an unknown outcome writes nothing, its delivery neither"
    with pytest.raises(TypeError):  # a delivery that cannot be written takes its outcome with it: one transaction
        store.accept_outcomes([item("ats:b")], at=T0, deliveries=[replace(d, event_id="e4", raw=None)])
    assert store.get_outcome("ats:b") is None and store.source_event("ats", "e4") is None
    assert store.record_delivery(replace(d, event_id="e5", status="duplicate"), at=T0)
    assert not store.record_delivery(replace(d, event_id="e5"), at=T0)


def test_get_outcomes_reads_many_at_once(store: Store):
    store.accept_outcomes([item("a"), item("b"), item("c", with_plan=False, status="unmatched")], at=T0)
    got = store.get_outcomes(["c", "a", "zz", "a"])
    assert sorted(got) == ["a", "c"] and got["a"] == store.get_outcome("a") and got["c"].status == "unmatched"
    assert store.get_outcomes([]) == {}
    many = [f"m{i}" for i in range(1200)]  # more than one query's worth
    store.accept_outcomes([item(i, with_plan=False, status="unmatched") for i in many], at=T0)
    assert set(store.get_outcomes(many)) == set(many)


def test_the_same_owner_under_a_later_claim_does_not_finish_the_earlier_claims_send(store: Store):
    store.accept_outcomes([item("a")])
    n1 = store.claim_due(T0, 1, "W", 30)[0]
    a1 = store.begin_attempt(n1.id, n1.channel, "outbox", at=T0, owner="W", claim=n1.claims)
    assert store.release_expired_leases(T0 + 31) == 1
    n2 = store.claim_due(T0 + 32, 1, "W", 30)[0]  # the same owner string (a restarted process, a reused id)
    assert (n1.claims, n2.claims) == (1, 2)
    ok = SendResult("accepted", provider_id="p1")
    assert not store.mark_sent(n1.id, T0 + 33, attempt_id=a1.id, result=ok, owner="W", claim=n1.claims)
    assert not store.schedule_retry(n1.id, T0 + 99, "late", owner="W", claim=n1.claims)
    assert not store.mark_failed(n1.id, "late", at=T0 + 33, owner="W", claim=n1.claims)
    assert not store.cancel(n1.id, T0 + 33, owner="W", claim=n1.claims)
    d = store.get_notification(n1.id)
    assert (d.notification.state, d.notification.claims) == ("sending", 2)  # the later claim is untouched
    [dup] = [e for e in d.events if e.kind == "possible_duplicate"]
    assert (dup.detail["claim"], dup.detail["holder_claim"], dup.detail["attempt_id"]) == (1, 2, a1.id)
    assert store.mark_sent(n2.id, T0 + 34, attempt_id=a1.id, result=ok, owner="W", claim=n2.claims)


def test_the_heartbeat_extends_only_claims_still_held(store: Store):
    store.accept_outcomes([item("a"), item("b")])
    a, b = store.claim_due(T0, 2, "A", 30)
    assert store.extend_leases([(a.id, "A", a.claims), (b.id, "A", b.claims + 1), (b.id, "B", b.claims)],
                               T0 + 100) == 1
    assert store.release_expired_leases(T0 + 31) == 1  # b ran out; a was extended
    assert store.get_notification(a.id).notification.lease_until == T0 + 100
    assert store.extend_leases([(b.id, "A", b.claims)], T0 + 200) == 0  # taken back: lost, not revived
    assert store.get_notification(b.id).notification.state == "scheduled"


def test_a_clean_stop_gives_back_its_claims_at_once(store: Store):
    store.accept_outcomes([item(x) for x in "abcd"])
    mine = store.claim_due(T0, 3, "A:0", 30)
    theirs = store.claim_due(T0, 1, "B:0", 30)
    flying = mine[0]
    assert store.release_leases(["A:0", "A:1"], T0 + 1, keep=[flying.id]) == 2
    states = {n.id: n.state for x in "abcd" for n in store.notifications_for(x)}
    assert states == {flying.id: "sending", mine[1].id: "scheduled", mine[2].id: "scheduled",
                      theirs[0].id: "sending"}
    assert sorted(n.id for n in store.claim_due(T0 + 2, 10, "C:0", 30)) == sorted([mine[1].id, mine[2].id])


@pytest.mark.parametrize("change", ["withdraw", "amend"])
def test_a_change_between_claim_and_attempt_start_cancels_and_nothing_is_begun(store: Store, change: str):
    from engine.store import NotSendable

    store.accept_outcomes([item("a")])
    n = store.claim_due(T0, 1, "A", 30)[0]
    assert store.still_sendable(n.id)  # the dispatcher looked: still sendable
    if change == "withdraw":
        store.withdraw("a", at=T0 + 1, reason="decision changed")
    else:
        store.amend(item("a", raw='{"id": "a", "decision": "advance"}', with_plan=False), at=T0 + 1)
    with pytest.raises(NotSendable, match="withdrawn" if change == "withdraw" else "amended"):
        store.begin_attempt(n.id, n.channel, "outbox", at=T0 + 2, owner="A", claim=n.claims, lease_seconds=30)
    d = store.get_notification(n.id)
    assert (d.notification.state, d.attempts) == ("cancelled", ())
    assert [e.detail["reason"] for e in d.events if e.kind == "cancelled"] == [
        f"outcome {'withdrawn' if change == 'withdraw' else 'amended'} before sending"]


@pytest.mark.parametrize("await_read", [False, True])
def test_sent_with_its_assumed_delivery_is_what_sent_then_delivered_was(store, await_read):
    # mark_sent(assumed=...) under the claim (one UPDATE, one INSERT) against mark_sent then record_receipt (the
    # general way, no owner): the same states, times, escalation and events, in the same order (late included)
    for oid in ("fast", "slow"):
        store.accept_outcomes([item(oid, note=plan(deadline_at=T0 + 5, escalate_after=600))], at=T0)
    got = {}
    for row in store.claim_due(T0 + 1, 2, "w", 30):
        a = store.begin_attempt(row.id, row.channel, "webhook", at=T0 + 9, owner="w", claim=row.claims)
        why = {"assumed": True, "why": "webhook reports no receipts"}
        if row.id.startswith("fast"):
            assert store.mark_sent(row.id, at=T0 + 10, provider_id=f"p-{row.id}", attempt_id=a.id,
                                   await_read=await_read, owner="w", claim=row.claims, assumed=why)
        else:
            assert store.mark_sent(row.id, at=T0 + 10, provider_id=f"p-{row.id}", attempt_id=a.id,
                                   await_read=await_read)
            assert store.record_receipt(f"p-{row.id}", "delivered", at=T0 + 10, detail=why) == row.id
        d = store.get_notification(row.id)
        n = d.notification
        got[row.id[:4]] = ((n.state, n.sent_at, n.delivered_at, n.escalate_at, n.late, n.lease_owner, n.await_read),
                           [(e.kind, e.at, e.channel, e.detail) for e in d.events],
                           [(x.status, x.provider_id) for x in d.attempts])
    fast, slow = got["fast"], got["slow"]
    assert fast[0] == slow[0] and fast[0][0] == "delivered" and fast[0][4]
    assert (fast[0][3] is not None) == await_read  # escalation kept only while a read is awaited
    assert [e[0] for e in fast[1]] == ["queued", "sent", "late", "delivered"]
    assert [(k, at, ch, {x: y for x, y in (det or {}).items() if x != "provider_id"}) for k, at, ch, det in fast[1]] == \
        [(k, at, ch, {x: y for x, y in (det or {}).items() if x != "provider_id"}) for k, at, ch, det in slow[1]]
    assert fast[2] == [("accepted", "p-fast#1")] and slow[2] == [("accepted", "p-slow#1")]
