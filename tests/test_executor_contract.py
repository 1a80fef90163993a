"""The executor contract (executors/base.py), held over every executor of the registry: start, observe, stop,
re-attach and logs (issue 8 item 3).

Parametrized over executors.registry.EXECUTORS, so an executor registered there is held to it at once. Each
scenario gives its pods real shell commands, for executors that run them, and the per-task Envs the simulate
executor follows (TI_SIMULATE_RUN_SECONDS, TI_SIMULATE_EXIT_CODE) for the same outcome, so one test speaks for
both kinds. The runner's side is played as the runner plays it: handles stored at launch, `term_sent_at` and
`kill_sent` recorded after each signal.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tione_server.config import Settings
from tione_server.executors.base import END, Executor, LogLine, Observation, PodSpec, RunSpec
from tione_server.executors.registry import EXECUTORS, make_executor
from tione_server.models import Pod, Run

RUN = "train-1575000000000000000-abcdefghijkl"
OTHER_RUN = "train-1575000000000000001-mnopqrstuvwx"
UIN = "100000000001"
ORDER = {"PENDING": 0, "RUNNING": 1, "EXITED": 2, "LOST": 2}
ENDED = {"EXITED", "LOST"}
SIGTERM_EXIT, SIGKILL_EXIT = 128 + 15, 128 + 9


@pytest.fixture(params=sorted(EXECUTORS))
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    extra = {}
    if request.param == "ray":  # a real two-node cluster (tests/raycluster.py)
        extra["ray_address"] = request.getfixturevalue("ray_cluster").address
    return Settings(
        **extra,
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        executor=request.param,
        data_dir=str(tmp_path / "data"),
        cos_root=str(tmp_path / "cos"),
        simulate_seconds=(0.0, 0.2, 1.0),
    )


class Pods:
    """One run on one executor, driven the way the runner drives it."""

    def __init__(
        self, executor: Executor, mode: str, pods: Mapping[str, tuple[str, str]], env: dict[str, str], run_id: str = RUN
    ) -> None:
        specs = tuple(
            PodSpec(name=f"{run_id}-{suffix}", role=role, index=i, command=command, env=env)
            for i, (suffix, (role, command)) in enumerate(pods.items())
        )
        self.executor = executor
        self.spec = RunSpec(run_id=run_id, task_id=run_id[:25], mode=mode, pods=specs, env=env, account=UIN)
        self.run = Run(num=1, id=run_id, task_num=1, task_id=run_id[:25], status="STARTING", charge_status="BILLING",
                       operation="CREATE", requested_at=time.time())  # fmt: skip
        self.run.pods = [Pod(name=p.name, role=p.role, index=p.index) for p in specs]

    def pod(self, suffix: str) -> Pod:
        return next(p for p in self.run.pods if p.suffix == suffix)

    def submit(self) -> None:
        """Submit until ready, twice over: submitting is idempotent (a restart submits again)."""
        for _ in range(2):
            deadline = time.monotonic() + 10
            while not (result := self.executor.submit(self.spec, time.time())).ready:
                assert not result.error, result.error
                assert time.monotonic() < deadline, "never ready"
                time.sleep(0.02)

    def launch(self, *suffixes: str, now: float | None = None) -> dict[str, str]:
        """Launch the named pods (default: all) and store their handles, as the runner does."""
        pods = [p for p in self.run.pods if not suffixes or p.suffix in suffixes]
        now = time.time() if now is None else now
        handles = self.executor.launch(self.spec, pods, now)
        assert set(handles) == {p.name for p in pods}
        for p in pods:
            p.handle, p.launched_at = handles[p.name], now
        return handles

    def observe(self, executor: Executor | None = None, now: float | None = None) -> dict[str, Observation]:
        seen = (executor or self.executor).observe(self.spec, self.run, time.time() if now is None else now)
        return {name.removeprefix(f"{self.spec.run_id}-"): obs for name, obs in seen.items()}

    def wait(self, done: Callable[[dict[str, Observation]], bool], timeout: float = 15.0) -> dict[str, Observation]:
        """Observe until `done`; every pod's phase only ever moves forward meanwhile."""
        deadline = time.monotonic() + timeout
        last: dict[str, int] = {}
        while True:
            seen = self.observe()
            for suffix, obs in seen.items():
                assert ORDER[obs.phase] >= last.get(suffix, 0), f"{suffix} went back to {obs.phase}"
                last[suffix] = ORDER[obs.phase]
            if done(seen):
                return seen
            assert time.monotonic() < deadline, f"still {seen}"
            time.sleep(0.02)

    def signal(self, *suffixes: str, kill: bool, executor: Executor | None = None) -> None:
        """SIGTERM (or SIGKILL) the named pods and note it on the run, as the runner does."""
        now = time.time()
        pods = [self.pod(s) for s in suffixes]
        (executor or self.executor).signal(self.spec, self.run, pods, kill=kill, now=now)
        if kill:
            self.run.kill_sent = True
        elif self.run.term_sent_at is None:
            self.run.term_sent_at = now

    def log(
        self, suffix: str, stream: str = "stdout", *, start_ns: int = 0, end_ns: int = END, descending: bool = False
    ) -> list[LogLine]:
        run_id = self.spec.run_id
        return list(
            self.executor.read_log(
                run_id, f"{run_id}-{suffix}", stream, start_ns=start_ns, end_ns=end_ns, descending=descending
            )
        )


