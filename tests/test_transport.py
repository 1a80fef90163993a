"""The HTTP transport under hostile and careless clients (issue 7 B5, C8), against a live server process:
bodies of unauthenticated requests are not read beyond a small bound, the bytes of bodies in flight are
capped, slow clients are disconnected, memory comes back after an attack, and `serve --tls-cert` serves HTTPS.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.tione.v20211111 import models, tione_client

from tests.live import BIN, REGION, Server, free_port, running_server
from tests.rawhttp import FORM_TYPE, JSON_TYPE, Creds, RawClient, check_envelope, tc3_request
from tione_server.config import Settings
from tione_server.serving import body_arrived, uvicorn_options

MB = 1024 * 1024
ATTACK_BODY = int(9.5 * MB)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc/<pid>/status VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _attack_head(server: Server, kind: int) -> bytes:
    """Request head of one unauthenticated 9.5 MB POST, refused for one of six reasons: 0 no Authorization,
    1 a v1 form (credentials in the body), 2 unknown SecretId, 3 known SecretId and a wrong signature (the only
    kind whose body must be read), 4 expired timestamp, 5 malformed Authorization."""
    host = server.endpoint
    lines = ["POST / HTTP/1.1", f"Host: {host}", f"Content-Length: {ATTACK_BODY}"]
    now = int(time.time())
    if kind == 0:  # a JSON body without Authorization
        lines += [f"Content-Type: {JSON_TYPE}"]
    elif kind == 1:  # a v1 form: its credentials would be in the body
        lines += [f"Content-Type: {FORM_TYPE}"]
    else:  # TC3 with an unknown SecretId, the server's own SecretId and a wrong signature, expired, malformed
        secret_id = "AKIDnosuchkey" if kind == 2 else server.key.secret_id
        stamp = now - 1000 if kind == 4 else now
        date = time.strftime("%Y-%m-%d", time.gmtime(stamp))
        scope = f"{date}/tione/tc3_request" if kind != 5 else "garbage"
        lines += [
            f"Content-Type: {JSON_TYPE}", "X-TC-Action: DescribeTrainingTasks", "X-TC-Version: 2021-11-11",
            f"X-TC-Region: {REGION}", f"X-TC-Timestamp: {stamp}",
            f"Authorization: TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
            f"SignedHeaders=content-type;host, Signature={'0' * 64}",
        ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Attack:
    """`count` connections, each sending all but the last byte of a 9.5 MB unauthenticated body, then holding
    the connection open until the attack ends."""

    def __init__(self, server: Server, count: int) -> None:
        self.server = server
        self.release = threading.Event()
        self.sent: list[int] = [0] * count
        self.finished = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._one, args=(i,), daemon=True) for i in range(count)]

    def _one(self, i: int) -> None:
        chunk = b" " * (256 * 1024)
        try:
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=60) as sock:
                sock.sendall(_attack_head(self.server, i % 4))
                while self.sent[i] < ATTACK_BODY - 1:  # the last byte never comes: the request stays open
                    n = min(len(chunk), ATTACK_BODY - 1 - self.sent[i])
                    sock.sendall(chunk[:n])
                    self.sent[i] += n
                self._finish()
                self.release.wait(60)
                return
        except OSError:
            pass  # the server closed it: that is the point
        self._finish()
        self.release.wait(60)

    def _finish(self) -> None:
        with self.lock:
            self.finished += 1

    @property
    def over(self) -> bool:
        """Every connection has sent its whole body or been closed by the server."""
        return self.finished == len(self.threads)

    def __enter__(self) -> Attack:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        for t in self.threads:
            t.join(30)


# -- bodies refused on their headers are not read (issue 7 B5) ----------------------------------------------


def _recv_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def _code(raw_reply: bytes) -> str | None:
    head, _, body = raw_reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    resp = json.loads(body)["Response"]
    return resp["Error"]["Code"] if "Error" in resp else None


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that do not measure its memory."""
    workdir = tmp_path_factory.mktemp("shared")
    with running_server(f"sqlite:///{workdir / 'tione.db'}", workdir) as srv:
        yield srv


