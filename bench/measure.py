"""Latency of one query shape, two ways.

Server-side: TioneService.describe_training_tasks called in-process against the benchmark database,
with a RequestContext as the gateway builds it; the request is decoded beforehand, so the time is the
action's alone (validation, SQL, rendering). End-to-end: a presigned HTTP request to a live `tione-server
serve` over one keep-alive connection, timed from the write to the last byte of the reply (signature
check, decoding, the action and encoding included). Each takes warm-up calls, then samples until a time
budget or a sample cap is reached, with a floor on the sample count.
"""

from __future__ import annotations

import math
import socket
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from bench.dataset import MAIN
from bench.signer import Credentials, raw_request
from tione_server.api._generated import DescribeTrainingTasksRequest, DescribeTrainingTasksResponse
from tione_server.app import create_app
from tione_server.config import Settings
from tione_server.context import Caller, RequestContext

ACTION = "DescribeTrainingTasks"


@dataclass(frozen=True)
class Budget:
    """How long to sample one shape: `seconds` of sampling, at least `min_n`, at most `max_n` samples."""

    warmup: int = 5
    seconds: float = 4.0
    min_n: int = 15
    max_n: int = 300


@dataclass(frozen=True)
class Latency:
    """Percentiles of one shape, in milliseconds, and what the query matched."""

    n: int
    p50_ms: float
    p99_ms: float
    total_count: int


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def _sample(call: Callable[[], Any], budget: Budget, before: Callable[[], None] | None = None) -> list[float]:
    for _ in range(budget.warmup):
        call()
    samples: list[float] = []
    deadline = time.perf_counter() + budget.seconds
    while len(samples) < budget.max_n and (len(samples) < budget.min_n or time.perf_counter() < deadline):
        if before is not None:
            before()
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return sorted(samples)


class Commits:
    """SQLite: a commit before each timed sample, from a connection of the benchmark's own, so the server's memory of
    pages (store/pages.py, valid until anything commits) never answers and each sample runs the query. The latency
    tables measure the queries at each size; throughput measures an unchanged database."""

    def __init__(self, database_url: str) -> None:
        self._conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        self._n = 0

    def __call__(self) -> None:
        self._n += 1
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('bench_commit', ?)", (str(self._n),))

    def close(self) -> None:
        self._conn.execute("DELETE FROM meta WHERE key = 'bench_commit'")
        self._conn.close()


def _latency(samples: list[float], total_count: int) -> Latency:
    return Latency(
        n=len(samples),
        p50_ms=statistics.median(samples) * 1e3,
        p99_ms=percentile(samples, 0.99) * 1e3,
        total_count=total_count,
    )


class InProcess:
    """The service as the server builds it (create_app), called directly."""

    def __init__(self, database_url: str) -> None:
        self.app = create_app(Settings(database_url=database_url, rate_limit=0))
        self.service = self.app.gateway.service
        self.caller = Caller(uin=MAIN.uin, app_id=MAIN.app_id, sub_uin=MAIN.uin)

    def close(self) -> None:
        self.app.store.close()

    def _context(self) -> RequestContext:
        return RequestContext(
            caller=self.caller, region=MAIN.region, request_id=str(uuid.uuid4()), language="en-US", now=time.time()
        )

    @staticmethod
    def _request(params: dict[str, Any]) -> DescribeTrainingTasksRequest:
        return msgspec.convert(params, DescribeTrainingTasksRequest, strict=True)

    def call(self, params: dict[str, Any]) -> DescribeTrainingTasksResponse:
        """One action call, for checks outside the timed loop."""
        return self.service.describe_training_tasks(self._context(), self._request(params))

    def measure(self, params: dict[str, Any], budget: Budget, before: Callable[[], None] | None = None) -> Latency:
        """Server-side latency of the action for these parameters (decoded once, beforehand); `before` runs
        before each sample, untimed (Commits)."""
        req = self._request(params)
        action = self.service.describe_training_tasks
        samples = _sample(lambda: action(self._context(), req), budget, before)
        total = self.call(params).TotalCount or 0
        return _latency(samples, total)


class HttpClient:
    """One keep-alive connection sending presigned raw requests and reading whole replies."""

    def __init__(self, port: int, creds: Credentials) -> None:
        self.host = f"127.0.0.1:{port}"
        self.creds = creds
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sock.close()

    @staticmethod
    def presign(host: str, creds: Credentials, params: dict[str, Any]) -> bytes:
        """A request signed now; valid for the server's timestamp window (300 s by default)."""
        return raw_request(creds, host, ACTION, MAIN.region, params)

    def request_bytes(self, params: dict[str, Any]) -> bytes:
        """A request to this client's server, signed now."""
        return self.presign(self.host, self.creds, params)

    def send(self, request: bytes) -> bytes:
        """Write one request, return the reply body."""
        self.sock.sendall(request)
        buf = b""
        while (head_end := buf.find(b"\r\n\r\n")) < 0:
            buf += self._recv()
        head = buf[:head_end].lower()
        if not head.startswith(b"http/1.1 200"):
            raise RuntimeError(f"HTTP error: {buf[:200]!r}")
        at = head.index(b"content-length:") + len(b"content-length:")
        line_end = head.find(b"\r\n", at)
        end = head_end + 4 + int(head[at : line_end if line_end >= 0 else len(head)])
        while len(buf) < end:
            buf += self._recv()
        return buf[head_end + 4 : end]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return chunk

    def call(self, params: dict[str, Any]) -> dict[str, Any]:
        """One signed call; the `Response` object, or RuntimeError on an error reply."""
        reply: dict[str, Any] = msgspec.json.decode(self.send(self.request_bytes(params)))["Response"]
        if "Error" in reply:
            raise RuntimeError(f"{ACTION} failed: {reply['Error']}")
        return reply

    def measure(self, params: dict[str, Any], budget: Budget, before: Callable[[], None] | None = None) -> Latency:
        """End-to-end latency of signed HTTP calls with these parameters; `before` as InProcess.measure's."""
        total = int(self.call(params)["TotalCount"])
        request = self.request_bytes(params)
        samples = _sample(lambda: self.send(request), budget, before)
        return _latency(samples, total)