@pytest.fixture
def runs(settings: Settings) -> Iterator[list[Pods]]:
    """The runs a test starts; whatever of them still runs afterwards is killed."""
    started: list[Pods] = []
    yield started
    for pods in started:
        launched = [p for p in pods.run.pods if p.launched_at is not None]
        pods.executor.signal(pods.spec, pods.run, launched, kill=True, now=time.time())
        pods.executor.remove(pods.spec.run_id)  # a cluster's executor also frees what it holds (Ray: actors, group)


def _start(settings: Settings, runs: list[Pods], mode: str, pods: dict[str, tuple[str, str]], **env: str) -> Pods:
    run = Pods(make_executor(settings), mode, pods, env)
    runs.append(run)
    run.submit()
    return run


def test_executor_start_observes_phases_and_exit_codes(settings: Settings, runs: list[Pods]) -> None:
    pods = {"worker-0": ("WORKER", "echo one; exit 3"), "worker-1": ("WORKER", "echo two")}
    run = _start(settings, runs, "", pods, TI_SIMULATE_RUN_SECONDS="0.5", TI_SIMULATE_EXIT_CODE="3")
    run.launch("worker-0")
    assert set(run.observe()) == {"worker-0"}  # only launched pods are observed
    run.launch("worker-1")  # a run may be launched in batches
    seen = run.wait(lambda seen: all(o.phase == "EXITED" for o in seen.values()) and len(seen) == 2)
    assert {s: o.exit_code for s, o in seen.items()} == {"worker-0": 3, "worker-1": 0}
    for obs in seen.values():
        assert obs.started_at is not None
        assert obs.ended_at is not None
        assert obs.started_at <= obs.ended_at <= time.time()
    again = run.observe()  # an ended pod stays as it ended
    assert {s: (o.phase, o.exit_code, o.ended_at) for s, o in again.items()} == {
        s: (o.phase, o.exit_code, o.ended_at) for s, o in seen.items()
    }


def test_executor_observe_sees_a_pod_launched_in_the_same_pass(settings: Settings, runs: list[Pods]) -> None:
    """The runner gives a whole pass one `now`: a run launched after a look at the cluster for another run in that
    pass, and observed in the next pass a moment later, is not taken for lost (the Ray executor caches its look;
    found by bench/ray_burst.py, issue 10)."""
    pod = {"worker-0": ("WORKER", "sleep 60")}
    first = _start(settings, runs, "", pod, TI_SIMULATE_RUN_SECONDS="60")
    first.launch()
    first.wait(lambda seen: seen["worker-0"].phase == "RUNNING")
    second = Pods(first.executor, "", pod, {"TI_SIMULATE_RUN_SECONDS": "60"}, run_id=OTHER_RUN)
    runs.append(second)
    second.submit()
    now = time.time()
    first.observe(now=now)  # the pass looks at the cluster for the first run
    second.launch(now=now)  # then launches the second
    seen = second.observe(now=now + 0.01)["worker-0"]  # the next pass, a moment later
    assert seen.phase in ("PENDING", "RUNNING"), seen.reason


