"""Pods in a sandbox (issue 9), with the real bwrap and the real control groups of this machine.

Control groups need root: these tests run as root here and in CI, and skip (saying so) elsewhere. Every group a
test makes lives under a parent of its own, removed afterwards. Each pod runs with a small CPU quota so that the
busy ones leave this shared machine usable.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tione_server.executors import gpus, images, sandbox
from tione_server.executors.cgroups import CgroupUnavailable, Hierarchy, Limits, detect
from tione_server.executors.sandbox import Launch, SandboxSpec, SandboxUnavailable

UID = 200_777
pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is Linux namespaces and control groups"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap is missing: `make install` installs it"),
    pytest.mark.skipif(os.geteuid() != 0, reason="control groups and pod uids need root (as in CI)"),
]


@pytest.fixture
def hierarchy() -> Iterator[Hierarchy]:
    """This machine's control groups, under a parent of this test's own that is removed afterwards (with every
    pod group a test left in it)."""
    try:
        found = detect(parent=f"tione-test-{uuid.uuid4().hex[:12]}")
    except CgroupUnavailable as err:
        pytest.skip(f"no control groups for pods here: {err}")
    yield found
    parents = [m / found.parent for m in dict.fromkeys(found.mounts.values())]
    for name in {d.name for p in parents if p.is_dir() for d in p.iterdir() if d.is_dir()}:
        found.cgroup(name, Limits()).remove()
    for p in parents:
        if p.exists():
            p.rmdir()


def static_busybox() -> str | None:
    """Debian's busybox-static: an ELF file without an interpreter (PT_INTERP), so it runs in an empty image."""
    found = shutil.which("busybox")
    if found is None:
        return None
    head = Path(found).read_bytes()[:4096]
    phoff, phentsize, phnum = (int.from_bytes(head[a:b], "little") for a, b in ((32, 40), (54, 56), (56, 58)))
    types = [int.from_bytes(head[phoff + i * phentsize : phoff + i * phentsize + 4], "little") for i in range(phnum)]
    return found if head[:4] == b"\x7fELF" and 3 not in types else None


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the pod's user may pass through (pytest's own temporary directory is root's alone): bwrap
    looks up the host paths it binds as that user."""
    made = Path(tempfile.mkdtemp(prefix="tione-sandbox-"))
    made.chmod(0o711)
    yield made
    shutil.rmtree(made)


@pytest.fixture
def pod_dirs(base: Path) -> tuple[Path, Path]:
    """A code directory and an output directory the pod's user may write, as the executor will prepare them."""
    code, out = base / "code", base / "out"
    code.mkdir()
    out.mkdir()
    (code / "train.py").write_text("print('hello from the code')\n")
    os.chown(out, UID, UID)
    return code, out


def spec_for(dirs: tuple[Path, Path], name: str = "pod-0", **kw: object) -> SandboxSpec:
    code, out = dirs
    fields: dict[str, object] = {
        "name": name,
        "image_root": None,
        "code": (code, "/opt/ml/code"),
        "output": (out, "/opt/ml/output"),
        "workdir": "/opt/ml/code",
        "uid": UID,
        "gid": UID,
        "limits": Limits(cpu_millicores=300, memory_bytes=256 << 20, pids=128),
    }
    return SandboxSpec(**(fields | kw))  # type: ignore[arg-type]


