"""The runner's memory of the live runs: each run with its task, when to look at it next, and the PENDING queues.

Issue 12 target 5: a tick must cost what changed, not what is live. The runner reads the store's live runs once
(on start, when it becomes the leader) and then only what the change feed reports (store/feed.py); this set keeps
them, a heap of the times at which a run needs a look without anyone changing it (the executor's `next_change`, a
retry, a SIGKILL due), and per pool the PENDING runs in submission order, so granting capacity walks from the head
of a queue instead of over every waiting run.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterator, Mapping

from tione_server.models import Run, Task, TaskStatus

EVERY_PASS_BUSY = (TaskStatus.SUBMITTING, TaskStatus.STARTING)


class LiveSet:
    """Live runs by number (a run's number is its submission order)."""

    def __init__(self, *, loaded: bool = False, cursor: int = 0) -> None:
        self.loaded = loaded
        """Whether the live runs were read from the store (a fresh set must be loaded first)."""
        self.cursor = cursor
        """Where the change feed is to be read from next."""
        self.resync_from: int | None = None
        """The safety sweep's position (the last run number checked), None between sweeps."""
        self.resynced_at = -math.inf
        self.wants_schedule = False
        """Something that may let a waiting run in happened since the last granting pass (a run queued, capacity
        given back, a run left a queue, a pass stopped at its batch)."""
        self.suspects: set[int] = set()
        """Runs a write of the runner's found changed or gone: read again on the next pass."""
        self._items: dict[int, tuple[Run, Task]] = {}
        self._heap: list[tuple[float, int]] = []
        self._when: dict[int, float] = {}
        self._every: set[int] = set()
        self._queues: dict[str, list[int]] = {}
        self._queued: dict[int, str] = {}
        self._arrived: set[int] = set()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, num: int) -> tuple[Run, Task] | None:
        return self._items.get(num)

    def seq_of(self, num: int) -> int | None:
        """The stamp of the run's copy held here (Run.seq); None when none is held."""
        item = self._items.get(num)
        return None if item is None else item[0].seq

    def __getitem__(self, num: int) -> tuple[Run, Task]:
        return self._items[num]

    def items(self) -> Iterator[tuple[Run, Task]]:
        return iter(list(self._items.values()))

    def put(self, run: Run, task: Task) -> None:
        """Keep (or replace) a run; its queue place follows its status."""
        self._items[run.num] = (run, task)
        self.refresh(run.num)

    def pop(self, num: int) -> tuple[Run, Task] | None:
        """Forget a run (it is over, or gone from the store)."""
        self._when.pop(num, None)
        self._every.discard(num)
        self._unqueue(num)
        self.suspects.discard(num)
        return self._items.pop(num, None)

    def nums_in(self, after: int, upto: int | None) -> list[int]:
        """Run numbers in (after, upto]; `upto` None: no upper bound."""
        top = math.inf if upto is None else upto
        return [n for n in self._items if after < n <= top]

    # -- when to look -------------------------------------------------------------------------

    def due_at(self, num: int, when: float | None) -> None:
        """Look at the run at `when`; None: on every pass (an executor that cannot tell when it changes)."""
        if when is None:
            self._when.pop(num, None)
            self._every.add(num)
            return
        self._every.discard(num)
        if self._when.get(num) == when:
            return
        self._when[num] = when
        if when < math.inf:
            heapq.heappush(self._heap, (when, num))
        if len(self._heap) > 4 * len(self._items) + 64:  # entries of runs that moved on: rebuild
            self._heap = [(w, n) for n, w in self._when.items() if w < math.inf]
            heapq.heapify(self._heap)

    def due(self, now: float, limit: int) -> list[int]:
        """The runs to step now, oldest first: every-pass runs, and up to `limit` whose time has come."""
        found: list[int] = []
        while self._heap and self._heap[0][0] <= now and len(found) < limit:
            when, num = heapq.heappop(self._heap)
            if self._when.get(num) == when:
                del self._when[num]
                found.append(num)
        found += self._every
        return sorted(set(found))

    def every_pass(self, num: int) -> bool:
        """Whether the run is looked at on every pass."""
        return num in self._every

    def defer(self, nums: list[int], now: float) -> None:
        """Runs `due` returned that were not stepped: due again at once (every-pass runs stay so)."""
        for num in nums:
            if num not in self._every and num in self._items:
                self.due_at(num, now)

    def next_due(self) -> float:
        """When the next run needs a look (infinity: none does)."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else math.inf

    def busy(self, backoff: Mapping[str, object]) -> bool:
        """An every-pass run about to move (SUBMITTING, STARTING) and not waiting to retry: tick quickly."""
        for num in self._every:
            run = self._items[num][0]
            if run.status in EVERY_PASS_BUSY and run.id not in backoff:
                return True
        return False

    def _drop_stale(self) -> None:
        while self._heap and self._when.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)

    # -- PENDING queues -----------------------------------------------------------------------

    def refresh(self, num: int) -> None:
        """Queue the run if it is PENDING, else take it out of its queue."""
        item = self._items.get(num)
        if item is not None and item[0].status == TaskStatus.PENDING:
            pool = item[0].pool
            if self._queued.get(num) != pool:
                self._unqueue(num)
                bisect.insort(self._queues.setdefault(pool, []), num)
                self._queued[num] = pool
                self._arrived.add(num)
                self.wants_schedule = True
        else:
            self._unqueue(num)

    def _unqueue(self, num: int) -> None:
        pool = self._queued.pop(num, None)
        if pool is None:
            return
        queue = self._queues[pool]
        del queue[bisect.bisect_left(queue, num)]
        if not queue:
            del self._queues[pool]
        self._arrived.discard(num)
        self.wants_schedule = True  # the head of a queue may have left

    def queues(self) -> list[list[int]]:
        """Each pool's PENDING runs in submission order (copies)."""
        return [list(q) for q in self._queues.values()]

    def pending(self) -> list[int]:
        """Every PENDING run in submission order."""
        return sorted(self._queued)

    def take_arrivals(self) -> list[int]:
        """Runs queued since the last call, in submission order."""
        found = sorted(self._arrived)
        self._arrived.clear()
        return found
