"""The local executor: every pod is a real process tree on this machine (the default executor).

Each pod is a supervisor (executors/podwrap.py) in its own session, running the pod's command with
`/bin/sh -c` in the run's copy of the code package; every process of the pod stays below it. The supervisor
stamps log lines and records the exit code on disk, so pods outlive a crashed server and are found again from
their handle (the supervisor's pid and process start time, see `handle`) and the pod directory. COS is not
reachable here: a COS path `bucket/path` of account UIN stands for `<cos_root>/<UIN>/bucket/path` on this machine,
confined to that tree (paths.py; docs/executors.md). Linux `/proc` is used to tell a live process from a reused pid.

By default every pod runs in a sandbox (issue 9; executors/podsandbox.py and sandbox.py): its own namespaces, an
unprivileged uid, the cgroup limits of its instance type, its image; the supervisor stays outside it. Built with
`sandboxed=False` (`serve --sandbox off`), pods run on the host as the server's user.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from tione_server.executors import archives, podwrap
from tione_server.executors.base import LaunchError, Mount, Observation, RunSpec, Submission
from tione_server.executors.cgroups import CgroupUnavailable
from tione_server.executors.gpus import Inventory
from tione_server.executors.images import ImageUnavailable
from tione_server.executors.podsandbox import OUTPUT, PodSandbox
from tione_server.executors.runfiles import FileBackedRuns, RunFiles
from tione_server.models import Pod, Run
from tione_server.paths import PathRefused, Tree, fd_path, refusal

SUPERVISOR = Path(podwrap.__file__).resolve()


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


def handle(pid: int, start: int | None) -> str:
    """A pod's handle: its supervisor's pid and kernel start time (clock ticks since boot; None when unknown), so a
    reused pid is never mistaken for ours. The upgrade to schema 4 (store/handles.py) writes this format too."""
    return json.dumps({"pid": pid, "start": start})


def _process(text: str) -> tuple[int | None, int | None]:
    """(pid, start time) of a pod's supervisor from its handle; (None, None) for a pod without one."""
    try:
        data = json.loads(text) if text else {}
        return int(data["pid"]), (None if data.get("start") is None else int(data["start"]))
    except (ValueError, KeyError, TypeError):
        return None, None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file a pod's supervisor wrote (`pid`, `exit`), or None when absent or torn."""
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

    def __init__(
        self,
        *,
        data_dir: Path,
        cos_root: Path,
        python: str = sys.executable,
        sandboxed: bool = True,
        account_uid: Callable[[str], int] | None = None,
        image_roots: Mapping[str, Path] | None = None,
        gpu_inventory: Inventory | None = None,
    ) -> None:
        """`sandboxed`: SandboxUnavailable or CgroupUnavailable when this machine cannot (issue 9 item 6).
        `account_uid`: the store's per-account uid (pods of a root server run as it; without it, as nobody)."""
        self.files = RunFiles(data_dir)
        self.cos_root = cos_root
        self.python = python
        self.sandbox = (
            PodSandbox(
                self.files, cos_root, account_uid=account_uid, image_roots=image_roots, gpu_inventory=gpu_inventory
            )
            if sandboxed
            else None
        )

    # -- submission: the run's directory --------------------------------------------------------

    def cos_tree(self, account: str) -> Tree:
        """The account's COS tree, `<cos_root>/<UIN>` (issue 7 A1): its paths never reach another account's."""
        if not account or "/" in account or account in (".", "..") or refusal(account):
            raise _SubmitFailed(f"the task's account {account!r} has no COS tree here")
        return Tree(self.cos_root / account)

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
            tree = self.cos_tree(spec.account)
            if spec.code is not None:
                self._copy_code(tree, spec.code, code)
            mnt = Tree(self.files.mounts(spec.run_id))
            for m in spec.mounts:
                fd, src = self._open(tree, m, "data path")
                os.close(fd)
                try:
                    mnt.link(m.target, src)  # MappingPath is a path inside the pod, never one on the host
                except PathRefused as err:
                    raise _SubmitFailed(f"MappingPath {m.target!r} {err}") from None
            if spec.output is not None:
                fd, out = self._open(tree, spec.output, "output path", make_dirs=True)
                os.close(fd)
                (root / "output").symlink_to(out)
            if self.sandbox is not None:
                self.sandbox.image(spec)  # issue 9 item 4: an image that does not resolve fails the submission
                self.sandbox.prepare_run(spec, out if spec.output is not None else None)
        except ImageUnavailable as err:
            return Submission(ready=False, error=str(err))
        except _SubmitFailed as err:
            return Submission(ready=False, error=str(err))
        except OSError as err:
            # Issue 7 A3: the request's own trouble fails the run once; the machine's (a full disk) is retried.
            return Submission(ready=False, error=f"cannot prepare the run: {err}", retry=transient(err))
        return Submission(ready=True)

    @staticmethod
    def _open(tree: Tree, mount: Mount, what: str, *, make_dirs: bool = False) -> tuple[int, Path]:
        """A descriptor and the real path of a COS path in the account's tree, or _SubmitFailed saying why not."""
        try:
            real = tree.real(mount.source)
            return tree.open(mount.source, make_dirs=make_dirs), real
        except PathRefused as err:
            raise _SubmitFailed(f"{what} {mount.source} {err}") from None
        except (FileNotFoundError, NotADirectoryError):
            raise _SubmitFailed(f"{what} {mount.source} not found (looked for {tree.root / mount.source})") from None

    def _copy_code(self, tree: Tree, mount: Mount, code: Path) -> None:
        """The code package into the run's directory: a directory copied, an archive unpacked, a file copied."""
        fd, _ = self._open(tree, mount, "code package")
        name = PurePosixPath(mount.source).name
        try:
            src = fd_path(fd)  # what was opened and checked, not the name again
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                shutil.copytree(src, code, symlinks=True, dirs_exist_ok=True, ignore=_escaping_links(tree, mount))
            elif archives.is_archive(name):
                with src.open("rb") as fh:
                    archives.unpack(fh, name, code)
            else:
                shutil.copy2(src, code / name)
        except archives.BadArchive as err:
            raise _SubmitFailed(f"code package {mount.source}: {err}") from None
        finally:
            os.close(fd)

    # -- launch ---------------------------------------------------------------------------------

    def _platform_env(self, spec: RunSpec) -> dict[str, dict[str, str]]:
        """Per pod: MASTER_PORT (one per run), TF_CONFIG for PS_WORKER, and where mounts and output are."""
        root = self.files.root(spec.run_id)
        boxed = self.sandbox is not None  # paths as the pod sees them (podsandbox.py)
        shared = {
            "MASTER_PORT": str(free_port()),
            "TI_MOUNT_ROOT": "/" if boxed else str(self.files.mounts(spec.run_id)),
            "PYTHONUNBUFFERED": "1",  # log lines are stamped when read: let Python print them when written
        }
        if spec.output is not None:
            shared["TI_OUTPUT_DIR"] = OUTPUT if boxed else str(root / "output")
        envs = {p.name: dict(shared) for p in spec.pods}
        if spec.mode == "PS_WORKER":
            for name, config in tf_configs(spec, {p.name: f"127.0.0.1:{free_port()}" for p in spec.pods}).items():
                envs[name]["TF_CONFIG"] = config
        return envs

    def launch(self, spec: RunSpec, pods: Sequence[Pod], now: float) -> dict[str, str]:
        platform = self._platform_env(spec)
        by_name = {p.name: p for p in spec.pods}
        handles: dict[str, str] = {}
        try:
            image = self.sandbox.image(spec) if self.sandbox is not None else None
        except ImageUnavailable as err:  # removed from the table since the submission
            raise LaunchError(str(err)) from None
        try:
            for pod in pods:
                ps = by_name[pod.name]
                pod_dir = self.files.pod_dir(spec.run_id, pod.name)
                pod_dir.mkdir(parents=True, exist_ok=True)
                run_spec: dict[str, object] = {
                    "command": ps.command,
                    "cwd": str(self.files.code(spec.run_id)),
                    "env": _base_env() | platform[pod.name] | dict(ps.env),
                    "stdout": str(self.files.log(spec.run_id, pod.name, "stdout")),
                    "stderr": str(self.files.log(spec.run_id, pod.name, "stderr")),
                }
                if self.sandbox is not None:
                    env = platform[pod.name] | dict(ps.env)  # never the server's own environment
                    run_spec |= self.sandbox.launch(spec, ps, pod, env, image, pod_dir) | {"cwd": "/"}
                spec_file = pod_dir / "spec.json"
                spec_file.touch(mode=0o600)  # it holds private env values: never readable by others, even briefly
                spec_file.chmod(0o600)
                spec_file.write_text(json.dumps(run_spec))
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
                # read from its files and /proc, never from this Popen).
                threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
                stat = proc_stat(proc.pid)
                handles[pod.name] = handle(proc.pid, stat[1] if stat else None)
        except (OSError, CgroupUnavailable) as err:
            for name, text in handles.items():
                self._signal_pod(name, text, kill=True)
            raise LaunchError(f"cannot start pod {pod.name}: {err}", handles) from err
        return handles

    # -- observation ----------------------------------------------------------------------------

    def observe(self, spec: RunSpec, run: Run, now: float) -> dict[str, Observation]:
        return {p.name: self._observe(run.id, p, now) for p in run.pods if p.launched_at is not None}

    def _observe(self, run_id: str, pod: Pod, now: float) -> Observation:
        pod_dir = self.files.pod_dir(run_id, pod.name)
        info = read_json(pod_dir / "pid")
        started = float(info["time"]) if info else None
        pid, proc_start = _process(pod.handle)
        recovered = ""
        if pid is None and info:  # launched, but the handle was not stored (a crash): adopt the live process
            pid = int(info["pid"])
            stat = proc_stat(pid)
            proc_start = stat[1] if stat else None
            recovered = handle(pid, proc_start)
        for attempt in range(2):  # exit file, liveness, then the exit file again (it may just have appeared)
            done = read_json(pod_dir / "exit")
            if done is not None:
                ended, code = float(done["time"]), int(done["code"])
                # Issue 9 item 3: a pod the memory limit killed says so, not just "exited with code 137".
                oom = f"was killed: out of memory (limit {pod.memory} MiB)" if done.get("oom_kill") else ""
                return Observation(
                    "EXITED", started_at=started, ended_at=ended, exit_code=code, handle=recovered, reason=oom
                )
            if attempt == 0 and alive(pid, proc_start):
                return Observation("RUNNING" if info else "PENDING", started_at=started, handle=recovered)
        if self.sandbox is not None:  # its supervisor is gone: so is the pod (--die-with-parent); drop its groups
            self._remove_cgroup(pod.name)
        return Observation("LOST", started_at=started, ended_at=now, handle=recovered)

    def _remove_cgroup(self, pod: str) -> None:
        """End whatever is left in a pod's control groups and delete them (the supervisor does, when it can)."""
        assert self.sandbox is not None
        with contextlib.suppress(CgroupUnavailable, ValueError):
            self.sandbox.cgroup(pod).remove()

    def remove(self, run_id: str) -> None:
        """Delete the run's files, and the control groups of its pods (Delete; issue 9 item 3)."""
        if self.sandbox is not None:
            pods = self.files.root(run_id) / "pods"
            for pod in pods.iterdir() if pods.is_dir() else ():
                self._remove_cgroup(pod.name)
        super().remove(run_id)

    # -- stopping and cleanup -------------------------------------------------------------------

    def _signal_pod(self, name: str, text: str, *, kill: bool, run_id: str = "") -> None:
        """Stop (kill=False) or kill a pod. Through its supervisor, which reaches every process of the pod, even
        daemonized ones (issue 7 E11); with the supervisor gone, the command's own process group directly."""
        pid, start = _process(text)
        if pid and alive(pid, start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, podwrap.KILL if kill else podwrap.STOP)
            return
        info = read_json(self.files.pod_dir(run_id, name) / "pid") if run_id else None
        child = int(info["child"]) if info and info.get("child") else 0
        try:  # the command leads its own group: check that this pid is still that process
            ours = bool(child) and alive(child, None) and os.getpgid(child) == child
        except OSError:
            ours = False
        if ours:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGKILL if kill else signal.SIGTERM)

    def signal(self, spec: RunSpec, run: Run, pods: Sequence[Pod], *, kill: bool, now: float) -> None:
        for pod in pods:
            self._signal_pod(pod.name, pod.handle, kill=kill, run_id=run.id)