def start(spec: SandboxSpec, script: str, hierarchy: Hierarchy) -> tuple[Launch, subprocess.Popen[str]]:
    launch = sandbox.prepare(spec, ["/bin/sh", "-c", script], hierarchy)
    launch.cgroup.create()
    proc = subprocess.Popen(launch.argv, env=launch.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return launch, proc


def run(spec: SandboxSpec, script: str, hierarchy: Hierarchy, timeout: float = 30) -> tuple[int, str, Launch]:
    launch, proc = start(spec, script, hierarchy)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out, launch


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sandbox_hides_other_pods_the_data_dir_the_database_and_the_server(
    hierarchy: Hierarchy, pod_dirs: tuple[Path, Path], base: Path
) -> None:
    token = uuid.uuid4().hex
    data = base / "data"
    other = data / "runs" / "train-other" / "pods" / "pod-9"
    other.mkdir(parents=True)
    (other / "spec.json").write_text(f'{{"env": {{"TOKEN": "{token}"}}}}')
    (data / "tione.db").write_text(token)
    server = subprocess.Popen(["sleep", "60"], env={"PATH": "/usr/bin:/bin", "SERVER_TOKEN": token})
    try:
        script = (
            f"cat {other}/spec.json {data}/tione.db /proc/{server.pid}/environ; ls {data}; "
            "cat /proc/[0-9]*/environ | tr '\\0' '\\n'; ls /proc | grep -c '^[0-9]'; cat train.py"
        )
        _, out, _ = run(spec_for(pod_dirs), script, hierarchy)
    finally:
        server.kill()
        server.wait()
    assert token not in out
    assert "No such file or directory" in out  # the paths do not exist inside, rather than being refused
    assert "hello from the code" in out  # its own code is there
    processes = int(out.splitlines()[-2])
    assert processes <= 4  # its own PID namespace: bwrap's init, the shell, ls, grep


def test_sandbox_pod_is_not_root_and_cannot_read_root_only_files(
    hierarchy: Hierarchy, pod_dirs: tuple[Path, Path], base: Path
) -> None:
    secret_dir = base / "mistake"
    secret_dir.mkdir()
    (secret_dir / "key").write_text("root only")
    (secret_dir / "key").chmod(0o600)
    spec = spec_for(pod_dirs, data=((secret_dir, "/opt/ml/input/data/train"),))  # a mount that should not be
    _, out, _ = run(spec, "id -u; id -g; cat /opt/ml/input/data/train/key; echo done > /opt/ml/output/x", hierarchy)
    lines = out.splitlines()
    assert lines[:2] == [str(UID), str(UID)]
    assert "root only" not in out
    assert (pod_dirs[1] / "x").read_text() == "done\n"  # the output directory is writable
    assert (pod_dirs[1] / "x").stat().st_uid == UID


def test_sandbox_root_needs_a_pod_uid(pod_dirs: tuple[Path, Path], hierarchy: Hierarchy) -> None:
    with pytest.raises(ValueError, match="uid"):
        sandbox.prepare(spec_for(pod_dirs, uid=None, gid=None), ["true"], hierarchy)


def test_sandbox_image_and_mounts_are_read_only(hierarchy: Hierarchy, pod_dirs: tuple[Path, Path]) -> None:
    script = "for p in /usr/x /etc/x /x /opt/ml/code/x /tmp/x /dev/shm/x; do touch $p && echo wrote $p; done"
    _, out, _ = run(spec_for(pod_dirs), script, hierarchy)
    wrote = [line.split()[1] for line in out.splitlines() if line.startswith("wrote ")]
    assert wrote == ["/tmp/x", "/dev/shm/x"]  # only its private tmpfs directories


def test_sandbox_memory_limit_kills_and_says_so(hierarchy: Hierarchy, pod_dirs: tuple[Path, Path]) -> None:
    limits = Limits(cpu_millicores=500, memory_bytes=64 << 20, pids=64)
    over = "python3 -c 'b = b\"x\" * (256 << 20); print(len(b))'"
    code, out, launch = run(spec_for(pod_dirs, "big", limits=limits), over, hierarchy)
    assert code == 128 + signal.SIGKILL
    assert launch.cgroup.oom_killed()
    under = "python3 -c 'b = b\"x\" * (8 << 20); print(len(b))'"
    code, out, launch = run(spec_for(pod_dirs, "small", limits=limits), under, hierarchy)
    assert (code, out.strip()) == (0, str(8 << 20))
    assert not launch.cgroup.oom_killed()


def test_sandbox_cpu_quota_holds_the_pod_to_its_cores(hierarchy: Hierarchy, pod_dirs: tuple[Path, Path]) -> None:
    limits = Limits(cpu_millicores=500, memory_bytes=128 << 20, pids=64)
    launch, proc = start(spec_for(pod_dirs, limits=limits), "(while :; do :; done) & while :; do :; done", hierarchy)
    try:
        wait_for(lambda: launch.cgroup.usage().cpu_seconds > 0.05)
        before, t0 = launch.cgroup.usage().cpu_seconds, time.monotonic()
        time.sleep(2)
        cores = (launch.cgroup.usage().cpu_seconds - before) / (time.monotonic() - t0)
    finally:
        launch.cgroup.kill_all()
        proc.wait()
    # Two busy loops would take both cores of this machine; the 0.5-core quota holds them to about half of one.
    assert 0.05 < cores < 0.7


def test_sandbox_fork_bomb_is_stopped_by_the_pids_limit(hierarchy: Hierarchy, pod_dirs: tuple[Path, Path]) -> None:
    limits = Limits(cpu_millicores=200, memory_bytes=128 << 20, pids=32)
    launch, proc = start(spec_for(pod_dirs, limits=limits), "f() { f | f & }; f; sleep 30", hierarchy)
    try:
        events = launch.cgroup.paths["pids"] / "pids.events"
        wait_for(lambda: "max 0" not in events.read_text())  # forks have been refused at the limit
        assert len(launch.cgroup.pids()) <= 32
        assert subprocess.run(["true"], check=False).returncode == 0  # the host still forks
    finally:
        assert launch.cgroup.kill_all()
        proc.wait()
    assert launch.cgroup.pids() == []


def test_sandbox_kill_all_ends_daemonized_grandchildren(hierarchy: Hierarchy, pod_dirs: tuple[Path, Path]) -> None:
    script = "setsid sh -c 'sleep 300 & sleep 301' & (sleep 302 &) ; sleep 303"
    launch, proc = start(spec_for(pod_dirs), script, hierarchy)

    def sleepers() -> list[int]:
        return [p for p in launch.cgroup.pids() if Path(f"/proc/{p}/comm").read_text().strip() == "sleep"]

    wait_for(lambda: len(sleepers()) == 4)
    found = sleepers()
    assert launch.cgroup.kill_all()
    proc.wait()
    assert launch.cgroup.pids() == []
    assert not any(Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text() for p in found)


def test_sandbox_pod_ends_with_its_supervisor(hierarchy: Hierarchy, pod_dirs: tuple[Path, Path]) -> None:
    """PID namespace and --die-with-parent: killing the supervisor ends every process of the pod, daemonized ones
    too, without anyone walking the process tree."""
    launch = sandbox.prepare(spec_for(pod_dirs), ["/bin/sh", "-c", "setsid sleep 300 & sleep 301"], hierarchy)
    launch.cgroup.create()
    supervisor = subprocess.Popen(  # stands for podwrap: the parent of the pod's bwrap
        [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])", *launch.argv], env=launch.env
    )
    wait_for(lambda: len(launch.cgroup.pids()) >= 4)  # bwrap, its init, two sleeps
    supervisor.kill()
    supervisor.wait()
    wait_for(lambda: launch.cgroup.pids() == [], timeout=5)


