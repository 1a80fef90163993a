"""The runner: the reconcile loop that moves runs through the states of spec §6.2 through the executor.

API handlers only record what the user wants (a new SUBMITTING run, a STOPPING run); each `tick(now)`
compares the store with what the executor observes and makes one step for every live run: submit, grant
capacity in submission order and launch, notice pods running and exiting, stop with SIGTERM then SIGKILL,
clean up leftovers, send callbacks (spec §8). State lives in the database only, so a restarted runner simply
carries on: pods whose processes survived are re-attached (the executor finds them from the handles it returned
at launch, stored with the pods), vanished ones end their run FAILED.

One runner per server process drives the whole store; with several API replicas only the leader should
tick (`is_leader`), which is the one hook leader election needs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tione_server.callbacks import callback_body
from tione_server.events import state_changed
from tione_server.executors.base import (
    Executor,
    Foresight,
    LaunchError,
    Observation,
    Placement,
    Placer,
    RunSpec,
    Submission,
)
from tione_server.executors.plan import plan_pods, pod_config, run_spec
from tione_server.liveset import LiveSet
from tione_server.models import (
    LIVE_POD_STATUSES,
    TERMINAL_STATUSES,
    ChargeStatus,
    ChargeType,
    Pod,
    PodStatus,
    Run,
    Task,
    TaskStatus,
    runtime_seconds,
)
from tione_server.scheduling import NEVER_FITS, WAITING, Demand, Hold, Round, Scheduler, Slot
from tione_server.store import Store
from tione_server.store.runs import Move

log = logging.getLogger("tione_server.runner")

POD_IP = "127.0.0.1"
FAST_INTERVAL = 0.02
"""Seconds between ticks while a run is about to move (SUBMITTING, STARTING): create-to-RUNNING stays quick."""
RETRY_FIRST = 0.5
RETRY_MAX = 30.0
"""A run whose step fails for a reason worth retrying waits 0.5 s, 1 s, 2 s, ... at most 30 s (issue 7 A3)."""
SUBMIT_GIVE_UP = 300.0
"""Seconds a submission may keep failing that way before the run ends SUBMIT_FAILED with the last error."""
INTERNAL = "cannot prepare the run: internal error (see the server log)"
SWEEP_INTERVAL = 30.0
"""Seconds between sweeps of what a Placer executor holds for runs the store no longer has live (issue 10 item 5)."""
STEP_BATCH = 256
"""Most runs stepped in one tick (issue 12 target 5): the runner shares the API's process, so a tick stays short and
the rest follow on the next quick ticks."""
GRANT_BATCH = 128
"""Most PENDING runs granted capacity in one tick, for the same reason."""
GRANT_CHUNK = 16
"""Grants written in one transaction (one commit), then launched, before the tick's budget is looked at again."""
MOVE_CHUNK = 16
"""Moves of the runs a tick steps (submitted, started, ended) written in one transaction, as grants are: one commit
each made a queue drain at the pace of PostgreSQL's commits (issue 12 target 5)."""
FOLD_INTERVAL = 0.1
"""Seconds between folds of the task count changes (a write transaction): often enough that what every list adds
stays small, not on every quick pass of a busy runner."""
SWITCH_INTERVAL = 0.001
"""Seconds a thread waiting for the GIL waits at most while the runner's thread holds it (sys.setswitchinterval)."""
TICK_BUDGET = 0.02
"""Seconds of the runner thread's CPU that stepping and granting in one tick may spend before leaving the rest to
the next (runs an executor wants looked at on every pass excepted): list latency stays flat while the runner is
busy (issue 12 target 5). CPU, not wall time: waiting on the database or the disk releases the GIL, and counted
as spent it had PostgreSQL grant a third of what SQLite grants a tick."""
FEED_BATCH = 1024
"""Most changed runs read from the store's change feed in one tick."""
RESYNC_INTERVAL = 60.0
"""Seconds between safety sweeps that compare the in-memory live set with the store, a page per tick: they catch
whatever the change feed could not tell (a run deleted with its task, a write that bypassed the feed)."""
RESYNC_PAGE = 500
LAUNCH_BATCH = 64
"""Most pods of one run launched per tick (issue 7 B4): a task the catalogue allows thousands of pods starts over
several quick ticks, and every other run still moves on each of them."""


