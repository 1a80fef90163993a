"""State-machine property test: random API calls and process outcomes never break spec §6.

Hypothesis drives the real service and runner (in process, fake clock) with a scripted executor whose pods
exit, crash, vanish, ignore SIGTERM or fail submission on command. After every step:
- every status change is an edge of spec §6.2 (runner passes may take several at once, and only runner edges;
  STOPPING only after an accepted Stop; SUBMITTING again only after an accepted Start);
- Start/Stop/Delete answer exactly as the table of spec §6.3 says for the status before the call, and no action
  answers a code its spec section does not list;
- the run-level fields agree with the status (ChargeStatus/BillingInfo §6.6-6.7, times §6.4, FailureReason §6.5,
  Message, pods §4.7).
At the end every task reaches a terminal state once its processes end: none stays active forever.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.inprocess import ApiFailure, Harness, params
from tione_server.executors.base import LogLine, Observation, PodPhase, RunSpec, Submission
from tione_server.executors.runfiles import RunFiles
from tione_server.models import Pod, Run

ACTIVE = {"SUBMITTING", "PENDING", "STARTING", "RUNNING", "STOPPING"}
TERMINAL = {"STOPPED", "SUCCEED", "FAILED", "SUBMIT_FAILED"}
RUNNER_EDGES = {
    "SUBMITTING": {"PENDING", "SUBMIT_FAILED"},
    "PENDING": {"STARTING"},
    "STARTING": {"RUNNING", "FAILED"},
    "RUNNING": {"SUCCEED", "FAILED"},
    "STOPPING": {"STOPPED"},
}
"""Spec §6.2 without the user-driven edges (Stop -> STOPPING, Start -> SUBMITTING)."""
ALLOWED_CODES = {
    "CreateTrainingTask": {"InvalidParameterValue.DuplicateName"},
    "StartTrainingTask": {"InternalError.NotAllow", "ResourceNotFound"},
    "StopTrainingTask": {"InternalError.NotAllow", "InternalError.UnSubmittedStatusNotAllowStop", "ResourceNotFound"},
    "DeleteTrainingTask": {"InternalError.NotAllow", "ResourceNotFound"},
    "DescribeTrainingTask": {"ResourceNotFound"},
    "DescribeTrainingTaskPods": {"ResourceNotFound"},
}
"""What each call of this test may answer (subsets of each action's declared list)."""


def reachable(start: str, end: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for nxt in RUNNER_EDGES.get(todo.pop(), set()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return end in seen


def expected_code(action: str, status: str) -> str:
    """Spec §6.3."""
    if action == "StartTrainingTask":
        return "" if status in TERMINAL else "InternalError.NotAllow"
    if action == "DeleteTrainingTask":
        return "" if status in TERMINAL else "InternalError.NotAllow"
    if status == "SUBMITTING":
        return "InternalError.UnSubmittedStatusNotAllowStop"
    return "InternalError.NotAllow" if status in TERMINAL else ""


class ScriptedExecutor:
    """Pods that do what the test says: run, exit with a code, vanish, or ignore SIGTERM."""

    name = "scripted"

    def __init__(self, data_dir: Path) -> None:
        self.files = RunFiles(data_dir)
        self.fates: dict[str, tuple[str, int | None]] = {}
        self.failing: set[str] = set()
        self.stubborn: set[str] = set()

    def submit(self, spec: RunSpec, now: float) -> Submission:
        if spec.task_id in self.failing:
            self.failing.discard(spec.task_id)
            return Submission(ready=False, error="scripted submission failure")
        return Submission(ready=True)

    def launch(self, spec: RunSpec, pods: Sequence[Pod], now: float) -> dict[str, str]:
        return {p.name: "" for p in pods}

    def observe(self, spec: RunSpec, run: Run, now: float) -> dict[str, Observation]:
        found: dict[str, Observation] = {}
        for p in run.pods:
            if p.launched_at is None:
                continue
            fate = self.fates.get(p.name)
            if fate is not None:
                phase: PodPhase = "EXITED" if fate[0] == "EXITED" else "LOST"
                found[p.name] = Observation(phase, started_at=p.launched_at, ended_at=now, exit_code=fate[1])
            elif now >= p.launched_at + 1:
                found[p.name] = Observation("RUNNING", started_at=p.launched_at + 1)
            else:
                found[p.name] = Observation("PENDING")
        return found

    def signal(self, spec: RunSpec, run: Run, pods: Sequence[Pod], *, kill: bool, now: float) -> None:
        for p in pods:
            if kill or p.name not in self.stubborn:
                self.fates.setdefault(p.name, ("EXITED", 137 if kill else 143))

    def remove(self, run_id: str) -> None:
        self.files.remove(run_id)

    def read_log(
        self, run_id: str, pod: str, stream: str, *, start_ns: int = 0, end_ns: int = 0, descending: bool = False
    ) -> Iterator[LogLine]:
        return iter(())


POOL = "[capacity]\ncpu = 8000\nmemory = 16384\ngpu = 0\n"
"""Room for two or three tasks at once, so PENDING happens too."""
SHAPES: list[dict[str, Any]] = [
    {},
    {"TrainingMode": "DDP",
     "ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 2}]},
    {"TrainingMode": "PS_WORKER", "ResourceConfigInfos": [
        {"Role": "PS", "InstanceType": "TI.S6.MEDIUM2.POST"}, {"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST"}]},
    {"TrainingMode": "MPI"},
    {"ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.S.LARGE.POST"}]},
    {"ChargeType": "PREPAID", "ResourceGroupId": "ersg-c7kq2m9x",
     "ResourceConfigInfos": [{"Role": "WORKER", "Cpu": 12000, "Memory": 8192, "InstanceNum": 1}]},
]  # fmt: skip


class LifecycleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="tione-sm-"))
        self.executor = ScriptedExecutor(self.dir / "data")
        self.h = Harness(self.dir, catalogue=POOL, executor=self.executor)
        self.tasks: list[str] = []
        self.deleted: set[str] = set()
        self.status: dict[str, str] = {}
        self.names = 0

    def teardown(self) -> None:
        try:
            # Every process ends (exit 0); stop what waits; then nothing may stay active.
            for _ in range(8):
                stopped: dict[str, str] = {}
                for task_id in self._live():
                    for pod in self.h.call("DescribeTrainingTaskPods", {"Id": task_id})["PodNames"]:
                        self.executor.fates.setdefault(pod, ("EXITED", 0))
                    if self.status[task_id] in ("PENDING", "STARTING", "RUNNING"):
                        assert self._call("StopTrainingTask", {"Id": task_id}) == ""
                        stopped[task_id] = "stop"
                self._observe_all(stopped)
                self.h.clock.advance(11)
                self.h.tick()
                self._observe_all()
            stuck = {t: self.status[t] for t in self._live() if self.status[t] in ACTIVE}
            assert not stuck, f"tasks left active: {stuck}"
        finally:
            self.h.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers --------------------------------------------------------------------------------

    def _live(self) -> list[str]:
        return [t for t in self.tasks if t not in self.deleted]

    def _pick(self, index: int) -> str:
        return self.tasks[index % len(self.tasks)]

    def _call(self, action: str, body: dict[str, Any]) -> str:
        try:
            self.h.call(action, body)
        except ApiFailure as err:
            code = err.code
        else:
            return ""
        assert code in ALLOWED_CODES[action], f"{action} answered {code}"
        return code

    def _observe_all(self, changed_by: dict[str, str] | None = None) -> None:
        """Read every task; check each status change against spec §6.2 and the fields against the status."""
        for task_id in self._live():
            d = self.h.detail(task_id)
            old, new = self.status.get(task_id), d["Status"]
            via = (changed_by or {}).get(task_id)
            if old is not None and new != old:
                if via == "start":
                    assert old in TERMINAL
                    assert new == "SUBMITTING"
                elif via == "stop":
                    assert old in ("PENDING", "STARTING", "RUNNING")
                    assert new == "STOPPING"
                else:
                    assert reachable(old, new), f"{task_id}: {old} -> {new}"
            self.status[task_id] = new
            self._check_fields(task_id, d)

    def _check_fields(self, task_id: str, d: dict[str, Any]) -> None:
        status = d["Status"]
        postpaid = d["ChargeType"] == "POSTPAID_BY_HOUR"
        billing = postpaid and status in ("STARTING", "RUNNING", "STOPPING")
        if status == "STOPPING" and d["ChargeStatus"] == "NOT_BILLING":
            billing = False  # stopped while PENDING: it never held resources (spec §6.6 bills only while held)
        assert d["ChargeStatus"] == ("BILLING" if billing else "NOT_BILLING")
        assert (d["BillingInfo"] != "") == billing
        assert (d["EndTime"] == "") == (status in ACTIVE)
        if d["StartTime"] == "":
            assert d["RuntimeInSeconds"] == 0
        if status in ("SUBMITTING", "PENDING", "STARTING", "SUBMIT_FAILED"):
            assert d["StartTime"] == ""
        if status in ACTIVE or status == "SUCCEED":
            assert d["FailureReason"] == ""
        if status == "STOPPED":
            assert d["FailureReason"] == "User Stop"
        if status in ("FAILED", "SUBMIT_FAILED"):
            assert d["FailureReason"] != ""
        if status != "PENDING":
            assert d["Message"] == ""
        listed = self.h.call("DescribeTrainingTaskPods", {"Id": task_id})
        if status in ("SUBMITTING", "SUBMIT_FAILED"):
            assert listed["TotalCount"] == 0
        else:
            assert listed["TotalCount"] == len(listed["PodNames"]) > 0
        item = self.h.item(task_id)
        for key in ("Status", "ChargeStatus", "BillingInfo", "StartTime", "EndTime", "FailureReason", "Message"):
            assert item[key] == d[key], key

    # -- rules ----------------------------------------------------------------------------------

    @rule(shape=st.integers(0, len(SHAPES) - 1), reuse=st.booleans())
    def create(self, shape: int, reuse: bool) -> None:
        if reuse and self.names:
            name = f"task-{self.names - 1}"
        else:
            name = f"task-{self.names}"
            self.names += 1
        code = ""
        try:
            task_id = self.h.call("CreateTrainingTask", params(name, **SHAPES[shape]))["Id"]
        except ApiFailure as err:
            code = err.code
        if code:
            assert code in ALLOWED_CODES["CreateTrainingTask"]
            return
        self.tasks.append(task_id)
        self._observe_all()
        assert self.status[task_id] == "SUBMITTING"

    @precondition(lambda self: self.tasks)
    @rule(
        index=st.integers(0, 50),
        action=st.sampled_from(["StartTrainingTask", "StopTrainingTask", "DeleteTrainingTask"]),
    )
    def user_operation(self, index: int, action: str) -> None:
        task_id = self._pick(index)
        before = self.status.get(task_id) if task_id not in self.deleted else None
        code = self._call(action, {"Id": task_id})
        if before is None:
            assert code == "ResourceNotFound"
            return
        assert code == expected_code(action, before), f"{action} in {before}: {code!r}"
        if action == "DeleteTrainingTask" and not code:
            self.deleted.add(task_id)
            assert self._call("DescribeTrainingTask", {"Id": task_id}) == "ResourceNotFound"
            assert self._call("DescribeTrainingTaskPods", {"Id": task_id}) == "ResourceNotFound"
            return
        via = {"StartTrainingTask": "start", "StopTrainingTask": "stop"}.get(action, "")
        self._observe_all({task_id: via} if not code and before != "STOPPING" else None)

    @precondition(lambda self: self.tasks)
    @rule(index=st.integers(0, 50), pod=st.integers(0, 3), fate=st.sampled_from(["exit0", "exit1", "lost", "stubborn"]))
    def process_outcome(self, index: int, pod: int, fate: str) -> None:
        task_id = self._pick(index)
        if task_id in self.deleted:
            return
        names = self.h.call("DescribeTrainingTaskPods", {"Id": task_id})["PodNames"]
        if not names:
            return
        name = names[pod % len(names)]
        if fate == "stubborn":
            self.executor.stubborn.add(name)
        else:
            self.executor.fates.setdefault(
                name, {"exit0": ("EXITED", 0), "exit1": ("EXITED", 1)}.get(fate, ("LOST", None))
            )

    @precondition(lambda self: self.tasks)
    @rule(index=st.integers(0, 50))
    def fail_next_submission(self, index: int) -> None:
        self.executor.failing.add(self._pick(index))

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 3.0, 11.0]))
    def tick(self, seconds: float) -> None:
        self.h.clock.advance(seconds)
        self.h.tick()
        self._observe_all()

    @invariant()
    def deleted_tasks_are_gone(self) -> None:
        listed = self.h.call("DescribeTrainingTasks", {"Limit": 50})
        assert listed["TotalCount"] == len(self._live())


LifecycleMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_lifecycle_state_machine = LifecycleMachine.TestCase
