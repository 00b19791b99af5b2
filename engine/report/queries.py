"""The store's reporting read side: every SQL statement of `herald report`, on a read-only connection to either
backend (`open_reader(store)`: a SQLite file, a postgresql:// URL, or an open Store).

engine/store/ owns the writes; this module only reads, through its own read-only connection (SQLite `mode=ro`;
PostgreSQL a REPEATABLE READ, READ ONLY transaction), so a report can run beside live daemons (SQLite WAL and
PostgreSQL MVCC: readers never block the writers) and can never change the store. The SQL is written once;
`Reader` binds it to a backend: `?` placeholders become `%s`, and the few spellings that differ come from its
`Dialect` (exact text of a double, string aggregation, byte-order sorting, the counts). Both backends give the
same report for the same data (tests/report/test_report_backends.py).

It reads `report_facts` (engine/store/migrations_tracking.py: one narrow row per notification, kept by triggers on
events, clustered by rule, rule-set version and variant) in ONE pass: every count, the satisfaction sum, and
the time-to-notify values of each group (group_concat, parsed and sorted in Python for exact percentiles). A
store that has no report_facts yet (the migration not applied) gets the same table as a TEMP table, rebuilt
from the events by the migration's own backfill SQL: correct, only slower on a large store.

The period filter selects notifications by their outcome's occurred_at (the queue time when it has none):
everything that happened to those notifications counts, even after the period (a cohort).
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.store import migrations_tracking as facts
from engine.store.postgres import is_url, redact

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
        rules = [f"{a}rule_id IN ({', '.join('?' * len(self.rules))})"] if self.rules else []
        return self._sql(f"coalesce({a}occurred_at, {a}queued_at)", rules, list(self.rules),
                         (("channel", self.channel), ("role", self.role), ("stage", self.stage)), a)

    def outcome_where(self, alias: str = "") -> tuple[str, list]:
        """The condition over the outcomes table (prefix `alias.`) for the filters that apply to outcomes: the period
        (by occurred_at, else the time of receipt), role and stage."""
        a = f"{alias}." if alias else ""
        return self._sql(f"coalesce({a}occurred_at, {a}received_at)", [], [],
                         (("role", self.role), ("stage", self.stage)), a)

    def _sql(self, instant: str, conds: list[str], params: list, equal: tuple, a: str) -> tuple[str, list]:
        """The period over `instant`, then `conds`, then each (column, value) of `equal` that is set, ANDed."""
        period = [(f"{instant} >= ?", self.since), (f"{instant} < ?", self.until)]
        sql = [c for c, v in period if v is not None] + conds
        values: list[float | str] = [float(v) for _, v in period if v is not None] + params
        for col, value in equal:
            if value is not None:
                sql.append(f"{a}{col} = ?")
                values.append(value)
        return (" AND ".join(sql) or "1 = 1"), values

    def as_dict(self) -> dict:
        return {"since": self.since, "until": self.until, "rules": list(self.rules), "channel": self.channel,
                "role": self.role, "stage": self.stage}


class ReportStoreError(Exception):
    """The file is not a herald store (or cannot be opened)."""


@dataclass(frozen=True)
class Dialect:
    """What differs between the backends' SQL for the same query."""

    name: str
    ttn: str         # time to notify (delivered_at - occurred_at) as text that parses back to the same double
    day: str         # the local day number of occurred_at, as text; {tz} is the offset in seconds
    concat: str      # comma-joined aggregation of {} (text)
    collate: str     # appended to ORDER BY keys: byte order on both
    counts: str      # the COUNT_FIELDS, in order


_COUNTS_SQLITE = """count(*), count(sent_at), count(delivered_at), count(opened_at), count(clicked_at),
    count(replied_at), count(score), total(score), sum(late), sum(fallbacks > 0), count(failed_at),
    count(cancelled_at), sum(delivered_at IS NOT NULL AND assumed = 1), sum(undelivered > 0)"""
_COUNTS_PG = """count(*), count(sent_at), count(delivered_at), count(opened_at), count(clicked_at),
    count(replied_at), count(score), coalesce(sum(score), 0)::float8, sum(late),
    count(*) FILTER (WHERE fallbacks > 0), count(failed_at), count(cancelled_at),
    count(*) FILTER (WHERE delivered_at IS NOT NULL AND assumed = 1), count(*) FILTER (WHERE undelivered > 0)"""