REFUSED_ON_HEADERS = [
    (0, "InvalidParameter"),
    (2, "AuthFailure.SecretIdNotFound"),
    (4, "AuthFailure.SignatureExpire"),
    (5, "AuthFailure.InvalidAuthorization"),
]


@pytest.mark.parametrize(("kind", "code"), REFUSED_ON_HEADERS, ids=[c for _, c in REFUSED_ON_HEADERS])
def test_gateway_answers_unauthenticated_posts_without_reading_the_body(shared: Server, kind: int, code: str) -> None:
    """A 9.5 MB POST refused on its headers is answered after a few KB of its body, and its connection closed."""
    with socket.create_connection(("127.0.0.1", shared.port), timeout=10) as sock:
        sock.sendall(_attack_head(shared, kind) + b" " * 4096)  # and not one byte more
        assert _code(_recv_all(sock)) == code


def test_gateway_refused_small_body_keeps_the_connection(shared: Server) -> None:
    """A small body refused on its headers is read whole, so a keep-alive client can go on."""
    creds = Creds(shared.key.secret_id, shared.key.secret_key)
    with RawClient(shared.port) as raw:
        bad = tc3_request(Creds("AKIDnosuchkey", "x"), shared.endpoint, {"Limit": 1})
        assert check_envelope(raw.send(bad))["Error"]["Code"] == "AuthFailure.SecretIdNotFound"
        conn = raw._conn
        assert "Error" not in check_envelope(raw.send(tc3_request(creds, shared.endpoint, {"Limit": 1})))
        assert raw._conn is conn  # the same connection


