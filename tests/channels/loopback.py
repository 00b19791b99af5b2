"""What the provider fakes share: an HTTP server on 127.0.0.1 (any free port) in a thread, and a settable clock."""
from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("tests.loopback")


class QuietHTTPServer(ThreadingHTTPServer):
    """socketserver prints a failed request's traceback to whatever sys.stderr is at that moment.

    A fake's handler that is still sleeping when its test ends (a provider that answers after the
    client gave up) fails later on the closed socket, and that print landed in a later test's
    CliRunner stderr. Here it goes to a debug log instead; the client side of each test sees the
    failure it needs to see.
    """

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("loopback request from %s failed", client_address, exc_info=True)


class LoopbackServer:
    """Base of the fakes: `with Fake(...) as fake:` starts it; `fake.url` is where it listens."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        """Bind now (the port is known at once); serve once started."""
        self._server = QuietHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Serving(LoopbackServer):
    """A one-off endpoint: `with Serving(Handler) as srv:` serves one handler class at `srv.url`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._serve(handler)


class FakeClock:
    """A clock the test moves by hand (`clock.now += 7200`): token expiry, timestamps, rate windows."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:  # 2023-11-14 22:13:20 UTC
        self.now = now

    def __call__(self) -> float:
        return self.now
