"""A pod's control group (issue 9 item 3): its hard memory limit, CPU quota and pids limit, its usage, and the
one way to end every process in it.

Both layouts are served: cgroup v2 (one unified hierarchy holding the memory, cpu and pids controllers) and, where
those controllers are mounted as v1 hierarchies (as on these machines: /sys/fs/cgroup/{memory,cpu,cpuacct,pids}),
v1. A pod's group is `<hierarchy>/<parent>/<pod name>` in each hierarchy. Creating groups and moving processes in
needs root (or a delegated subtree); nothing here runs inside the pod.

A process enters its group before it runs anything of the pod: the command line starts with a shell that writes
`0` (itself) to each `cgroup.procs` and then execs the rest (`enter_argv`), so no child can escape between a fork
and an attach.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
CPU_PERIOD_US = 100_000
"""The CFS period: a quota of `millicores * 100` microseconds per 100 ms is `millicores / 1000` cores."""
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")
"""The v1 hierarchies a pod needs: limits in memory, cpu and pids; CPU time from cpuacct."""
V2_CONTROLLERS = ("memory", "cpu", "pids")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_ENTER = 'cd / && while [ "$1" != -- ]; do echo 0 > "$1" || exit 125; shift; done; shift; exec "$@"'
"""Moves the shell itself into each group named before `--`, then becomes the command after it (exit 125 when a
group cannot be entered, as `env` does for its own failures)."""


class CgroupUnavailable(Exception):
    """This machine offers no usable control groups for pods; the text says what is missing."""


@dataclass(frozen=True)
class Limits:
    """What a pod may use; None leaves that resource unlimited."""

    cpu_millicores: int | None = None
    memory_bytes: int | None = None
    pids: int | None = None


@dataclass(frozen=True)
class Usage:
    """What a pod's processes have used so far: CPU time, and memory now and at its highest (None: not counted)."""

    cpu_seconds: float
    memory_bytes: int | None
    memory_peak_bytes: int | None


@dataclass(frozen=True)
class Hierarchy:
    """Where pods' groups are made: cgroup `version` 1 or 2, the mount of each controller (v2: one mount for all),
    and the group under which every pod's group is made."""

    version: int
    mounts: Mapping[str, Path]
    parent: str = "tione-server"

    def cgroup(self, name: str, limits: Limits) -> Cgroup:
        """The group of the pod `name` (made by its `create`)."""
        for part in [*self.parent.split("/"), name]:
            if not _NAME.fullmatch(part):
                raise ValueError(f"{part!r} cannot name a control group")
        return Cgroup(self, name, limits)


def _cgroup_mounts(mountinfo: Path) -> tuple[list[Path], dict[str, Path]]:
    """The cgroup2 mount points, and each v1 controller's mount point, from a mountinfo file."""
    v2: list[Path] = []
    v1: dict[str, Path] = {}
    for line in mountinfo.read_text().splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(rest) < 3:
            continue
        point = Path(fields[4].replace("\\040", " "))
        if rest[0] == "cgroup2":
            v2.append(point)
        elif rest[0] == "cgroup":
            for option in rest[2].split(","):
                v1.setdefault(option, point)
    return v2, v1


