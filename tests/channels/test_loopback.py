"""The provider fakes themselves: a request that fails inside a fake never prints into a later test's stderr."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler

from loopback import Serving


def test_a_handler_that_fails_after_its_test_prints_nothing(capsys) -> None:
    """socketserver's default handle_error printed the traceback to sys.stderr, whichever test owned it then."""
    finished = threading.Event()

    class Late(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                raise ConnectionResetError("the client gave up long ago")
            finally:
                finished.set()

        def log_message(self, *args: object) -> None:
            pass

    with Serving(Late) as srv:
        host, port = srv.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert finished.wait(5)
            conn.recv(1)  # the server closes the connection once the handler's error is handled
    out = capsys.readouterr()
    assert "Exception occurred" not in out.err
    assert out.err == ""
