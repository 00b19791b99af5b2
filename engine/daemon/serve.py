"""`herald serve`: open the store, start dispatcher and reloader, serve HTTP with uvicorn, stop cleanly on SIGTERM
(and at once on a second SIGTERM or SIGINT while stopping)."""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from engine.schedule.clock import RealClock, make_clock, publish_clock, withdraw_clock
from engine.config.deployment import Deployment
from engine.store import StoreError, open_store
from engine.daemon.auth import console_unguarded, is_loopback
from engine.safetext import escape_controls
from engine.daemon.dispatch import Dispatcher
from engine.daemon.reload import Reloader
from engine.daemon.runtime import Runtime, ruleset_files

if TYPE_CHECKING:  # uvicorn is imported when serving starts, not when the module loads
    import uvicorn

    from engine.config.settings import Config

log = logging.getLogger("herald")
startup = logging.getLogger("herald.startup")  # always at INFO: scripts wait for its "listening on" line
startup.setLevel(logging.INFO)
FAR = 10 * 365 * 86400.0  # beyond any lease: "every lease"


class DaemonError(Exception):
    """The daemon cannot start (bad host/auth combination, port in use, store problem)."""


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (click's test runner swaps it)."""

    _herald = True  # setup_logging installs one, however often it is called

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


class _OneLineFormatter(logging.Formatter):
    """Control characters in a message (an id, a reply, a provider's answer) are escaped: one event, one line."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return escape_controls(super().formatMessage(record))


def setup_logging(level: str = "INFO") -> None:
    """One line per event on stderr: `HH:MM:SS level message` (control characters escaped)."""
    root = logging.getLogger()
    if not any(getattr(h, "_herald", False) for h in root.handlers):
        h = _Stderr()
        h.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
        root.addHandler(h)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _tracking_key(cfg: Config, required: bool) -> str:
    """tracking.secret; without one (development), a random key for this run, links valid until a restart."""
    import secrets

    from engine.tracking.tokens import PLACEHOLDER_SECRET, tracking_secret

    key = tracking_secret(cfg, required=required)
    if key == PLACEHOLDER_SECRET:
        log.warning("no tracking.secret configured: rating and tracking links are signed with a key for this run "
                    "only (set tracking.secret to keep them valid across restarts)")
        return secrets.token_urlsafe(32)
    return key


class Daemon:
    """Everything `herald serve` runs, for one deployment; `run()` in the main thread, or `start()` in a thread (tests)."""

    def __init__(self, deployment: Deployment, *, paths: Sequence[str] = (), config_path: str | None = None,
                 host: str | None = None, port: int | None = None, time_scale: float = 1.0,
                 start_at: float | None = None, watch: bool = True, upgrade_store: bool = False):
        cfg = deployment.config
        self.host = host or cfg.server.host
        self.port = port if port is not None else cfg.server.port
        clock = make_clock(time_scale, start_at)
        try:
            store = open_store(cfg.store_target, upgrade=upgrade_store, listen=cfg.store_listen)
        except (StoreError, OSError, sqlite3.Error) as e:
            raise DaemonError(f"cannot open the store {cfg.store_label}: {e}") from e
        self.runtime = rt = Runtime(deployment, store, clock, paths=paths, config_path=config_path)
        self._public_url = cfg.server.public_url
        try:
            rt.tracking_key = _tracking_key(cfg, required=bool(self._public_url))
        except ValueError as e:
            rt.store.close()
            raise DaemonError(str(e)) from e
        if not rt.state.auth.enabled and not is_loopback(self.host):
            rt.store.close()
            raise DaemonError(f"refusing to listen on {self.host} without authentication: set server.auth.token "
                              "or server.auth.hmac_secret in herald.yaml (from an environment variable), "
                              "or listen on 127.0.0.1")
        if console_unguarded(cfg, self.host):
            rt.store.close()
            raise DaemonError(console_unguarded(cfg, self.host))
        self._lock_fd = None if cfg.store_url else self._lock(Path(cfg.store_path))
        self._clock_file = publish_clock(Path(cfg.store_path), clock) if self._lock_fd is not None else None
        if cfg.store_url and not isinstance(clock, RealClock):  # no clock file on PostgreSQL: each replica and command has its own time
            log.warning("time x%g / --start-at on PostgreSQL: this replica's clock is its own (other replicas and "
                        "herald commands use the wall clock); scaled time is for the SQLite demo", clock.scale)
        self.dispatcher = Dispatcher(rt)
        rt.dispatcher = self.dispatcher
        self.reloader = Reloader(rt) if watch else None
        rt.listen_host = self.host  # a reload must not drop server.auth on a non-loopback address
        rt.reloader = self.reloader
        self.server: uvicorn.Server | None = None
        self.sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._signals = 0  # SIGTERM/SIGINT received by run()

    # -- start

    @staticmethod
    def _lock(store_path: Path) -> int | None:
        """flock() on the store file (SQLite itself uses fcntl locks, which flock does not touch): while we hold it,
        no other `herald serve` uses this store, so any claim still leased is an orphan of a dead process."""
        fd = os.open(str(store_path), os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            log.warning("another herald serve uses %s: its claims are left to their leases", store_path)
            return None
        return fd

    def bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # proto set: asyncio then sets TCP_NODELAY
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            self._abort()
            raise DaemonError(f"cannot listen on {self.host}:{self.port}: {e.strerror}") from e
        sock.listen(2048)
        sock.setblocking(False)
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.runtime.public_url = self._public_url or self.url
        return sock

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start_background(self) -> None:
        """Records the rule set, takes back orphaned claims, starts the dispatcher and the file watcher."""
        rt = self.runtime
        dep = rt.state.deployment
        rt.store.record_ruleset(dep.ruleset_in_use.version, ruleset_files(dep), ok=True, at=rt.now())
        if self._lock_fd is not None:
            taken = rt.store.release_expired_leases(rt.now() + FAR)
            if taken:
                log.warning("recovered %d notification(s) claimed by a previous run", taken)
        self.dispatcher.start()
        rt.alerts.start()
        if self.reloader is not None:
            self.reloader.start()
        cfg = dep.config
        startup.info("herald: listening on %s (rule set %s, %d rules; store %s; outbox %s%s; replica %s)", self.url,
                 dep.ruleset_in_use.version, len(dep.ruleset_in_use.rules), cfg.store_label, cfg.outbox,
                 f"; time x{rt.clock.scale:g}" if rt.clock.scaled else "", self.dispatcher.replica_id)
        if not rt.state.auth.enabled:
            log.warning("no server.auth configured: intake takes unauthenticated requests, allowed only because "
                        "the daemon listens on loopback %s", self.host)

    def _server(self, on_signal: Callable[[int], None] | None = None) -> uvicorn.Server:
        """The HTTP server; `on_signal` takes the SIGTERM and SIGINT uvicorn catches while it serves (in the main
        thread), instead of uvicorn's own handling (which ignores a second SIGTERM)."""
        import uvicorn

        from engine.daemon.app import create_app

        config = uvicorn.Config(create_app(self.runtime), log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=10, server_header=False)
        if on_signal is None:
            self.server = uvicorn.Server(config)
            return self.server
        handle = on_signal

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                handle(sig)  # (uvicorn's own would also raise the signal again once it has stopped serving)

        self.server = Server(config)
        return self.server

    # -- run in the foreground (herald serve)

    def run(self) -> int:
        """Serves until SIGTERM or SIGINT, then stops cleanly; returns the exit code (0). A second SIGTERM or SIGINT
        while it stops ends the process at once (see _on_signal)."""
        sock = self.bind()
        server = self._server(self._on_signal)
        # before uvicorn takes the signals over, and after it gives them back (while stopping)
        signal.signal(signal.SIGTERM, lambda sig, _frame: self._on_signal(sig))
        signal.signal(signal.SIGINT, lambda sig, _frame: self._on_signal(sig))
        reloader = self.reloader
        if hasattr(signal, "SIGHUP") and reloader is not None:
            signal.signal(signal.SIGHUP, lambda *_: reloader.request("SIGHUP"))
        self.start_background()
        try:
            server.run(sockets=[sock])
        finally:
            self._stop_awake()
            # Stopped: a SIGTERM (or SIGINT) sent again now (a supervisor or test repeating itself) must neither
            # count as the second signal nor turn the clean exit into a death by signal while the interpreter winds
            # down (it restores the default action for handlers it installed, not for an ignored signal).
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return 0

    def _stop_awake(self) -> None:
        """stop() from the main thread, which waits for it in slices of 0.1 s instead of sleeping in a join (up to
        30 s for a send in flight): the kernel hands a signal to any thread that does not block it, and Python runs
        the handler in the main thread only when that thread runs again, so a second SIGTERM taken by a worker
        thread would otherwise wait for the send. stop()'s exception, if any, is raised here (Future.result)."""
        with ThreadPoolExecutor(1, thread_name_prefix="herald-stop") as pool:
            stopping = pool.submit(self.stop)
            while not stopping.done():
                futures.wait([stopping], timeout=0.1)
            stopping.result()

    def _on_signal(self, sig: int) -> None:
        """SIGTERM or SIGINT in run(): the first stops cleanly (HTTP, then the sends in flight, up to 30 s); a second
        one while stopping (the store unreachable, a provider hanging) exits at once, 128 + the signal's number:
        the sends in flight are abandoned, their claims come back when their leases end."""
        self._signals += 1
        if self._signals == 1:
            if self.server is not None:
                self.server.should_exit = True
            return
        log.error("second %s while stopping: exiting now, without waiting for sends in flight (their claims come "
                  "back when their leases end)", signal.Signals(sig).name)
        withdraw_clock(self._clock_file)
        sys.stderr.flush()
        os._exit(128 + sig)

    # -- run in a thread (tests, embedding)

    def start(self, timeout: float = 20.0) -> Daemon:
        sock = self.bind()
        server = self._server()
        self.start_background()
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="herald-http",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise DaemonError("the HTTP server did not start")
            time.sleep(0.01)
        return self

    def shutdown(self) -> None:
        """Stops a daemon started with start()."""
        if self.server is not None:
            self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
        self.stop()

    # -- stop

    def _abort(self) -> None:
        """Never started: close the store and let go of the lock."""
        self._stopped = True
        self.runtime.store.close()
        withdraw_clock(self._clock_file)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def stop(self) -> None:
        """Lets in-flight sends finish, gives back claims not started, closes the store."""
        if self._stopped:
            return
        self._stopped = True
        rt = self.runtime
        log.info("stopping: intake closed, waiting for sends in flight")
        clean = self.dispatcher.stop(timeout=30)
        if self.reloader is not None:
            self.reloader.stop()
        rt.alerts.stop()
        try:
            if clean and self._lock_fd is not None:
                rt.store.release_expired_leases(rt.now() + FAR)
        finally:
            rt.store.close()
            withdraw_clock(self._clock_file)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
        if self.sock is not None:
            self.sock.close()
        log.info("stopped%s", "" if clean else " (a send was still running after 30 s)")