def detect(parent: str = "tione-server", mountinfo: Path = MOUNTINFO) -> Hierarchy:
    """This machine's hierarchy for pods: cgroup v2 where it holds memory, cpu and pids; else v1's controllers."""
    v2, v1 = _cgroup_mounts(mountinfo)
    for point in v2:
        with contextlib.suppress(OSError):
            if set(V2_CONTROLLERS) <= set((point / "cgroup.controllers").read_text().split()):
                return Hierarchy(2, dict.fromkeys(V2_CONTROLLERS, point), parent)
    if all(c in v1 for c in V1_CONTROLLERS):
        return Hierarchy(1, {c: v1[c] for c in V1_CONTROLLERS}, parent)
    missing = [c for c in V1_CONTROLLERS if c not in v1]
    raise CgroupUnavailable(
        "no cgroup v2 hierarchy with the memory, cpu and pids controllers, and no cgroup v1 hierarchy for "
        + ", ".join(missing)
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _keyed(path: Path, key: str) -> int | None:
    """The value of `key` in a flat keyed file (`key value` lines: memory.events, cpu.stat, oom_control)."""
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return None


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as err:
        raise CgroupUnavailable(f"cannot write {value!r} to {path}: {err.strerror}") from None


class Cgroup:
    """One pod's group, in every hierarchy of its `Hierarchy` (see the module docstring)."""

    def __init__(self, hierarchy: Hierarchy, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.version = hierarchy.version
        self.mounts = dict(hierarchy.mounts)
        self.paths = {c: m / hierarchy.parent / name for c, m in hierarchy.mounts.items()}
        self.parents = {c: m / hierarchy.parent for c, m in hierarchy.mounts.items()}

    def _dirs(self) -> list[Path]:
        return list(dict.fromkeys(self.paths.values()))  # v2: one directory for every controller

    def create(self) -> None:
        """Make the group (again, if it is left over) with its limits; CgroupUnavailable when that is not allowed."""
        if self.version == 2:
            self._enable_v2_controllers()
        for d in self._dirs():
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise CgroupUnavailable(f"cannot make the control group {d}: {err.strerror}") from None
        lim = self.limits
        memory, cpu, pids = self.paths.get("memory"), self.paths.get("cpu"), self.paths.get("pids")
        if lim.memory_bytes is not None and memory is not None:
            if self.version == 2:
                _write(memory / "memory.max", str(lim.memory_bytes))
                if (memory / "memory.swap.max").exists():
                    _write(memory / "memory.swap.max", "0")  # the limit is memory, not memory plus swap
            else:
                _write(memory / "memory.limit_in_bytes", str(lim.memory_bytes))
                if (memory / "memory.memsw.limit_in_bytes").exists():
                    _write(memory / "memory.memsw.limit_in_bytes", str(lim.memory_bytes))
        if lim.cpu_millicores is not None and cpu is not None:
            quota = max(1000, lim.cpu_millicores * CPU_PERIOD_US // 1000)  # the kernel's smallest quota is 1 ms
            if self.version == 2:
                _write(cpu / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            else:
                _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(cpu / "cpu.cfs_quota_us", str(quota))
        if lim.pids is not None and pids is not None:
            _write(pids / "pids.max", str(lim.pids))

    def _enable_v2_controllers(self) -> None:
        """v2 hands a controller to a child only when every ancestor's subtree_control names it."""
        wanted = {
            "memory": self.limits.memory_bytes,
            "cpu": self.limits.cpu_millicores,
            "pids": self.limits.pids,
        }
        needed = [c for c, limit in wanted.items() if limit is not None]
        if not needed:
            return
        root, parent = self.mounts[needed[0]], self.parents[needed[0]]
        available = (_read(root / "cgroup.controllers") or "").split()
        if missing := [c for c in needed if c not in available]:
            raise CgroupUnavailable(f"the cgroup v2 hierarchy at {root} lacks the {', '.join(missing)} controller")
        try:
            parent.mkdir(exist_ok=True)
        except OSError as err:
            raise CgroupUnavailable(f"cannot make the control group {parent}: {err.strerror}") from None
        for d in (root, parent):
            _write(d / "cgroup.subtree_control", " ".join(f"+{c}" for c in needed))

    def enter_argv(self) -> list[str]:
        """The start of a command line that runs the rest of it inside this group (see the module docstring)."""
        return ["/bin/sh", "-c", _ENTER, "tione-cgroup", *(str(d / "cgroup.procs") for d in self._dirs()), "--"]

    def pids(self) -> list[int]:
        """The processes in the group now (host pids); none once it is removed."""
        return [int(p) for p in (_read(self._dirs()[0] / "cgroup.procs") or "").split()]

    def usage(self) -> Usage:
        """CPU seconds used and memory held (for the console and the CPU-quota check)."""
        memory, cpu = self.paths["memory"], self.paths["cpu"]
        if self.version == 2:
            cpu_seconds = (_keyed(cpu / "cpu.stat", "usage_usec") or 0) / 1e6
            current, peak = _read(memory / "memory.current"), _read(memory / "memory.peak")
        else:
            cpu_seconds = int(_read(self.paths["cpuacct"] / "cpuacct.usage") or 0) / 1e9
            current, peak = _read(memory / "memory.usage_in_bytes"), _read(memory / "memory.max_usage_in_bytes")
        return Usage(cpu_seconds, int(current) if current else None, int(peak) if peak else None)

    def oom_killed(self) -> bool:
        """Whether the memory limit has killed a process of the group (the pod then fails saying so)."""
        memory = self.paths["memory"]
        events = memory / ("memory.events" if self.version == 2 else "memory.oom_control")
        return (_keyed(events, "oom_kill") or 0) > 0

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process in the group, again until none is left (one may fork between a look and a kill);
        False when some remain after `timeout` seconds."""
        kill_file = self._dirs()[0] / "cgroup.kill"  # v2 since Linux 5.14: the kernel kills them all at once
        deadline = time.monotonic() + timeout
        while pids := self.pids():
            if self.version == 2 and kill_file.exists():
                _write(kill_file, "1")
            else:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def remove(self, timeout: float = 5.0) -> None:
        """End every process of the group and delete it (Stop and the end of a task); gone already is fine."""
        self.kill_all(timeout)
        deadline = time.monotonic() + timeout
        for d in self._dirs():
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as err:  # EBUSY: a killed process is still on its way out
                    if err.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupUnavailable(f"cannot remove the control group {d}: {err.strerror}") from None
                    time.sleep(0.01)