def test_sandbox_runs_a_task_in_a_test_built_image(
    hierarchy: Hierarchy, pod_dirs: tuple[Path, Path], base: Path
) -> None:
    busybox = static_busybox()
    if busybox is None:
        pytest.skip("a static busybox is missing: `make install` installs Debian's busybox-static")
    built = base / "build"
    (built / "bin").mkdir(parents=True)
    (built / "opt").mkdir()  # the image's own /opt: the pod's mounts under /opt/ml are made beside its content
    (built / "opt" / "vendor.txt").write_text("from the image\n")
    shutil.copy(busybox, built / "bin" / "busybox")
    for tool in ("sh", "cat", "ls", "id", "echo"):
        (built / "bin" / tool).symlink_to("busybox")
    with tarfile.open(base / "busybox.tar.gz", "w:gz") as tf:
        tf.add(built, arcname=".")
    root = images.resolve("busybox:1", {"busybox:1": base / "busybox.tar.gz"}, base / "cache")
    script = "ls /; cat /opt/vendor.txt; python3 -V; cat train.py > /opt/ml/output/copy.py; id -u"
    spec = spec_for(pod_dirs, image_root=root, env={"PATH": "/bin"})
    code, out, _ = run(spec, script, hierarchy)
    listing = out.splitlines()
    assert listing[: listing.index("tmp") + 1] == ["bin", "dev", "opt", "proc", "tmp"]  # no host /usr, /etc
    assert "from the image" in out
    assert "python3: not found" in out  # the host's tools are not there
    assert (pod_dirs[1] / "copy.py").read_text() == (pod_dirs[0] / "train.py").read_text()
    assert (code, listing[-1]) == (0, str(UID))


