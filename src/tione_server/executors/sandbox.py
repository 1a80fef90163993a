"""A pod in a sandbox (issue 9 items 1, 2, 7): from a pod's SandboxSpec to the command line that runs it inside
bubblewrap (`bwrap`) and the control group that bounds it. Shared by every executor that runs pods on a machine.

What a pod sees: its image's root read-only (the built-in `host` image: the host's /usr, /bin, /sbin, /lib*,
/etc), its code directory and data mounts read-only, its output directory read-write, a private /tmp and
/dev/shm, a minimal /dev (plus its own GPUs' nodes), and its own /proc; the root itself is read-only. It has its own
mount, PID, IPC, UTS and cgroup namespaces, and a user namespace in which it cannot make further ones. It shares
the host's network (DDP between the pods of a task needs it): that is what remains shared.

Who it runs as: when the server is root, the account's own unprivileged uid/gid (store: `account_uid`), entered
with `setpriv` before bwrap starts, so bwrap runs unprivileged and even a mount mistake cannot reach root-only
files; otherwise the server's own user. Never uid 0.

Ending it: bwrap is the pod's PID-namespace init, so killing it ends every process of the pod, daemonized or not.
`--die-with-parent` ties the pod to its supervisor (podwrap), which outlives server restarts; never to the server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tione_server.executors import gpus as gpu_mod
from tione_server.executors.cgroups import Cgroup, Hierarchy, Limits

HOST_IMAGE_ENTRIES = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
"""What the built-in `host` image shows of the host's root (issue 9 item 4)."""
OWN_MOUNTS = frozenset({"proc", "dev", "tmp", "sys"})
"""Top-level names of an image that the sandbox provides itself (or, for /sys, not at all)."""
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), or run with --sandbox off"


class SandboxUnavailable(Exception):
    """Pods cannot be sandboxed on this machine; the text says why and how to fix it."""


@dataclass(frozen=True)
class SandboxSpec:
    """Everything the sandbox of one pod is made from. Paths inside the pod are absolute POSIX paths."""

    name: str
    """The pod's name: its hostname and its control group's name."""
    image_root: Path | None
    """The image's root filesystem (a directory), or None for the built-in `host` image."""
    code: tuple[Path, str]
    """(host directory, path in the pod), read-only."""
    output: tuple[Path, str] | None
    """(host directory, path in the pod), read-write; None when the task has no output."""
    workdir: str
    """The pod's working directory (a path in the pod)."""
    data: tuple[tuple[Path, str], ...] = ()
    """(host path, path in the pod) of each data mount, read-only."""
    env: Mapping[str, str] = field(default_factory=dict)
    uid: int | None = None
    """The pod's uid and gid when the server is root (None: the server's own user, which must not be root)."""
    gid: int | None = None
    limits: Limits = field(default_factory=Limits)
    gpus: tuple[gpu_mod.Gpu, ...] = ()
    """The GPUs assigned to the pod: only their device nodes, and the control nodes, are bound in."""
    gpu_control: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Launch:
    """How to start a pod: run `argv` with exactly `env` (env values never go on a command line, which any host
    user can read), after `cgroup.create()`."""

    argv: list[str]
    env: dict[str, str]
    cgroup: Cgroup


def bwrap_path() -> str:
    """The bwrap binary; SandboxUnavailable saying how to get it when it is missing."""
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable(f"bwrap is not installed: {INSTALL_HINT}")
    return found


def probe() -> None:
    """Start one trivial sandbox (the same namespaces a pod gets); SandboxUnavailable with bwrap's reason if that
    fails, e.g. where user namespaces are disabled (the local executor refuses to start then, issue 9 item 6)."""
    argv = [bwrap_path(), *_NAMESPACES, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    if os.geteuid() == 0:
        argv = _as_user(argv, 65534, 65534)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SandboxUnavailable(f"bwrap cannot start: {err}; {INSTALL_HINT}") from None
    if done.returncode != 0:
        raise SandboxUnavailable(
            f"bwrap cannot make a sandbox here ({done.stderr.strip()}); user namespaces may be disabled "
            "(sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0), or run with --sandbox off"
        )


_NAMESPACES = (
    "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
    "--disable-userns", "--die-with-parent", "--new-session",
)  # fmt: skip
"""Issue 9 item 1: every namespace but the network's; no nested user namespaces (a way back to privileges)."""


def _as_user(argv: list[str], uid: int, gid: int) -> list[str]:
    """`argv` run as uid/gid with no supplementary groups (root's are dropped) and no capabilities."""
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *argv]


