"""Pods in a sandbox, end to end through the SDK (issue 9 "Must show"): a live server, real bwrap, real control
groups, real processes. What one account's pod can reach of another's, its uid, its memory, CPU and pids limits,
its image, its GPUs (a fake device list through the discovery a GPU host runs), and the server's refusal to run
without a sandbox unless told to.

Control groups and pod uids need root: these tests run as root here and in CI, and skip (saying so) elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.live import BIN, Key, Server, create_key, free_port
from tests.test_sandbox import static_busybox
from tests.training import PYTHON, TERMINAL, cos_tree, create, detail, training_server, wait_for, wait_status
from tione_server.executors.cgroups import CgroupUnavailable, detect

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is Linux namespaces and control groups"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap is missing: `make install` installs it"),
    pytest.mark.skipif(os.geteuid() != 0, reason="control groups and pod uids need root (as in CI)"),
]

TYPES = """
[capacity]
cpu = 64000
memory = 262144
gpu = 0

[[instance_types]]
name = "TI.S.MEDIUM.POST"
cpu = 2000
memory = 4096
price = 70

[[instance_types]]
name = "TI.TINY.POST"
cpu = 1000
memory = 256
price = 10

[[instance_types]]
name = "TI.HALF.POST"
cpu = 500
memory = 1024
price = 10

[[instance_types]]
name = "TI.GPU1.POST"
cpu = 1000
memory = 1024
gpu = 100
gpu_type = "H200"
price = 100
"""
"""Small types whose limits the tests run into (a 256 MiB one, a 1-core one, a half-core one) and a GPU type."""
B_UIN = "100000000002"


def one_type(name: str) -> list[dict[str, object]]:
    return [{"Role": "WORKER", "InstanceType": name, "InstanceNum": 1}]


def logs(server: Server, pod: str, key: Key | None = None, stream: str = "stdout") -> list[str]:
    out = server.call(
        "DescribeLogs", {"Service": "TRAIN", "PodName": pod, "LogStream": stream, "Limit": 1000, "Order": "ASC"}, key
    )
    return [line["Message"] for line in out["Content"]]


def pod_cgroup(task: dict[str, object], controller: str) -> Path:
    """The pod's control group (worker-0 of the task's latest run) in one controller's hierarchy."""
    run = task["LatestInstanceId"]
    return detect().mounts[controller] / "tione-server" / f"{run}-worker-0"


@pytest.fixture(autouse=True)
def cgroups() -> None:
    try:
        detect()
    except CgroupUnavailable as err:
        pytest.skip(f"no control groups for pods here: {err}")


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    with training_server(sqlite_url, tmp_path, catalogue=TYPES, env={"TIONE_STOP_GRACE_SECONDS": "1"}) as srv:
        yield srv


