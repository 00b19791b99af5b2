"""Safe reload: the new deployment is loaded and validated whole, then swapped in; a broken one leaves the old in use."""
from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from engine.config.deployment import Deployment, load_deployment
from engine.daemon.auth import console_unguarded, is_loopback
from engine.daemon.runtime import ruleset_files

if TYPE_CHECKING:
    from engine.daemon.runtime import Runtime

log = logging.getLogger("herald.reload")


def _failed_version(dep: Deployment) -> str:
    """The content hash of a deployment that did not load (so each broken edit is recorded once)."""
    from engine.rules.loader import ruleset_version, source_hashes

    return ruleset_version(source_hashes(dep.config))


def reload_timeout(runtime: Runtime) -> float:
    """server.reload_timeout of the running deployment, in seconds (default 60)."""
    return runtime.state.deployment.config.server.reload_timeout


def _load(runtime: Runtime, box: dict) -> None:
    """The slow part of a reload (read, validate, build), in a thread of its own so it can be given up."""
    try:
        dep = load_deployment(runtime.paths, runtime.config_path)
        box["dep"] = dep
        if dep.ok:
            box["state"] = runtime.make_state(dep)
    except Exception as e:  # noqa: BLE001 - the running set must survive anything the new one does
        box["error"] = f"building the pipeline failed: {type(e).__name__}: {e}"


def reload(runtime: Runtime, reason: str = "reload", timeout: float | None = None) -> bool:
    """Loads the deployment again; swaps it in when valid (True), else keeps the running one (False).

    Bounded in time: a load still running after `timeout` seconds (server.reload_timeout) is given
    up (it can never swap anything in), the reload counts as failed, and /healthz shows
    `reload_stuck` while it still runs; the lock is free again for the next reload.
    """
    timeout = reload_timeout(runtime) if timeout is None else timeout
    if not runtime.reload_lock.acquire(timeout=timeout):
        return _refused(runtime, reason, None, [f"another reload still holds the lock after {timeout:g} s"])
    try:
        runtime.stuck_reloads = [t for t in getattr(runtime, "stuck_reloads", []) if t.is_alive()]
        box: dict = {}
        worker = threading.Thread(target=_load, args=(runtime, box), name="herald-reload-load", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            runtime.stuck_reloads.append(worker)
            log.error("reload (%s) still running after %g s: given up", reason, timeout)
            return _refused(runtime, reason, None, [f"reload did not finish within {timeout:g} s (a file that "
                                                    "cannot be read?); given up"])
        now = runtime.now()
        dep = box.get("dep")
        if dep is None:
            return _refused(runtime, reason, None, [box.get("error", "the load failed")])
        errors = [d.format() for d in dep.diagnostics if d.is_error]
        state = box.get("state")
        if "error" in box:
            errors = [box["error"]]
        host = getattr(runtime, "listen_host", "127.0.0.1")
        if state is not None and not state.auth.enabled and not is_loopback(host):
            return _refused(runtime, reason, None, [
                f"the new herald.yaml has no server.auth, and the daemon listens on {host}: refused (it would "
                "take unauthenticated requests from the network); restore server.auth, or restart on 127.0.0.1"])
        if state is not None and console_unguarded(state.deployment.config, host):
            return _refused(runtime, reason, None, [str(console_unguarded(state.deployment.config, host))])
        store, metrics = runtime.store, runtime.metrics
        if state is not None:
            old = runtime.swap(state)
            store.record_ruleset(dep.ruleset_in_use.version, ruleset_files(dep), ok=True, at=now)
            metrics.reloads.labels("success").inc()
            metrics.reload_failed.set(0)
            runtime.last_reload_error = []
            if Path(dep.config.store_path).resolve() != Path(old.deployment.config.store_path).resolve():
                log.warning("store.path changed in herald.yaml: it takes effect on the next start")
            for d in dep.diagnostics:
                log.warning("%s", d.format())
            log.info("rule set %s in use (%s; was %s): %d rules", dep.ruleset_in_use.version, reason,
                     old.deployment.ruleset_in_use.version, len(dep.ruleset_in_use.rules))
            runtime.wake()
            return True
        return _refused(runtime, reason, dep, errors)
    finally:
        runtime.reload_lock.release()


def _refused(runtime: Runtime, reason: str, dep: Deployment | None, errors: list[str]) -> bool:
    """A reload that did not happen: logged, recorded, counted, alerted; the running set stays."""
    now = runtime.now()
    store, metrics = runtime.store, runtime.metrics
    version = "unreadable"
    if dep is not None:
        for d in dep.diagnostics:
            (log.error if d.is_error else log.warning)("%s", d.format())
        with contextlib.suppress(Exception):  # a deployment too broken to hash is still recorded as failed
            version = _failed_version(dep)
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

    def __init__(self, runtime: Runtime, debounce_ms: int = 300):
        self.rt = runtime
        self.debounce_ms = debounce_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0  # reloads and watches that raised (each was survived)

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

    @property
    def alive(self) -> bool:
        """True while the watcher runs (or was never started: nothing to watch); False when it died."""
        return self._thread is None or self._thread.is_alive() or self._stop.is_set()

    def _watch(self, paths: list[Path]) -> None:
        """Watches until stopped; survives any error (a failed reload, a failing watch: restarted with back-off)."""
        import watchfiles

        failures = 0
        while not self._stop.is_set():
            try:
                for changes in watchfiles.watch(*paths, stop_event=self._stop, debounce=self.debounce_ms,
                                                raise_interrupt=False):
                    failures = 0
                    names = sorted({Path(p).name for _, p in changes})
                    self._safe("changed: " + ", ".join(names[:5]) + (" ..." if len(names) > 5 else ""))
            except Exception:
                failures += 1
                self.failures += 1
                with contextlib.suppress(Exception):  # even logging failed (out of memory): keep going
                    log.exception("watching %s failed; trying again (SIGHUP reloads meanwhile)",
                                  ", ".join(map(str, paths)))
                self._stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))

    def request(self, reason: str = "SIGHUP") -> None:
        """Reloads in a thread of its own (safe to call from a signal handler)."""
        threading.Thread(target=self._safe, args=(reason,), name="herald-reload-now", daemon=True).start()

    def _safe(self, reason: str) -> None:
        try:
            reload(self.rt, reason)
        except Exception:
            self.failures += 1
            with contextlib.suppress(Exception):  # even logging failed (out of memory): keep going
                log.exception("reload failed")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
