"""A failing submission never spins the runner (issue 7 A3): the request's own fault ends the run SUBMIT_FAILED at
once; the machine's (a full disk), or a bug, is retried with capped exponential backoff and then given up.

The service and runner in process on a fake clock (tests/inprocess.py); the simulate executor, made to fail its
submissions the way the local one does when the disk is full.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.inprocess import Harness, params
from tione_server.executors.base import Executor, RunSpec, Submission
from tione_server.executors.simulate import SimulateExecutor
from tione_server.models import Pod
from tione_server.runner import INTERNAL, RETRY_MAX, SUBMIT_GIVE_UP

ROOMY = "[capacity]\ncpu = 64000\nmemory = 262144\ngpu = 0\n"
FULL_DISK = "cannot prepare the run: [Errno 28] No space left on device"


class FailingSubmit(SimulateExecutor):
    """Fails the first `failures` submissions: with `how` "transient", "final" or "raise"."""

    def __init__(self, workdir: Path, how: str, failures: int) -> None:
        super().__init__(data_dir=workdir / "data", submit_seconds=0.0)
        self.how = how
        self.failures = failures
        self.calls = 0

    def submit(self, spec: RunSpec, now: float) -> Submission:
        self.calls += 1
        if self.calls > self.failures:
            return super().submit(spec, now)
        if self.how == "raise":
            raise RuntimeError("a bug in the executor")
        return Submission(ready=False, error=FULL_DISK, retry=self.how == "transient")


MakeHarness = Callable[[Executor], Harness]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[MakeHarness]:
    """Builds the harness around a test's executor; closes it afterwards."""
    made: list[Harness] = []

    def make(executor: Executor) -> Harness:
        made.append(Harness(tmp_path, catalogue=ROOMY, executor=executor))
        return made[-1]

    yield make
    for h in made:
        h.close()


def _tick_for(h: Harness, seconds: float, step: float = 0.02) -> None:
    """Tick as fast as the runner does while a run is SUBMITTING, for `seconds` of fake time."""
    end = h.clock.now + seconds
    while h.clock.now < end:
        h.tick(h.clock.now + step)


def test_runner_transient_submit_failure_backs_off_then_succeeds(harness: MakeHarness, tmp_path: Path) -> None:
    executor = FailingSubmit(tmp_path, "transient", failures=4)
    h = harness(executor)
    task_id = h.call("CreateTrainingTask", params("flaky"))["Id"]
    _tick_for(h, 6.0)  # tries at 0, 0.5, 1.5, 3.5 s fail; 7.5 s is the next
    assert executor.calls == 4
    assert h.detail(task_id)["Status"] == "SUBMITTING"
    _tick_for(h, 2.0)
    assert executor.calls == 5
    assert h.detail(task_id)["Status"] != "SUBMITTING"


@pytest.mark.parametrize(("how", "reason"), [("transient", FULL_DISK), ("raise", INTERNAL)])
def test_runner_persistent_submit_failure_gives_up(harness: MakeHarness, tmp_path: Path, how: str, reason: str) -> None:
    executor = FailingSubmit(tmp_path, how, failures=10**9)
    h = harness(executor)
    task_id = h.call("CreateTrainingTask", params("doomed"))["Id"]
    _tick_for(h, SUBMIT_GIVE_UP + RETRY_MAX + 1, step=0.5)  # gives up at the first try after 300 s
    done = h.detail(task_id)
    assert done["Status"] == "SUBMIT_FAILED"
    assert done["FailureReason"].startswith(reason)
    assert executor.calls < 25  # 0.5, 1, 2, ... 30 s apart: about 15 tries in five minutes, not 1,200
    assert h.code("DeleteTrainingTask", {"Id": task_id}) == ""


def test_runner_final_submit_failure_is_not_retried(harness: MakeHarness, tmp_path: Path) -> None:
    executor = FailingSubmit(tmp_path, "final", failures=10**9)
    h = harness(executor)
    task_id = h.call("CreateTrainingTask", params("bad-request"))["Id"]
    _tick_for(h, 5.0)
    assert executor.calls == 1
    assert (h.detail(task_id)["Status"], h.detail(task_id)["FailureReason"]) == ("SUBMIT_FAILED", FULL_DISK)


class FailingLaunch(SimulateExecutor):
    """Launching raises (a bug, say), every time."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(data_dir=workdir / "data", submit_seconds=0.0)
        self.launches = 0

    def launch(self, spec: RunSpec, pods: Sequence[Pod], now: float) -> dict[str, str]:
        self.launches += 1
        raise RuntimeError("a bug in the executor")


def test_runner_failing_launch_backs_off_and_stops_at_once(harness: MakeHarness, tmp_path: Path) -> None:
    executor = FailingLaunch(tmp_path)
    h = harness(executor)
    task_id = h.call("CreateTrainingTask", params("no-launch"))["Id"]
    _tick_for(h, 10.0)
    assert h.detail(task_id)["Status"] == "STARTING"
    assert executor.launches < 8  # tries 0.5, 1, 2, 4 s apart, not 500 times
    h.call("StopTrainingTask", {"Id": task_id})
    h.tick(h.clock.now + 0.02)  # the backoff belongs to STARTING: the stop is handled on the next pass
    assert h.detail(task_id)["Status"] == "STOPPED"
    assert h.code("DeleteTrainingTask", {"Id": task_id}) == ""
