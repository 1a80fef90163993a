"""Rate-limit windows and v1 nonces kept in Redis, shared by every worker and replica (issue 10 item 9).

Both implement the protocols of ratelimit.py and replay.py. Redis is a helper, never a gate: while it cannot be
reached, requests keep being served. Limits then fail open (not enforced); nonces fall back to the database's
NonceStore, so a replay is still refused rather than accepted. The outage is logged once a minute and shown by
the `tione_redis_up` gauge of /metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tione_server import metrics
from tione_server.replay import NonceStore
from tione_server.store.nonces import nonce_key

log = logging.getLogger("tione_server.redis")

TIMEOUT = 0.25
"""Seconds to connect and to wait for a reply: a Redis that hangs adds at most twice this to one request a
second (RETRY_AFTER); the others do not wait on it."""
RETRY_AFTER = 1.0
"""Seconds after a failure before Redis is tried again; meanwhile requests do not wait on it at all."""
LOG_EVERY = 60.0
"""Seconds between two log lines about one outage (issue 10 item 9: once a minute)."""


class RedisLink:
    """One Redis connection pool and what this process knows of its health."""

    def __init__(self, url: str, prefix: str, clock: Callable[[], float] = time.monotonic) -> None:
        # One retry without backoff: a pooled connection broken by a Redis restart is replaced at once, while a
        # Redis that is away costs a request at most two timeouts (redis-py's default backs off for seconds).
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT, retry=Retry(NoBackoff(), 1)
        )
        self.prefix = prefix
        self.clock = clock
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._logged_at: float | None = None
        self._down = False
        try:
            self.client.ping()
        except redis.RedisError as err:
            self.failed(err)
        else:
            metrics.LAZY.redis_up.set(1)

    def usable(self) -> bool:
        """False while a recent failure says not to try yet."""
        return self.clock() >= self._retry_at

    def failed(self, err: Exception) -> None:
        """Redis did not answer: stop trying for RETRY_AFTER seconds; log at most once a minute."""
        now = self.clock()
        metrics.LAZY.redis_errors.inc()
        with self._lock:
            self._retry_at = now + RETRY_AFTER
            first = not self._down
            self._down = True
            due = self._logged_at is None or now - self._logged_at >= LOG_EVERY
            if due:
                self._logged_at = now
        if first:
            metrics.LAZY.redis_up.set(0)
        if due:
            log.warning(
                "Redis unreachable (%s): rate limits are not enforced and v1 nonces are kept in the database "
                "until it is back", err,
            )  # fmt: skip

    def succeeded(self) -> None:
        """Redis answered: after an outage, say it is back."""
        if not self._down:
            return
        with self._lock:
            was_down, self._down, self._logged_at = self._down, False, None
        if was_down:
            metrics.LAZY.redis_up.set(1)
            log.warning("Redis reachable again: shared rate limits and nonces resumed")


class RedisRateLimiter:
    """Fixed one-second windows per (account, action), as LocalRateLimiter, counted in Redis.

    One key per window, `<prefix>rl:<second>:<account>:<action>`, incremented and given a 2 s expiry in one
    MULTI/EXEC, so every worker and replica counts into the same window. The second is each server's own clock,
    so replicas should keep their clocks in step (NTP), as they must for signature timestamps anyway.
    """

    def __init__(self, link: RedisLink, limit: int) -> None:
        self.link = link
        self.limit = limit

    def hit(self, account: str, action: str, now: float) -> int | None:
        """Count one request; the window's count when over the limit, else None (also while Redis is away)."""
        if self.limit <= 0 or not self.link.usable():
            return None
        key = f"{self.link.prefix}rl:{int(now)}:{account}:{action}"
        try:
            pipe = self.link.client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, 2)
            count = int(pipe.execute()[0])
        except redis.RedisError as err:
            self.link.failed(err)
            return None
        self.link.succeeded()
        return count if count > self.limit else None


class RedisNonceStore:
    """Accepted v1 nonces as Redis keys that expire with them; the database's store while Redis is away."""

    def __init__(self, link: RedisLink, fallback: NonceStore) -> None:
        self.link = link
        self.fallback = fallback

    def accept(self, secret_id: str, nonce: str, expires_at: int, now: float) -> bool:
        """SET NX: only the first of any number of workers and replicas offering (secret_id, nonce) wins.

        The key expires at `expires_at`, as the database's row is taken over once `now` passes it.
        """
        if not self.link.usable():
            return self.fallback.accept(secret_id, nonce, expires_at, now)
        ttl_ms = int((expires_at - now) * 1000)
        if ttl_ms <= 0:  # already past: nothing to remember (the gateway never asks; its window is checked first)
            return True
        key = f"{self.link.prefix}nonce:{secret_id}:{nonce_key(nonce)}"
        try:
            stored: Any = self.link.client.set(key, b"1", nx=True, px=ttl_ms)
        except redis.RedisError as err:
            self.link.failed(err)
            return self.fallback.accept(secret_id, nonce, expires_at, now)
        self.link.succeeded()
        return bool(stored)
