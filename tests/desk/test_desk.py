"""engine.desk over a real store and the real pipeline (no daemon): listings page through cursors, actions
change the store and are appended to the audit log, refused ones change nothing, resubmit goes through the gate."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from daemon_support import make_deployment, outcome

from engine import desk
from engine.config.deployment import load_deployment
from engine.desk.planning import ClockedPipeline
from engine.intake.batch import intake
from engine.store import open_store

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Shanghai
T = NOW.timestamp()


@pytest.fixture
def env(tmp_path):
    root = make_deployment(tmp_path)
    dep = load_deployment([str(root)])
    pipe = ClockedPipeline(dep, now=NOW, render_channels="all")
    store = open_store(tmp_path / "herald.db")
    take = lambda items, source="test": intake(items, pipe, store, source, now=NOW)  # noqa: E731
    yield store, pipe, take
    store.close()


def test_held_pages_follow_the_cursor_and_approve_is_audited(env):
    store, pipe, take = env
    take([outcome(f"h{i}", approved=False) for i in range(5)])
    seen, cursor = [], None
    while True:
        p = desk.held(store, cursor, limit=2)
        seen += [o.id for o in p.items]
        if p.next is None:
            break
        cursor = p.next
    assert seen == [f"h{i}" for i in range(5)]
    plan = desk.would_send(store, pipe, "h0", T)
    assert plan.rule == "now" and "Hello Ann" in plan.messages[0].body
    r = desk.approve(store, pipe, "h0", T, reason="panel agreed", actor="li.wei")
    assert r.notification == "h0#1"
    [entry] = store.audit_for("h0")
    assert (entry.action, entry.actor, entry.reason, entry.notification_id) == ("approve", "li.wei", "panel agreed",
                                                                                  "h0#1")
    assert [o.id for o in desk.held(store).items] == ["h1", "h2", "h3", "h4"]


def test_a_cursor_of_another_listing_or_tampered_is_refused(env):
    store, _pipe, take = env
    take([outcome(f"h{i}", approved=False) for i in range(3)])
    cursor = desk.held(store, limit=1).next
    with pytest.raises(desk.DeskError, match="cursor"):
        desk.unmatched(store, cursor)
    with pytest.raises(desk.DeskError, match="cursor"):
        desk.held(store, cursor[:-2] + "xx")
    with pytest.raises(desk.DeskError, match="limit"):
        desk.held(store, limit=0)


def test_queue_of_today_and_cancel_reschedule_send_now(env):
    store, _pipe, take = env
    take([outcome("q1", decision="hold"), outcome("q2", decision="hold"), outcome("q3", decision="hold")])
    since, until = desk.day_bounds(T, timezone(timedelta(hours=8)))
    assert until - since == 86400 and since <= T < until
    q = desk.queue(store, states=["scheduled"], since=since, until=until)
    assert [n.id for n in q.items] == ["q1#1", "q2#1", "q3#1"]  # the `later` rule: an hour after now
    assert desk.cancel(store, "q1#1", T, actor="ops", reason="wrong person").state == "cancelled"
    with pytest.raises(desk.ActionError) as e:
        desk.cancel(store, "q1#1", T, actor="ops")
    assert e.value.code == 409
    r = desk.reschedule(store, "q2#1", T + 7200, T, actor="ops", reason="after the call")
    assert r.next_attempt_at == datetime.fromtimestamp(T + 7200, UTC).isoformat()
    assert desk.send_now(store, "q3#1", T, actor="ops").next_attempt_at == NOW.isoformat()
    assert [n.id for n in desk.queue(store, states=["scheduled"]).items] == ["q3#1", "q2#1"]
    assert [(a.action, a.notification_id) for a in desk.audit(store).items] == [
        ("send_now", "q3#1"), ("reschedule", "q2#1"), ("cancel", "q1#1")]
    with pytest.raises(desk.ActionError) as e:
        desk.send_now(store, "nope#1", T)
    assert e.value.code == 404
    with pytest.raises(desk.DeskError):
        desk.queue(store, since=until, until=since)


def test_pause_and_resume_are_audited_once(env):
    store, _pipe, _take = env
    desk.pause(store, T, "email", actor="ops", reason="relay down", channels=["email", "sms"])
    desk.pause(store, T, "email", actor="ops")  # already paused: nothing more recorded
    with pytest.raises(desk.ActionError):
        desk.pause(store, T, "fax", actor="ops", channels=["email", "sms"])
    assert [p.channel for p in desk.pause(store, T, None, actor="ops")] == ["*", "email"]
    assert [p.channel for p in desk.resume(store, T, None, actor="ops")] == ["email"]
    assert [(a.action, a.target) for a in desk.audit(store).items] == [
        ("resume", "*"), ("pause", "*"), ("pause", "email")]


def test_candidates_and_the_whole_history(env):
    store, _pipe, take = env
    take([outcome("c1", candidate={"name": "Wang Fang", "email": "wf@example.com", "phone": "+8613800138000"})])
    take([outcome("c2", approved=False)])
    store.add_reply("c1#1", "thank you", at=T + 1)
    store.add_event("c1#1", "rated", at=T + 2, detail={"score": 5})
    desk.withdraw(store, "c2", T, reason="decision changed", actor="li.wei")
    [c] = desk.candidates(store, "wang").items
    assert (c.outcome_id, c.name, c.email) == ("c1", "Wang Fang", "wf@example.com")
    assert [c.outcome_id for c in desk.candidates(store, "13800138000").items] == ["c1"]
    h = desk.history(store, "c1")
    assert [n.notification.id for n in h.notifications] == ["c1#1"]
    assert [r.content for r in h.replies] == ["thank you"] and h.ratings[0].detail == {"score": 5}
    assert [e.kind for e in h.notifications[0].events][:1] == ["queued"]
    h2 = desk.history(store, "c2")
    assert [a.action for a in h2.actions] == ["withdraw"] and h2.outcome.state == "withdrawn"
    assert [c.kind for c in h2.changes] == ["received", "withdrawn"]
    assert desk.history(store, "nobody") is None
    with pytest.raises(desk.DeskError):
        desk.candidates(store, " ")


def test_resubmit_a_fixed_dead_letter_through_the_gate(env):
    store, _pipe, take = env
    broken = json.dumps(outcome("d1", decision="maybe")).encode()
    [bad] = take([broken])
    assert bad.status == "invalid" and bad.dead_letter
    with pytest.raises(desk.ActionError) as e:  # still invalid: refused with the field, no new dead letter
        desk.resubmit(store, bad.dead_letter, broken, T, take, actor="ops")
    assert e.value.code == 422 and e.value.detail["field"] == "decision"
    assert store.dead_letter_count() == 1
    fixed = json.dumps(outcome("d1")).encode()
    status = desk.resubmit(store, bad.dead_letter, fixed, T, take, actor="ops", reason="typo in decision")
    assert (status.status, status.notification) == ("matched", "d1#1")
    assert desk.dead_letters(store).items == ()
    assert desk.dead_letters(store, resolved=True).items[0].resolved_as == "d1"
    assert [(a.action, a.target) for a in store.audit_for("d1")] == [("resubmit", f"dead letter {bad.dead_letter}")]
    with pytest.raises(desk.ActionError) as e:
        desk.resubmit(store, bad.dead_letter, fixed, T, take)
    assert e.value.code == 409


def test_unmatched_route_by_hand_and_replies_handled(env):
    store, pipe, take = env
    [u] = take([outcome("u1", decision="pass")])
    assert u.status == "unmatched"
    assert [o.id for o in desk.unmatched(store).items] == ["u1"]
    r = desk.route_by_hand(store, pipe, "u1", "now", T, by="li.wei", reason="generic is fine")
    assert r.notification == "u1#1" and desk.unmatched(store).items == ()
    rid = store.add_reply("u1#1", "ok", at=T)
    assert [x.id for x in desk.replies(store).items] == [rid]
    assert desk.handle_reply(store, rid, T + 60, actor="li.wei").handled_at == T + 60
    assert desk.replies(store).items == ()
    assert [a.action for a in store.audit_for("u1")] == ["route", "handle_reply"]
    with pytest.raises(desk.ActionError):
        desk.handle_reply(store, 999, T)


WINDOWED = """version: 1
windows:
  office: {days: [mon, tue, wed, thu, fri], hours: "09:00-17:00"}
