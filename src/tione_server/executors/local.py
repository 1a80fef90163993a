"""The local executor: every pod is a real process group on this machine (the default executor).

Each pod is a supervisor (executors/podwrap.py) in its own session, running the pod's command with
`/bin/sh -c` in the run's copy of the code package. The supervisor stamps log lines and records the exit
code on disk, so pods outlive a crashed server and are found again from the database (pid, process start
time) and the pod directory. COS is not reachable here: a COS path `bucket/path` stands for
`<cos_root>/bucket/path` on this machine (docs/executors.md). Linux `/proc` is used to tell a live process
from a reused pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tione_server.executors import podwrap
from tione_server.executors.base import (
    FileBackedRuns,
    LaunchError,
    Mount,
    Observation,
    RunFiles,
    RunSpec,
    Submission,
)
from tione_server.models import Pod, Run

SUPERVISOR = Path(podwrap.__file__).resolve()
ARCHIVES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz", ".zip")


def free_port() -> int:
    """A TCP port nobody listens on right now (for MASTER_PORT and TF_CONFIG)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process from /proc, or None when there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[19])


def alive(pid: int | None, start: int | None) -> bool:
    """Whether `pid` is a live (not zombie) process, and the same one that started at `start`."""
    if not pid:
        return False
    if not Path("/proc/self/stat").exists():  # not Linux: best effort, pids are not checked for reuse
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    stat = proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return start is None or stat[1] == start


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _base_env() -> dict[str, str]:
    """The server's environment (PATH, HOME, ...) without its own TIONE_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TIONE_")}


class LocalExecutor(FileBackedRuns):
    """Runs pods as local process groups; see the module docstring."""

    name = "local"

    def __init__(self, *, data_dir: Path, cos_root: Path, python: str = sys.executable) -> None:
        self.files = RunFiles(data_dir)
        self.cos_root = cos_root
        self.python = python

    # -- submission: the run's directory --------------------------------------------------------

    def local_path(self, mount: Mount) -> Path:
        """Where a request path lives on this machine: COS paths under the COS root, others as given."""
        return self.cos_root / mount.source if mount.kind == "COS" else Path(mount.source)

    def submit(self, spec: RunSpec, now: float) -> Submission:
        if spec.unsupported:
            return Submission(ready=False, error=spec.unsupported)
        if any(not p.command.strip() for p in spec.pods):
            field = "PsStartCmd/WorkerStartCmd" if spec.mode == "PS_WORKER" else "StartCmd"
            return Submission(ready=False, error=f"no start command: StartCmdInfo.{field} is empty")
        root = self.files.root(spec.run_id)
        shutil.rmtree(root, ignore_errors=True)  # a resubmission after a restart starts clean
        code = self.files.code(spec.run_id)
        for d in (code, self.files.mounts(spec.run_id), root / "pods", root / "logs"):
            d.mkdir(parents=True, exist_ok=True)
        try:
            if spec.code is not None:
                self._unpack(self.local_path(spec.code), code, spec.code)
            for m in spec.mounts:
                src = self.local_path(m)
                if not src.exists():
                    return Submission(ready=False, error=f"data path {m.source} not found (looked for {src})")
                link = self.files.mounts(spec.run_id) / m.target
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(src.resolve())
            if spec.output is not None:
                out = self.local_path(spec.output)
                out.mkdir(parents=True, exist_ok=True)
                (root / "output").symlink_to(out.resolve())
        except _SubmitFailed as err:
            return Submission(ready=False, error=str(err))
        except OSError as err:
            return Submission(ready=False, error=f"cannot prepare the run: {err}")
        return Submission(ready=True)

    @staticmethod
    def _unpack(src: Path, code: Path, mount: Mount) -> None:
        if not src.exists():
            raise _SubmitFailed(f"code package {mount.source} not found (looked for {src})")
        if src.is_dir():
            shutil.copytree(src, code, symlinks=True, dirs_exist_ok=True)
        elif src.name.endswith(".zip"):
            with zipfile.ZipFile(src) as zf:
                zf.extractall(code)  # noqa: S202 - zipfile refuses absolute and `..` member paths
        elif src.name.endswith(ARCHIVES):
            with tarfile.open(src) as tf:
                tf.extractall(code, filter="data")
        else:
            shutil.copy2(src, code / src.name)

    # -- launch ---------------------------------------------------------------------------------

    def _platform_env(self, spec: RunSpec) -> dict[str, dict[str, str]]:
        """Per pod: MASTER_PORT (one per run), TF_CONFIG for PS_WORKER, and where mounts and output are."""
        root = self.files.root(spec.run_id)
        shared = {
            "MASTER_PORT": str(free_port()),
            "TI_MOUNT_ROOT": str(self.files.mounts(spec.run_id)),
            "PYTHONUNBUFFERED": "1",  # log lines are stamped when read: let Python print them when written
        }
        if spec.output is not None:
            shared["TI_OUTPUT_DIR"] = str(root / "output")
        envs = {p.name: dict(shared) for p in spec.pods}
        if spec.mode == "PS_WORKER":
            hosts = {p.name: f"127.0.0.1:{free_port()}" for p in spec.pods}
            cluster: dict[str, list[str]] = {}
            index: dict[str, int] = {}  # not cluster[kind].index(...): no search per pod (issue 7 B4)
            for p in spec.pods:
                members = cluster.setdefault(p.role.lower(), [])
                index[p.name] = len(members)
                members.append(hosts[p.name])
            for p in spec.pods:
                task = {"type": p.role.lower(), "index": index[p.name]}
                envs[p.name]["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": task})
        return envs

    def launch(self, spec: RunSpec, pods: Sequence[Pod], now: float) -> None:
        platform = self._platform_env(spec)
        by_name = {p.name: p for p in spec.pods}
        started: list[Pod] = []
        try:
            for pod in pods:
                ps = by_name[pod.name]
                pod_dir = self.files.pod_dir(spec.run_id, pod.name)
                pod_dir.mkdir(parents=True, exist_ok=True)
                (pod_dir / "spec.json").write_text(
                    json.dumps(
                        {
                            "command": ps.command,
                            "cwd": str(self.files.code(spec.run_id)),
                            "env": _base_env() | platform[pod.name] | dict(ps.env),
                            "stdout": str(self.files.log(spec.run_id, pod.name, "stdout")),
                            "stderr": str(self.files.log(spec.run_id, pod.name, "stderr")),
                        }
                    )
                )
                (pod_dir / "spec.json").chmod(0o600)  # it holds private env values
                with (pod_dir / "supervisor.log").open("ab") as errlog:
                    proc = subprocess.Popen(
                        [self.python, "-I", str(SUPERVISOR), str(pod_dir)],
                        start_new_session=True,  # own session and process group: pgid = pid
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=errlog,
                        cwd=self.files.root(spec.run_id),
                        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                    )
                # Reap the supervisor when it exits, so it never lingers as a zombie of the server (state is
                # read from its files and /proc, never from this handle).
                threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
                stat = proc_stat(proc.pid)
                pod.pid, pod.pgid, pod.launched_at = proc.pid, proc.pid, now
                pod.proc_start = stat[1] if stat else None
                started.append(pod)
        except OSError as err:
            for pod in started:
                self._killpg(pod, signal.SIGKILL)
            raise LaunchError(f"cannot start pod {pod.name}: {err}") from err

    # -- observation ----------------------------------------------------------------------------

    def observe(self, spec: RunSpec, run: Run, now: float) -> dict[str, Observation]:
        return {p.name: self._observe(run.id, p, now) for p in run.pods if p.launched_at is not None or p.pid}

    def _observe(self, run_id: str, pod: Pod, now: float) -> Observation:
        pod_dir = self.files.pod_dir(run_id, pod.name)
        info = _read_json(pod_dir / "pid")
        started = float(info["time"]) if info else None
        pid = pod.pid or (int(info["pid"]) if info else None)
        proc_start = pod.proc_start
        if pid and proc_start is None:  # recovered from the pid file: adopt the live process, if any
            stat = proc_stat(pid)
            proc_start = stat[1] if stat else None
        ids = {"pid": pid, "pgid": pod.pgid or pid, "proc_start": proc_start}
        for attempt in range(2):  # exit file, liveness, then the exit file again (it may just have appeared)
            done = _read_json(pod_dir / "exit")
            if done is not None:
                return Observation(
                    "EXITED", started_at=started, ended_at=float(done["time"]), exit_code=int(done["code"]), **ids
                )
            if attempt == 0 and alive(pid, proc_start):
                return Observation("RUNNING" if info else "PENDING", started_at=started, **ids)
        return Observation("LOST", started_at=started, ended_at=now, **ids)

    # -- stopping and cleanup -------------------------------------------------------------------

    def _killpg(self, pod: Pod, sig: signal.Signals, run_id: str = "") -> None:
        pgid = pod.pgid or pod.pid
        if not pgid:
            return
        target_ok = alive(pod.pid, pod.proc_start)
        if not target_ok and run_id:
            # The supervisor is gone but its command may live on in the same group: check it is ours.
            info = _read_json(self.files.pod_dir(run_id, pod.name) / "pid")
            child = int(info["child"]) if info and info.get("child") else 0
            try:
                target_ok = bool(child) and alive(child, None) and os.getpgid(child) == pgid
            except OSError:
                target_ok = False
        if target_ok:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)

    def signal(self, spec: RunSpec, run: Run, pods: Sequence[Pod], *, kill: bool, now: float) -> None:
        sig = signal.SIGKILL if kill else signal.SIGTERM
        for pod in pods:
            self._killpg(pod, sig, run.id)


class _SubmitFailed(Exception):
    """A request path that cannot be provided: the run ends SUBMIT_FAILED with this text."""
