"""Per-account, per-action request limits (spec §1.1: 20 requests per second by default).

A fixed one-second window per (account, action), so the error can say how many requests the second
has seen, as the real message does. In-process here; a shared backend can implement the same protocol.
"""

from __future__ import annotations

import threading
from typing import Protocol


class RateLimiter(Protocol):
    """Counts a request; returns the count so far in its window when over the limit, else None."""

    limit: int

    def hit(self, account: str, action: str, now: float) -> int | None: ...


class LocalRateLimiter:
    """Windows kept in this process's memory; each API replica counts alone."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0

    def hit(self, account: str, action: str, now: float) -> int | None:
        """Count one request of `account` on `action` at time `now`."""
        if self.limit <= 0:
            return None
        second = int(now)
        key = (account, action)
        with self._lock:
            if second != self._last_sweep:
                self._sweep(second)
            start, count = self._windows.get(key, (second, 0))
            count = count + 1 if start == second else 1
            self._windows[key] = (second, count)
        return count if count > self.limit else None

    def _sweep(self, second: int) -> None:
        """Drop windows of past seconds so memory stays bounded by the accounts active right now."""
        self._last_sweep = second
        if len(self._windows) > 1024:
            self._windows = {k: v for k, v in self._windows.items() if v[0] == second}
