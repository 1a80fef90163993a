"""The local executor on its own: run directories, pods as supervised process groups, exits, signals, re-attach."""

from __future__ import annotations

import json
import os
import signal
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from tione_server.executors.base import LaunchError, Mount, Observation, PodSpec, RunSpec
from tione_server.executors.local import LocalExecutor, alive, handle, proc_stat
from tione_server.executors.podwrap import descendants
from tione_server.models import Pod, Run

RUN = "train-1575000000000000000-abcdefghijkl"
UIN = "100000000001"


def _spec(*commands: str, mode: str = "", code: Mount | None = None, mounts: tuple[Mount, ...] = ()) -> RunSpec:
    pods = tuple(
        PodSpec(name=f"{RUN}-worker-{i}", role="WORKER", index=i, command=c, env={"RANK": str(i), "X_TEST": "yes"})
        for i, c in enumerate(commands)
    )
    return RunSpec(run_id=RUN, task_id=RUN[:25], mode=mode, pods=pods, code=code, mounts=mounts, account=UIN)


def _run(spec: RunSpec) -> Run:
    run = Run(num=1, id=RUN, task_num=1, task_id=spec.task_id, status="STARTING", charge_status="BILLING",
              operation="CREATE", requested_at=0.0)  # fmt: skip
    run.pods = [Pod(name=p.name, role=p.role, index=p.index) for p in spec.pods]
    return run


def _launch(ex: LocalExecutor, spec: RunSpec, run: Run) -> None:
    """Launch every pod of the run and record the handles, as the runner does."""
    now = time.time()
    for name, text in ex.launch(spec, run.pods, now).items():
        pod = next(p for p in run.pods if p.name == name)
        pod.handle, pod.launched_at = text, now


def _process(pod: Pod) -> tuple[int, int | None]:
    """(pid, start time) of the pod's supervisor, from the handle the local executor gave it."""
    data = json.loads(pod.handle)
    return int(data["pid"]), data["start"]


