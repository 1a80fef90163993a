"""API replicas on one database (issue 10 item 8): every replica serves the API, one runner drives the runs (the
lease), and when the lease holder is killed another replica takes over within 10 s, re-attaching running pods
rather than restarting them."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.training import create, detail, pods, python_cmd, training_server, wait_status
from tione_server.runner import Lease
from tione_server.store import Store

FAILOVER_LIMIT = 10.0
"""Seconds within which another replica must lead (issue 10 item 8)."""


def _leader_pid(store: Store) -> int | None:
    """The process id in the name of the unexpired lease's holder (`host:pid:id`, runner.Lease)."""
    held = store.leases.holder(Lease.NAME)
    if held is None or held[1] <= time.time():
        return None
    return int(held[0].split(":")[1])


def _wait_leader(store: Store, pid: int, timeout: float) -> float:
    """Seconds until process `pid` holds the lease."""
    started = time.monotonic()
    while _leader_pid(store) != pid:
        assert time.monotonic() - started < timeout, f"process {pid} did not take the lease in {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_replicas_lease_fails_over_without_restarting_running_pods(
    database_url: str, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Both replicas share the database and the data directory (the local executor's pods and run files).
    with training_server(database_url, tmp_path) as first:
        _wait_leader(store, first.process.pid, 10)
        with training_server(database_url, tmp_path) as second:
            # The pod says once that it started, then runs until a deadline past the failover, and succeeds.
            command = python_cmd(
                f'import time\nprint("pod started", flush=True)\nwhile time.time() < {time.time() + 8}:\n'
                "    time.sleep(0.2)"
            )
            task_id = create(second, "survives-failover", command)  # through the replica that does not lead
            run_id = wait_status(second, task_id, "RUNNING")["LatestInstanceId"]
            pid_file = tmp_path / "data" / "runs" / run_id / "pods" / f"{run_id}-worker-0" / "pid"
            launched = json.loads(pid_file.read_text())

            first.process.send_signal(signal.SIGKILL)  # the lease holder dies without releasing anything
            failover = _wait_leader(store, second.process.pid, FAILOVER_LIMIT)

            assert detail(second, task_id)["Status"] == "RUNNING"
            assert [p["Status"] for p in pods(second, task_id)["PodInfoList"]] == ["RUNNING"]
            assert wait_status(second, task_id, "SUCCEED", "FAILED", timeout=30)["Status"] == "SUCCEED"
            assert json.loads(pid_file.read_text()) == launched  # the same pod process throughout
            logs = second.call("DescribeLogs", {"Service": "TRAIN", "ServiceId": run_id, "Limit": 100})["Content"]
            assert [line["Message"] for line in logs].count("pod started") == 1  # started once, never again
    with capsys.disabled():
        print(f"\nrunner lease failover after kill -9 of the holder: {failover:.2f} s")
