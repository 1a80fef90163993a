"""Reading request bodies within bounds (issue 7 B5): a per-request size limit, a deadline, and one budget of
body bytes that all requests of a worker may hold at once; memory is handed back to the OS after large bodies.

What a body means is the gateway's business; this module only decides how much of it is read, and when to stop.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

SMALL_BODY = 64 * 1024
"""Bytes of every body that are read outside the budget, so ordinary requests never meet it; and the largest
body read of a request refused on its headers (so its connection can be kept)."""

TRIM_AFTER = 1024 * 1024
"""Budget bytes released since the last malloc_trim that make the next release call it."""


class Body(msgspec.Struct):
    """What was read of one body. `stop` says why reading ended early (None: the whole body is here)."""

    data: bytes
    stop: str | None = None
    """None, `too_large` (over the request's limit), `busy` (the budget is spent), `slow` (past the deadline)
    or `gone` (the client disconnected)."""
    held: int = 0
    """Budget bytes this body holds until it is released."""


class BodyBudget:
    """The body bytes (beyond SMALL_BODY each) that requests of this worker hold at once, capped at `limit`.

    Requests share one event loop, so there is no lock. A request that would pass the cap is refused rather
    than made to wait: waiting would let slow senders hold the budget against everyone else.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._released = 0

    def take(self, size: int) -> bool:
        """Reserve `size` bytes; False (nothing reserved) when that would pass the cap."""
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def release(self, size: int) -> None:
        """Give back bytes a finished request held; after enough of them, return freed memory to the OS."""
        if size <= 0:
            return
        self.held -= size
        self._released += size
        if self.held == 0 and self._released >= TRIM_AFTER:
            self._released = 0
            trim_memory()


async def read_body(receive: Receive, *, limit: int, budget: BodyBudget, timeout: float, arrived: bool = False) -> Body:
    """Read a body of at most `limit` bytes within `timeout` seconds; stop at the first bound it passes.

    Bytes past SMALL_BODY are taken from `budget` as they arrive; the caller releases `Body.held` when done.
    `arrived`: the HTTP server holds the whole body already (serving.body_arrived), so no read can wait and no
    timer is set (issue 12: the timer was a tenth of a list request's CPU).
    """
    reading = _Reading(limit, budget)
    if arrived:
        return await reading.run(receive)
    try:
        async with asyncio.timeout(timeout):  # one timer for the whole body: a trickle cannot reset it
            return await reading.run(receive)
    except TimeoutError:
        return Body(b"", "slow", reading.held)


class _Reading:
    """One body being read: what has come, and how much of the budget it holds."""

    def __init__(self, limit: int, budget: BodyBudget) -> None:
        self.limit = limit
        self.budget = budget
        self.held = 0

    async def run(self, receive: Receive) -> Body:
        buf = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return Body(b"", "gone", self.held)
            chunk: bytes = message.get("body", b"")
            if len(buf) + len(chunk) > self.limit:
                return Body(b"", "too_large", self.held)
            need = max(len(buf) + len(chunk) - SMALL_BODY, 0) - self.held
            if need > 0:
                if not self.budget.take(need):
                    return Body(b"", "busy", self.held)
                self.held += need
            buf += chunk
            if not message.get("more_body", False):
                return Body(bytes(buf), None, self.held)


async def skim_body(receive: Receive, *, timeout: float) -> bool:
    """Read and drop a small body nobody will use (at most SMALL_BODY bytes of it); True when it was read whole,
    so the connection can serve another request, False when some is left and the connection must be closed."""
    seen = 0
    try:
        async with asyncio.timeout(timeout):
            while seen <= SMALL_BODY:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return False
                seen += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return seen <= SMALL_BODY
    except TimeoutError:
        pass
    return False


def _libc_trim() -> Callable[[int], int] | None:
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(path).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    return trim


_trim = _libc_trim()


def trim_memory() -> None:
    """Hand memory glibc keeps after freeing large bodies back to the OS (issue 7 B5: RSS stayed at 945 MB
    after an attack); a no-op where libc has no malloc_trim."""
    if _trim is not None:
        _trim(0)