@pytest.fixture
def executor(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(data_dir=tmp_path / "data", cos_root=tmp_path / "cos")


def _until(ex: LocalExecutor, spec: RunSpec, run: Run, phases: set[str], timeout: float = 15.0) -> Observation:
    deadline = time.monotonic() + timeout
    while True:
        seen = ex.observe(spec, run, time.time())[run.pods[0].name]
        if seen.phase in phases:
            return seen
        assert time.monotonic() < deadline, f"still {seen.phase}"
        time.sleep(0.02)


def test_local_submit_prepares_code_and_data(executor: LocalExecutor, tmp_path: Path) -> None:
    cos = tmp_path / "cos" / UIN / "bucket"
    (cos / "src").mkdir(parents=True)
    (cos / "src" / "train.py").write_text("print('hi')\n")
    (cos / "data").mkdir()
    (cos / "data" / "a.txt").write_text("A")
    mounts = (Mount(target="opt/ml/input/data/train", source="bucket/data", kind="COS"),)
    spec = _spec("true", code=Mount(target="code", source="bucket/src", kind="COS"), mounts=mounts)
    assert executor.submit(spec, 0.0).ready
    root = executor.files.root(RUN)
    assert (root / "code" / "train.py").read_text() == "print('hi')\n"
    assert (root / "mnt" / "opt/ml/input/data/train" / "a.txt").read_text() == "A"
    # Archives are unpacked.
    with tarfile.open(cos / "code.tar.gz", "w:gz") as tf:
        tf.add(cos / "src" / "train.py", arcname="pkg/train.py")
    assert executor.submit(_spec("true", code=Mount("code", "bucket/code.tar.gz", "COS")), 0.0).ready
    assert (root / "code" / "pkg" / "train.py").exists()
    with zipfile.ZipFile(cos / "code.zip", "w") as zf:
        zf.write(cos / "src" / "train.py", arcname="z/train.py")
    assert executor.submit(_spec("true", code=Mount("code", "bucket/code.zip", "COS")), 0.0).ready
    assert (root / "code" / "z" / "train.py").exists()


def test_local_submit_failures(executor: LocalExecutor) -> None:
    missing = executor.submit(_spec("true", code=Mount("code", "bucket/nope", "COS")), 0.0)
    assert not missing.ready
    assert "bucket/nope" in missing.error
    assert "no start command" in executor.submit(_spec(""), 0.0).error
    no_data = executor.submit(_spec("true", mounts=(Mount("d", "bucket/none", "COS"),)), 0.0)
    assert "bucket/none" in no_data.error
    unsupported = RunSpec(run_id=RUN, task_id="t", mode="", pods=_spec("true").pods, unsupported="CFS is not here")
    assert executor.submit(unsupported, 0.0).error == "CFS is not here"


def test_local_pod_runs_exits_and_logs(executor: LocalExecutor) -> None:
    spec = _spec('echo "rank $RANK $X_TEST $TI_MOUNT_ROOT"; echo oops >&2; printf partial; exit 5')
    run = _run(spec)
    assert executor.submit(spec, 0.0).ready
    _launch(executor, spec, run)
    pod = run.pods[0]
    pid, start = _process(pod)
    assert start is not None
    assert os.getpgid(pid) == pid  # its own process group
    done = _until(executor, spec, run, {"EXITED"})
    assert done.exit_code == 5
    assert done.started_at is not None
    assert done.ended_at is not None
    assert done.started_at <= done.ended_at
    out = list(executor.read_log(RUN, pod.name, "stdout"))
    # Sandboxed (the default, issue 9), the pod's paths are its own: MappingPaths lie under TI_MOUNT_ROOT `/`.
    assert [line.text for line in out] == ["rank 0 yes /", "partial"]
    assert [line.text for line in executor.read_log(RUN, pod.name, "stderr")] == ["oops"]
    assert all(abs(line.ns / 1e9 - time.time()) < 60 for line in out)
    assert list(executor.read_log(RUN, pod.name, "stdin")) == []


def test_local_sigterm_ends_the_whole_process_group(executor: LocalExecutor, tmp_path: Path) -> None:
    spec = _spec("sleep 30 & wait")
    run = _run(spec)
    assert executor.submit(spec, 0.0).ready
    _launch(executor, spec, run)
    _until(executor, spec, run, {"RUNNING"})
    # Found from the host's side (a sandboxed pod has pids of its own, issue 9): the supervisor's `sleep`.
    supervisor = _process(run.pods[0])[0]
    deadline = time.monotonic() + 10
    while not (sleeping := [p for p in descendants(supervisor) if _comm(p) == "sleep"]):
        assert time.monotonic() < deadline, "the grandchild never started"
        time.sleep(0.02)
    grandchild = sleeping[0]
    executor.signal(spec, run, run.pods, kill=False, now=time.time())
    done = _until(executor, spec, run, {"EXITED"})
    assert done.exit_code == 128 + signal.SIGTERM
    deadline = time.monotonic() + 5
    while alive(grandchild, None):
        assert time.monotonic() < deadline, "the grandchild survived SIGTERM to the group"
        time.sleep(0.02)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_local_vanished_supervisor_is_lost(executor: LocalExecutor) -> None:
    spec = _spec("sleep 30")
    run = _run(spec)
    assert executor.submit(spec, 0.0).ready
    _launch(executor, spec, run)
    _until(executor, spec, run, {"RUNNING"})
    pod = run.pods[0]
    child = json.loads((executor.files.pod_dir(RUN, pod.name) / "pid").read_text())["child"]
    # The supervisor first, so it cannot see its command end and write an exit file; then the command's group.
    os.killpg(_process(pod)[0], signal.SIGKILL)
    os.killpg(child, signal.SIGKILL)
    assert _until(executor, spec, run, {"EXITED", "LOST"}).phase == "LOST"


def test_local_reattach_from_a_new_executor(executor: LocalExecutor, tmp_path: Path) -> None:
    spec = _spec("sleep 30")
    run = _run(spec)
    assert executor.submit(spec, 0.0).ready
    _launch(executor, spec, run)
    _until(executor, spec, run, {"RUNNING"})
    # A new executor (a restarted server) knows the pod only from what was stored: its handle (pid, start time)...
    fresh = LocalExecutor(data_dir=tmp_path / "data", cos_root=tmp_path / "cos")
    assert fresh.observe(spec, run, time.time())[run.pods[0].name].phase == "RUNNING"
    # ...or, when the crash came before the handle was stored, from the pod's pid file: the same handle.
    bare = _run(spec)
    bare.pods[0].launched_at = time.time()
    seen = fresh.observe(spec, bare, time.time())[run.pods[0].name]
    assert (seen.phase, seen.handle) == ("RUNNING", run.pods[0].handle)
    fresh.signal(spec, run, run.pods, kill=True, now=time.time())
    killed = _until(fresh, spec, run, {"EXITED", "LOST"})  # the supervisor kills and records the exit
    assert (killed.phase, killed.exit_code) == ("EXITED", 128 + signal.SIGKILL)


def test_local_reused_pid_is_not_ours(executor: LocalExecutor) -> None:
    stat = proc_stat(os.getpid())
    assert stat is not None
    assert alive(os.getpid(), stat[1])
    assert not alive(os.getpid(), stat[1] + 1)  # same pid, another start time: a different process
    executor._signal_pod("x", handle(os.getpid(), stat[1] + 1), kill=False)  # must not signal the test runner
    assert alive(os.getpid(), stat[1])


def test_local_ps_worker_gets_tf_config(executor: LocalExecutor) -> None:
    pods = (
        PodSpec(name=f"{RUN}-ps-0", role="PS", index=0, command='echo "$TF_CONFIG"', env={}),
        PodSpec(name=f"{RUN}-worker-0", role="WORKER", index=1, command='echo "$TF_CONFIG"', env={}),
    )
    spec = RunSpec(run_id=RUN, task_id="t", mode="PS_WORKER", pods=pods, account=UIN)
    run = _run(spec)
    assert executor.submit(spec, 0.0).ready
    _launch(executor, spec, run)
    for p in run.pods:
        deadline = time.monotonic() + 15
        while executor.observe(spec, run, time.time())[p.name].phase != "EXITED":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    configs = [json.loads(next(iter(executor.read_log(RUN, p.name, "stdout"))).text) for p in run.pods]
    assert [c["task"] for c in configs] == [{"type": "ps", "index": 0}, {"type": "worker", "index": 0}]
    assert configs[0]["cluster"] == configs[1]["cluster"]
    assert set(configs[0]["cluster"]) == {"ps", "worker"}
    executor.remove(RUN)
    assert not executor.files.root(RUN).exists()


def test_local_launch_failure_hands_back_the_pods_it_started(executor: LocalExecutor) -> None:
    spec = _spec("sleep 30", "sleep 30")
    run = _run(spec)
    assert executor.submit(spec, 0.0).ready
    executor.files.pod_dir(RUN, run.pods[1].name).write_text("in the way")  # the second pod cannot be prepared
    with pytest.raises(LaunchError) as failed:
        executor.launch(spec, run.pods, time.time())
    assert list(failed.value.handles) == [run.pods[0].name]  # the runner records it and watches it go
    run.pods[0].handle, run.pods[0].launched_at = failed.value.handles[run.pods[0].name], time.time()
    _until(executor, spec, run, {"EXITED", "LOST"})  # killed on the way out (maybe before its supervisor was ready)
