"""Safe reload: the new deployment is loaded and validated whole, then swapped in; a broken one leaves the old in use."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from engine.config.deployment import Deployment, load_deployment
from engine.daemon.runtime import ruleset_files

log = logging.getLogger("herald.reload")


def _failed_version(dep: Deployment) -> str:
    """The content hash of a deployment that did not load (so each broken edit is recorded once)."""
    from engine.rules.loader import ruleset_version, source_hashes

    return ruleset_version(source_hashes(dep.config))


def reload(runtime, reason: str = "reload") -> bool:
    """Loads the deployment again; swaps it in when valid (True), else keeps the running one (False)."""
    with runtime.reload_lock:
        now = runtime.now()
        dep = load_deployment(runtime.paths, runtime.config_path)
        errors = [d.format() for d in dep.diagnostics if d.is_error]
        state = None
        if dep.ok:
            try:
                state = runtime.make_state(dep)
            except Exception as e:  # noqa: BLE001 - the running set must survive anything the new one does
                errors = [f"building the pipeline failed: {type(e).__name__}: {e}"]
        store, metrics = runtime.store, runtime.metrics
        if state is not None:
            old = runtime.swap(state)
            store.record_ruleset(dep.ruleset.version, ruleset_files(dep), ok=True, at=now)
            metrics.reloads.labels("success").inc()
            metrics.reload_failed.set(0)
            runtime.last_reload_error = []
            if Path(dep.config.store_path).resolve() != Path(old.deployment.config.store_path).resolve():
                log.warning("store.path changed in herald.yaml: it takes effect on the next start")
            for d in dep.diagnostics:
                log.warning("%s", d.format())
            log.info("rule set %s in use (%s; was %s): %d rules", dep.ruleset.version, reason,
                     old.deployment.ruleset.version, len(dep.ruleset.rules))
            runtime.wake()
            return True
        for d in dep.diagnostics:
            (log.error if d.is_error else log.warning)("%s", d.format())
        try:
            version = _failed_version(dep)
        except Exception:  # noqa: BLE001 - a deployment too broken to hash is still recorded as failed
            version = "unreadable"
        store.record_ruleset(f"failed-{version}", {}, ok=False, errors=errors, at=now)
        metrics.reloads.labels("failure").inc()
        metrics.reload_failed.set(1)
        runtime.last_reload_error = errors
        log.error("reload refused (%s): %d error(s); still using rule set %s", reason, len(errors), runtime.version)
        alert = getattr(runtime, "alert", None)
        if callable(alert):
            alert("reload", f"reload refused ({reason}): {len(errors)} error(s), first: "
                            f"{errors[0] if errors else '?'}; still using rule set {runtime.version}")
        return False


class Reloader:
    """Watches the rule files, templates and herald.yaml (watchfiles) and reloads on change; `request()` for SIGHUP."""

    def __init__(self, runtime, debounce_ms: int = 300):
        self.rt = runtime
        self.debounce_ms = debounce_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def paths(self) -> list[Path]:
        cfg = self.rt.state.deployment.config
        out = [Path(p) for p in cfg.rules] + [Path(cfg.templates)]
        if cfg.file:
            out.append(Path(cfg.file))
        return [p for p in out if p.exists()]

    def start(self) -> None:
        paths = self.paths()
        if not paths:
            return
        self._thread = threading.Thread(target=self._watch, args=(paths,), name="herald-reload", daemon=True)
        self._thread.start()

    def _watch(self, paths: list[Path]) -> None:
        import watchfiles

        try:
            for changes in watchfiles.watch(*paths, stop_event=self._stop, debounce=self.debounce_ms,
                                            raise_interrupt=False):
                names = sorted({Path(p).name for _, p in changes})
                try:
                    reload(self.rt, "changed: " + ", ".join(names[:5]) + (" ..." if len(names) > 5 else ""))
                except Exception:  # keep watching
                    log.exception("reload failed")
        except Exception:  # no inotify etc.: SIGHUP still works
            log.exception("watching %s stopped; reload with SIGHUP", ", ".join(map(str, paths)))

    def request(self, reason: str = "SIGHUP") -> None:
        """Reloads in a thread of its own (safe to call from a signal handler)."""
        threading.Thread(target=self._safe, args=(reason,), name="herald-reload-now", daemon=True).start()

    def _safe(self, reason: str) -> None:
        try:
            reload(self.rt, reason)
        except Exception:
            log.exception("reload failed")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
