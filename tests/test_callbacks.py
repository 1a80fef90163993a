"""Callbacks against real local HTTP receivers: body shape, at most two attempts, never blocking (spec §8);
no redirects, and only addresses the `--callback-allow` policy permits, at create and at delivery (issue 7 D10)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.live import Server, free_port, running_server
from tests.training import TERMINAL, create, error_code, wait_status
from tione_server.callbacks import CallbackSender, callback_body
from tione_server.netpolicy import address_policy

Reply = tuple[int, bytes]
OK: Reply = (200, b'{"code": 0, "message": "success"}')
LOOPBACK = address_policy(("127.0.0.0/8",))
"""The receivers of these tests listen on 127.0.0.1, which the default policy refuses (issue 7 D10)."""


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers a POST with `reply(n)` for the n-th."""

    reply: Callable[[int], Reply]
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    """Request lines of anything but a POST (a redirect followed as a GET lands here)."""
    release: threading.Event = field(default_factory=threading.Event)
    """Set to let a deliberately slow handler finish."""
    slow: float = 0.0
    location: str = ""
    """Location header sent with a 3xx reply."""
    url: str = ""
    port: int = 0

    def count(self) -> int:
        return len(self.requests)


@contextmanager
def receiving() -> Iterator[Receiver]:
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
                if 300 <= status < 400:
                    self.send_header("Location", rec.location)
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the sender gave up (timeout) and closed the connection
                pass

        def do_GET(self) -> None:
            rec.other.append(self.requestline)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    rec.port = int(httpd.server_address[1])
    rec.url = f"http://127.0.0.1:{rec.port}/hook"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as rec:
        yield rec


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
    sender = CallbackSender(timeout=5, policy=LOOPBACK, retry_delay=0)
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
    sender = CallbackSender(timeout=5, policy=LOOPBACK, retry_delay=0)
    sender.send(receiver.url, _body())
    sender.close()
    assert receiver.count() == 2
    assert receiver.requests[0][1] == receiver.requests[1][1]


def test_callback_second_attempt_success_ends_delivery(receiver: Receiver) -> None:
    receiver.reply = lambda n: (500, b"") if n == 1 else OK
    sender = CallbackSender(timeout=5, policy=LOOPBACK, retry_delay=0)
    sender.send(receiver.url, _body())
    sender.close()
    assert receiver.count() == 2


def test_callback_dead_port_does_not_block_send(receiver: Receiver) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    sender = CallbackSender(timeout=5, policy=LOOPBACK, retry_delay=0)
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
    sender = CallbackSender(timeout=0.3, policy=LOOPBACK, retry_delay=0)
    started = time.monotonic()
    sender.send(receiver.url, _body())
    sender.send(receiver.url, _body())
    assert time.monotonic() - started < 0.2
    # Each delivery times out twice, then gives up: four requests in all, no more.
    _wait_for(lambda: receiver.count() == 4)
    sender.close()
    assert receiver.count() == 4


def test_callback_rejects_non_http_urls_without_raising(receiver: Receiver) -> None:
    sender = CallbackSender(timeout=5, policy=LOOPBACK, retry_delay=0)
    for url in ("file:///etc/passwd", "ftp://example.com/x", "", "not a url"):
        sender.send(url, _body())
    sender.send(receiver.url, _body())
    sender.close()
    assert receiver.count() == 1


def test_callback_send_after_close_is_ignored(receiver: Receiver) -> None:
    sender = CallbackSender(timeout=5, policy=LOOPBACK, retry_delay=0)
    sender.close()
    sender.close()
    sender.send(receiver.url, _body())
    assert receiver.count() == 0


def test_callback_full_queue_drops_without_blocking() -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    sender = CallbackSender(timeout=5, policy=LOOPBACK, workers=1, max_queue=2, retry_delay=0)
    started = time.monotonic()
    for _ in range(200):
        sender.send(dead, _body())
    assert time.monotonic() - started < 0.5
    sender.close(wait=5)


# -- issue 7 D10: no redirects, and only the addresses the policy permits ------------------------------------


