"""Wake-up hints between replicas on PostgreSQL: work that becomes due (intake, a claim given back, a fallback)
sends `NOTIFY herald_work` in its transaction; each daemon LISTENs on a connection of its own (never a pooled
one: a pooled connection would drop the LISTEN) and wakes its dispatcher when a hint arrives. A hint is never
needed for correctness: polling (dispatch.poll_interval) is the mechanism, hints only shorten the wait. With
`store: {listen: false}` (PgBouncer in transaction mode, where LISTEN cannot work) herald neither listens nor
notifies."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("herald.store")

CHANNEL = "herald_work"
RECONNECT_S = (0.5, 1.0, 2.0, 5.0, 10.0)  # waits before reconnecting after a lost listening connection


class Wakeups:
    """A thread that LISTENs on `url` and calls `callback` for each hint (and once after each (re)connection, in
    case hints were missed meanwhile); `stop()` ends it."""

    def __init__(self, url: str, callback: Callable[[], None]):
        self.url, self.callback = url, callback
        self.listening = threading.Event()  # set while the LISTEN connection is up
        self.received = 0  # hints received (for tests and /metrics)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="herald-listen", daemon=True)

    def start(self) -> Wakeups:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        import psycopg

        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5,
                                     application_name="herald-listen") as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    failures = 0
                    self.callback()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.received += 1
                            self.callback()
            except psycopg.Error as e:
                self.listening.clear()
                wait = RECONNECT_S[min(failures, len(RECONNECT_S) - 1)]
                failures += 1
                log.info("wake-up hints paused (polling goes on), listening again in %.1f s: %s", wait, e)
                self._stop.wait(wait)
            except Exception:  # a callback bug must not end the hints for good
                log.exception("wake-up hints")
                self._stop.wait(1.0)
        self.listening.clear()