# With 17 significant digits SQLite's text gives Python the very same double back (group_concat's default has 15);
# PostgreSQL's float8 output (extra_float_digits >= 1) is the shortest exact text.
SQLITE = Dialect("sqlite", "printf('%!.17g', delivered_at - occurred_at)",
                 "CAST(floor((occurred_at + {tz}) / 86400.0) AS INTEGER)", "group_concat({})", "", _COUNTS_SQLITE)
POSTGRESQL = Dialect("postgresql", "(delivered_at - occurred_at)::text",
                     "floor((occurred_at + {tz}) / 86400.0)::bigint::text", "string_agg({}, ',')", ' COLLATE "C"',
                     _COUNTS_PG)


class Reader:
    """One read-only snapshot of a store: `rows(sql, params)` runs SQL written with `?` placeholders."""

    def __init__(self, conn: Any, dialect: Dialect, where: str):
        self.conn = conn
        self.dialect = dialect
        self.where = where  # the store as messages name it

    @property
    def pg(self) -> bool:
        return self.dialect is POSTGRESQL

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        if self.pg:
            from psycopg.rows import tuple_row

            cur = self.conn.cursor(row_factory=tuple_row)
            cur.execute(sql.replace("?", "%s"), tuple(params))
            return cur.fetchall()
        return self.conn.execute(sql, tuple(params)).fetchall()

    def order(self, *cols: str) -> str:
        """ORDER BY keys in byte order on both backends (SQLite's BINARY; PostgreSQL's "C")."""
        return ", ".join(c if c[0].isdigit() else c + self.dialect.collate for c in cols)

    def table_exists(self, name: str) -> bool:
        if self.pg:
            return self.rows("SELECT to_regclass(?) IS NOT NULL", (name,))[0][0]
        return bool(self.rows("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)))


@contextmanager
def open_reader(store: Any, facts_needed: bool = True) -> Iterator[Reader]:
    """A read-only snapshot of `store` (a SQLite path, a postgresql:// URL, or an open Store) for the report's
    queries, with report_facts available if facts_needed; ReportStoreError when it is not a herald store."""
    url = getattr(store, "url", None) or (store if is_url(str(store)) else None)
    if url is None:
        conn = connect(Path(getattr(store, "path", store)), facts_needed)
        try:
            conn.execute("BEGIN")  # one snapshot for every query
            yield Reader(conn, SQLITE, str(getattr(store, "path", store)))
        finally:
            conn.close()
        return
    import psycopg

    where = redact(url)
    try:
        pconn = psycopg.connect(url, connect_timeout=10, cursor_factory=psycopg.ClientCursor)
    except psycopg.Error as e:
        raise ReportStoreError(f"cannot connect to {where}: {str(e).strip()}") from None
    try:
        pconn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        pconn.execute("SET LOCAL extra_float_digits = 1")
        reader = Reader(pconn, POSTGRESQL, where)
        if facts_needed and not reader.table_exists(FACTS):
            raise ReportStoreError(f"{where} is not a herald store at the current schema (no {FACTS} table): "
                                   f"run `herald db upgrade`")
        yield reader
    finally:
        pconn.rollback()
        pconn.close()


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

# Time to notify: outcome occurred_at -> first delivery (or read), seconds; only where both are known, as exact text.
_KNOWN = "delivered_at IS NOT NULL AND occurred_at IS NOT NULL"
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


def groups(db: Reader, f: Filters, with_days: bool = True) -> list[GroupRow]:
    """Every (rule, version, variant) in ONE scan of report_facts, in key order (SQLite: the table's clustering order).

    with_days: also the day of each time-to-notify value (for the per-day chart; costs a little more).
    """
    d = db.dialect
    where, params = f.where()
    day = d.day.format(tz=repr(float(f.tz_offset)))
    ttn_sql = d.concat.format(f"CASE WHEN {_KNOWN} THEN {d.ttn} END")
    days = f", {d.concat.format(f'CASE WHEN {_KNOWN} THEN {day} END')}" if with_days else ", NULL"
    sql = (f"SELECT rule_id, ruleset_version, variant, {d.counts}, {ttn_sql}{days} "
           f"FROM {FACTS} WHERE {where} GROUP BY rule_id, ruleset_version, variant "
           f"ORDER BY {db.order('rule_id', 'ruleset_version', 'variant')}")
    out = []
    n = len(COUNT_FIELDS)
    for r in db.rows(sql, params):
        counts = {k: (v or 0) for k, v in zip(COUNT_FIELDS, r[3:3 + n], strict=False)}
        ttn = list(map(float, r[3 + n].split(","))) if r[3 + n] else []
        day_list = list(map(int, r[4 + n].split(","))) if r[4 + n] else []
        out.append(GroupRow(_none(r[0]), _none(r[1]), _none(r[2]), counts, ttn, day_list))
    unsub = unsubscribes(db, f)
    for g in out:
        g.counts["unsubscribed"] = unsub.get((g.rule_id, g.ruleset_version, g.variant), 0)
    return out


def unsubscribes(db: Reader, f: Filters) -> dict[tuple, int]:
    """{(rule, version, variant): notifications whose unsubscribe link was used}, through the events index."""
    where, params = f.where("x")
    sql = (f"SELECT x.rule_id, x.ruleset_version, x.variant, count(DISTINCT e.notification_id) FROM events e "
           f"JOIN {FACTS} x ON x.notification_id = e.notification_id WHERE e.kind = 'unsubscribed' AND {where} "
           f"GROUP BY 1, 2, 3")
    return {(_none(a), _none(b), _none(c)): n for a, b, c, n in db.rows(sql, params)}


def failures(db: Reader, f: Filters) -> list[tuple]:
    """(rule, version, variant, reason, count) of notifications that failed on every channel, most first."""
    where, params = f.where()
    order = db.order("rule_id", "ruleset_version", "variant", "5 DESC", "failed_reason")
    rows = db.rows(f"SELECT rule_id, ruleset_version, variant, failed_reason, count(*) FROM {FACTS} "
                   f"WHERE failed_at IS NOT NULL AND {where} GROUP BY 1, 2, 3, 4 ORDER BY {order}", params)
    return [(_none(a), _none(b), _none(c), d, e) for a, b, c, d, e in rows]


def replies(db: Reader, f: Filters, filtered: bool) -> list[tuple]:
    """(rule, version, variant, at, handled_at) of every reply; unattributed ones (no notification) only when
    no filter is set (they belong to no rule, period or channel)."""
    where, params = f.where("x")
    sql = (f"SELECT x.rule_id, x.ruleset_version, x.variant, r.at, r.handled_at FROM replies r "
           f"JOIN {FACTS} x ON x.notification_id = r.notification_id WHERE {where}")
    rows = [(_none(a), _none(b), _none(c), d, e) for a, b, c, d, e in db.rows(sql, params)]
    if not filtered:
        rows += [(None, None, None, a, h) for a, h in db.rows(
            f"SELECT at, handled_at FROM replies r WHERE notification_id IS NULL OR NOT EXISTS "
            f"(SELECT 1 FROM {FACTS} x WHERE x.notification_id = r.notification_id)")]
    return rows


def unmatched(db: Reader, f: Filters) -> int | None:
    """Active outcomes no rule matched (in the period); None when a filter makes the figure meaningless."""
    if f.rules or f.channel:
        return None
    where, params = f.outcome_where()
    return int(db.rows(f"SELECT count(*) FROM outcomes WHERE status = 'unmatched' AND state = 'active' AND {where}",
                       params)[0][0])


def outside_vocabulary(db: Reader, f: Filters) -> list[tuple[str | None, str]] | None:
    """(rule, marks as JSON text) of each outcome (in the period) whose current revision carries values outside the
    vocabulary (engine/store/migrations_vocabulary.py), its rule that of the revision's notification (None: not
    routed: unmatched or held); None with a channel filter (outcomes are not sent on a channel). Through the
    partial index on the marked outcomes: a store without typos costs nothing."""
    if f.channel:
        return None
    if not _has_column(db, "outcomes", "outside_vocabulary"):  # a store older than the migration
        return []
    where, params = f.outcome_where("o")
    if f.rules:
        where += f" AND n.rule_id IN ({', '.join('?' * len(f.rules))})"
        params.extend(f.rules)
    sql = (f"SELECT n.rule_id, o.outside_vocabulary FROM outcomes o LEFT JOIN notifications n "
           f"ON n.outcome_id = o.id AND n.outcome_rev = o.rev WHERE o.outside_vocabulary IS NOT NULL AND {where}")
    return [(_none(rule), marks) for rule, marks in db.rows(sql, params)]


def _has_column(db: Reader, table: str, column: str) -> bool:
    if db.pg:
        return bool(db.rows("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                            "AND table_name = ? AND column_name = ?", (table, column)))
    return any(r[1] == column for r in db.rows(f"PRAGMA table_info({table})"))


def per_rule_counts(db: Reader) -> list[tuple]:
    """(rule, matched, sent, delivered, opened, clicked, replied, rated, score_sum, late, ...) per rule, no
    percentiles: the cheap query behind /metrics."""
    return db.rows(f"SELECT rule_id, {db.dialect.counts} FROM {FACTS} GROUP BY rule_id ORDER BY {db.order('rule_id')}")


# ---------------------------------------------------------------------------------------- tracking reads

def notification_for_provider(db: Reader, provider_id: str, channel: str | None = None) -> str | None:
    """The notification a provider message id belongs to (its latest attempt with that id)."""
    sql = "SELECT notification_id FROM attempts WHERE provider_id = ?"
    params: list = [provider_id]
    if channel:
        sql += " AND channel = ?"
        params.append(channel)
    rows = db.rows(sql + " ORDER BY id DESC LIMIT 1", params)
    return rows[0][0] if rows else None


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


def notification_for_address(db: Reader, *, phone: str | None = None, email: str | None = None,
                             channel: str | None = None) -> str | None:
    """The most recently sent notification to a candidate with this phone number or e-mail address.

    SQLite finds the outcome through its expression indexes on raw's candidate.phone and candidate.email;
    PostgreSQL keeps raw as text (a body jsonb would refuse must still be stored), so it narrows with LIKE and
    compares the parsed addresses here."""
    if phone:
        forms = phone_forms(phone)
        cond = f"json_extract(o.raw, '$.candidate.phone') IN ({', '.join('?' * len(forms))})"
        params: list = forms
        like = [f"%{f}%" for f in forms]
    elif email:
        cond, params = "lower(json_extract(o.raw, '$.candidate.email')) = lower(?)", [email.strip()]
        like, forms = [f"%{email.strip()}%"], [email.strip().lower()]
    else:
        return None
    if db.pg:
        cond, params = "(" + " OR ".join(["o.raw ILIKE ?"] * len(like)) + ")", like
    sql = (f"SELECT n.id, o.raw FROM outcomes o JOIN notifications n ON n.outcome_id = o.id "
           f"WHERE {cond} AND n.sent_at IS NOT NULL")
    if channel:
        sql += " AND n.channels LIKE ?"
        params = [*params, f'%"{channel}"%']
    rows = db.rows(sql + " ORDER BY n.sent_at DESC" + ("" if db.pg else " LIMIT 1"), params)
    if not db.pg:
        return rows[0][0] if rows else None
    for nid, raw in rows:
        if _address(raw, "phone" if phone else "email") in forms:
            return nid
    return None


def _address(raw: str, key: str) -> str | None:
    """The candidate's phone (as written) or e-mail (lower case) in an outcome's raw JSON body."""
    try:
        value = json.loads(raw).get("candidate", {}).get(key)
    except (ValueError, AttributeError):
        return None
    if not isinstance(value, str):
        return None
    return value.lower() if key == "email" else value


def reply_exists(store: Any, reply_id: int) -> bool:
    with open_reader(store, facts_needed=False) as db:
        return bool(db.rows("SELECT 1 FROM replies WHERE id = ?", (int(reply_id),)))


def has_facts(store: Any) -> bool:
    """Whether the store keeps report_facts (the tracking migration was applied)."""
    with open_reader(store, facts_needed=False) as db:
        return db.table_exists(FACTS)


__all__ = [
    "COUNT_FIELDS",
    "EXTRA_FIELDS",
    "POSTGRESQL",
    "SQLITE",
    "Filters",
    "GroupRow",
    "Reader",
    "ReportStoreError",
    "connect",
    "failures",
    "groups",
    "notification_for_address",
    "notification_for_provider",
    "open_reader",
    "outside_vocabulary",
    "per_rule_counts",
    "phone_forms",
    "replies",
    "unmatched",
]
