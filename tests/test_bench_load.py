"""The benchmark's load generator (bench/load.py) against real HTTP servers: over keep-alive connections it
counts every reply on the connections it opened, and against a server that closes each connection after its
reply (moto's werkzeug does) it opens a new one per request instead of stopping."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import load

BODY = b'{"Response":{"RequestId":"r"}}'
REQUEST = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0
    replies = 0
    lock = threading.Lock()


def _handler(keep_alive: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server: _Server

        def setup(self) -> None:
            super().setup()
            with self.server.lock:
                self.server.connections += 1

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(BODY)))
            if not keep_alive:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BODY)
            with self.server.lock:
                self.server.replies += 1

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture(params=[True, False], ids=["keep-alive", "connection-close"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[_Server, bool]]:
    httpd = _Server(("127.0.0.1", 0), _handler(keep_alive=request.param))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, request.param
    httpd.shutdown()
    httpd.server_close()


def test_every_reply_counted_and_closed_connections_reopened(server: tuple[_Server, bool]) -> None:
    httpd, keep_alive = server
    result = load.run("127.0.0.1", httpd.server_address[1], [REQUEST], connections=4, duration=1.0, warmup=0.2)
    assert result.errors == 0
    assert result.replies > 20  # well past one request per connection: closed connections did not stop a slot
    assert result.replies <= httpd.replies  # replies in the window only, out of all the server sent
    if keep_alive:
        assert httpd.connections == 4
    else:
        # One connection per request; a slot may open one more just before the window ends, and send nothing.
        assert httpd.replies <= httpd.connections <= httpd.replies + 4
    assert 0 < result.p50_ms <= result.p99_ms


def test_error_replies_counted_when_the_body_arrives_after_the_head() -> None:
    body = b'{"Response":{"Error":{"Code":"InternalError","Message":"' + b"x" * 70_000 + b'"},"RequestId":"r"}}'

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()  # the head on its own, then the body in pieces
            for at in range(0, len(body), 8192):
                self.wfile.write(body[at : at + 8192])
                self.wfile.flush()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        result = load.run("127.0.0.1", httpd.server_address[1], [REQUEST], connections=2, duration=0.5, warmup=0.1)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.replies > 5
    assert result.errors == result.replies
