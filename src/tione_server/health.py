"""Plain HTTP beside the API (issue 10 item 10): `GET /healthz` (the process answers), `GET /readyz` (it can do
its work: database, runner lease, executor) and `GET /metrics` (Prometheus text). No signature, no account data:
load balancers and Prometheus call them, not API clients.

Also LeaderWatch, the runner's view of the lease as these endpoints and /metrics see it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from sqlalchemy import text

from tione_server import metrics
from tione_server.bodies import Receive
from tione_server.gateway import Scope, Send
from tione_server.store import Store

log = logging.getLogger("tione_server.health")

PATHS = ("/healthz", "/readyz", "/metrics")
"""Paths answered here (entries of the app's route table)."""
CHECK_TIMEOUT = 2.0
"""Seconds /readyz waits for the database or the executor before calling it unreachable."""
RUNNER_SILENT = 10.0
"""A runner that has not asked for the lease for this long is stuck or gone."""


class LeaderWatch:
    """Wraps the runner's `is_leader` (runner.Lease): the runner asks it before every pass, so the time of the last
    question says the runner thread is alive, and a positive answer stamps the replica's last pass in /metrics."""

    def __init__(self, lease: Callable[[], bool], clock: Callable[[], float] = time.time) -> None:
        self.lease = lease
        self.clock = clock
        self.asked_at: float | None = None

    def __call__(self) -> bool:
        now = self.clock()
        self.asked_at = now
        leads = self.lease()
        if leads:
            metrics.RUNNER_LAST_PASS.set(now)
        return leads

    def alive(self, now: float) -> bool:
        """Whether this process's runner asked recently (it asks at least every runner interval)."""
        return self.asked_at is not None and now - self.asked_at < RUNNER_SILENT


class ExecutorHealth(Protocol):
    """What /readyz asks an executor that can become unreachable (a Ray cluster). Executors without a `health`
    method (local, simulate) run here and are always reachable."""

    def health(self) -> str | None:
        """None when pods can be started and watched now; else why not, in one line."""
        ...


class Probes:
    """The ASGI handler of PATHS."""

    def __init__(
        self,
        store: Store,
        executor: object,
        watch: LeaderWatch,
        gauges: metrics.StoreCollector,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.executor = executor
        self.watch = watch
        self.store_gauges = CollectorRegistry()
        self.store_gauges.register(gauges)
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await _reply(send, 405, b"use GET\n", head=False, allow=True)
            return
        head = scope["method"] == "HEAD"
        if path == "/healthz":
            await _reply(send, 200, b"ok\n", head=head)
        elif path == "/readyz":
            ready, lines = await self.readiness()
            await _reply(send, 200 if ready else 503, ("\n".join(lines) + "\n").encode(), head=head)
        else:
            body = await asyncio.to_thread(metrics.exposition, self.store_gauges)
            await _reply(send, 200, body, head=head, content_type=CONTENT_TYPE_LATEST.encode())

    async def readiness(self) -> tuple[bool, list[str]]:
        """(ready, one line per check): database reachable, a runner leads or this one is competing, executor
        reachable. Each check runs off the event loop and is given CHECK_TIMEOUT seconds."""
        checks = [("database", self._database), ("runner", self._runner), ("executor", self._executor)]
        ready, lines = True, []
        for name, check in checks:
            try:
                problem = await asyncio.wait_for(asyncio.to_thread(check), CHECK_TIMEOUT)
            except TimeoutError:
                problem = f"no answer within {CHECK_TIMEOUT:g} s"
            except Exception as err:
                problem = f"{type(err).__name__}: {err}".splitlines()[0]
            ready = ready and problem is None
            lines.append(f"{name}: {'ok' if problem is None else problem}")
        return ready, ["ready" if ready else "not ready", *lines]

    def _database(self) -> str | None:
        with self.store.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None

    def _runner(self) -> str | None:
        """Known when a runner holds an unexpired lease; while none does (its holder just died), this process's
        runner being alive is enough: it takes the lease within the lease's TTL."""
        now = self.clock()
        lease = self.store.leases.holder(metrics.LEASE)
        if lease is not None and lease[1] > now:
            return None
        if self.watch.alive(now):
            return None
        return "no runner holds the lease and this process's runner is not running"

    def _executor(self) -> str | None:
        health = getattr(self.executor, "health", None)
        return health() if callable(health) else None


async def _reply(
    send: Send,
    status: int,
    body: bytes,
    *,
    head: bool,
    content_type: bytes = b"text/plain; charset=utf-8",
    allow: bool = False,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if allow:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
