"""The store contract, continued: what the operator's desk needs from every backend (SQLite, PostgreSQL) —
keyset pages, candidate search, the append-only audit log, sending pauses honoured by claims, reschedule,
resolved dead letters."""
from __future__ import annotations

import json

import pytest
from store_support import T0, item, plan

from engine.store import Store, StoreError


def _candidate(oid: str, name: str, email: str, phone: str, **kw):
    raw = json.dumps({"id": oid, "decision": "reject", "candidate": {"name": name, "email": email, "phone": phone}},
                     ensure_ascii=False)
    return item(oid, raw=raw, **kw)


def test_outcomes_page_follows_the_key_without_gaps_or_repeats(store: Store):
    store.accept_outcomes([item(f"h{i}", with_plan=False, status="held", approved=False) for i in range(5)], at=T0)
    store.accept_outcomes([item("h5", with_plan=False, status="held", approved=False),
                           item("u1", with_plan=False, status="unmatched")], at=T0 + 1)
    seen, after = [], None
    while True:
        page = store.outcomes_page(["held"], after=after, limit=2)
        if not page:
            break
        seen += [o.id for o in page]
        after = (page[-1].received_at, page[-1].id)
    assert seen == ["h0", "h1", "h2", "h3", "h4", "h5"]
    assert [o.id for o in store.outcomes_page(["unmatched"], unhandled=True)] == ["u1"]
    assert [o.id for o in store.outcomes_page(["held", "unmatched"], since=T0 + 1)] == ["h5", "u1"]
    store.withdraw("h0", at=T0 + 2)
    assert "h0" not in [o.id for o in store.outcomes_page(["held"])]
    with pytest.raises(StoreError):
        store.outcomes_page(["held"], limit=0)


def test_notifications_page_by_time_state_and_channel(store: Store):
    store.accept_outcomes([item("a", note=plan(send_at=T0 + 10)), item("b", note=plan(send_at=T0 + 20)),
                           item("c", note=plan(send_at=T0 + 30, channels=("email",))),
                           item("d", note=plan(send_at=T0 + 99))], at=T0)
    ids = lambda rows: [n.id for n in rows]  # noqa: E731
    assert ids(store.notifications_page(since=T0 + 10, until=T0 + 31)) == ["a#1", "b#1", "c#1"]
    assert ids(store.notifications_page(channel="email")) == ["c#1"]
    first = store.notifications_page(limit=2)
    assert ids(first) == ["a#1", "b#1"]
    rest = store.notifications_page(after=(first[-1].next_attempt_at, first[-1].id), limit=10)
    assert ids(rest) == ["c#1", "d#1"]
    store.cancel("d#1", at=T0)
    assert ids(store.notifications_page(states=["scheduled"])) == ["a#1", "b#1", "c#1"]
    assert ids(store.notifications_page(states=["cancelled"])) == ["d#1"]
    store.cancel("a#1", at=T0)  # several states: merged in order, paged, filtered like one
    both = ["cancelled", "scheduled"]
    assert ids(store.notifications_page(states=both)) == ["a#1", "b#1", "c#1", "d#1"]
    head = store.notifications_page(states=both, limit=3)
    assert ids(head) == ["a#1", "b#1", "c#1"]
    assert ids(store.notifications_page(states=both, after=(head[-1].next_attempt_at, head[-1].id))) == ["d#1"]
    assert ids(store.notifications_page(states=both, channel="email", until=T0 + 50)) == ["c#1"]


def test_find_outcomes_by_id_name_email_and_phone(store: Store):
    store.accept_outcomes([_candidate("o1", "Wang Fang", "Fang.Wang@example.com", "+86 138-0013-8000"),
                           _candidate("o2", "王芳", "wf@example.cn", "13900139000"),
                           _candidate("o3", "Ann 100%_x", "ann@example.com", "+49 30 1234567")], at=T0)
    find = lambda q: sorted(o.id for o in store.find_outcomes(q))  # noqa: E731
    assert find("o2") == ["o2"]
    assert find("wang") == ["o1"] and find("王芳") == ["o2"]
    assert find("fang.wang@EXAMPLE.com") == ["o1"] and find("example.c") == ["o1", "o2", "o3"]
    assert find("13800138000") == ["o1"] and find("139 0013 9000") == ["o2"]
    assert find("100%_") == ["o3"] and find("%") == ["o3"]  # wildcards are text
    assert find("nobody") == []
    page = store.find_outcomes("example", limit=2)
    more = store.find_outcomes("example", after=(page[-1].received_at, page[-1].id), limit=2)
    assert sorted(o.id for o in page + more) == ["o1", "o2", "o3"]
    with pytest.raises(StoreError):
        store.find_outcomes("  ")


