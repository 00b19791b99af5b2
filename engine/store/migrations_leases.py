"""Leases done right (several replicas on one queue): `notifications.claims`, how many times a notification has
been claimed. A claim is (lease_owner, lease_until, claims); finishing a send is conditional on the owner AND the
claim number, so a dispatcher whose lease ran out never overwrites the result of the claim that followed.
Idempotent (the column is added only when missing)."""
from __future__ import annotations

from typing import Any

NAME = "lease claim numbers"


def apply(db: Any) -> None:
    """The migration (inside the migration's transaction)."""
    conn = getattr(db, "conn", db)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(notifications)")}
    if "claims" not in cols:
        conn.execute("ALTER TABLE notifications ADD COLUMN claims INTEGER NOT NULL DEFAULT 0")
