"""Every process of a pod ends with it (issue 7 E11): Stop reaches children that ignore SIGTERM and daemons that left
the session, and a task is STOPPED (or ends) only once none of them is left. A live server, real processes.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import Server
from tests.training import PYTHON, TERMINAL, cos_tree, create, detail, training_server, wait_for, wait_status
from tione_server.executors.podwrap import descendants

PROGRAM = """
import os, signal, sys, time

def note(name):
    with open(os.path.join(os.environ["TI_OUTPUT_DIR"], name), "w") as f:
        f.write(str(os.getpid()))

if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:  # a child, deaf to SIGTERM as well
        note("child")
        time.sleep(600)
        os._exit(0)
if os.fork() == 0:  # a daemon: double fork into a session of its own, deaf to SIGTERM
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        note("daemon")
        time.sleep(600)
    os._exit(0)
note("main")
if sys.argv[1] == "stubborn":
    time.sleep(600)
"""


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    with training_server(sqlite_url, tmp_path, env={"TIONE_STOP_GRACE_SECONDS": "1"}) as srv:
        code = cos_tree(srv) / "b" / "code"
        code.mkdir(parents=True)
        (code / "prog.py").write_text(PROGRAM)
        yield srv


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _pids(server: Server, task_id: str, pid_dir: Path, names: tuple[str, ...], timeout: float = 20.0) -> dict[str, int]:
    """Host pids of the processes that noted themselves. A sandboxed pod (issue 9) notes the pids of its own PID
    namespace: each is mapped to the host's through the `NSpid` line of the supervisor's descendants."""
    deadline = time.monotonic() + timeout
    while True:
        found = {n: (pid_dir / n).read_text() for n in names if (pid_dir / n).exists()}
        if len(found) == len(names) and all(found.values()):
            break
        assert time.monotonic() < deadline, f"pid files so far: {found}"
        time.sleep(0.05)
    run = detail(server, task_id)["LatestInstanceId"]
    data = server.log_path.parent / "data" / "runs" / run / "pods" / f"{run}-worker-0"
    supervisor = json.loads((data / "pid").read_text())["pid"]
    host = {}
    for pid in descendants(supervisor):
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            host[int(next(line for line in status.splitlines() if line.startswith("NSpid:")).split()[-1])] = pid
    return {n: host.get(int(v), 0) for n, v in found.items()}  # 0: gone already (the pod may have ended)


def _task(server: Server, name: str, mode: str) -> tuple[str, Path]:
    """The task, and the host directory its processes note their pids in (its output)."""
    task_id = create(
        server,
        name,
        f"{PYTHON} prog.py {mode}; echo the shell outlived its program",  # `;` keeps /bin/sh as the parent
        CodePackagePath={"Bucket": "b", "Region": "ap-guangzhou", "Paths": ["code"]},
        Output={"Bucket": "b", "Region": "ap-guangzhou", "Paths": [f"pids-{name}"]},
    )
    return task_id, cos_tree(server) / "b" / f"pids-{name}"


def test_stop_training_task_ends_every_process_of_the_pod(server: Server, tmp_path: Path) -> None:
    task_id, pid_dir = _task(server, "stubborn", "stubborn")
    wait_status(server, task_id, "RUNNING")
    pids = _pids(server, task_id, pid_dir, ("main", "child", "daemon"))
    assert all(pids.values()), pids  # all of them run until the Stop
    server.call("StopTrainingTask", {"Id": task_id})
    done = wait_status(server, task_id, *TERMINAL, timeout=20)
    assert done["Status"] == "STOPPED"
    left = {name: pid for name, pid in pids.items() if not _gone(pid)}
    assert left == {}, f"still running after STOPPED: {left}"


def test_training_task_end_ends_its_daemons(server: Server, tmp_path: Path) -> None:
    task_id, pid_dir = _task(server, "leaves-a-daemon", "polite")
    pids = _pids(server, task_id, pid_dir, ("main", "daemon"))
    done = wait_for(server, task_id, lambda d: d["Status"] in TERMINAL)
    assert done["Status"] == "SUCCEED", done["FailureReason"]
    assert [pid for pid in pids.values() if not _gone(pid)] == []