def test_find_outcomes_follows_an_amendment(store: Store):
    """The search text is the outcome's current body: an amendment's new e-mail is found, the old one no longer."""
    store.accept_outcomes([_candidate("am", "Hana Kobayashi", "hana@old.example", "+81 90 1234 5678")], at=T0)
    assert [o.id for o in store.find_outcomes("kobayashi")] == ["am"]
    assert [o.id for o in store.find_outcomes("9012345678")] == ["am"]
    store.amend(_candidate("am", "Hana Kobayashi", "hana@new.example", "+81 90 1234 5678", with_plan=False),
                at=T0 + 1)
    assert [o.id for o in store.find_outcomes("hana@new")] == ["am"] and store.find_outcomes("hana@old") == []


def test_audit_log_is_append_only_and_read_per_outcome(store: Store):
    store.accept_outcomes([item("a")], at=T0)
    first = store.record_action("approve", "li.wei", at=T0, outcome_id="a", reason="panel agreed")
    store.record_action("pause", "ops", at=T0 + 1, target="email", detail={"paused": True})
    store.record_action("cancel", "li.wei", at=T0 + 2, outcome_id="a", notification_id="a#1")
    assert [(r.action, r.actor, r.reason) for r in store.audit_for("a")] == [
        ("approve", "li.wei", "panel agreed"), ("cancel", "li.wei", None)]
    page = store.audit_page(limit=2)
    assert [r.action for r in page] == ["cancel", "pause"] and page[1].detail == {"paused": True}
    assert [r.id for r in store.audit_page(after=page[-1].id)] == [first]
    assert [r.action for r in store.audit_page(action="pause")] == ["pause"]
    with pytest.raises(StoreError):
        store.record_action("", "x")


def test_a_pause_stops_claims_on_its_channel_or_all_and_resume_lifts_it(store: Store):
    store.accept_outcomes([item("a", note=plan(channels=("email",))), item("b", note=plan(channels=("sms",)))],
                          at=T0)
    assert store.pause_sending("email", "ops", "smtp relay down", at=T0)
    assert not store.pause_sending("email", "someone else")
    assert [(p.channel, p.actor, p.reason) for p in store.pauses()] == [("email", "ops", "smtp relay down")]
    assert [n.id for n in store.claim_due(T0, 10, "w", 30)] == ["b#1"]
    assert store.next_due_time() == T0 + 30  # b's lease, not a (paused): the dispatcher sleeps, it does not spin
    assert store.pause_sending(None, "ops")
    assert store.resume_sending("email")
    assert store.claim_due(T0, 10, "w", 30) == []  # every channel is still paused
    assert store.resume_sending(None) and not store.resume_sending(None)
    assert store.next_due_time() == T0
    assert [n.id for n in store.claim_due(T0, 10, "w", 30)] == ["a#1"]


def test_reschedule_moves_a_scheduled_notification_only(store: Store):
    store.accept_outcomes([item("a", note=plan(send_at=T0 + 3600))], at=T0)
    assert store.reschedule("a#1", T0 + 60, at=T0, reason="candidate asked")
    n = store.get_notification("a#1")
    assert n.notification.next_attempt_at == T0 + 60
    assert n.events[-1].kind == "rescheduled" and n.events[-1].detail["reason"] == "candidate asked"
    assert [c.id for c in store.claim_due(T0 + 60, 10, "w", 30)] == ["a#1"]
    assert not store.reschedule("a#1", T0 + 999, at=T0)  # claimed: the dispatcher has it
    assert [e.kind for e in store.outcome_events("a")] == ["queued", "rescheduled"]