defaults: {locale: en, timezone: UTC, channels: [email, sms]}
rules:
  - id: office-only
    match: {decision: reject}
    template: any/generic
    timing: {delay: 0s, window: office}
"""


def test_send_now_respects_a_closed_window_unless_overridden(tmp_path):
    """At 02:00 UTC the rule's office window (09:00-17:00) is closed: "send now" moves the message to 09:00 and
    says so; with the override it is due now, and the event tells the dispatcher the window was overridden."""
    root = make_deployment(tmp_path, rules=WINDOWED)
    dep = load_deployment([str(root)])
    pipe = ClockedPipeline(dep, now=NOW, render_channels="all")
    with open_store(tmp_path / "herald.db") as store:
        intake([outcome("w1"), outcome("w2")], pipe, store, "test", now=NOW)
        opening = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
        assert store.get_notification("w1#1").notification.send_at == opening.timestamp()
        store.reschedule("w1#1", T + 86400, at=T)  # an operator moved both to tomorrow first
        store.reschedule("w2#1", T + 86400, at=T)
        r = desk.send_now(store, "w1#1", T, actor="ops", pipeline=pipe)
        assert (r.next_attempt_at, r.window_closed_until, r.override_window) == (
            opening.isoformat(), opening.isoformat(), False)
        assert not desk.control.window_overridden(store.get_notification("w1#1").events)
        r = desk.send_now(store, "w2#1", T, actor="ops", reason="the candidate asked", pipeline=pipe,
                          override_window=True)
        assert (r.next_attempt_at, r.window_closed_until, r.override_window) == (
            NOW.isoformat(), opening.isoformat(), True)
        assert desk.control.window_overridden(store.get_notification("w2#1").events)
        [entry] = store.audit_for("w2")
        assert entry.detail == {"window_closed_until": opening.isoformat(), "override_window": True}
        store.reschedule("w2#1", T + 3600, at=T)  # a later reschedule puts the window back in force
        assert not desk.control.window_overridden(store.get_notification("w2#1").events)
        later = T + 8 * 3600  # 10:00: the window is open, nothing to say
        r = desk.send_now(store, "w1#1", later, pipeline=pipe)
        assert (r.next_attempt_at, r.window_closed_until) == (datetime.fromtimestamp(later, UTC).isoformat(), None)
