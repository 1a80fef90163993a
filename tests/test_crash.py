"""Crashes lose nothing: SIGKILL the server while tasks run, meddle while it is down, restart it.

Tasks whose processes still run are re-attached (still RUNNING, logs still growing, stoppable); a task whose
processes vanished ends FAILED saying so; a task that finished meanwhile gets its real outcome; a PENDING task
starts once capacity frees; no task is lost, duplicated, or left active forever.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime
from pathlib import Path

from tests.training import TERMINAL, create, detail, pods, python_cmd, training_server, wait_for, wait_status
from tione_server import timefmt

THREE_TASKS = """
[capacity]
cpu = 6000
memory = 12288
gpu = 0
"""
"""Room for three TI.S.MEDIUM.POST tasks (2 cores, 4 GB each): a fourth waits in PENDING."""


def _pod_file(workdir: Path, run_id: str, name: str) -> Path:
    return workdir / "data" / "runs" / run_id / "pods" / f"{run_id}-worker-0" / name


def _wait_file(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_server_sigkill_loses_nothing(tmp_path: Path, sqlite_url: str) -> None:
    ticker = python_cmd("import time\nfor i in range(2000):\n    print(i); time.sleep(0.1)")
    sleeper = python_cmd("import time; time.sleep(120)")
    with training_server(sqlite_url, tmp_path, catalogue=THREE_TASKS) as first:
        survivor = create(first, "survivor", ticker)
        victim = create(first, "victim", sleeper)
        finisher = create(first, "finisher", python_cmd('import time; time.sleep(2); print("finished")'))
        for task_id in (survivor, victim, finisher):
            wait_status(first, task_id, "RUNNING")
        waiter = create(first, "waiter", sleeper)
        wait_for(first, waiter, lambda d: d["Message"] != "")
        before = {t: detail(first, t) for t in (survivor, victim, finisher, waiter)}
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()

    # While the server is down: the victim's processes die, the finisher ends on its own.
    victim_run = before[victim]["LatestInstanceId"]
    victim_pids = json.loads(_pod_file(tmp_path, victim_run, "pid").read_text())
    os.killpg(victim_pids["child"], signal.SIGKILL)  # the command's process group
    os.killpg(victim_pids["pid"], signal.SIGKILL)  # and its supervisor's
    _wait_file(_pod_file(tmp_path, before[finisher]["LatestInstanceId"], "exit"))
    restarted_at = time.time()

    with training_server(sqlite_url, tmp_path, catalogue=THREE_TASKS) as second:
        lost = wait_status(second, victim, *TERMINAL)
        assert lost["Status"] == "FAILED"
        assert lost["FailureReason"].startswith("worker-0 lost")
        done = wait_status(second, finisher, *TERMINAL)
        assert done["Status"] == "SUCCEED"
        end = timefmt.parse(done["EndTime"], 8)
        assert end is not None
        assert end <= restarted_at + 1  # the real end, not the moment the server noticed
        # The survivor was re-attached: same run, same start, still printing.
        alive = detail(second, survivor)
        assert (alive["Status"], alive["LatestInstanceId"], alive["StartTime"]) == (
            "RUNNING", before[survivor]["LatestInstanceId"], before[survivor]["StartTime"]
        )  # fmt: skip
        assert [p["Status"] for p in pods(second, survivor)["PodInfoList"]] == ["RUNNING"]
        deadline = time.monotonic() + 10
        while True:
            logs = second.call(
                "DescribeLogs", {"Service": "TRAIN", "ServiceId": alive["LatestInstanceId"], "Limit": 1}
            )["Content"]
            if logs and datetime.fromisoformat(logs[0]["Timestamp"][:19] + "+00:00").timestamp() > restarted_at:
                break
            assert time.monotonic() < deadline, "the survivor's log did not grow after the restart"
            time.sleep(0.1)
        # Capacity freed by the victim and the finisher goes to the waiter.
        wait_status(second, waiter, "RUNNING", timeout=20)
        # Re-attached processes are fully controllable.
        for task_id in (survivor, waiter):
            second.call("StopTrainingTask", {"Id": task_id})
        for task_id in (survivor, waiter):
            assert wait_status(second, task_id, *TERMINAL, timeout=20)["Status"] == "STOPPED"
        survivor_pid = json.loads(_pod_file(tmp_path, alive["LatestInstanceId"], "pid").read_text())["child"]
        assert not Path(f"/proc/{survivor_pid}").exists() or "Z" in Path(f"/proc/{survivor_pid}/stat").read_text()
        listed = second.call("DescribeTrainingTasks", {"Limit": 50})
        assert listed["TotalCount"] == 4
        assert sorted(t["Id"] for t in listed["TrainingTaskSet"]) == sorted([survivor, victim, finisher, waiter])
