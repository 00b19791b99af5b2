"""A scaled or shifted clock (--time-scale, --start-at) is published beside a SQLite store for the CLI; PostgreSQL
has no such file (replicas and commands run on the wall clock), so a replica started with one says so."""
from __future__ import annotations

import logging

from daemon_support import make_deployment

from engine.config.deployment import load_deployment
from engine.daemon import Daemon


def _daemon(root, **kw) -> Daemon:
    dep = load_deployment([str(root)])
    assert dep.ok, [d.format() for d in dep.diagnostics]
    return Daemon(dep, paths=[str(root)], host="127.0.0.1", port=0, watch=False, upgrade_store=True, **kw)


def test_a_scaled_clock_on_postgresql_is_named_in_the_log(pg, tmp_path, caplog):
    root = make_deployment(tmp_path / "d")
    cfg = (root / "herald.yaml").read_text().replace("store: {path: herald.db}",
                                                     f'store: {{url: "{pg.create_database()}"}}')
    (root / "herald.yaml").write_text(cfg)
    with caplog.at_level(logging.WARNING, logger="herald"):
        d = _daemon(root, time_scale=60.0)
        d.runtime.store.close()
        plain = _daemon(root)
        plain.runtime.store.close()
    said = [r.getMessage() for r in caplog.records if "clock is its own" in r.getMessage()]
    assert len(said) == 1 and "x60" in said[0]
    assert not list(root.glob("*.clock"))
