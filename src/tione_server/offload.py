"""Blocking work off the event loop (issue 8 item 2): a bounded pool of threads for the API's handlers.

Handlers touch the database, the disk (a Delete's rmtree, log files) and processes; run on the event loop, one
slow call would stall every other request of the worker. They run here instead, as Starlette runs sync endpoints.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

HANDLER_THREADS = 8
"""Handlers of one worker running at once. Fewer than the store's pooled connections (8 + 8 overflow on
PostgreSQL, 5 + 10 on SQLite), so the reads the event loop still makes (key lookups, lists: gateway.py
INLINE_ACTIONS) always find a connection; further requests queue here, off the loop."""


class Offload:
    """Runs a blocking call on the pool and awaits its result; `close` at shutdown."""

    def __init__(self, threads: int = HANDLER_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tione-handler")

    async def __call__(self, call: Callable[[], T]) -> T:
        """The result of `call()`, computed on a pool thread while the event loop serves other requests."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        """Finish the calls already running and stop the threads."""
        self._pool.shutdown(wait=True, cancel_futures=True)
