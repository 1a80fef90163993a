"""The pod supervisor: one per pod, started by the local executor as `python -I podwrap.py POD_DIR`.

It runs the pod's command with `/bin/sh -c`, stamps every stdout/stderr line with the time it was read,
and records the exit code in `POD_DIR/exit`. It lives in its own session and process group (the command gets a
group of its own) and only uses the standard library, so a server crash (even SIGKILL) neither kills the pod nor
loses its output: the restarted server finds `POD_DIR/pid` and `POD_DIR/exit` and carries on.

Every process of the pod is a descendant of the supervisor: it is a child subreaper (Linux), so a process that
daemonizes (double fork, setsid) is re-parented to it rather than to init. The exit is recorded only once all of
them are gone (issue 7 E11): when the command ends, the rest of the pod is killed, as when a container's main
process ends; SIGTERM from the executor (Stop) is passed on to every descendant, and SIGUSR1 (Stop's grace period
is over) kills them all.

A sandboxed pod (issue 9; `spec.json` then has `argv` and `sandbox`) runs the prepared command line instead of
`/bin/sh -c`: the supervisor's child is the pod's outer bwrap and its grandchild bwrap's PID-namespace init. Stop's
SIGTERM skips both (the outer bwrap would die and `--die-with-parent` would SIGKILL the pod with no grace; the
init ignores it) and goes to the processes of the pod itself. Once all are gone the supervisor records whether
the memory limit killed one (`oom_kill` in `exit`, read from the file `sandbox.oom` names) and removes the pod's
control groups (`sandbox.cgroups`), so a pod's groups live exactly as long as the pod.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

CHUNK = 64 * 1024
"""Longest log line kept in one piece; longer lines are split."""
DRAIN_SECONDS = 2.0
"""How long to keep reading output once every process of the pod is gone."""
KILL_POLL = 0.05
"""Seconds between kill rounds while processes remain (one may have forked between a round's look and kill)."""
PR_SET_CHILD_SUBREAPER = 36
STOP = signal.SIGTERM
"""From the executor: stop the pod (SIGTERM to every process of it)."""
KILL = signal.SIGUSR1
"""From the executor: kill every process of the pod now (SIGKILL)."""


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _pump(src: IO[bytes], dst: Path) -> None:
    with dst.open("ab", buffering=0) as out:
        for chunk in iter(lambda: src.readline(CHUNK), b""):
            out.write(b"%d %s\n" % (time.time_ns(), chunk.rstrip(b"\n")))


def _become_subreaper() -> None:
    """Orphaned descendants re-parent to this process instead of init (Linux prctl; elsewhere best effort)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def descendants(root: int) -> list[int]:
    """Every live process below `root`, read from /proc (parents before children)."""
    children: dict[int, list[int]] = {}
    try:
        entries = list(os.scandir("/proc"))
    except OSError:  # not Linux: nothing to find
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        if fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            found.append(pid)
            todo.append(pid)
    return found


def _signal_all(sig: int, skip: frozenset[int] = frozenset()) -> None:
    for pid in descendants(os.getpid()):
        if pid not in skip:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)


def _bwrap_pids(main_pid: int) -> frozenset[int]:
    """The outer bwrap of a sandboxed pod (the supervisor's child) and its PID-namespace init (bwrap's child)."""
    return frozenset([main_pid, *(p for p in descendants(main_pid) if _parent(p) == main_pid)])


def _parent(pid: int) -> int:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(raw[raw.rfind(")") + 2 :].split()[1])


def _oom_kills(path: str) -> int:
    """`oom_kill` of a cgroup's memory.events (v2) or memory.oom_control (v1); 0 when unreadable."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return 0
    return next((int(v) for k, _, v in (line.partition(" ") for line in lines) if k == "oom_kill"), 0)


def _remove_groups(dirs: list[str]) -> None:
    """rmdir the pod's (now empty) control groups; a process on its way out may keep one busy a moment."""
    deadline = time.monotonic() + DRAIN_SECONDS
    for d in dirs:
        while True:
            try:
                Path(d).rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)


def _note(_signum: int, _frame: object) -> None:
    """A handler, not SIG_IGN: ignored dispositions would be inherited by the command. The wakeup fd carries the
    signal number to the main loop."""


def main(pod_dir: Path) -> int:
    spec = json.loads((pod_dir / "spec.json").read_text())
    _become_subreaper()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, KILL):
        signal.signal(sig, _note)
    stdout, stderr = Path(spec["stdout"]), Path(spec["stderr"])
    sandbox: dict[str, Any] | None = spec.get("sandbox")
    try:
        child = subprocess.Popen(
            spec.get("argv") or ["/bin/sh", "-c", spec["command"]],
            cwd=spec["cwd"],
            env=spec["env"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,  # signals the program sends to its own group never reach the supervisor
        )
    except OSError as err:
        with stderr.open("ab") as out:
            out.write(b"%d %s\n" % (time.time_ns(), f"cannot start the command: {err}".encode()))
        _write_json(pod_dir / "pid", {"pid": os.getpid(), "child": 0, "time": time.time()})
        _write_json(pod_dir / "exit", {"code": 127, "signal": 0, "time": time.time()})
        return 127
    _write_json(pod_dir / "pid", {"pid": os.getpid(), "child": child.pid, "time": time.time()})
    assert child.stdout is not None
    assert child.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(child.stdout, stdout), daemon=True),
        threading.Thread(target=_pump, args=(child.stderr, stderr), daemon=True),
    ]
    for t in pumps:
        t.start()
    status = _supervise(child.pid, wake_r, sandboxed=sandbox is not None)
    deadline = time.monotonic() + DRAIN_SECONDS
    for t in pumps:
        t.join(max(0.0, deadline - time.monotonic()))
    # A command killed by signal N reports 128 + N, as a shell (and Kubernetes) would.
    returncode = os.waitstatus_to_exitcode(status)
    code = returncode if returncode >= 0 else 128 - returncode
    done = {"code": code, "signal": max(0, -returncode), "time": time.time()}
    if sandbox is not None:
        done["oom_kill"] = _oom_kills(sandbox["oom"])
        _remove_groups(sandbox["cgroups"])
    with contextlib.suppress(OSError):  # the run may have been deleted meanwhile
        _write_json(pod_dir / "exit", done)
    return code


def _supervise(main_pid: int, wake: int, *, sandboxed: bool = False) -> int:
    """Reap processes until none of the pod is left; returns the wait status of the command (`main_pid`)."""
    main_status: int | None = None
    stopping = killing = False
    while True:
        while True:  # reap whatever has ended: the command, or an orphan re-parented here
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                assert main_status is not None  # the command is a child until it has been reaped here
                return main_status
            if pid == 0:
                break
            if pid == main_pid:
                main_status = status
        if main_status is not None and not stopping:
            killing = True  # the command ended on its own: the rest of the pod ends with it
        if killing:
            _signal_all(signal.SIGKILL)
        ready, _, _ = select.select([wake], [], [], KILL_POLL if killing else None)
        if not ready:
            continue
        with contextlib.suppress(BlockingIOError):
            for signum in os.read(wake, 512):
                if signum == KILL:
                    killing = True
                elif signum == STOP and not stopping:
                    stopping = True
                    _signal_all(signal.SIGTERM, _bwrap_pids(main_pid) if sandboxed else frozenset())


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main(Path(sys.argv[1])))