def test_sandbox_gpus_are_assigned_disjointly_and_only_theirs_are_visible(
    hierarchy: Hierarchy, pod_dirs: tuple[Path, Path], base: Path
) -> None:
    proc_dir, dev = base / "proc-gpus", base / "dev"
    dev.mkdir()
    for n, (bus, minor, excluded) in enumerate(
        [("0000:3b:00.0", 2, "No"), ("0000:18:00.0", 0, "No"), ("0000:86:00.0", 1, "No"), ("0000:af:00.0", 3, "Yes")]
    ):
        (proc_dir / bus).mkdir(parents=True)
        (proc_dir / bus / "information").write_text(
            f"Model: \t\t NVIDIA H200\nIRQ:   \t\t 1{n}\nGPU UUID: \t GPU-{n:08x}-aaaa-bbbb-cccc-{minor:012x}\n"
            f"Bus Location: \t {bus}\nDevice Minor: \t {minor}\nGPU Excluded:\t {excluded}\n"
        )
        (dev / f"nvidia{minor}").touch()
    for node in ("nvidiactl", "nvidia-uvm"):
        (dev / node).touch()
    (proc_dir / "0000:d8:00.0").mkdir()  # a GPU whose node is missing (no /dev/nvidia4) is no GPU to hand out
    (proc_dir / "0000:d8:00.0" / "information").write_text("Model: X\nDevice Minor: 4\n")
    inventory = gpus.discover(proc_dir, dev)
    assert [(g.index, g.node.name) for g in inventory.gpus] == [(0, "nvidia0"), (1, "nvidia2"), (2, "nvidia1")]
    assert [p.name for p in inventory.control] == ["nvidiactl", "nvidia-uvm"]
    first = gpus.assign(inventory, set(), 2)
    assert first is not None
    second = gpus.assign(inventory, {g.index for g in first}, 1)
    assert second is not None
    assert {g.index for g in first}.isdisjoint(g.index for g in second)
    assert gpus.assign(inventory, {g.index for g in (*first, *second)}, 1) is None  # the pod waits
    spec = spec_for(pod_dirs, gpus=second, gpu_control=inventory.control)
    _, out, _ = run(spec, "ls /dev | grep nvidia; echo $CUDA_VISIBLE_DEVICES $NVIDIA_VISIBLE_DEVICES", hierarchy)
    assert out.splitlines() == ["nvidia-uvm", "nvidia1", "nvidiactl", f"{second[0].uuid} 2"]


def test_sandbox_cgroup_v2_kills_all_and_counts_cpu(hierarchy: Hierarchy, pod_dirs: tuple[Path, Path]) -> None:
    """The v2 code path on this machine's unified hierarchy (mounted beside v1 here, without controllers: no
    limits, but the same cgroup.procs, cgroup.kill and cpu.stat as on a v2-only host)."""
    unified = next((p for p in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")) if _is_cgroup2(p)), None)
    if unified is None:
        pytest.skip("no cgroup2 mount here")
    v2 = Hierarchy(2, dict.fromkeys(("memory", "cpu", "pids"), unified), hierarchy.parent)
    spec = spec_for(pod_dirs, limits=Limits())
    busy = "setsid sleep 300 & i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 301"
    launch = sandbox.prepare(spec, ["/bin/sh", "-c", busy], v2)
    launch.cgroup.create()
    proc = subprocess.Popen(launch.argv, env=launch.env)
    try:
        wait_for(lambda: len(launch.cgroup.pids()) >= 4 and launch.cgroup.usage().cpu_seconds > 0.01)
        assert launch.cgroup.kill_all()
        proc.wait()
        assert launch.cgroup.pids() == []
    finally:
        launch.cgroup.remove()
        (unified / v2.parent).rmdir()


def _is_cgroup2(path: Path) -> bool:
    return (path / "cgroup.controllers").exists()


def test_sandbox_probe_finds_a_working_sandbox() -> None:
    sandbox.probe()


def test_sandbox_missing_bwrap_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        sandbox.probe()