def test_executor_stop_sends_term_then_kill(settings: Settings, runs: list[Pods]) -> None:
    pods = {"worker-0": ("WORKER", "sleep 60"), "worker-1": ("WORKER", "trap '' TERM; echo ready; sleep 60")}
    run = _start(settings, runs, "", pods, TI_SIMULATE_RUN_SECONDS="60")
    run.launch()
    run.wait(lambda seen: all(o.phase == "RUNNING" for o in seen.values()) and bool(run.log("worker-1")))
    run.signal("worker-0", "worker-1", kill=False)
    time.sleep(0.3)
    assert run.observe()["worker-1"].phase == "RUNNING"  # a program may ignore SIGTERM: the grace period
    polite = run.wait(lambda seen: seen["worker-0"].phase in ENDED)["worker-0"]
    assert (polite.phase, polite.exit_code) == ("EXITED", SIGTERM_EXIT)  # 128 + the signal, as a shell says
    run.signal("worker-0", "worker-1", kill=True)  # the grace period is over; an ended pod is no matter
    stubborn = run.wait(lambda seen: seen["worker-1"].phase in ENDED, timeout=10)
    assert stubborn["worker-1"].exit_code in (SIGKILL_EXIT, SIGTERM_EXIT, None)
    assert (stubborn["worker-0"].phase, stubborn["worker-0"].exit_code) == ("EXITED", SIGTERM_EXIT)


def test_executor_reattach_from_a_new_instance(settings: Settings, runs: list[Pods]) -> None:
    pods = {"ps-0": ("PS", "echo serving; sleep 60"), "worker-0": ("WORKER", "echo done; exit 4")}
    run = _start(settings, runs, "PS_WORKER", pods, TI_SIMULATE_RUN_SECONDS="0.3", TI_SIMULATE_EXIT_CODE="4")
    run.launch()
    before = run.wait(lambda seen: seen["worker-0"].phase == "EXITED" and seen["ps-0"].phase == "RUNNING")
    logs = {s: run.log(s) for s in pods}
    # A restarted server: a new executor over the same settings, and the pods as the store kept them.
    fresh = make_executor(settings)
    run.run = dataclasses.replace(run.run, pods=[dataclasses.replace(p) for p in run.run.pods])
    after = run.observe(fresh)
    assert after["ps-0"].phase == "RUNNING"
    ended = (after["worker-0"].phase, after["worker-0"].exit_code, after["worker-0"].ended_at)
    assert ended == ("EXITED", 4, before["worker-0"].ended_at)
    assert {s: list(fresh.read_log(RUN, f"{RUN}-{s}", "stdout")) for s in pods} == logs
    run.signal("ps-0", kill=False, executor=fresh)  # and the re-attached pod is the fresh instance's to stop
    run.signal("ps-0", kill=True, executor=fresh)
    run.executor = fresh
    assert run.wait(lambda seen: seen["ps-0"].phase in ENDED, timeout=10)["ps-0"].phase in ENDED


def test_executor_logs_in_order_per_pod(settings: Settings, runs: list[Pods]) -> None:
    pods = {
        "worker-0": ("WORKER", "echo 1 worker-0; echo 2 worker-0; echo failing worker-0 >&2; exit 3"),
        "worker-1": ("WORKER", "echo 1 worker-1; echo 2 worker-1"),
    }
    run = _start(settings, runs, "", pods, TI_SIMULATE_RUN_SECONDS="2", TI_SIMULATE_EXIT_CODE="3")
    run.launch()
    run.wait(lambda seen: all(o.phase == "EXITED" for o in seen.values()))
    for suffix, other in (("worker-0", "worker-1"), ("worker-1", "worker-0")):
        out, err = run.log(suffix), run.log(suffix, "stderr")
        assert out
        assert any(suffix in line.text for line in out)  # each pod's own lines, and no other pod's
        assert not any(other in line.text for line in out + err)
        assert [line.ns for line in out] == sorted(line.ns for line in out)
        assert len({line.offset for line in out}) == len(out)
        assert run.log(suffix, descending=True) == out[::-1]
        cut = out[-1].ns
        assert run.log(suffix, start_ns=cut) == [line for line in out if line.ns >= cut]
        assert run.log(suffix, end_ns=out[0].ns) == [line for line in out if line.ns <= out[0].ns]
        assert run.log(suffix, "stdin") == []
    failing = run.log("worker-0", "stderr")  # stderr apart from stdout
    assert failing
    assert not {line.text for line in failing} & {line.text for line in run.log("worker-0")}
    assert run.log("worker-1", "stderr") == []
    assert run.log("worker-2") == []  # no such pod
    run.executor.remove(RUN)
    assert run.log("worker-0") == []
