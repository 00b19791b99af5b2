"""The store's reporting read side: every SQL statement of `herald report`, on a read-only connection.

engine/store/ owns the writes; this module only reads, through its own `mode=ro` connection, so a report can
run beside a live daemon (SQLite WAL: readers never block the writer) and can never change the store.

It reads `report_facts` (engine/store/migrations_tracking.py: one narrow row per notification, kept by triggers on
events, clustered by rule, rule-set version and variant) in ONE pass: every count, the satisfaction sum, and
the time-to-notify values of each group (group_concat, parsed and sorted in Python for exact percentiles). A
store that has no report_facts yet (the migration not applied) gets the same table as a TEMP table, rebuilt
from the events by the migration's own backfill SQL: correct, only slower on a large store.

The period filter selects notifications by their outcome's occurred_at (the queue time when it has none):
everything that happened to those notifications counts, even after the period (a cohort).
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.store import migrations_tracking as facts
FACTS = "report_facts"


@dataclass(frozen=True)
class Filters:
    """What the report covers. since is inclusive, until exclusive (epoch seconds); empty means no filter."""

    since: float | None = None
    until: float | None = None
    rules: tuple = ()
    channel: str | None = None
    role: str | None = None
    stage: str | None = None
    tz_offset: float = 0.0  # seconds east of UTC: where days start, for the time-to-notify-per-day chart

    def where(self, alias: str = "") -> tuple[str, list]:
        """The SQL condition over report_facts (prefix `alias.`) and its parameters."""
        a = f"{alias}." if alias else ""
        conds: list[str] = []
        params: list[float | str] = []
        if self.since is not None:
            conds.append(f"coalesce({a}occurred_at, {a}queued_at) >= ?")
            params.append(float(self.since))
        if self.until is not None:
            conds.append(f"coalesce({a}occurred_at, {a}queued_at) < ?")
            params.append(float(self.until))
        if self.rules:
            conds.append(f"{a}rule_id IN ({', '.join('?' * len(self.rules))})")
            params.extend(self.rules)
        for col, value in (("channel", self.channel), ("role", self.role), ("stage", self.stage)):
            if value is not None:
                conds.append(f"{a}{col} = ?")
                params.append(value)
        return (" AND ".join(conds) or "1"), params

    def as_dict(self) -> dict:
        return {"since": self.since, "until": self.until, "rules": list(self.rules), "channel": self.channel,
                "role": self.role, "stage": self.stage}


class ReportStoreError(Exception):
    """The file is not a herald store (or cannot be opened)."""


def connect(path: str | Path, facts_needed: bool = True) -> sqlite3.Connection:
    """A read-only connection to the store at `path`, with report_facts available (real or TEMP) if facts_needed."""
    p = Path(path)
    if not p.is_file():
        raise ReportStoreError(f"no store at {p}")
    try:
        conn = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True, isolation_level=None, timeout=30)
        conn.execute("PRAGMA query_only = 1")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        raise ReportStoreError(f"{p} is not a herald store: {e}") from e
    missing = {"outcomes", "notifications", "events", "replies"} - tables
    if missing:
        conn.close()
        raise ReportStoreError(f"{p} is not a herald store (no {', '.join(sorted(missing))} table)")
    if facts_needed and FACTS not in tables:
        ensure_temp_facts(conn)
    return conn


def ensure_temp_facts(conn: sqlite3.Connection) -> None:
    """report_facts as a TEMP table rebuilt from the events (for a store without the migration)."""
    conn.execute("PRAGMA query_only = 0")  # TEMP objects only: the main database stays read-only (mode=ro)
    try:
        conn.execute(facts.table_ddl(FACTS, temp=True))
        facts.backfill(conn, f"temp.{FACTS}")
    finally:
        conn.execute("PRAGMA query_only = 1")


# ----------------------------------------------------------------------------------------------- groups

# Time to notify: outcome occurred_at -> first delivery (or read), seconds; only where both are known. As text
# with 17 significant digits, which gives Python the very same double back (group_concat's default has 15).
_TTN = ("CASE WHEN delivered_at IS NOT NULL AND occurred_at IS NOT NULL "
        "THEN printf('%!.17g', delivered_at - occurred_at) END")
_COUNTS = """count(*), count(sent_at), count(delivered_at), count(opened_at), count(clicked_at), count(replied_at),
    count(score), total(score), sum(late), sum(fallbacks > 0), count(failed_at), count(cancelled_at),
    sum(delivered_at IS NOT NULL AND assumed = 1), sum(undelivered > 0)"""
COUNT_FIELDS = ("matched", "sent", "delivered", "opened", "clicked", "replied", "rated", "score_sum", "late",
                "fallbacks", "failed", "cancelled", "assumed", "undelivered")
EXTRA_FIELDS = ("unsubscribed",)  # counted from events (few rows), not from report_facts


@dataclass
class GroupRow:
    """One (rule, rule-set version, variant): counts, and time-to-notify values with their day numbers."""

    rule_id: str | None
    ruleset_version: str | None
    variant: str | None
    counts: dict
    ttn: list = field(default_factory=list)   # seconds, unsorted
    days: list = field(default_factory=list)  # day number (local) of each ttn value's outcome


def _none(v: Any) -> Any:
    return None if v == "" else v


def groups(conn: sqlite3.Connection, f: Filters, with_days: bool = True) -> list[GroupRow]:
    """Every (rule, version, variant) in ONE scan of report_facts, in key order (the table's clustering order).

    with_days: also the day of each time-to-notify value (for the per-day chart; costs a little more).
    """
    where, params = f.where()
    day = f"CAST(floor((occurred_at + {float(f.tz_offset)!r}) / 86400.0) AS INTEGER)"
    days = (f", group_concat(CASE WHEN delivered_at IS NOT NULL AND occurred_at IS NOT NULL THEN {day} END)"
            if with_days else ", NULL")
    sql = (f"SELECT rule_id, ruleset_version, variant, {_COUNTS}, group_concat({_TTN}){days} "
           f"FROM {FACTS} WHERE {where} GROUP BY rule_id, ruleset_version, variant "
           f"ORDER BY rule_id, ruleset_version, variant")
    out = []
    n = len(COUNT_FIELDS)
    for r in conn.execute(sql, params):
        counts = {k: (v or 0) for k, v in zip(COUNT_FIELDS, r[3:3 + n], strict=False)}
        ttn = list(map(float, r[3 + n].split(","))) if r[3 + n] else []
        day_list = list(map(int, r[4 + n].split(","))) if r[4 + n] else []
        out.append(GroupRow(_none(r[0]), _none(r[1]), _none(r[2]), counts, ttn, day_list))
    unsub = unsubscribes(conn, f)
    for g in out:
        g.counts["unsubscribed"] = unsub.get((g.rule_id, g.ruleset_version, g.variant), 0)
    return out


def unsubscribes(conn: sqlite3.Connection, f: Filters) -> dict[tuple, int]:
    """{(rule, version, variant): notifications whose unsubscribe link was used}, through the events index."""
    where, params = f.where("x")
    sql = (f"SELECT x.rule_id, x.ruleset_version, x.variant, count(DISTINCT e.notification_id) FROM events e "
           f"JOIN {FACTS} x ON x.notification_id = e.notification_id WHERE e.kind = 'unsubscribed' AND {where} "
           f"GROUP BY 1, 2, 3")
    return {(_none(a), _none(b), _none(c)): n for a, b, c, n in conn.execute(sql, params)}


def failures(conn: sqlite3.Connection, f: Filters) -> list[tuple]:
    """(rule, version, variant, reason, count) of notifications that failed on every channel, most first."""
    where, params = f.where()
    rows = conn.execute(f"SELECT rule_id, ruleset_version, variant, failed_reason, count(*) FROM {FACTS} "
                        f"WHERE failed_at IS NOT NULL AND {where} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 5 DESC, 4",
                        params).fetchall()
    return [(_none(a), _none(b), _none(c), d, e) for a, b, c, d, e in rows]


def replies(conn: sqlite3.Connection, f: Filters, filtered: bool) -> list[tuple]:
    """(rule, version, variant, at, handled_at) of every reply; unattributed ones (no notification) only when
    no filter is set (they belong to no rule, period or channel)."""
    where, params = f.where("x")
    sql = (f"SELECT x.rule_id, x.ruleset_version, x.variant, r.at, r.handled_at FROM replies r "
           f"JOIN {FACTS} x ON x.notification_id = r.notification_id WHERE {where}")
    rows = [(_none(a), _none(b), _none(c), d, e) for a, b, c, d, e in conn.execute(sql, params)]
    if not filtered:
        rows += [(None, None, None, a, h) for a, h in conn.execute(
            f"SELECT at, handled_at FROM replies r WHERE notification_id IS NULL OR NOT EXISTS "
            f"(SELECT 1 FROM {FACTS} x WHERE x.notification_id = r.notification_id)")]
    return rows


def unmatched(conn: sqlite3.Connection, f: Filters) -> int | None:
    """Active outcomes no rule matched (in the period); None when a filter makes the figure meaningless."""
    if f.rules or f.channel:
        return None
    conds = ["status = 'unmatched'", "state = 'active'"]
    params: list[float | str] = []
    if f.since is not None:
        conds.append("coalesce(occurred_at, received_at) >= ?")
        params.append(float(f.since))
    if f.until is not None:
        conds.append("coalesce(occurred_at, received_at) < ?")
        params.append(float(f.until))
    for col, value in (("role", f.role), ("stage", f.stage)):
        if value is not None:
            conds.append(f"{col} = ?")
            params.append(value)
    return int(conn.execute(f"SELECT count(*) FROM outcomes WHERE {' AND '.join(conds)}", params).fetchone()[0])


def per_rule_counts(conn: sqlite3.Connection) -> list[tuple]:
    """(rule, matched, sent, delivered, opened, clicked, replied, rated, score_sum, late, ...) per rule, no
    percentiles: the cheap query behind /metrics."""
    return conn.execute(f"SELECT rule_id, {_COUNTS} FROM {FACTS} GROUP BY rule_id ORDER BY rule_id").fetchall()


# ---------------------------------------------------------------------------------------- tracking reads

def notification_for_provider(conn: sqlite3.Connection, provider_id: str, channel: str | None = None) -> str | None:
    """The notification a provider message id belongs to (its latest attempt with that id)."""
    sql = "SELECT notification_id FROM attempts WHERE provider_id = ?"
    params: list = [provider_id]
    if channel:
        sql += " AND channel = ?"
        params.append(channel)
    row = conn.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
    return row[0] if row else None


def phone_forms(phone: str) -> list[str]:
    """The ways one mobile number may be written: as given, digits only, with and without +86 / 86."""
    raw = phone.strip()
    digits = "".join(c for c in raw if c.isdigit())
    forms = {raw, digits, "+" + digits}
    if digits.startswith("86") and len(digits) == 13:
        forms |= {digits[2:], "+" + digits}
    if len(digits) == 11:
        forms |= {"+86" + digits, "86" + digits}
    return sorted(f for f in forms if f and f != "+")


def notification_for_address(conn: sqlite3.Connection, *, phone: str | None = None, email: str | None = None,
                             channel: str | None = None) -> str | None:
    """The most recently sent notification to a candidate with this phone number or e-mail address."""
    if phone:
        forms = phone_forms(phone)
        cond = f"json_extract(o.raw, '$.candidate.phone') IN ({', '.join('?' * len(forms))})"
        params: list = forms
    elif email:
        cond, params = "lower(json_extract(o.raw, '$.candidate.email')) = lower(?)", [email.strip()]
    else:
        return None
    sql = (f"SELECT n.id FROM outcomes o JOIN notifications n ON n.outcome_id = o.id "
           f"WHERE {cond} AND n.sent_at IS NOT NULL")
    if channel:
        sql += " AND n.channels LIKE ?"
        params = [*params, f'%"{channel}"%']
    row = conn.execute(sql + " ORDER BY n.sent_at DESC LIMIT 1", params).fetchone()
    return row[0] if row else None


def reply_exists(path: str | Path, reply_id: int) -> bool:
    conn = connect(path, facts_needed=False)
    try:
        return conn.execute("SELECT 1 FROM replies WHERE id = ?", (int(reply_id),)).fetchone() is not None
    finally:
        conn.close()


def has_facts(path: str | Path) -> bool:
    """Whether the store keeps report_facts (the tracking migration was applied)."""
    conn = connect(path, facts_needed=False)
    try:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (FACTS,)).fetchone() is not None
    finally:
        conn.close()


__all__ = [
    "COUNT_FIELDS",
    "EXTRA_FIELDS",
    "Filters",
    "GroupRow",
    "ReportStoreError",
    "connect",
    "failures",
    "groups",
    "notification_for_address",
    "notification_for_provider",
    "per_rule_counts",
    "phone_forms",
    "replies",
    "unmatched",
]