def _pod_path(path: str) -> PurePosixPath:
    pod = PurePosixPath(path)
    if not pod.is_absolute() or ".." in pod.parts or pod == PurePosixPath("/"):
        raise ValueError(f"{path!r} is not a path a pod can have a mount at")
    return pod


def _image_args(src: Path, dst: PurePosixPath, points: set[PurePosixPath], only: Sequence[str] = ()) -> list[str]:
    """Binds that show the image directory `src` at `dst`, read-only, one entry at a time.

    An entry on the way to one of the pod's mount `points` becomes a directory of its own with the image's entries
    bound into it one by one, so that the mount point can be made there while the image stays read-only; a mount
    point itself is left to its mount.
    """
    args: list[str] = []
    for name in only or sorted(p.name for p in src.iterdir()):
        host, pod = src / name, dst / name
        if pod in points or (dst == PurePosixPath("/") and name in OWN_MOUNTS) or not os.path.lexists(host):
            continue
        if any(pod in p.parents for p in points):
            inside = _image_args(host, pod, points) if host.is_dir() and not host.is_symlink() else []
            args += ["--dir", str(pod), *inside]
        elif host.is_symlink():
            args += ["--symlink", str(host.readlink()), str(pod)]
        else:
            args += ["--ro-bind", str(host), str(pod)]
    return args


def pod_env(spec: SandboxSpec) -> dict[str, str]:
    """The pod's environment: a PATH and HOME of its own, its spec's variables, and its GPUs' (issue 9 item 5)."""
    env = {"PATH": DEFAULT_PATH, "HOME": "/tmp", "TMPDIR": "/tmp"}  # noqa: S108 - the pod's private /tmp
    return env | dict(spec.env) | gpu_mod.visible_devices(spec.gpus)


def bwrap_args(spec: SandboxSpec) -> list[str]:
    """bwrap's options for `spec`, up to (not including) the command."""
    binds = [("--ro-bind", *spec.code), *(("--ro-bind", *d) for d in spec.data)]
    if spec.output is not None:
        binds.append(("--bind", *spec.output))
    points = {_pod_path(pod) for _, _, pod in binds}
    if spec.image_root is None:
        image = _image_args(Path("/"), PurePosixPath("/"), points, HOST_IMAGE_ENTRIES)
    else:
        image = _image_args(spec.image_root, PurePosixPath("/"), points)
    args = [*_NAMESPACES, "--hostname", spec.name, *image]
    private = ["--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]  # noqa: S108 - the pod's own, in its mount namespace
    args += ["--proc", "/proc", "--dev", "/dev", *private]
    for node in (*(g.node for g in spec.gpus), *spec.gpu_control):
        args += ["--dev-bind", str(node), f"/dev/{node.name}"]
    for option, host, pod in binds:
        args += [option, str(host), str(_pod_path(pod))]
    return [*args, "--remount-ro", "/", "--chdir", str(_pod_path(spec.workdir))]


def prepare(spec: SandboxSpec, argv: Sequence[str], hierarchy: Hierarchy) -> Launch:
    """How to run `argv` as the pod `spec`: the full command line (enter the cgroup, drop to the pod's user,
    bwrap, `argv`), its environment, and its (not yet created) control group."""
    cgroup = hierarchy.cgroup(spec.name, spec.limits)
    inner = [bwrap_path(), *bwrap_args(spec), "--", *argv]
    if os.geteuid() == 0:
        if not spec.uid or not spec.gid:
            raise ValueError("a pod of a server running as root needs a uid and gid of its own (not 0)")
        inner = _as_user(inner, spec.uid, spec.gid)
    return Launch(argv=[*cgroup.enter_argv(), *inner], env=pod_env(spec), cgroup=cgroup)
