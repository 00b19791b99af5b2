"""`herald db copy`: SQLite -> PostgreSQL -> SQLite gives back every table row for row (ids, revisions, events,
suppressions, report facts, rule sets in load order); PostgreSQL's sequences continue past the copied ids; a
non-empty target is refused unless --replace; the report is the same on the copy."""
from __future__ import annotations

import sqlite3

import psycopg
import pytest
from report_support import T0, build_scenario, build_variants

from engine.report import build_report
from engine.store import StoreError, open_store
from engine.store.copy import TABLES, copy_store


def _fill_the_rest(path) -> None:
    """What the report scenarios do not write: an amended outcome, suppressions, dead letters (one resolved),
    source events, rule sets loaded in a non-alphabetical order, the desk's audit log and a sending pause."""
    from store_support import item

    with open_store(str(path)) as s:
        s.accept_outcomes([item("amend-me")], at=T0)
        s.amend(item("amend-me", raw='{"id": "amend-me", "decision": "reject", "note": 2}'), at=T0 + 5)
        assert s.get_outcome("amend-me").rev == 2
        s.suppress("email", "a@example.com", reason="unsubscribed", actor="candidate", at=T0)
        s.suppress("sms", "+8613800000000", reason="asked", actor="hr", at=T0 + 1)
        s.dead_letter("http", "not JSON", None, b"\xff\xfe broken", remote="10.0.0.1", at=T0)
        s.record_source_event("greenhouse", "ev-1", "unmapped", b'{"x": 1}', error="no id", field="id", at=T0)
        for v in ("zz", "aa", "mm"):
            s.record_ruleset(v, {"rules/a.yaml": v}, True, at=T0)
        s.record_action("withdraw", "li.wei", at=T0, outcome_id="amend-me", reason="decision changed",
                        detail={"cancelled": 1})
        s.pause_sending("sms", "ops", "provider outage", at=T0)
        s.resolve_dead_letter(s.dead_letter("http", "schema", "decision", b"{}", at=T0), "amend-me", at=T0 + 1)


def _dump(target) -> dict[str, list[tuple]]:
    out = {}
    if str(target).startswith("postgresql://"):
        with psycopg.connect(str(target)) as conn:
            for t, order in TABLES:
                cols = [c for (c,) in conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                                                   "table_name = %s ORDER BY ordinal_position", (t,)) if c != "rowid"]
                out[t] = [tuple(r) for r in conn.execute(f"SELECT {', '.join(cols)} FROM {t} ORDER BY {order}")]
        return out
    conn = sqlite3.connect(str(target))
    for t, order in TABLES:
        out[t] = [tuple(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY {order}")]
    conn.close()
    return out


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    path = tmp_path_factory.mktemp("copy") / "herald.db"
    build_scenario(path)
    build_variants(path)
    _fill_the_rest(path)
    return path


def test_sqlite_to_postgresql_and_back_is_row_for_row(original, pg, tmp_path):
    url = pg.create_database("copy")
    seen: list = []
    result = copy_store(str(original), url, progress=lambda t, n, total: seen.append((t, n, total)))
    want = _dump(original)
    assert dict(result.tables) == {t: len(rows) for t, rows in want.items()}
    assert all(want[t] for t, _ in TABLES), "every table has rows to copy"
    assert ("events", len(want["events"]), len(want["events"])) in seen
    assert _dump(url) == want
    back = tmp_path / "back.db"
    copy_store(url, str(back))
    assert _dump(back) == want
    assert build_report(url, now=T0).as_dict() | {"store": ""} == build_report(original, now=T0).as_dict() | {"store": ""}
    with open_store(url) as s:  # the rule sets kept their load order; new rows get fresh ids
        assert [r.version for r in [s.latest_ruleset()]] == ["mm"]
        nid = s.notifications_for("tech-4")[0].id
        before = max(r[0] for r in want["events"])
        assert s.add_event(nid, "opened", at=T0 + 10)
        assert s.get_notification(nid).events[-1].id == before + 1
        assert s.dead_letter("http", "x", None, b"y", at=T0) == max(r[0] for r in want["dead_letters"]) + 1


def test_a_non_empty_target_is_refused_unless_replaced(original, pg, tmp_path):
    url = pg.create_database("copy")
    copy_store(str(original), url)
    with pytest.raises(StoreError, match=r"not empty.*--replace"):
        copy_store(str(original), url)
    copy_store(str(original), url, replace=True)
    assert _dump(url) == _dump(original)
    lite = tmp_path / "other.db"
    copy_store(url, str(lite))
    with pytest.raises(StoreError, match="not empty"):
        copy_store(url, str(lite))
    copy_store(url, str(lite), replace=True)
    assert _dump(lite) == _dump(original)
    with pytest.raises(StoreError, match="same store"):
        copy_store(str(lite), str(lite))


def test_herald_db_copy_command(original, pg, run_cli, tmp_path):
    url = pg.create_database("copy")
    r = run_cli(["db", "copy", "--from", str(original), "--to", url], cwd=tmp_path)
    assert r.exit_code == 0, r.stderr
    assert "events" in r.stderr and "copied" in r.stdout and "***" not in r.stdout
    r = run_cli(["db", "copy", "--from", str(original), "--to", url], cwd=tmp_path)
    assert r.exit_code == 1 and "--replace" in r.stderr
