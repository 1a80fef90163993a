"""CallbackSender against a real local HTTP receiver: body shape, at most two attempts, never blocking (spec §8)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.live import free_port
from tione_server.callbacks import CallbackSender, callback_body

Reply = tuple[int, bytes]
OK: Reply = (200, b'{"code": 0, "message": "success"}')


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers with `reply(n)` for the n-th one."""

    reply: Callable[[int], Reply]
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    """Set to let a deliberately slow handler finish."""
    slow: float = 0.0
    url: str = ""

    def count(self) -> int:
        return len(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(reply=lambda n: OK)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            rec.requests.append((dict(self.headers.items()), json.loads(raw)))
            if rec.slow:
                rec.release.wait(rec.slow)
            status, body = rec.reply(len(rec.requests))
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the sender gave up (timeout) and closed the connection
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    rec.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _body(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "task_id": "train-1329791605108055040",
        "task_name": "Start",
        "code": 0,
        "message": "SUCCEED",
        "total_time": 103.395331817,
        "now": 1_748_427_513.0,
        "offset_hours": 8,
    }
    values.update(overrides)
    return callback_body(**values)


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_callback_body_shape() -> None:
    body = _body()
    assert body == {
        "code": 0,
        "message": "SUCCEED",
        "id": "train-1329791605108055040",
        "appName": "tione",
        "projectName": "training",
        "taskName": "Start",
        "totalTime": 103.395331817,
        "responseTime": "2025-05-28 18:18:33",
    }
    assert isinstance(body["totalTime"], float)
    assert isinstance(_body(total_time=3)["totalTime"], float)


def test_callback_body_response_time_in_configured_offset() -> None:
    assert _body(now=0.0, offset_hours=8)["responseTime"] == "1970-01-01 08:00:00"
    assert _body(now=0.0, offset_hours=0)["responseTime"] == "1970-01-01 00:00:00"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", _body(now=time.time())["responseTime"])


def test_callback_delivered_once_on_success(receiver: Receiver) -> None:
    sender = CallbackSender(timeout=5, retry_delay=0)
    body = _body(code=10002, message="exit code 1")
    sender.send(receiver.url, body)
    sender.close()
    assert receiver.count() == 1
    headers, received = receiver.requests[0]
    assert headers["Content-Type"] == "application/json"
    assert received == body


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param((500, b'{"code": 0}'), id="http-500"),
        pytest.param((404, b""), id="http-404"),
        pytest.param((200, b"ok"), id="not-json"),
        pytest.param((200, b'{"code": 1, "message": "busy"}'), id="code-nonzero"),
        pytest.param((200, b'{"code": "0"}'), id="code-string"),
        pytest.param((200, b"[0]"), id="not-object"),
    ],
)
def test_callback_retried_exactly_once_then_stops(receiver: Receiver, bad: Reply) -> None:
    receiver.reply = lambda n: bad
    sender = CallbackSender(timeout=5, retry_delay=0)
    sender.send(receiver.url, _body())
    sender.close()
    assert receiver.count() == 2
    assert receiver.requests[0][1] == receiver.requests[1][1]


def test_callback_second_attempt_success_ends_delivery(receiver: Receiver) -> None:
    receiver.reply = lambda n: (500, b"") if n == 1 else OK
    sender = CallbackSender(timeout=5, retry_delay=0)
    sender.send(receiver.url, _body())
    sender.close()
    assert receiver.count() == 2


def test_callback_dead_port_does_not_block_send(receiver: Receiver) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    sender = CallbackSender(timeout=5, retry_delay=0)
    started = time.monotonic()
    for _ in range(20):
        sender.send(dead, _body())
    assert time.monotonic() - started < 0.5
    # The workers survive the failures and still deliver to a live receiver.
    sender.send(receiver.url, _body())
    _wait_for(lambda: receiver.count() == 1)
    sender.close()


def test_callback_slow_receiver_does_not_block_send(receiver: Receiver) -> None:
    receiver.slow = 30.0  # far past the sender's timeout; released at teardown
    sender = CallbackSender(timeout=0.3, retry_delay=0)
    started = time.monotonic()
    sender.send(receiver.url, _body())
    sender.send(receiver.url, _body())
    assert time.monotonic() - started < 0.2
    # Each delivery times out twice, then gives up: four requests in all, no more.
    _wait_for(lambda: receiver.count() == 4)
    sender.close()
    assert receiver.count() == 4


def test_callback_rejects_non_http_urls_without_raising(receiver: Receiver) -> None:
    sender = CallbackSender(timeout=5, retry_delay=0)
    for url in ("file:///etc/passwd", "ftp://example.com/x", "", "not a url"):
        sender.send(url, _body())
    sender.send(receiver.url, _body())
    sender.close()
    assert receiver.count() == 1


def test_callback_send_after_close_is_ignored(receiver: Receiver) -> None:
    sender = CallbackSender(timeout=5, retry_delay=0)
    sender.close()
    sender.close()
    sender.send(receiver.url, _body())
    assert receiver.count() == 0


def test_callback_full_queue_drops_without_blocking() -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    sender = CallbackSender(timeout=5, workers=1, max_queue=2, retry_delay=0)
    started = time.monotonic()
    for _ in range(200):
        sender.send(dead, _body())
    assert time.monotonic() - started < 0.5
    sender.close(wait=5)