def test_dead_letters_page_and_resolution(store: Store):
    ids = [store.dead_letter("http", f"bad {i}", None, b"{") for i in range(3)]
    assert [d.id for d in store.dead_letters_page(limit=2)] == [ids[2], ids[1]]
    assert [d.id for d in store.dead_letters_page(after=ids[1])] == [ids[0]]
    assert store.resolve_dead_letter(ids[1], "fixed-1", at=T0)
    assert not store.resolve_dead_letter(ids[1], "again", at=T0)
    assert [d.id for d in store.dead_letters_page()] == [ids[2], ids[0]]
    got = store.get_dead_letter(ids[1])
    assert (got.resolved_as, got.resolved_at) == ("fixed-1", T0)
    assert ids[1] in [d.id for d in store.dead_letters_page(resolved=True)]
    assert store.get_dead_letter(10_000) is None


def test_replies_of_an_outcome_and_paged(store: Store):
    store.accept_outcomes([item("a"), item("b")], at=T0)
    r1 = store.add_reply("a#1", "thanks", at=T0)
    r2 = store.add_reply("b#1", "why?", at=T0 + 1)
    store.add_reply(None, "unknown sender", at=T0 + 2)
    assert [r.id for r in store.replies_for("a")] == [r1]
    assert store.mark_reply_handled(r1, at=T0 + 3)
    assert [r.id for r in store.replies_page()][:1] == [r2]
    assert [r.content for r in store.replies_page(unhandled=False, after=r1)] == ["why?", "unknown sender"]
    assert store.get_reply(r1).handled_at == T0 + 3


def test_event_counts_between_any_range_counts_every_event_once(store: Store):
    """Whole hours (read from the per-hour counts where a backend keeps them) and the minutes at both edges (read
    from the events) add up to what a count of the events in the range gives, for aligned and unaligned ranges."""
    store.accept_outcomes([item(f"e{i}", note=plan(send_at=T0, rule=f"r{i % 2}")) for i in range(4)], at=T0 - 7200)
    added = []
    for k in range(40):
        at, kind, nid = T0 + k * 700.0, ("sent", "delivered", "failed")[k % 3], f"e{k % 4}#1"
        store.add_event(nid, kind, at=at, channel=("email", "sms")[k % 2])
        added.append((at, kind, f"r{k % 4 % 2}", ("email", "sms")[k % 2]))
    kinds = ("sent", "delivered")
    for lo, hi in ((T0, T0 + 3600 * 5), (T0 + 100, T0 + 3600 * 6 + 250), (T0 + 3700, T0 + 3800), (T0 - 1, T0 + 1e5)):
        want: dict = {}
        for at, kind, rule, channel in added:
            if lo <= at < hi and kind in kinds:
                want[(kind, rule, channel)] = want.get((kind, rule, channel), 0) + 1
        got = {(c.kind, c.rule_id, c.channel): c.count for c in store.event_counts_between(kinds, lo, hi)}
        assert got == want, (lo, hi)


def test_event_counts_between_and_count_status(store: Store):
    """The console's Today: a day's events by kind, rule and channel; how many outcomes wait, by status."""
    store.accept_outcomes([item("c1", note=plan(send_at=T0)), item("c2", note=plan(send_at=T0)),
                           item("c3", with_plan=False, status="held", approved=False)], at=T0)
    store.add_event("c1#1", "sent", at=T0 + 10, channel="email")
    store.add_event("c2#1", "sent", at=T0 + 20, channel="email")
    store.add_event("c2#1", "sent", at=T0 + 5000, channel="email")  # outside the range
    got = {(c.kind, c.channel, c.count) for c in store.event_counts_between(("queued", "sent"), T0, T0 + 100)}
    assert ("sent", "email", 2) in got and any(k == "queued" for k, _, _ in got)
    assert store.event_counts_between((), T0, T0 + 100) == []
    assert store.count_status("held") == 1 and store.count_status("unmatched") == 0
    store.withdraw("c3", at=T0 + 1)
    assert store.count_status("held") == 0
