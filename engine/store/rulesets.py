"""Rule-set versions (loaded or refused, by content hash) and dead letters (refused inputs, raw bytes kept)."""
from __future__ import annotations

import json
from typing import Any
from collections.abc import Mapping, Sequence

from engine.store._base import SqlStore, _j, _now, _raw_bytes, _row
from engine.store.rows import DeadLetterRow, Instant, RulesetRow


class RuleSets(SqlStore):
    """Rule sets and dead letters."""

    def record_ruleset(self, version: str, files: Mapping[str, str], ok: bool, errors: Sequence[str] = (),
                       at: Instant | None = None) -> RulesetRow:
        """Records a rule-set version (a content hash) as loaded now; loading the same version again updates its time."""
        now = _now(at)
        with self._write() as conn:
            self._x(conn, "INSERT INTO rulesets (version, files, loaded_at, last_loaded_at, ok, errors) "
                         "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (version) DO UPDATE SET last_loaded_at = excluded.last_loaded_at",
                         (version, _j(dict(files)), now, now, int(bool(ok)), _j([str(e) for e in errors])))
            r = self._q(conn, "SELECT * FROM rulesets WHERE version = ?", (version,))[0]
        return self._ruleset(r)

    @staticmethod
    def _ruleset(r: Mapping[str, Any]) -> RulesetRow:
        return _row(RulesetRow, r, files=json.loads(r["files"]), ok=bool(r["ok"]), errors=tuple(json.loads(r["errors"])))

    def latest_ruleset(self, ok: bool | None = True) -> RulesetRow | None:
        """The most recently loaded rule set (only good ones by default; ok=None: any)."""
        where = "" if ok is None else f"WHERE ok = {int(ok)}"
        r = self._one(f"SELECT * FROM rulesets {where} ORDER BY last_loaded_at DESC, rowid DESC LIMIT 1")
        return None if r is None else self._ruleset(r)

    def get_ruleset(self, version: str) -> RulesetRow | None:
        r = self._one("SELECT * FROM rulesets WHERE version = ?", (version,))
        return None if r is None else self._ruleset(r)

    def dead_letter(self, source: str, reason: str, field: str | None, raw: bytes | str,
                    remote: str | None = None, at: Instant | None = None) -> int:
        """Keeps a refused input with its raw body byte-exact (bytes, or str: surrogate escapes give bytes back)."""
        with self._write() as conn:
            rows = self._q(conn, "INSERT INTO dead_letters (received_at, source, reason, field, raw, remote) "
                                 "VALUES (?,?,?,?,?,?) RETURNING id",
                           (_now(at), source, reason, field, _raw_bytes(raw), remote))
            return int(rows[0]["id"])

    def dead_letters(self, limit: int = 100) -> list[DeadLetterRow]:
        """The newest dead letters first."""
        rows = self._all("SELECT * FROM dead_letters ORDER BY id DESC LIMIT ?", (limit,))
        return [_row(DeadLetterRow, r, raw=bytes(r["raw"])) for r in rows]

    def dead_letter_count(self) -> int:
        return int(self._all("SELECT count(*) AS n FROM dead_letters")[0]["n"])