def test_callback_redirect_is_not_followed(receiver: Receiver) -> None:
    with receiving() as target:
        receiver.location = target.url
        receiver.reply = lambda n: (302, b"")
        sender = CallbackSender(timeout=5, policy=LOOPBACK, retry_delay=0)
        sender.send(receiver.url, _body())
        sender.close()
        # A 3xx is a failed attempt like any other non-2xx (spec §8: retried once); the target hears nothing.
        assert receiver.count() == 2
        assert (target.count(), target.other) == (0, [])


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]"])
def test_callback_to_denied_address_is_dropped_and_logged(
    receiver: Receiver, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    sender = CallbackSender(timeout=5, retry_delay=0)  # the default policy: loopback denied
    with caplog.at_level(logging.WARNING, logger="tione_server.callbacks"):
        sender.send(f"http://{host}:{receiver.port}/hook", _body())
        sender.close()
    assert receiver.count() == 0
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1, caplog.text  # dropped once, not attempted twice


def test_callback_connects_to_the_checked_address_with_the_original_host(receiver: Receiver) -> None:
    """`localhost` is resolved once; the connection goes to the permitted 127.0.0.1 (never ::1, which the
    policy does not list), and the receiver still sees `Host: localhost:PORT`."""
    sender = CallbackSender(timeout=5, policy=LOOPBACK, retry_delay=0)
    sender.send(f"http://localhost:{receiver.port}/hook?x=1", _body())
    sender.close()
    assert receiver.count() == 1
    assert receiver.requests[0][0]["Host"] == f"localhost:{receiver.port}"


DENIED_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://0.0.0.0/hook",
    "http://127.0.0.1:8080/hook",
    "https://127.1/hook",
    "http://2130706433/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",
]


def _count(srv: Server) -> int:
    return int(srv.call("DescribeTrainingTasks", {})["TotalCount"])


def test_create_training_task_callback_url_denied_address(database_url: str, tmp_path: Path) -> None:
    with running_server(database_url, tmp_path, extra_args=("--executor", "simulate")) as srv:
        for i, url in enumerate(DENIED_URLS):
            code = error_code(partial(create, srv, f"denied-{i}", "true", CallbackUrl=url))
            assert code == "InvalidParameterValue", url
        assert _count(srv) == 0  # nothing stored
        # Names are checked at delivery; private networks are allowed by default.
        create(srv, "by-name", "true", CallbackUrl="http://localhost:9/hook")
        create(srv, "private", "true", CallbackUrl="http://10.0.0.1/hook")
        assert _count(srv) == 2


def test_create_training_task_callback_allow_is_the_list_of_networks(sqlite_url: str, tmp_path: Path) -> None:
    args = ("--executor", "simulate", "--callback-allow", "127.0.0.0/8, 192.168.0.0/16")
    with running_server(sqlite_url, tmp_path, extra_args=args) as srv:
        create(srv, "loopback", "true", CallbackUrl="http://127.0.0.1:9/hook")
        create(srv, "lan", "true", CallbackUrl="http://192.168.1.10/hook")
        for url in ("http://169.254.169.254/", "http://[::1]/", "http://10.0.0.1/"):
            assert error_code(partial(create, srv, "refused", "true", CallbackUrl=url)) == "InvalidParameterValue"
        assert _count(srv) == 2


def test_serve_callback_allow_bad_network_is_a_usage_error(sqlite_url: str, tmp_path: Path) -> None:
    bad = ("--callback-allow", "10.0.0.0/33")
    with pytest.raises(RuntimeError, match="not a network"), running_server(sqlite_url, tmp_path, extra_args=bad):
        pass


@pytest.mark.parametrize("allow", [(), ("--callback-allow", "127.0.0.0/8")], ids=["default", "allowed"])
def test_callback_to_a_name_of_loopback_delivered_only_when_allowed(
    receiver: Receiver, sqlite_url: str, tmp_path: Path, allow: tuple[str, ...]
) -> None:
    args = ("--executor", "simulate", *allow)
    with running_server(sqlite_url, tmp_path, extra_args=args, env={"TIONE_SIMULATE_SECONDS": "0,0,0.2"}) as srv:
        task_id = create(srv, "by-name", "true", CallbackUrl=f"http://localhost:{receiver.port}/hook")
        assert wait_status(srv, task_id, *TERMINAL)["Status"] == "SUCCEED"
        if allow:
            _wait_for(lambda: receiver.count() == 1)
            assert receiver.requests[0][1]["id"] == task_id
        else:
            _wait_for(lambda: "dropped" in srv.log_path.read_text())
            assert receiver.count() == 0