def tf_configs(spec: RunSpec, hosts: dict[str, str]) -> dict[str, str]:
    """TF_CONFIG of every pod of a PS_WORKER run, given each pod's `host:port` (shared with the Ray executor)."""
    cluster: dict[str, list[str]] = {}
    index: dict[str, int] = {}  # not cluster[kind].index(...): no search per pod (issue 7 B4)
    for p in spec.pods:
        members = cluster.setdefault(p.role.lower(), [])
        index[p.name] = len(members)
        members.append(hosts[p.name])
    return {
        p.name: json.dumps({"cluster": cluster, "task": {"type": p.role.lower(), "index": index[p.name]}})
        for p in spec.pods
    }


class _SubmitFailed(Exception):
    """A request path that cannot be provided: the run ends SUBMIT_FAILED with this text."""


TRANSIENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EIO, errno.EAGAIN, errno.EBUSY,
     errno.EINTR}
)  # fmt: skip
"""OS errors of the machine rather than of the request: preparing the run again later may succeed."""


def transient(err: OSError) -> bool:
    """Whether preparing a run again may succeed where it failed with `err` (issue 7 A3)."""
    return err.errno in TRANSIENT_ERRNOS


def _escaping_links(tree: Tree, mount: Mount) -> Callable[[str, list[str]], set[str]]:
    """A copytree `ignore` that refuses a code directory holding a symlink that leads outside the account's tree
    (issue 7 A2): copying it would hand the pod a way out."""
    base = tree.root.resolve()

    def check(directory: str, names: list[str]) -> set[str]:
        for name in names:
            path = Path(directory) / name
            try:
                outside = path.is_symlink() and not path.resolve().is_relative_to(base)
            except (OSError, RuntimeError):  # a symlink loop leads nowhere
                outside = False
            if outside:
                raise _SubmitFailed(
                    f"code package {mount.source}: its symlink {name!r} leads outside the account's storage"
                )
        return set()

    return check