def test_create_training_task_pod_cannot_read_another_accounts_files(database_url: str, tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    env = {"SERVER_SECRET": token}  # in the server's own environment too: /proc/<pid>/environ must stay closed
    with training_server(database_url, tmp_path, catalogue=TYPES, env=env) as srv:
        b = create_key(database_url, B_UIN)
        code = cos_tree(srv) / "a" / "code"
        code.mkdir(parents=True)
        (code / "secret.txt").write_text(token)
        a_task = create(
            srv, "a-secret", "cp secret.txt $TI_OUTPUT_DIR/; id -u; sleep 60",
            Envs=[{"Name": "TOKEN", "Value": token}],
            CodePackagePath={"Bucket": "a", "Region": "ap-guangzhou", "Paths": ["code"]},
            Output={"Bucket": "a", "Region": "ap-guangzhou", "Paths": ["out"]},
        )  # fmt: skip
        a = wait_status(srv, a_task, "RUNNING")
        run = a["LatestInstanceId"]
        a_pod = f"{run}-worker-0"
        wait_for(srv, a_task, lambda _: (cos_tree(srv) / "a" / "out" / "secret.txt").exists())
        data = tmp_path / "data" / "runs" / run
        paths = [
            data / "pods" / a_pod / "spec.json", data / "code" / "secret.txt",
            cos_tree(srv) / "a" / "out" / "secret.txt",
            tmp_path / "tione.db", Path(f"/proc/{srv.process.pid}/environ"),
        ]  # fmt: skip
        script = (
            f"cat {' '.join(map(str, paths))}; cat /proc/[0-9]*/environ | tr '\\0' '\\n'; "
            "echo found $(find / -path /proc -prune -o -path /usr -prune -o -name secret.txt -print | wc -l); "
            "env; id -u"
        )
        params = {
            "Name": "b-snoops", "ChargeType": "POSTPAID_BY_HOUR", "ResourceConfigInfos": one_type("TI.S.MEDIUM.POST"),
            "ImageInfo": {"ImageType": "CUSTOM", "ImageUrl": "host"}, "StartCmdInfo": {"StartCmd": script},
        }  # fmt: skip
        b_task = str(srv.call("CreateTrainingTask", params, b)["Id"])
        deadline = time.monotonic() + 60
        while (done := srv.call("DescribeTrainingTask", {"Id": b_task}, b)["TrainingTaskDetail"])[
            "Status"
        ] not in TERMINAL:
            assert time.monotonic() < deadline, done
            time.sleep(0.1)
        b_pod = f"{done['LatestInstanceId']}-worker-0"
        seen = logs(srv, b_pod, b) + logs(srv, b_pod, b, "stderr")
        a_uid = logs(srv, a_pod)[0]
        srv.call("StopTrainingTask", {"Id": a_task})
    assert done["Status"] == "SUCCEED", done["FailureReason"]
    assert not [line for line in seen if token in line]
    assert seen[-1] not in ("0", a_uid)  # not root, and not account A's uid
    assert a_uid != "0"
    assert "found 0" in seen  # no file named secret.txt anywhere in B's view


def test_create_training_task_past_its_memory_fails_out_of_memory(server: Server) -> None:
    over = create(server, "over", f"{PYTHON} -c 'b = bytearray(512 << 20); print(len(b))'",
                  ResourceConfigInfos=one_type("TI.TINY.POST"))  # fmt: skip
    under = create(server, "under", f"{PYTHON} -c 'b = bytearray(32 << 20); print(len(b))'",
                   ResourceConfigInfos=one_type("TI.TINY.POST"))  # fmt: skip
    failed = wait_status(server, over, *TERMINAL, timeout=60)
    assert failed["Status"] == "FAILED"
    assert failed["FailureReason"] == "worker-0 was killed: out of memory (limit 256 MiB)"
    assert wait_status(server, under, *TERMINAL, timeout=60)["Status"] == "SUCCEED"
    assert not pod_cgroup(failed, "memory").exists()  # the end of a task removes its groups


def test_create_training_task_one_core_type_gets_about_one_core(server: Server) -> None:
    busy = "(while :; do :; done) & (while :; do :; done) & while :; do :; done"
    task_id = create(server, "busy", busy, ResourceConfigInfos=one_type("TI.TINY.POST"))
    task = wait_status(server, task_id, "RUNNING")
    usage = pod_cgroup(task, "cpuacct") / "cpuacct.usage"

    def used() -> float:
        return int(usage.read_text()) / 1e9

    deadline = time.monotonic() + 10
    while used() < 0.1:
        assert time.monotonic() < deadline, "the pod never used the CPU"
        time.sleep(0.05)
    before, t0 = used(), time.monotonic()
    time.sleep(2)
    cores = (used() - before) / (time.monotonic() - t0)
    server.call("StopTrainingTask", {"Id": task_id})
    stopped = wait_status(server, task_id, *TERMINAL, timeout=30)
    # Three busy loops would take every core; the quota holds them to one (less when the machine is busy).
    assert 0.05 < cores < 1.3
    assert stopped["Status"] == "STOPPED"
    assert not usage.parent.exists()  # Stop removes the pod's groups


def test_create_training_task_fork_bomb_is_held_by_the_pids_limit(server: Server) -> None:
    task_id = create(server, "bomb", "f() { f | f & }; f; sleep 60", ResourceConfigInfos=one_type("TI.HALF.POST"))
    task = wait_status(server, task_id, "RUNNING")
    events = pod_cgroup(task, "pids") / "pids.events"
    deadline = time.monotonic() + 30
    while "max 0" in events.read_text():
        assert time.monotonic() < deadline, "no fork was ever refused"
        time.sleep(0.1)
    assert int((events.parent / "pids.current").read_text()) <= 1024
    t0 = time.monotonic()
    assert detail(server, task_id)["Status"] == "RUNNING"  # the server still answers, and soon
    assert time.monotonic() - t0 < 5
    server.call("StopTrainingTask", {"Id": task_id})
    assert wait_status(server, task_id, *TERMINAL, timeout=30)["Status"] == "STOPPED"
    assert not events.parent.exists()


def test_create_training_task_runs_in_a_test_built_image(sqlite_url: str, tmp_path: Path) -> None:
    busybox = static_busybox()
    if busybox is None:
        pytest.skip("a static busybox is missing: `make install` installs Debian's busybox-static")
    built = tmp_path / "build"
    (built / "bin").mkdir(parents=True)
    (built / "opt").mkdir()
    (built / "opt" / "vendor.txt").write_text("from the image\n")
    shutil.copy(busybox, built / "bin" / "busybox")
    for tool in ("sh", "cat", "ls", "id"):
        (built / "bin" / tool).symlink_to("busybox")
    with tarfile.open(tmp_path / "busybox.tar.gz", "w:gz") as tf:
        tf.add(built, arcname=".")
    catalogue = f'{TYPES}\n[image_roots]\n"registry.example/busybox:1" = "{tmp_path / "busybox.tar.gz"}"\n'
    with training_server(sqlite_url, tmp_path, catalogue=catalogue) as srv:
        image = {"ImageType": "CUSTOM", "ImageUrl": "registry.example/busybox:1"}
        task_id = create(srv, "in-image", "ls /; cat /opt/vendor.txt; id -u", ImageInfo=image)
        done = wait_status(srv, task_id, *TERMINAL, timeout=60)
        out = logs(srv, f"{done['LatestInstanceId']}-worker-0")
        missing = create(srv, "no-image", "true", ImageInfo={"ImageType": "CUSTOM", "ImageUrl": "nowhere/x:1"})
        refused = wait_status(srv, missing, *TERMINAL)
    assert done["Status"] == "SUCCEED", done["FailureReason"]
    assert "from the image" in out
    assert "usr" not in out  # the host's /usr is not in this image
    assert out[-1] != "0"
    assert refused["Status"] == "SUBMIT_FAILED"
    assert "nowhere/x:1" in refused["FailureReason"]


def fake_gpus(base: Path, count: int) -> dict[str, str]:
    """A driver's /proc/driver/nvidia/gpus and /dev with `count` GPUs, as discovery reads them."""
    proc, dev = base / "gpus", base / "dev"
    dev.mkdir(parents=True)
    for i in range(count):
        bus = proc / f"0000:{0x18 + i:02x}:00.0"
        bus.mkdir(parents=True)
        (bus / "information").write_text(f"Model: \t NVIDIA H200\nGPU UUID: \t GPU-{i:08x}\nDevice Minor: \t {i}\n")
        (dev / f"nvidia{i}").touch()
    (dev / "nvidiactl").touch()
    return {"TIONE_GPU_PROC_DIR": str(proc), "TIONE_GPU_DEV_DIR": str(dev)}


def test_create_training_task_gpus_are_disjoint_and_a_third_waits(sqlite_url: str, tmp_path: Path) -> None:
    with training_server(sqlite_url, tmp_path, catalogue=TYPES, env=fake_gpus(tmp_path, 2)) as srv:
        script = (
            "echo $NVIDIA_VISIBLE_DEVICES $CUDA_VISIBLE_DEVICES; ls /dev | grep nvidia | tr '\\n' ' '; echo; sleep 60"
        )
        ids = [create(srv, f"gpu-{i}", script, ResourceConfigInfos=one_type("TI.GPU1.POST")) for i in range(3)]
        running = [wait_status(srv, t, "RUNNING") for t in ids[:2]]
        waiting = wait_for(srv, ids[2], lambda d: d["Status"] == "PENDING" and bool(d["Message"]))
        seen: list[list[str]] = []
        for task in running:
            pod = f"{task['LatestInstanceId']}-worker-0"
            deadline = time.monotonic() + 10
            while len(out := logs(srv, pod)) < 2:
                assert time.monotonic() < deadline, "no output"
                time.sleep(0.05)
            seen.append(out)
        for t in ids:
            srv.call("StopTrainingTask", {"Id": t})
    indices = [out[0].split()[0] for out in seen]
    assert sorted(indices) == ["0", "1"]  # disjoint
    for index, out in zip(indices, seen, strict=True):
        assert out[0].split()[1] == f"GPU-{int(index):08x}"
        assert out[1].split() == [f"nvidia{index}", "nvidiactl"]  # only its own card's node
    assert waiting["Status"] == "PENDING"


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    port = free_port()
    return subprocess.Popen(
        [str(BIN), "serve", "--port", str(port), "--database", f"sqlite:///{tmp_path / 't.db'}",
         "--data-dir", str(tmp_path / "data"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}, cwd=tmp_path,
    )  # fmt: skip


def read_until(proc: subprocess.Popen[str], found: Callable[[str], bool], timeout: float = 30) -> str:
    assert proc.stdout is not None
    text = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not found(text):
        line = proc.stdout.readline()
        if not line:
            break
        text += line
    return text


def test_serve_without_a_sandbox_refuses_to_start_saying_how_to_fix_it(tmp_path: Path) -> None:
    path = tmp_path / "bin"
    path.mkdir()
    proc = serve(tmp_path, env={"PATH": str(path)})  # no bwrap to be found
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "apt-get install bubblewrap" in out
    assert "--sandbox off" in out


def test_serve_sandbox_off_warns_that_key_holders_run_as_this_user(tmp_path: Path) -> None:
    proc = serve(tmp_path, "--sandbox", "off")
    try:
        text = read_until(proc, lambda t: "Then try" in t)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "any API key holder can run commands as that user" in text