class Sender(Protocol):
    """What the runner needs of callbacks.CallbackSender."""

    def send(self, url: str, body: dict[str, object]) -> None: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the pods say about a run (spec §6.5): still running, succeeded, or failed and why."""

    outcome: str
    """`running`, `succeed` or `failed`."""
    reason: str = ""
    at: float | None = None
    """When the deciding pod ended."""


def verdict(mode: str, pods: Sequence[Pod]) -> Verdict:
    """Spec §6.5 exit rules over pod states (FAILED pods carry exit_code None when they were lost)."""
    failed = [p for p in pods if p.status == PodStatus.FAILED]
    if mode in ("MPI", "HOROVOD"):
        launcher = next((p for p in pods if p.role == "LAUNCHER"), None)
        lost = [p for p in failed if p.exit_code is None]
        if launcher is not None and launcher.status == PodStatus.SUCCEEDED:
            return Verdict("succeed", at=launcher.end_time)
        if launcher is not None and launcher.status == PodStatus.FAILED:
            return Verdict("failed", _failure(launcher), launcher.end_time)
        if lost:
            return Verdict("failed", _failure(lost[0]), lost[0].end_time)
        return Verdict("running")
    if failed:
        first = min(failed, key=lambda p: (p.end_time or 0.0, p.index))
        return Verdict("failed", _failure(first), first.end_time)
    deciders = [p for p in pods if p.role != "PS"] if mode == "PS_WORKER" else list(pods)
    if deciders and all(p.status == PodStatus.SUCCEEDED for p in deciders):
        return Verdict("succeed", at=max(p.end_time or 0.0 for p in deciders))
    return Verdict("running")


def _next_batch(unlaunched: Sequence[Pod]) -> list[Pod]:
    """The pods to launch this tick: all of them when they fit one batch; else LAUNCH_BATCH workers, an MPI
    launcher going with the last of its workers."""
    if len(unlaunched) <= LAUNCH_BATCH:
        return list(unlaunched)
    return [p for p in unlaunched if p.role != "LAUNCHER"][:LAUNCH_BATCH]


def _launched(pods: Sequence[Pod], handles: dict[str, str], now: float) -> None:
    """Record what the executor returned for the pods it started: their handles and the launch time."""
    for p in pods:
        if p.name in handles:
            p.handle, p.launched_at = handles[p.name], now


def _failure(pod: Pod) -> str:
    """FailureReason text of spec §6.5."""
    if pod.exit_code is None:
        return f"{pod.suffix} lost: {pod.reason or 'its process is gone and left no exit code'}"
    if pod.reason:  # what the executor knows of the exit (issue 9 item 3: "was killed: out of memory ...")
        return f"{pod.suffix} {pod.reason}"
    return f"{pod.suffix} exited with code {pod.exit_code}"


@dataclass
class _Unwritten:
    """A stepped run's move, applied to the run in memory and not yet written (`Runner._moved`)."""

    task: Task
    move: Move
    before: str
    reason: str


def _pods_live(run: Run) -> bool:
    return any(p.status in LIVE_POD_STATUSES for p in run.pods)


def _holds(run: Run) -> bool:
    """Whether a run holds its capacity: granted and not yet ended (a run stopped while PENDING is STOPPING
    without ever having held anything)."""
    if run.status in (TaskStatus.STARTING, TaskStatus.RUNNING):
        return True
    return run.status == TaskStatus.STOPPING and any(p.node or p.launched_at is not None for p in run.pods)


def _grant_move(run: Run, task: Task) -> Move:
    """PENDING -> STARTING: billing starts for a postpaid task, the Message clears, the pods' nodes are saved."""
    charge = ChargeStatus.BILLING if task.charge_type == ChargeType.POSTPAID_BY_HOUR else ChargeStatus.NOT_BILLING
    fields = {"status": TaskStatus.STARTING, "charge_status": charge, "message": ""}
    return Move(run, (TaskStatus.PENDING,), fields, task_doc={"Message": ""}, pods_save=run.pods)


def _demands(run: Run, task: Task) -> list[Demand]:
    """What each pod of the run needs, in pod order, with its role's card model."""
    return [Demand(p.cpu, p.memory, p.gpu, str(pod_config(task.doc, p).get("GpuType") or "")) for p in run.pods]


def _holds_of(run: Run) -> list[Hold]:
    """What a run's pods hold where they were placed. Pods do not record their GPU indices yet (no executor uses
    them before the sandbox, issue 9), so the scheduler counts their cards as a fresh placement would."""
    return [Hold(run.pool, Slot(p.node), Demand(p.cpu, p.memory, p.gpu)) for p in run.pods]


@dataclass(slots=True)
class Backoff:
    """A run whose last step failed for a reason worth retrying: when it failed first, how often, when next."""

    since: float
    status: str
    """The run's status when it failed: a new status (a Stop came) is a new step, tried at once."""
    attempts: int = 0
    next_at: float = 0.0

    def failed(self, now: float) -> float:
        """Record one more failure at `now`; returns the delay before the next try."""
        delay = min(RETRY_MAX, RETRY_FIRST * 2.0 ** min(self.attempts, 16))
        self.attempts += 1
        self.next_at = now + delay
        return delay


