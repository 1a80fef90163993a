"""Task callbacks (spec §8): the JSON body, and a sender that POSTs it from background threads.

`CallbackSender.send` only enqueues, so a slow or dead receiver never delays an API call or the runner;
delivery makes at most two attempts and never raises. Deciding *when* to call back is the runner's business.
Delivery resolves the host itself, keeps only addresses the AddressPolicy permits and connects to exactly that
address (so a DNS answer cannot change between check and use), and never follows a redirect (issue 7 D10).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import queue
import socket
import ssl
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from tione_server.metrics import CALLBACKS
from tione_server.netpolicy import ALLOW_ALL, AddressPolicy, address_policy

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2
"""Spec §8: at most two delivery attempts in total."""
_MAX_REPLY_BYTES = 64 * 1024
"""Enough for `{"code": 0, "message": "success"}` and then some; a huge reply is not read in full."""


def callback_body(
    *, task_id: str, task_name: str, code: int, message: str, total_time: float, now: float, offset_hours: int
) -> dict[str, Any]:
    """The §8 body for one outcome of task `task_id`; `task_name` is `Start` or `Stop`.

    `now` (Unix seconds) is rendered as `responseTime`, `YYYY-MM-DD HH:MM:SS` wall clock in UTC+`offset_hours`.
    """
    tz = timezone(timedelta(hours=offset_hours))
    return {
        "code": code,
        "message": message,
        "id": task_id,
        "appName": "tione",
        "projectName": "training",
        "taskName": task_name,
        "totalTime": float(total_time),
        "responseTime": datetime.fromtimestamp(now, tz).strftime("%Y-%m-%d %H:%M:%S"),
    }


class _Rejected(Exception):
    """The receiver answered, but not with success (spec §8: 2xx and JSON `code` 0)."""


class _Denied(Exception):
    """The host resolves only to addresses the policy refuses: the callback is dropped, not retried."""


_Address = tuple[socket.AddressFamily, Any]
"""(family, sockaddr) as getaddrinfo gives them."""


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to one address already checked, while the Host header, TLS server name and
    certificate check use the URL's host name (issue 7 D10: no DNS-rebinding gap)."""

    def __init__(self, host: str, port: int, address: _Address, timeout: float, tls: ssl.SSLContext | None) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address
        self.tls = tls
        if tls is not None:
            self.default_port = http.client.HTTPS_PORT  # Host carries no port when it is https' own

    def connect(self) -> None:
        family, sockaddr = self.address
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(sockaddr)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class CallbackSender:
    """Delivers callbacks from a bounded queue on background worker threads.

    A few workers (not one) so a receiver that hangs until the timeout does not hold up everyone else's callbacks.
    """

    def __init__(
        self,
        timeout: float = 10.0,
        *,
        policy: AddressPolicy | None = None,
        workers: int = 2,
        max_queue: int = 1000,
        retry_delay: float = 1.0,
    ) -> None:
        self.timeout = timeout
        """Seconds per attempt (spec §8: 10 s)."""
        self.policy = policy or address_policy(ALLOW_ALL)
        """Addresses deliveries may connect to (default: all but loopback, link-local, unspecified, multicast)."""
        self.retry_delay = retry_delay
        self._tls = ssl.create_default_context()
        # None is the stop sentinel.
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=max_queue)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"tione-callback-{i}", daemon=True) for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def send(self, url: str, body: dict[str, Any]) -> None:
        """Queue `body` for delivery to `url` and return at once; never raises, never touches the network."""
        scheme = urlsplit(url).scheme.lower() if isinstance(url, str) else ""
        if scheme not in ("http", "https"):
            # Only http(s) receivers are valid (spec §8).
            log.warning("callback to %r dropped: not an http or https URL", url)
            return
        try:
            payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError):
            log.exception("callback to %s dropped: body is not JSON-serialisable", url)
            return
        with self._lock:
            if self._closed.is_set():
                log.warning("callback to %s dropped: sender is closed", url)
                return
            try:
                self._queue.put_nowait((url, payload))
            except queue.Full:
                log.warning("callback to %s dropped: %d deliveries already queued", url, self._queue.maxsize)
                CALLBACKS.labels("failed").inc()

    def close(self, wait: float = 5.0) -> None:
        """Stop the workers, giving queued deliveries up to `wait` seconds to finish; idempotent."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
        deadline = time.monotonic() + wait
        for _ in self._threads:
            # Sentinels go behind queued deliveries, so those are still attempted before the workers exit.
            try:
                self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                break
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            log.warning("callback sender closed with deliveries still in flight")

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            url, payload = item
            try:
                self._deliver(url, payload)
            except Exception:  # a worker must survive anything a receiver does
                log.exception("callback to %s failed unexpectedly", url)

    def _deliver(self, url: str, payload: bytes) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                self._post(url, payload)
            except _Denied as err:
                log.warning("callback to %s dropped: %s (serve --callback-allow)", url, err)
                CALLBACKS.labels("failed").inc()
                return
            except (_Rejected, OSError, ValueError, http.client.HTTPException) as err:
                # OSError covers DNS failures, refused connections, timeouts and TLS errors; HTTPException a
                # garbled reply; ValueError a URL with a bad port.
                log.warning("callback to %s attempt %d/%d failed: %s", url, attempt, MAX_ATTEMPTS, err)
                # A pause before the second attempt, cut short when the server shuts down.
                if attempt < MAX_ATTEMPTS and self.retry_delay > 0:
                    self._closed.wait(self.retry_delay)
            else:
                log.info("callback to %s delivered (attempt %d)", url, attempt)
                CALLBACKS.labels("delivered").inc()
                return
        log.error("callback to %s given up after %d attempts", url, MAX_ATTEMPTS)
        CALLBACKS.labels("failed").inc()

    def _addresses(self, host: str, port: int) -> list[_Address]:
        """The addresses `host` resolves to that the policy permits; _Denied when it resolves to none of those."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        permitted: list[_Address] = []
        refused: list[str] = []
        for family, _, _, _, sockaddr in infos:
            text = str(sockaddr[0])
            if self.policy.permits(ipaddress.ip_address(text.split("%", 1)[0])):
                permitted.append((family, sockaddr))
            else:
                refused.append(text)
        if not permitted:
            raise _Denied(f"{host} resolves only to addresses callbacks may not reach: {', '.join(refused)}")
        return permitted

    def _post(self, url: str, payload: bytes) -> None:
        parts = urlsplit(url)
        https = parts.scheme.lower() == "https"
        host = parts.hostname or ""
        port = parts.port or (http.client.HTTPS_PORT if https else http.client.HTTP_PORT)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn: _PinnedConnection | None = None
        error: OSError = OSError(f"no address for {host}")
        for address in self._addresses(host, port):
            conn = _PinnedConnection(host, port, address, self.timeout, self._tls if https else None)
            try:
                conn.connect()
                break
            except OSError as err:  # like socket.create_connection: the next address, else the last error
                conn.close()
                conn, error = None, err
        if conn is None:
            raise error
        try:
            # http.client never follows redirects: a 3xx is an answer like any other non-2xx (issue 7 D10).
            conn.request("POST", target, body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            status = response.status
            raw = response.read(_MAX_REPLY_BYTES)
        finally:
            conn.close()
        if not 200 <= status < 300:
            raise _Rejected(f"HTTP {status}")
        try:
            reply = json.loads(raw)
        except ValueError as err:
            raise _Rejected("reply is not JSON") from err
        code = reply.get("code") if isinstance(reply, dict) else None
        if isinstance(code, bool) or code != 0:
            raise _Rejected(f"reply code is {code!r}, not 0")
