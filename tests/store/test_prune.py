"""Event retention on both backends: prune_events deletes old events of finished notifications only, in batches,
keeps the kinds the report reads from events, leaves the report's figures unchanged, and events stay append-only
for everything else; `herald db prune` applies store.retention.events."""
from __future__ import annotations

import pytest
from report_support import DAY, T0, Builder, build_scenario, open_store

from engine.report import build_report
from engine.store import StoreError, open_store as open_any


def _events(store, nid: str) -> list[str]:
    return [e.kind for e in store.get_notification(nid).events]


def test_prune_keeps_live_work_and_what_the_report_reads(target):
    build_scenario(target)
    with open_store(target) as s:
        b = Builder(s)
        live = b.outcome("live-1", "tech", occurred=T0)  # still scheduled: its events stay
        assert b.event("tech-1#1", "unsubscribed", T0 + 10)
        before = build_report(target, now=T0 + 30 * DAY).as_dict()
        old_kinds = _events(s, "tech-1#1")
        assert s.prune_events(T0 - 1) == 0  # nothing that old
        n = 0
        while (k := s.prune_events(T0 + 20 * DAY, limit=3)) == 3:
            n += 3
        n += k
        assert n > 20
        assert _events(s, "tech-1#1") == ["unsubscribed"] and len(old_kinds) > 5
        assert _events(s, live) == ["queued"]
        assert _events(s, "tech-4#1") == ["queued"]  # matched, never sent: still scheduled
        after = build_report(target, now=T0 + 30 * DAY).as_dict()
        assert after == before
        with pytest.raises(StoreError):
            s.prune_events(T0, limit=0)


def test_events_stay_append_only_outside_prune(store):
    from store_support import item

    store.accept_outcomes([item("a")], at=T0)
    with pytest.raises(Exception, match="append-only"), store._write() as conn:
        store._x(conn, "DELETE FROM events")
    assert _events(store, "a#1") == ["queued"]
    store.prune_events(T0 + DAY)  # a scheduled notification's events are never pruned
    with pytest.raises(Exception, match="append-only"), store._write() as conn:
        store._x(conn, "DELETE FROM events")
    assert _events(store, "a#1") == ["queued"]


def test_herald_db_prune_uses_the_retention_setting(tmp_path, run_cli):
    db = tmp_path / "herald.db"
    build_scenario(db)
    r = run_cli(["db", "prune"], cwd=tmp_path)
    assert r.exit_code == 2 and "store.retention.events" in r.stderr
    (tmp_path / "herald.yaml").write_text("store:\n  path: herald.db\n  retention:\n    events: 400d\n")
    r = run_cli(["db", "prune", "--now", "2027-01-20T00:00:00Z"], cwd=tmp_path)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("pruned 0 events")
    r = run_cli(["db", "prune", "--now", "2028-06-01T00:00:00Z"], cwd=tmp_path)
    assert r.exit_code == 0, r.stderr
    assert not r.stdout.startswith("pruned 0 ") and "before 2027-04-" in r.stdout
    with open_any(str(db)) as s:
        assert _events(s, "tech-1#1") == []
    r = run_cli(["db", "prune", "--events", "1h"], cwd=tmp_path)
    assert r.exit_code == 2 and "at least 1d" in r.stderr
