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
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tione_server.callbacks import callback_body
from tione_server.events import state_changed
from tione_server.executors.base import Executor, LaunchError, Observation, Placement, Placer, RunSpec, Submission
from tione_server.executors.plan import plan_pods, pod_config, run_spec
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
from tione_server.scheduling import WAITING, Demand, Hold, Scheduler, Slot
from tione_server.store import Store

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


def _holds(run: Run) -> bool:
    """Whether a run holds its capacity: granted and not yet ended (a run stopped while PENDING is STOPPING
    without ever having held anything)."""
    if run.status in (TaskStatus.STARTING, TaskStatus.RUNNING):
        return True
    return run.status == TaskStatus.STOPPING and any(p.node or p.launched_at is not None for p in run.pods)


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
        self._swept_at = 0.0

    # -- the background loop --------------------------------------------------------------------

    def start(self) -> None:
        """Run `tick` in a daemon thread until `stop`."""
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

    def _loop(self) -> None:
        while not self._stopped.is_set():
            changed = False
            if self.is_leader():
                try:
                    changed = self.tick()
                except Exception:  # a bad tick (database away, a bug) must not end the loop
                    log.exception("runner tick failed")
            self._wake.wait(FAST_INTERVAL if changed or self._busy else self.interval)
            self._wake.clear()

    # -- one pass -------------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> bool:
        """One reconcile pass at time `now` (default: the clock); True when any run or pod changed."""
        now = self.clock() if now is None else now
        items = self.store.runs.live()
        changed = False
        for run, task in items:
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
        live = {run.id for run, _ in items}
        for run_id in [r for r in self._backoff if r not in live]:
            del self._backoff[run_id]
        changed |= self._schedule(items, now)
        self._finish_bookkeeping(items, now)
        if self._placer is not None and now - self._swept_at >= SWEEP_INTERVAL:
            self._swept_at = now
            try:
                self._placer.sweep(live)
            except Exception:
                log.exception("runner: sweeping the executor's leftovers failed")
        try:
            self.store.tasks.fold_counts()  # keeps the unfolded count changes that every list reads small
        except Exception:
            log.exception("runner: folding task counts failed")
        self._busy = any(
            r.status in (TaskStatus.SUBMITTING, TaskStatus.STARTING) and r.id not in self._backoff for r, _ in items
        )
        return changed

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
        spec = run_spec(run, task)
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

    def _move(self, run: Run, task: Task, expected: Sequence[str], reason: str = "", **fields: Any) -> bool:
        """store.transition, and a log line when it happened (issue 7 F16)."""
        before = run.status
        if not self.store.runs.transition(run, expected, **fields):
            return False
        state_changed(task.id, run.id, task.scope.uin, before, run.status, reason)
        return True

    # -- capacity (spec §6.2: PENDING until capacity, granted in submission order; scheduling.py decides) -------

    def _schedule(self, items: list[tuple[Run, Task]], now: float) -> bool:
        pending = [(r, t) for r, t in items if r.status == TaskStatus.PENDING]
        if not pending:
            return False
        if self._placer is not None:
            return self._schedule_placed(self._placer, pending, now)
        plan = self.scheduler.round(hold for r, _ in items if _holds(r) for hold in _holds_of(r))
        changed = False
        for run, task in pending:
            demands = _demands(run, task)
            offer = plan.offer(run.pool, demands)
            if offer.slots is None:
                if run.message != offer.message:
                    self.store.runs.update(run, message=offer.message)
                continue
            for pod, slot in zip(run.pods, offer.slots, strict=True):
                pod.node = slot.node
            if self._grant(run, task, now):
                plan.take(run.pool, offer.slots, demands)
                changed = True
        return changed

    def _schedule_placed(self, placer: Placer, pending: list[tuple[Run, Task]], now: float) -> bool:
        """Issue 10 item 2: the cluster decides (a Ray placement group per run); runs of a pool are asked in
        submission order, and one that waits holds up the later ones unless it can never fit."""
        blocked: set[str] = set()
        changed = False
        for run, task in pending:
            if run.pool in blocked:
                placed = Placement(False, WAITING)
            else:
                try:
                    placed = placer.place(run_spec(run, task), run, now)
                except Exception:
                    log.exception("runner: placing run %s failed", run.id)
                    placed = Placement(False, WAITING)
            if not placed.ready:
                if placed.blocks:
                    blocked.add(run.pool)
                if run.message != placed.message:
                    self.store.runs.update(run, message=placed.message)
                continue
            changed |= self._grant(run, task, now)
        return changed

    def _grant(self, run: Run, task: Task, now: float) -> bool:
        """PENDING -> STARTING (billing starts for postpaid tasks) and launch the first pods."""
        charge = ChargeStatus.BILLING if task.charge_type == ChargeType.POSTPAID_BY_HOUR else ChargeStatus.NOT_BILLING
        if not self._move(
            run, task, [TaskStatus.PENDING], task_doc={"Message": ""}, status=TaskStatus.STARTING,
            charge_status=charge, message="",
        ):  # fmt: skip
            return False
        self.store.runs.save_pods(run, run.pods)
        try:
            self._launch(run, task, _next_batch(run.pods), now)
        except Exception:  # launched again from STARTING, after a backoff
            self._failed_step(run, now)
        return True

    def _launch(self, run: Run, task: Task, pods: Sequence[Pod], now: float) -> None:
        spec = run_spec(run, task)
        try:
            handles = self.executor.launch(spec, pods, now)
        except LaunchError as err:
            _launched(pods, err.handles, now)  # the pods it did start are watched until they are gone
            self.store.runs.save_pods(run, pods)
            for p in pods:
                p.status = PodStatus.FAILED if p.launched_at is None else p.status
            self._finish(run, task, TaskStatus.FAILED, str(err), now)
            return
        _launched(pods, handles, now)
        self.store.runs.save_pods(run, pods)

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
        spec = run_spec(run, task)
        seen = self.executor.observe(spec, run, now)
        # Pods not launched yet (the rest of a large run, or a crash between granting capacity and starting them).
        missing = [p for p in run.pods if p.launched_at is None and p.name not in seen]
        if missing:
            self._launch(run, task, _next_batch(missing), now)
            return True
        changed_pods = self._apply(run, seen, now)
        self.store.runs.save_pods(run, changed_pods)
        changed = bool(changed_pods)
        if run.status == TaskStatus.STARTING:
            started = all(p.status != PodStatus.PENDING for p in run.pods)
            if not started and not any(p.status == PodStatus.FAILED for p in run.pods):
                return changed
            start = max((p.start_time for p in run.pods if p.start_time is not None), default=now)
            if started and not self._move(
                run, task, [TaskStatus.STARTING], status=TaskStatus.RUNNING, start_time=int(start)
            ):
                return changed
            changed = True
        result = verdict(spec.mode, run.pods)
        if result.outcome == "running":
            return changed
        end = result.at if result.at is not None else now
        if result.outcome == "succeed":
            self._finish(run, task, TaskStatus.SUCCEED, "", end)
        else:
            self._finish(run, task, TaskStatus.FAILED, result.reason, end)
        leftovers = [p for p in run.pods if p.status in LIVE_POD_STATUSES]
        if leftovers:  # PS pods after success, the rest after a failure (spec §6.5)
            self.executor.signal(spec, run, leftovers, kill=False, now=now)
            self.store.runs.update(run, term_sent_at=now)
        return True

    def _stopping(self, run: Run, task: Task, now: float) -> bool:
        spec = run_spec(run, task)
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
        spec = run_spec(run, task)
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

    def _finish(self, run: Run, task: Task, status: TaskStatus, reason: str, at: float) -> bool:
        """Move a run to a terminal state, with FailureReason, EndTime and its §8 callback."""
        end = int(at)
        runtime = runtime_seconds(status, run.start_time, end, at)
        callback = ""
        if task.doc.get("CallbackUrl"):
            callback = json.dumps(self._callback(run, status, reason, at))
        charge = ChargeStatus.ARREARS_STOP if run.stop_reason == "Arrears Stop" else ChargeStatus.NOT_BILLING
        return self._move(
            run,
            task,
            [run.status],
            reason,
            task_doc={"FailureReason": reason, "Message": "", "RuntimeInSeconds": runtime},
            status=status,
            charge_status=charge,
            failure_reason=reason,
            message="",
            end_time=end,
            callback=callback,
        )

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

    def _finish_bookkeeping(self, items: list[tuple[Run, Task]], now: float) -> None:
        for run, task in items:
            if run.callback:
                self._send(run, task, now)
            if (
                run.status in TERMINAL_STATUSES
                and not run.callback
                and not any(p.status in LIVE_POD_STATUSES for p in run.pods)
            ):
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
