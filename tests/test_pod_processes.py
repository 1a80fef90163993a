"""Every process of a pod ends with it (issue 7 E11): Stop reaches children that ignore SIGTERM and daemons that left
the session, and a task is STOPPED (or ends) only once none of them is left. A live server, real processes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import Server
from tests.training import PYTHON, TERMINAL, cos_tree, create, training_server, wait_for, wait_status

PROGRAM = """
import os, signal, sys, time

def note(name):
    with open(os.path.join(os.environ["PID_DIR"], name), "w") as f:
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


def _pids(pid_dir: Path, names: tuple[str, ...], timeout: float = 20.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        found = {n: (pid_dir / n).read_text() for n in names if (pid_dir / n).exists()}
        if len(found) == len(names) and all(found.values()):
            return {n: int(v) for n, v in found.items()}
        assert time.monotonic() < deadline, f"pid files so far: {found}"
        time.sleep(0.05)


def _task(server: Server, name: str, mode: str, pid_dir: Path) -> str:
    pid_dir.mkdir()
    return create(
        server,
        name,
        f"{PYTHON} prog.py {mode}; echo the shell outlived its program",  # `;` keeps /bin/sh as the parent
        CodePackagePath={"Bucket": "b", "Region": "ap-guangzhou", "Paths": ["code"]},
        Envs=[{"Name": "PID_DIR", "Value": str(pid_dir)}],
    )


def test_stop_training_task_ends_every_process_of_the_pod(server: Server, tmp_path: Path) -> None:
    task_id = _task(server, "stubborn", "stubborn", tmp_path / "pids")
    wait_status(server, task_id, "RUNNING")
    pids = _pids(tmp_path / "pids", ("main", "child", "daemon"))
    server.call("StopTrainingTask", {"Id": task_id})
    done = wait_status(server, task_id, *TERMINAL, timeout=20)
    assert done["Status"] == "STOPPED"
    left = {name: pid for name, pid in pids.items() if not _gone(pid)}
    assert left == {}, f"still running after STOPPED: {left}"


def test_training_task_end_ends_its_daemons(server: Server, tmp_path: Path) -> None:
    task_id = _task(server, "leaves-a-daemon", "polite", tmp_path / "pids")
    pids = _pids(tmp_path / "pids", ("main", "daemon"))
    done = wait_for(server, task_id, lambda d: d["Status"] in TERMINAL)
    assert done["Status"] == "SUCCEED", done["FailureReason"]
    assert [pid for pid in pids.values() if not _gone(pid)] == []