def _write_calls(pid: int) -> int:
    """write(2)-family calls the process has made (/proc/<pid>/io `syscw`): the server sends through libuv's
    write and writev."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError(f"no syscw for {pid}")


def test_a_reply_leaves_in_one_write(shared: Server) -> None:
    """Issue 12: a reply's status line, headers and body go out in one write (serving.WritesAtStepEnd), not one
    for the head and one for the body: half the sends, and one wake-up of the client instead of two."""
    creds = Creds(shared.key.secret_id, shared.key.secret_key)
    count = 60
    with RawClient(shared.port) as raw:
        request = tc3_request(creds, shared.endpoint, {"Limit": 1})
        assert "Error" not in check_envelope(raw.send(request))
        before = _write_calls(shared.process.pid)
        for _ in range(count):
            assert "Error" not in check_envelope(raw.send(tc3_request(creds, shared.endpoint, {"Limit": 1})))
        writes = _write_calls(shared.process.pid) - before
    assert count <= writes < count * 1.5  # the request log adds a batched write now and then


def test_a_reply_without_a_body_is_not_held(shared: Server) -> None:
    """The head of a reply that has no body (HEAD, an interim 100 Continue) goes out at once."""
    with socket.create_connection(("127.0.0.1", shared.port), timeout=5) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    creds = Creds(shared.key.secret_id, shared.key.secret_key)
    request = tc3_request(creds, shared.endpoint, {"Limit": 1})
    lines = [f"{request.method} {request.target} HTTP/1.1", *(f"{k}: {v}" for k, v in request.headers)]
    lines += [f"Content-Length: {len(request.body)}", "Expect: 100-continue", "Connection: close"]
    with socket.create_connection(("127.0.0.1", shared.port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        assert sock.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before the body is sent
        sock.sendall(request.body)
        assert b'"TotalCount"' in _recv_all(sock)


def test_body_arrived_tells_a_whole_body_from_one_still_coming() -> None:
    """Issue 12: the gateway sets no body timer when uvicorn already holds the whole body (serving.body_arrived).
    The check reads uvicorn's request cycle, so it is tested against uvicorn itself: a body sent with its headers
    has arrived; one sent after a pause has not (it is read under the timer, as the slow-body tests show)."""
    seen: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(body_arrived(receive))
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    port = free_port()
    options = uvicorn_options(Settings())  # the protocol `serve` runs
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(head + b"whole")
            assert _recv_reply(sock).endswith(b"whole")
            sock.sendall(head)
            time.sleep(0.3)
            sock.sendall(b"later")
            assert _recv_reply(sock).endswith(b"later")
    finally:
        server.should_exit = True
        thread.join(10)
    assert seen == [True, False]


def _recv_reply(sock: socket.socket) -> bytes:
    """One reply of five body bytes."""
    reply = b""
    while not (b"\r\n\r\n" in reply and len(reply.split(b"\r\n\r\n", 1)[1]) >= 5):
        chunk = sock.recv(4096)
        assert chunk, "the server closed the connection"
        reply += chunk
    return reply


def test_gateway_memory_stays_bounded_under_unauthenticated_bodies(server: Server) -> None:
    """Issue 7 B5: 100 connections each sending 9.5 MB unauthenticated keep the server under 400 MB, signed
    requests keep succeeding meanwhile, and 20 s after they close the server is back under 250 MB."""
    pid = server.process.pid
    creds = Creds(server.key.secret_id, server.key.secret_key)
    with RawClient(server.port) as raw:
        assert "Error" not in check_envelope(raw.send(tc3_request(creds, server.endpoint, {"Limit": 1})))
        before = rss_mb(pid)
        peak = before
        signed_ok = 0
        with Attack(server, 100) as attack:
            deadline = time.monotonic() + 25
            while time.monotonic() < deadline and not attack.over:
                resp = check_envelope(raw.send(tc3_request(creds, server.endpoint, {"Limit": 1})))
                assert "Error" not in resp, resp
                signed_ok += 1
                peak = max(peak, rss_mb(pid))
                time.sleep(0.05)
            peak = max(peak, rss_mb(pid))
        after_close = time.monotonic()
        settled = rss_mb(pid)
        while settled >= 250 and time.monotonic() - after_close < 20:
            time.sleep(0.5)
            settled = rss_mb(pid)
        assert "Error" not in check_envelope(raw.send(tc3_request(creds, server.endpoint, {"Limit": 1})))
    print(f"RSS MB: before {before:.0f}, peak {peak:.0f}, after close {settled:.0f}; {signed_ok} signed requests ok")
    assert signed_ok > 0
    assert peak < 400, (before, peak)
    assert settled < 250, (before, peak, settled)


# -- slow clients and the budget of bodies in flight (issue 7 B5) -----------------------------------------


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a 1 s read timeout and 1 MB of bodies in flight."""
    workdir = tmp_path_factory.mktemp("strict")
    env = {"TIONE_READ_TIMEOUT": "1", "TIONE_BODY_BYTES_IN_FLIGHT": str(MB)}
    with running_server(f"sqlite:///{workdir / 'tione.db'}", workdir, env=env) as srv:
        yield srv


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sent before closing; fails if it is still open after `seconds`."""
    sock.settimeout(seconds)
    try:
        return _recv_all(sock)
    except TimeoutError:
        raise AssertionError(f"the connection is still open after {seconds} s") from None


@pytest.mark.parametrize(
    "sent", [b"", b"POST / HTTP/1.1\r\nHost: x\r\n", b"POST / HT"], ids=["idle", "half-headers", "half-line"]
)
def test_gateway_closes_connections_whose_headers_are_slow(strict: Server, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(sent)
        assert _closed_within(sock, 5) == b""


def test_gateway_closes_keep_alive_connections_whose_next_headers_are_slow(strict: Server) -> None:
    """The header deadline covers every request of a connection, not only its first (issue 12 arms it lazily)."""
    req = tc3_request(Creds(strict.key.secret_id, strict.key.secret_key), strict.endpoint, {"Limit": 1})
    head = "".join(f"{k}: {v}\r\n" for k, v in req.headers) + f"Content-Length: {len(req.body)}\r\n"
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\n{head}\r\n".encode() + req.body)
        sock.settimeout(5)
        reply = b""
        while b'"RequestId"' not in reply:
            reply += sock.recv(65536)
        time.sleep(0.2)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # the next request's headers stop here
        started = time.monotonic()
        assert _closed_within(sock, 5) == b""
        assert time.monotonic() - started < 3  # the 1 s deadline, not uvicorn's 5 s keep-alive timeout


def test_gateway_closes_connections_whose_body_is_slow(strict: Server) -> None:
    """A signed request whose body stops coming is answered (never a 500) and its connection closed."""
    req = tc3_request(Creds(strict.key.secret_id, strict.key.secret_key), strict.endpoint, {"Limit": 1})
    head = "".join(f"{k}: {v}\r\n" for k, v in req.headers) + f"Content-Length: {len(req.body) + 10}\r\n"
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\n{head}\r\n".encode() + req.body)
        assert _code(_closed_within(sock, 5)) == "InvalidParameter"


def test_gateway_caps_body_bytes_in_flight(strict: Server) -> None:
    """While one request holds most of the budget, a large body answers ServiceUnavailable and small ones pass."""
    creds = Creds(strict.key.secret_id, strict.key.secret_key)
    held = tc3_request(creds, strict.endpoint, body=b" " * (900 * 1024))
    head = "".join(f"{k}: {v}\r\n" for k, v in held.headers) + f"Content-Length: {len(held.body) + 1}\r\n"
    with socket.create_connection(("127.0.0.1", strict.port)) as hold, RawClient(strict.port) as raw:
        hold.sendall(f"POST / HTTP/1.1\r\n{head}\r\n".encode() + held.body)  # all but its last byte
        time.sleep(0.3)  # let the server take it in (it has 1 s before the body times out)
        big = tc3_request(creds, strict.endpoint, {"Limit": 1, "TiProjectId": "x" * (500 * 1024)})
        assert check_envelope(raw.send(big))["Error"]["Code"] == "ServiceUnavailable"
        assert "Error" not in check_envelope(raw.send(tc3_request(creds, strict.endpoint, {"Limit": 1})))
        assert _code(_closed_within(hold, 5)) == "InvalidParameter"  # then it timed out, and its bytes came back
        assert "Error" not in check_envelope(raw.send(big))


# -- TLS (issue 7 C8) ------------------------------------------------------------------------------------


def _self_signed(workdir: Path) -> tuple[Path, Path]:
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_serve_tls_serves_https_to_the_sdk(sqlite_url: str, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    args = ("--tls-cert", str(cert), "--tls-key", str(key))
    with running_server(sqlite_url, tmp_path, extra_args=args) as server:
        hp = HttpProfile(endpoint=server.endpoint, protocol="https", certification=str(cert))
        cred = credential.Credential(server.key.secret_id, server.key.secret_key)
        for sign in ("TC3-HMAC-SHA256", "HmacSHA256"):
            client = tione_client.TioneClient(cred, REGION, ClientProfile(httpProfile=hp, signMethod=sign))
            assert client.DescribeTrainingTasks(models.DescribeTrainingTasksRequest()).TotalCount == 0
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:  # plain HTTP is not served
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not _recv_all(sock).startswith(b"HTTP/1.1 200")
        log = server.log_path.read_text()
    assert f"https://127.0.0.1:{server.port}" in log
    assert "WARNING" not in log


@pytest.mark.parametrize(("host", "tls", "warned"), [("0.0.0.0", False, True), ("0.0.0.0", True, False),
                                                    ("127.0.0.1", False, False)])  # fmt: skip
def test_serve_warns_about_plain_http_beyond_loopback(
    sqlite_url: str, tmp_path: Path, host: str, tls: bool, warned: bool
) -> None:
    args: tuple[str, ...] = ("--host", host)
    if tls:
        cert, key = _self_signed(tmp_path)
        args += ("--tls-cert", str(cert), "--tls-key", str(key))
    with running_server(sqlite_url, tmp_path, extra_args=args) as server:
        pass
    assert ("WARNING: serving plain HTTP" in server.log_path.read_text()) == warned


def test_serve_tls_needs_both_files(sqlite_url: str, tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path)
    out = subprocess.run(
        [str(BIN), "serve", "--database", sqlite_url, "--port", str(free_port()), "--tls-cert", str(cert)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "--tls-key" in out.stderr