class Lease:
    """Leadership through a database lease, so only one runner per store ticks (`serve --workers N`)."""

    NAME = "runner_lease"

    def __init__(self, store: Store, ttl: float = 3.0, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        # Host and process first, so /metrics and /readyz say which replica leads (issue 10 item 10).
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._until = 0.0

    def __call__(self) -> bool:
        """Whether this process leads now; renews the lease when half of it has passed."""
        now = self.clock()
        if now < self._until - self.ttl / 2:
            return True
        try:
            held = self.store.leases.hold(self.NAME, self.owner, now, self.ttl)
        except Exception:
            log.exception("runner lease: database error")
            held = False
        self._until = now + self.ttl if held else 0.0
        return held

    def release(self) -> None:
        if self._until:
            self.store.leases.release(self.NAME, self.owner)
            self._until = 0.0


class Runner:
    """Reconciles runs with the executor; `tick` is one pass, `start`/`stop` run it in a thread."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        scheduler: Scheduler,
        *,
        callbacks: Sender | None = None,
        stop_grace_seconds: float = 10.0,
        interval: float = 0.25,
        offset_hours: int = 8,
        clock: Callable[[], float] = time.time,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.executor = executor
        self.scheduler = scheduler
        self.callbacks = callbacks
        self.grace = stop_grace_seconds
        self.interval = interval
        self.offset_hours = offset_hours
        self.clock = clock
        self.is_leader = is_leader
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._backoff: dict[str, Backoff] = {}
        """Runs waiting to retry a failed step, by run id; memory only (a restart simply tries again)."""
        self._placer = executor if isinstance(executor, Placer) else None
        self._foresight = executor if isinstance(executor, Foresight) else None
        self._swept_at = 0.0
        self._live = LiveSet()
        """The store's live runs as this runner last read them; `tick` keeps it current from the change feed."""
        self._specs: dict[str, tuple[int, RunSpec]] = {}
        """run_spec by run id, with the pod count it was built for (a run's definition never changes)."""
        self._round_kept: Round | None = None
        self._deadline = 0.0
        self._folded_at = -math.inf
        self._held: dict[int, tuple[Hold, ...]] = {}
        """What each holding run holds, as counted in the granting round."""
        self._holding_moves = False
        """While a tick steps runs: their moves are applied in memory and written MOVE_CHUNK at a time."""
        self._unwritten: list[_Unwritten] = []
        self._undo: dict[int, dict[str, Any]] = {}
        """What each run with unwritten moves was before them: put back should the write be refused."""

    # -- the background loop --------------------------------------------------------------------

    def start(self) -> None:
        """Run `tick` in a daemon thread until `stop`."""
        # The loop shares the API's process: a request waiting for the GIL while a tick runs Python code gets it
        # after at most this long (the default, 5 ms, is several list requests' worth; issue 12 target 5).
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self._stopped.clear()
        self._thread = threading.Thread(target=self._loop, name="tione-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (pods keep running; a later runner re-attaches them)."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Tick soon: an API handler changed something."""
        self._wake.set()

    def forget(self) -> None:
        """Drop the in-memory live set: the next tick reloads it whole (leadership lost, and perhaps regained
        after another replica changed runs)."""
        self._live = LiveSet()
        self._specs.clear()
        self._round_kept = None
        self._held.clear()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            changed = False
            if self.is_leader():
                try:
                    changed = self.tick(budget=TICK_BUDGET)
                except Exception:  # a bad tick (database away, a bug) must not end the loop
                    log.exception("runner tick failed")
                    self.forget()  # what it read may be half applied: start again from the store
            elif self._live.loaded:
                self.forget()
            ended = time.monotonic()
            self._wake.wait(self._pause(changed))
            self._wake.clear()
            rest = FAST_INTERVAL - (time.monotonic() - ended)
            if rest > 0:  # woken at once (a burst of creates): one pass for the lot, not one per request
                self._stopped.wait(rest)

    def _pause(self, changed: bool) -> float:
        """Seconds until the next tick: soon after a change, else until the next run is due (at most `interval`)."""
        if changed or self._busy:
            return FAST_INTERVAL
        return min(self.interval, max(FAST_INTERVAL, self._live.next_due() - self.clock()))

    # -- one pass -------------------------------------------------------------------------------

    def tick(self, now: float | None = None, *, budget: float = math.inf) -> bool:
        """One reconcile pass at time `now` (default: the clock); True when any run or pod changed.

        It steps the runs that changed in the store since the last pass (the change feed), those whose time has
        come (the executor's `next_change`, a retry, a SIGKILL due) and, for executors without foresight, every
        live run; then grants capacity when some could be placed. Its cost follows the changes, not the number of
        live runs (issue 12 target 5)."""
        now = self.clock() if now is None else now
        if not self._live.loaded:
            self._reload(now)
        else:
            self._read_changes(now)
        self._resync(now)
        live = self._live
        changed = False
        stepped: list[int] = []
        self._deadline = time.thread_time() + budget
        due = live.due(now, STEP_BATCH)
        self._holding_moves = True
        try:
            changed |= self._step_all(due, stepped, now)
        finally:
            self._holding_moves = False
            self._write_moves()
        granted = self._schedule(now)
        changed |= bool(granted)
        self._finish_bookkeeping([*stepped, *granted], now)
        for num in [*stepped, *granted]:
            self._plan(num, now)
        if self._placer is not None and now - self._swept_at >= SWEEP_INTERVAL:
            self._swept_at = now
            try:
                self._placer.sweep({run.id for run, _ in live.items()})
            except Exception:
                log.exception("runner: sweeping the executor's leftovers failed")
        if not now - FOLD_INTERVAL < self._folded_at <= now:
            self._folded_at = now
            try:
                self.store.tasks.fold_counts()  # keeps the unfolded count changes that every list reads small
            except Exception:
                log.exception("runner: folding task counts failed")
        self._busy = live.busy(self._backoff)
        return changed

    def _step_all(self, due: list[int], stepped: list[int], now: float) -> bool:
        """Step the runs due, as many as the tick's budget allows (the rest deferred to the next pass); their
        numbers are added to `stepped`. Whether any changed."""
        live = self._live
        changed = False
        for i, num in enumerate(due):
            if self._spent() and not live.every_pass(num):
                live.defer(due[i:], now)  # the rest on the next pass, soon
                break
            item = live.get(num)
            if item is None:
                continue
            run, task = item
            stepped.append(num)
            waiting = self._backoff.get(run.id)
            if waiting is not None and waiting.status != run.status:
                del self._backoff[run.id]  # a new status is a new step (e.g. stopped while its launch kept failing)
                waiting = None
            if waiting is not None and now < waiting.next_at:
                continue
            try:
                changed |= self._step(run, task, now)
            except Exception:  # one broken run must not hold up the others, nor spin (issue 7 A3)
                self._failed_step(run, now)
            else:
                if waiting is not None and run.status != TaskStatus.SUBMITTING:  # _submit keeps its own
                    self._backoff.pop(run.id, None)
            live.refresh(num)  # a run just PENDING is granted capacity on this same pass,
            self._track_capacity(run)  # and capacity just given back is granted again on it
        return changed

    # -- the live set -----------------------------------------------------------------------------

    def _reload(self, now: float) -> None:
        """Read every live run (on start, and when leadership is gained again); all are stepped on this pass."""
        self.forget()
        cursor = self.store.runs.cursor()  # first: a change made during the load is read again, never lost
        self._live = LiveSet(loaded=True, cursor=cursor)
        self._live.resynced_at = now
        for run, task in self.store.runs.live():
            self._adopt(run, task, now)
        live_ids = {run.id for run, _ in self._live.items()}
        for run_id in [r for r in self._backoff if r not in live_ids]:
            del self._backoff[run_id]

    def _read_changes(self, now: float) -> None:
        """Runs written since the last pass, by anyone (the API, this runner, another replica): stepped now."""
        live = self._live
        found, live.cursor = self.store.runs.changed(live.cursor, FEED_BATCH, live.seq_of)
        if live.suspects:
            suspects, live.suspects = live.suspects, set()
            again = self.store.runs.of_nums(sorted(suspects))
            for num in suspects - {run.num for run, _ in again}:
                self._drop(num)  # deleted with its task, or no longer live
            found += again
        for run, task in found:
            self._adopt(run, task, now)

    def _adopt(self, run: Run, task: Task, now: float) -> None:
        """Take the store's copy of a run and step it on this pass, unless it is the copy in memory."""
        before = self._live.get(run.num)
        if before is not None and before[0] == run:
            return  # this runner's own write coming back through the feed: nothing new
        if before is not None and len(before[0].pods) != len(run.pods):
            self._specs.pop(run.id, None)
        self._live.put(run, task)
        self._track_capacity(run)
        self._live.due_at(run.num, now)

    def _resync(self, now: float) -> None:
        """The safety sweep: one page of the store's live runs compared with memory, every RESYNC_INTERVAL."""
        live = self._live
        if live.resync_from is None:
            if now - live.resynced_at < RESYNC_INTERVAL:
                return
            live.resync_from = 0
        page = self.store.runs.live_page(live.resync_from, RESYNC_PAGE)
        upto = page[-1][0].num if len(page) == RESYNC_PAGE else None
        seen = {run.num for run, _ in page}
        for num in live.nums_in(live.resync_from, upto):
            if num not in seen:  # gone from the store (its task deleted) or no longer live
                self._drop(num)
        for run, task in page:
            mine = live.get(run.num)
            if mine is None or mine[0] != run:
                log.info("runner: run %s changed without the change feed telling; resynced", run.id)
                self._adopt(run, task, now)
        if upto is None:
            live.resync_from, live.resynced_at = None, now
        else:
            live.resync_from = upto

    def _drop(self, num: int) -> None:
        item = self._live.pop(num)
        if item is not None:
            self._backoff.pop(item[0].id, None)
            self._specs.pop(item[0].id, None)
            self._track_capacity(item[0], gone=True)

    def _plan(self, num: int, now: float) -> None:
        """After a step: when to look at the run again, or drop it once the runner has nothing left to do."""
        item = self._live.get(num)
        if item is None:
            return
        run, task = item
        self._track_capacity(run)
        if run.status in TERMINAL_STATUSES and not run.callback and not _pods_live(run):
            self._drop(num)
            return
        self._live.refresh(num)
        if run.status == TaskStatus.PENDING:
            self._live.due_at(num, math.inf)  # granting capacity moves it, not time
            return
        due = self._next_look(run, task, now)
        waiting = self._backoff.get(run.id)
        if waiting is not None and waiting.status == run.status:
            due = max(due, waiting.next_at) if due is not None else due
        self._live.due_at(num, due)

    def _next_look(self, run: Run, task: Task, now: float) -> float | None:
        """When the run may need a step without anyone changing it; None: on every pass."""
        if self._foresight is None:
            return None
        if run.status in (TaskStatus.STARTING, TaskStatus.RUNNING) and any(p.launched_at is None for p in run.pods):
            return now  # more pods to launch
        if run.status in TERMINAL_STATUSES and not any(p.status in LIVE_POD_STATUSES for p in run.pods):
            return now  # a callback still to send
        try:
            due = self._foresight.next_change(self._spec(run, task), run, now)
        except Exception:
            log.exception("runner: asking when run %s changes next failed", run.id)
            return None
        if due is None:
            return None
        if (
            run.term_sent_at is not None
            and not run.kill_sent
            and (run.status == TaskStatus.STOPPING or run.status in TERMINAL_STATUSES)
        ):
            due = min(due, run.term_sent_at + self.grace)  # SIGKILL after the grace period
        return due

    def _spec(self, run: Run, task: Task) -> RunSpec:
        """run_spec, built once per run (and again once its pods are planned)."""
        cached = self._specs.get(run.id)
        if cached is not None and cached[0] == len(run.pods):
            return cached[1]
        spec = run_spec(run, task)
        self._specs[run.id] = (len(run.pods), spec)
        return spec

    def _failed_step(self, run: Run, now: float) -> None:
        """Log a step that raised and put the run on backoff (the caller is in an `except` block)."""
        delay = self._backoff.setdefault(run.id, Backoff(now, run.status)).failed(now)
        log.exception("runner: run %s failed to advance; next try in %.1f s", run.id, delay)

    def _step(self, run: Run, task: Task, now: float) -> bool:
        status = run.status
        if status == TaskStatus.SUBMITTING:
            return self._submit(run, task, now)
        if status in (TaskStatus.STARTING, TaskStatus.RUNNING):
            return self._watch(run, task, now)
        if status == TaskStatus.STOPPING:
            return self._stopping(run, task, now)
        if status in TERMINAL_STATUSES:
            return self._cleanup(run, task, now)
        return False

    def _submit(self, run: Run, task: Task, now: float) -> bool:
        spec = self._spec(run, task)
        try:
            result = self.executor.submit(spec, now)
        except Exception:  # a bug or the machine: retried like a transient failure, never in a tight loop
            log.exception("runner: preparing run %s failed", run.id)
            result = Submission(ready=False, error=INTERNAL, retry=True)
        if result.error and result.retry:
            return self._retry_submit(run, task, result.error, now)
        self._backoff.pop(run.id, None)
        if result.error:  # the request's own fault: the same every time, so never retried (issue 7 A3)
            return self._finish(run, task, TaskStatus.SUBMIT_FAILED, result.error, now)
        if not result.ready:
            return False
        pods = plan_pods(run.id, task.doc)
        if self._move(run, task, [TaskStatus.SUBMITTING], pods_insert=pods, status=TaskStatus.PENDING):
            run.pods = pods
            return True
        return False

    def _retry_submit(self, run: Run, task: Task, error: str, now: float) -> bool:
        """Back off before preparing the run again; after SUBMIT_GIVE_UP seconds of failures, SUBMIT_FAILED."""
        backoff = self._backoff.setdefault(run.id, Backoff(now, run.status))
        if now - backoff.since >= SUBMIT_GIVE_UP:
            self._backoff.pop(run.id, None)
            reason = f"{error} (still failing after {backoff.attempts + 1} attempts)"
            return self._finish(run, task, TaskStatus.SUBMIT_FAILED, reason, now)
        delay = backoff.failed(now)
        log.warning("runner: run %s: %s; attempt %d, next in %.1f s", run.id, error, backoff.attempts, delay)
        return False

    def _move(
        self,
        run: Run,
        task: Task,
        expected: Sequence[str],
        reason: str = "",
        *,
        task_doc: dict[str, Any] | None = None,
        pods_insert: Sequence[Pod] = (),
        **fields: Any,
    ) -> bool:
        """store.transition, and a log line when it happened (issue 7 F16)."""
        move = Move(run, tuple(expected), fields, task_doc=task_doc, pods_insert=pods_insert)
        return self._moved(task, move, reason)

    def _moved(self, task: Task, move: Move, reason: str = "") -> bool:
        """`_move` of a Move. While a tick steps runs, the move is applied to the run at once and written with
        the next MOVE_CHUNK (`_write_moves`); False only when that write, made now, refused it."""
        run, before = move.run, move.run.status
        if self._holding_moves:
            undo = self._undo.setdefault(run.num, {"pods": run.pods})
            for k, v in move.fields.items():
                undo.setdefault(k, getattr(run, k))
                setattr(run, k, v)
            if move.pods_insert:
                run.pods = list(move.pods_insert)
            self._unwritten.append(_Unwritten(task, move, before, reason))
            if len(self._unwritten) >= MOVE_CHUNK:
                return run.num not in self._write_moves()
            return True
        if not self.store.runs.transition_all([move]):
            self._live.suspects.add(run.num)  # changed meanwhile (the feed tells how) or deleted: read it again
            return False
        state_changed(task.id, run.id, task.scope.uin, before, run.status, reason)
        return True

    def _write_moves(self) -> set[int]:
        """Write the moves held so far in one transaction; should it be refused (a run changed meanwhile), put
        every run back as it was before its moves and write each move on its own, in order. A run with a move
        that could not be written keeps only the moves before it and is read again from the store; the numbers
        of those runs."""
        held, self._unwritten = self._unwritten, []
        undo, self._undo = self._undo, {}
        if not held:
            return set()
        try:
            written = self.store.runs.transition_all([h.move for h in held])
        except Exception:  # the database: every run as it was, read again and stepped again
            log.exception("runner: writing %d moves failed", len(held))
            for num, before in undo.items():
                self._put_back(num, before)
                self._settle(num)
            self._live.suspects |= set(undo)
            return set(undo)
        refused: set[int] = set()
        kept = [True] * len(held)
        if not written:
            for num, before in undo.items():
                self._put_back(num, before)  # as before the moves; then each run's written on their own
            for i, h in enumerate(held):
                run = h.move.run
                if run.num in refused or not self.store.runs.transition_all([h.move]):
                    refused.add(run.num)  # and the run's later moves, which assumed this one, are not written
                    kept[i] = False
                elif h.move.pods_insert:
                    run.pods = list(h.move.pods_insert)
            for num in undo:
                self._settle(num)
            self._live.suspects |= refused  # changed meanwhile (the feed tells how) or deleted: read it again
        for h, ok in zip(held, kept, strict=True):
            if ok:
                run = h.move.run
                state_changed(h.task.id, run.id, h.task.scope.uin, h.before, h.move.fields["status"], h.reason)
        return refused

    def _put_back(self, num: int, before: dict[str, Any]) -> None:
        """A run as it was before its unwritten moves."""
        item = self._live.get(num)
        if item is not None:
            for k, v in before.items():
                setattr(item[0], k, v)

    def _settle(self, num: int) -> None:
        """A run's queue place and counted capacity after its state changed outside a step."""
        item = self._live.get(num)
        if item is not None:
            self._live.refresh(num)
            self._track_capacity(item[0])

    # -- capacity (spec §6.2: PENDING until capacity, granted in submission order; scheduling.py decides) -------

    def _schedule(self, now: float) -> list[int]:
        """Grant capacity to PENDING runs; the numbers of those granted. Each pool's queue is walked from its head
        until a run must wait, and only when something that may let one in happened since the last pass."""
        live = self._live
        if self._placer is not None:
            return self._schedule_placed(self._placer, live.pending(), now)
        if not live.wants_schedule:
            return []
        live.wants_schedule = False
        plan = self._round()
        plan.next_pass()
        granted: list[int] = []
        chunk: list[tuple[Run, Task]] = []
        for queue in live.queues():
            for num in queue:
                if len(granted) + len(chunk) >= GRANT_BATCH or self._spent():
                    live.wants_schedule = True  # the rest on the next pass
                    break
                run, task = live[num]
                demands = _demands(run, task)
                offer = plan.offer(run.pool, demands)
                if offer.slots is None:
                    self._say(run, offer.message)
                    if offer.message == NEVER_FITS:
                        continue  # never fits: it does not hold up the runs behind it
                    break
                for pod, slot in zip(run.pods, offer.slots, strict=True):
                    pod.node = slot.node
                self._track_capacity(run, granting=True)  # counted in the round at once, for the offers after it
                chunk.append((run, task))
                if len(chunk) >= GRANT_CHUNK:
                    granted += self._grant_all(chunk, now)
                    chunk = []
        granted += self._grant_all(chunk, now)
        for num in live.take_arrivals():  # runs queued behind a waiting one: say why they wait
            item = live.get(num)
            if item is not None and item[0].status == TaskStatus.PENDING:
                offer = plan.offer(item[0].pool, _demands(*item))
                if offer.slots is None:
                    self._say(item[0], offer.message)
        return granted

    def _spent(self) -> bool:
        """Whether this tick has used its TICK_BUDGET of the thread's CPU time: what a request waiting for the GIL
        waits on. A wait on the database or the disk releases the GIL, so it does not count."""
        return time.thread_time() > self._deadline

    def _say(self, run: Run, message: str) -> None:
        """Set a PENDING run's Message when it changed."""
        if run.message != message and not self.store.runs.update(run, message=message):
            self._live.suspects.add(run.num)

    def _round(self) -> Round:
        """The granting round over what live runs hold, kept from pass to pass and built again only when what
        was given back cannot be subtracted exactly (GPU units)."""
        if self._round_kept is None:
            self._round_kept = self.scheduler.round(h for holds in self._held.values() for h in holds)
        return self._round_kept

    def _track_capacity(self, run: Run, *, gone: bool = False, granting: bool = False) -> None:
        """Keep what the run holds counted: added when it starts holding (or is `granting`: about to), given back
        when it stops."""
        holds = None if gone or not (granting or _holds(run)) else tuple(_holds_of(run))
        before = self._held.get(run.num)
        if holds == before:
            return
        if holds is None:
            del self._held[run.num]
        else:
            self._held[run.num] = holds
        if before is not None:
            self._live.wants_schedule = True  # capacity given back: a waiting run may fit now
            if self._round_kept is not None and not self._round_kept.release(before):
                self._round_kept = None
        if holds is not None and self._round_kept is not None:
            self._round_kept.hold(holds)

    def _schedule_placed(self, placer: Placer, pending: list[int], now: float) -> list[int]:
        """Issue 10 item 2: the cluster decides (a Ray placement group per run); runs of a pool are asked in
        submission order, and one that waits holds up the later ones unless it can never fit."""
        blocked: set[str] = set()
        granted: list[int] = []
        for num in pending:
            run, task = self._live[num]
            if run.pool in blocked:
                placed = Placement(False, WAITING)
            else:
                try:
                    placed = placer.place(self._spec(run, task), run, now)
                except Exception:
                    log.exception("runner: placing run %s failed", run.id)
                    placed = Placement(False, WAITING)
            if not placed.ready:
                if placed.blocks:
                    blocked.add(run.pool)
                self._say(run, placed.message)
                continue
            if self._grant(run, task, now):
                granted.append(num)
        return granted

    def _grant(self, run: Run, task: Task, now: float) -> bool:
        """PENDING -> STARTING (billing starts for postpaid tasks) and launch the first pods."""
        if not self._moved(task, _grant_move(run, task)):
            return False
        self._launch_first([(run, task)], now)
        return True

    def _grant_all(self, chunk: Sequence[tuple[Run, Task]], now: float) -> list[int]:
        """`_grant` for runs already counted in the round (`_track_capacity(granting=True)`), their moves in one
        transaction: one commit for the lot, where one each made PENDING drain at the pace of commits. Should one
        of them have changed meanwhile (a Stop), each is moved on its own; those that cannot be give back their
        count. The numbers of those granted."""
        if not chunk:
            return []
        before = [run.status for run, _ in chunk]
        if self.store.runs.transition_all([_grant_move(run, task) for run, task in chunk]):
            moved = list(chunk)
            for (run, task), was in zip(chunk, before, strict=True):
                state_changed(task.id, run.id, task.scope.uin, was, run.status, "")
        else:
            moved = []
            for run, task in chunk:
                if self._moved(task, _grant_move(run, task)):
                    moved.append((run, task))
                else:
                    self._track_capacity(run)  # not granted: what was counted for it is given back
        self._launch_first(moved, now)
        return [run.num for run, _ in moved]

    def _launch_first(self, granted: Sequence[tuple[Run, Task]], now: float) -> None:
        """Launch the first pods of runs just granted; their handles saved in one transaction."""
        launched: list[tuple[Run, Sequence[Pod]]] = []
        for run, task in granted:
            try:
                pods = _next_batch(run.pods)
                if self._launch(run, task, pods, now, save=False):
                    launched.append((run, pods))
            except Exception:  # launched again from STARTING, after a backoff
                self._failed_step(run, now)
        try:
            self.store.runs.save_pods_of(launched)
        except Exception:  # as when one run's save failed: each steps again after a backoff, its pods known here
            for run, _ in launched:
                self._failed_step(run, now)

    def _launch(self, run: Run, task: Task, pods: Sequence[Pod], now: float, *, save: bool = True) -> bool:
        """Launch pods of a STARTING run and save their handles (`save`), or finish the run FAILED when the
        executor refuses; whether they were launched (unsaved when not `save`: the caller saves them)."""
        spec = self._spec(run, task)
        try:
            handles = self.executor.launch(spec, pods, now)
        except LaunchError as err:
            _launched(pods, err.handles, now)  # the pods it did start are watched until they are gone
            self.store.runs.save_pods(run, pods)
            for p in pods:
                p.status = PodStatus.FAILED if p.launched_at is None else p.status
            self._finish(run, task, TaskStatus.FAILED, str(err), now)
            return False
        _launched(pods, handles, now)
        if save:
            self.store.runs.save_pods(run, pods)
        return True

    # -- watching pods --------------------------------------------------------------------------

    def _apply(self, run: Run, seen: dict[str, Observation], now: float, *, ending: str = "") -> list[Pod]:
        """Fold observations into the pod records; `ending` is the status a pod gets once gone while the run
        is being stopped or cleaned up (TERMINATED, or SUCCEEDED for PS pods after a success)."""
        changed: list[Pod] = []
        for pod in run.pods:
            obs = seen.get(pod.name)
            if obs is None:
                continue
            before = (pod.status, pod.handle, pod.start_time, pod.end_time, pod.exit_code)
            pod.handle = obs.handle or pod.handle
            if pod.launched_at is None:
                pod.launched_at = now
            if obs.started_at is not None and pod.start_time is None and obs.phase != "PENDING":
                pod.start_time = obs.started_at
                pod.ip = POD_IP
            if obs.phase in ("LOST", "EXITED") and obs.reason:
                pod.reason = obs.reason
            if obs.phase == "RUNNING" and pod.status == PodStatus.PENDING:
                pod.status = PodStatus.TERMINATING if ending else PodStatus.RUNNING
            elif (
                ending and obs.phase in ("RUNNING", "PENDING") and pod.status in (PodStatus.RUNNING, PodStatus.PENDING)
            ):
                pod.status = PodStatus.TERMINATING
            elif obs.phase in ("EXITED", "LOST") and pod.status in LIVE_POD_STATUSES:
                pod.end_time = obs.ended_at if obs.ended_at is not None else now
                pod.exit_code = obs.exit_code
                if ending:
                    pod.status = ending
                else:
                    pod.status = PodStatus.SUCCEEDED if obs.exit_code == 0 else PodStatus.FAILED
            if (pod.status, pod.handle, pod.start_time, pod.end_time, pod.exit_code) != before:
                changed.append(pod)
        return changed

    def _watch(self, run: Run, task: Task, now: float) -> bool:
        spec = self._spec(run, task)
        seen = self.executor.observe(spec, run, now)
        # Pods not launched yet (the rest of a large run, or a crash between granting capacity and starting them).
        missing = [p for p in run.pods if p.launched_at is None and p.name not in seen]
        if missing:
            self._launch(run, task, _next_batch(missing), now)
            return True
        changed_pods = self._apply(run, seen, now)
        changed = bool(changed_pods)
        unsaved: Sequence[Pod] = changed_pods  # written with the move below, or on their own
        if run.status == TaskStatus.STARTING:
            started = all(p.status != PodStatus.PENDING for p in run.pods)
            if not started and not any(p.status == PodStatus.FAILED for p in run.pods):
                self.store.runs.save_pods(run, unsaved)
                return changed
            if started:
                start = max((p.start_time for p in run.pods if p.start_time is not None), default=now)
                fields = {"status": TaskStatus.RUNNING, "start_time": int(start)}
                if not self._moved(task, Move(run, (TaskStatus.STARTING,), fields, pods_save=unsaved)):
                    self.store.runs.save_pods(run, unsaved)  # refused: the pods are as observed all the same
                    return changed
                unsaved = ()
            changed = True
        result = verdict(spec.mode, run.pods)
        if result.outcome == "running":
            self.store.runs.save_pods(run, unsaved)
            return changed
        end = result.at if result.at is not None else now
        if result.outcome == "succeed":
            finished = self._finish(run, task, TaskStatus.SUCCEED, "", end, pods_save=unsaved)
        else:
            finished = self._finish(run, task, TaskStatus.FAILED, result.reason, end, pods_save=unsaved)
        if not finished:
            self.store.runs.save_pods(run, unsaved)
        leftovers = [p for p in run.pods if p.status in LIVE_POD_STATUSES]
        if leftovers:  # PS pods after success, the rest after a failure (spec §6.5)
            self.executor.signal(spec, run, leftovers, kill=False, now=now)
            self.store.runs.update(run, term_sent_at=now)
        return True

    def _stopping(self, run: Run, task: Task, now: float) -> bool:
        spec = self._spec(run, task)
        seen = self.executor.observe(spec, run, now)
        changed_pods = self._apply(run, seen, now, ending=PodStatus.TERMINATED)
        for p in run.pods:
            if p.launched_at is None and p.name not in seen and p.status in LIVE_POD_STATUSES:
                p.status = PodStatus.TERMINATED  # never launched (stopped while PENDING)
                changed_pods.append(p)
        self.store.runs.save_pods(run, changed_pods)
        live = [p for p in run.pods if p.status in LIVE_POD_STATUSES]
        if live:
            self._terminate(spec, run, live, now)
            return bool(changed_pods)
        reason = run.stop_reason or "User Stop"
        return self._finish(run, task, TaskStatus.STOPPED, reason, now)

    def _cleanup(self, run: Run, task: Task, now: float) -> bool:
        live = [p for p in run.pods if p.status in LIVE_POD_STATUSES]
        if not live:
            return False
        spec = self._spec(run, task)
        ending = PodStatus.SUCCEEDED if run.status == TaskStatus.SUCCEED else PodStatus.TERMINATED
        seen = self.executor.observe(spec, run, now)
        changed_pods = self._apply(run, seen, now, ending=ending)
        for p in live:
            if p.name not in seen:  # never launched
                p.status = ending
                changed_pods.append(p)
        self.store.runs.save_pods(run, changed_pods)
        live = [p for p in run.pods if p.status in LIVE_POD_STATUSES]
        if live:
            self._terminate(spec, run, live, now)
        return bool(changed_pods)

    def _terminate(self, spec: RunSpec, run: Run, live: Sequence[Pod], now: float) -> None:
        """SIGTERM once, SIGKILL after the grace period (issue §3)."""
        if run.term_sent_at is None:
            self.executor.signal(spec, run, live, kill=False, now=now)
            self.store.runs.update(run, term_sent_at=now)
        elif not run.kill_sent and now - run.term_sent_at >= self.grace:
            self.executor.signal(spec, run, live, kill=True, now=now)
            self.store.runs.update(run, kill_sent=True)

    # -- outcomes and callbacks -------------------------------------------------------------------

    def _finish(
        self, run: Run, task: Task, status: TaskStatus, reason: str, at: float, pods_save: Sequence[Pod] = ()
    ) -> bool:
        """Move a run to a terminal state, with FailureReason, EndTime and its §8 callback; `pods_save` are
        written with it. With no callback to send and no pod left alive, the runner is done with it in the same
        write (`live`)."""
        end = int(at)
        runtime = runtime_seconds(status, run.start_time, end, at)
        callback = ""
        if task.doc.get("CallbackUrl"):
            callback = json.dumps(self._callback(run, status, reason, at))
        charge = ChargeStatus.ARREARS_STOP if run.stop_reason == "Arrears Stop" else ChargeStatus.NOT_BILLING
        fields: dict[str, Any] = {
            "status": status, "charge_status": charge, "failure_reason": reason, "message": "", "end_time": end,
            "callback": callback,
        }  # fmt: skip
        if not callback and not _pods_live(run):
            fields["live"] = False
        doc = {"FailureReason": reason, "Message": "", "RuntimeInSeconds": runtime}
        return self._moved(task, Move(run, (run.status,), fields, task_doc=doc, pods_save=pods_save), reason)

    @staticmethod
    def _callback(run: Run, status: TaskStatus, reason: str, at: float) -> dict[str, object]:
        """Spec §8 firing table: task name, code, message and the time since the triggering request."""
        if status == TaskStatus.STOPPED and run.stop_reason != "Arrears Stop":
            since = run.stop_requested_at if run.stop_requested_at is not None else run.requested_at
            return {"task_name": "Stop", "code": 0, "message": "STOPPED", "total_time": at - since}
        code, message = {
            TaskStatus.SUCCEED: (0, "SUCCEED"),
            TaskStatus.SUBMIT_FAILED: (10001, reason),
            TaskStatus.FAILED: (10002, reason),
            TaskStatus.STOPPED: (10003, "ARREARS_STOP"),
        }.get(status, (10004, reason))
        return {"task_name": "Start", "code": code, "message": message, "total_time": at - run.requested_at}

    def _finish_bookkeeping(self, nums: Sequence[int], now: float) -> None:
        for num in nums:
            item = self._live.get(num)
            if item is None:
                continue
            run, task = item
            if run.callback:
                self._send(run, task, now)
            if (
                run.status in TERMINAL_STATUSES
                and not run.callback
                and not any(p.status in LIVE_POD_STATUSES for p in run.pods)
            ):
                if run.live:  # else done in the write that finished it
                    self.store.runs.update(run, live=False)
                if self._placer is not None:  # issue 10 item 6: the actors and the group go once the pods have
                    try:
                        self._placer.release(run.id, [p.name for p in run.pods])
                    except Exception:  # the sweep removes them later
                        log.warning("runner: releasing run %s on the executor failed", run.id, exc_info=True)

    def _send(self, run: Run, task: Task, now: float) -> None:
        url = str(task.doc.get("CallbackUrl") or "")
        pending = json.loads(run.callback)
        if self.callbacks is not None and url:
            body = callback_body(
                task_id=task.id,
                task_name=pending["task_name"],
                code=int(pending["code"]),
                message=str(pending["message"]),
                total_time=max(0.0, float(pending["total_time"])),
                now=now,
                offset_hours=self.offset_hours,
            )
            self.callbacks.send(url, body)
        self.store.runs.update(run, callback="")
