"""The simulate executor's timeline, driven tick by tick on a fake clock (no sleeps), plus one live server.

Also pins the exact times and fields of spec §6.4-§6.7 at known instants, which real processes cannot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inprocess import T0, Harness, params
from tests.live import running_server
from tests.training import TERMINAL, create, detail, pods, watch_statuses
from tione_server import timefmt
from tione_server.models import runtime_seconds

ROOMY = "[capacity]\ncpu = 64000\nmemory = 262144\ngpu = 0\n"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, catalogue=ROOMY)
    yield harness
    harness.close()


def _t(seconds: float) -> str:
    return timefmt.render(int(seconds), 8)


def test_simulate_timeline_submitting_to_succeed(h: Harness) -> None:
    task_id = h.call("CreateTrainingTask", params("timeline", CallbackUrl="http://cb.example/hook"))["Id"]
    seen = [h.detail(task_id)["Status"]]
    h.tick(T0 + 0.5)
    seen.append(h.detail(task_id)["Status"])
    h.tick(T0 + 1.0)  # submitted, and capacity is free: PENDING -> STARTING in the same pass
    d = h.detail(task_id)
    seen.append(d["Status"])
    assert (d["ChargeStatus"], d["BillingInfo"], d["StartTime"]) == ("BILLING", "0.70元/小时", "")
    h.tick(T0 + 2.9)
    seen.append(h.detail(task_id)["Status"])
    h.tick(T0 + 3.0)
    d = h.detail(task_id)
    seen.append(d["Status"])
    assert d["StartTime"] == _t(T0 + 3.0)
    assert [p["Status"] for p in h.call("DescribeTrainingTaskPods", {"Id": task_id})["PodInfoList"]] == ["RUNNING"]
    h.clock.now = T0 + 9.0
    assert h.detail(task_id)["RuntimeInSeconds"] == int(T0 + 9) - int(T0 + 3)
    assert h.item(task_id)["RuntimeInSeconds"] == int(T0 + 9) - int(T0 + 3)
    h.tick(T0 + 13.0)
    d = h.detail(task_id)
    seen.append(d["Status"])
    assert seen == ["SUBMITTING", "SUBMITTING", "STARTING", "STARTING", "RUNNING", "SUCCEED"]
    assert (d["EndTime"], d["RuntimeInSeconds"], d["ChargeStatus"], d["BillingInfo"]) == (
        _t(T0 + 13), 10, "NOT_BILLING", ""
    )  # fmt: skip
    assert d["UpdateTime"] == d["CreateTime"] == _t(T0)
    assert [b["code"] for _, b in h.callbacks.sent] == [0]
    assert h.callbacks.sent[0][1]["totalTime"] == pytest.approx(13.0)


def test_simulate_stop_and_restart(h: Harness) -> None:
    task_id = h.call("CreateTrainingTask", params("stopper"))["Id"]
    assert h.code("StopTrainingTask", {"Id": task_id}) == "InternalError.UnSubmittedStatusNotAllowStop"
    h.tick(T0 + 1)
    h.tick(T0 + 3)
    assert h.detail(task_id)["Status"] == "RUNNING"
    h.clock.now = T0 + 5
    h.call("StopTrainingTask", {"Id": task_id})
    d = h.detail(task_id)
    assert (d["Status"], d["ChargeStatus"], d["UpdateTime"]) == ("STOPPING", "BILLING", _t(T0 + 5))
    h.clock.now = T0 + 5.5
    h.call("StopTrainingTask", {"Id": task_id})  # STOPPING: a no-op success
    assert h.code("StartTrainingTask", {"Id": task_id}) == "InternalError.NotAllow"
    assert h.code("DeleteTrainingTask", {"Id": task_id}) == "InternalError.NotAllow"
    h.tick(T0 + 6)  # SIGTERM
    assert h.detail(task_id)["Status"] == "STOPPING"
    assert [p["Status"] for p in h.call("DescribeTrainingTaskPods", {"Id": task_id})["PodInfoList"]] == ["TERMINATING"]
    h.tick(T0 + 7)  # the pod is gone one second later
    d = h.detail(task_id)
    assert (d["Status"], d["FailureReason"], d["EndTime"], d["RuntimeInSeconds"]) == (
        "STOPPED", "User Stop", _t(T0 + 7), 4
    )  # fmt: skip
    first_run = d["LatestInstanceId"]
    h.clock.now = T0 + 20
    h.call("StartTrainingTask", {"Id": task_id})
    d = h.detail(task_id)
    assert d["LatestInstanceId"] != first_run
    assert (d["Status"], d["StartTime"], d["EndTime"], d["RuntimeInSeconds"], d["FailureReason"]) == (
        "SUBMITTING", "", "", 0, ""
    )  # fmt: skip
    assert (d["UpdateTime"], d["OperatorInfo"]["OperationType"]) == (_t(T0 + 20), "START")
    assert h.call("DescribeTrainingTaskPods", {"Id": task_id})["TotalCount"] == 0
    old = h.detail(task_id, first_run)
    assert (old["Status"], old["FailureReason"], old["LatestInstanceId"]) == (
        "STOPPED",
        "User Stop",
        d["LatestInstanceId"],
    )


def test_simulate_exit_code_fails_and_logs_follow_the_clock(h: Harness) -> None:
    envs = [{"Name": "TI_SIMULATE_EXIT_CODE", "Value": "4"}, {"Name": "TI_SIMULATE_RUN_SECONDS", "Value": "3"}]
    task_id = h.call("CreateTrainingTask", params("failing", Envs=envs, CallbackUrl="http://cb.example/x"))["Id"]
    h.tick(T0 + 1)
    run = h.detail(task_id)["LatestInstanceId"]
    h.tick(T0 + 4)
    h.clock.now = T0 + 4.5
    logs = h.call("DescribeLogs", {"Service": "TRAIN", "ServiceId": run, "Order": "ASC"})
    assert [line["Message"] for line in logs["Content"]] == [
        f"[simulate] {run}-worker-0 started: python train.py",  # at T0 + 3
        "[simulate] step 1/3",  # at T0 + 4
    ]
    h.tick(T0 + 6)
    d = h.detail(task_id)
    assert (d["Status"], d["FailureReason"]) == ("FAILED", "worker-0 exited with code 4")
    logs = h.call("DescribeLogs", {"Service": "TRAIN", "ServiceId": run, "Order": "ASC"})
    assert [line["Message"] for line in logs["Content"]][-1] == "[simulate] exited with code 4"
    assert [(b["code"], b["message"]) for _, b in h.callbacks.sent] == [(10002, "worker-0 exited with code 4")]


def test_simulate_ps_worker_and_mpi_pods(h: Harness) -> None:
    ps = h.call(
        "CreateTrainingTask",
        params(
            "ps-worker",
            TrainingMode="PS_WORKER",
            ResourceConfigInfos=[
                {"Role": "PS", "InstanceType": "TI.S.LARGE.POST", "InstanceNum": 1},
                {"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 2},
            ],
        ),
    )["Id"]
    mpi = h.call("CreateTrainingTask", params("mpi", TrainingMode="MPI", ResourceConfigInfos=[
        {"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 2}]))["Id"]  # fmt: skip
    h.tick(T0 + 1)
    h.tick(T0 + 3)
    d = h.detail(ps)
    assert (d["Status"], d["BillingInfo"]) == ("RUNNING", "2.80元/小时")  # 140 + 2 x 70 fen
    run = d["LatestInstanceId"]
    names = h.call("DescribeTrainingTaskPods", {"Id": ps})["PodNames"]
    assert names == [f"{run}-ps-0", f"{run}-worker-0", f"{run}-worker-1"]
    mpi_run = h.detail(mpi)["LatestInstanceId"]
    assert h.call("DescribeTrainingTaskPods", {"Id": mpi})["PodNames"] == [
        f"{mpi_run}-launcher", f"{mpi_run}-worker-0", f"{mpi_run}-worker-1"
    ]  # fmt: skip
    h.tick(T0 + 13)  # workers (and the launcher) done; PS and MPI workers are told to stop
    assert h.detail(ps)["Status"] == "SUCCEED"
    assert h.detail(mpi)["Status"] == "SUCCEED"
    h.tick(T0 + 14)
    assert [p["Status"] for p in h.call("DescribeTrainingTaskPods", {"Id": ps})["PodInfoList"]] == ["SUCCEEDED"] * 3
    assert [p["Status"] for p in h.call("DescribeTrainingTaskPods", {"Id": mpi})["PodInfoList"]] == ["SUCCEEDED"] * 3


PREPAID = {
    "ChargeType": "PREPAID",
    "ResourceGroupId": "ersg-c7kq2m9x",  # two 16-core, 64 GB nodes in the built-in catalogue
    "ResourceConfigInfos": [{"Role": "WORKER", "Cpu": 12000, "Memory": 16384, "InstanceNum": 1}],
}


def test_simulate_prepaid_waits_for_group_nodes(h: Harness) -> None:
    ids = [h.call("CreateTrainingTask", params(f"pre-{i}", **PREPAID))["Id"] for i in range(3)]
    h.tick(T0 + 1)
    statuses = [h.detail(t)["Status"] for t in ids]
    assert statuses == ["STARTING", "STARTING", "PENDING"]  # one 12-core pod per 16-core node
    waiting = h.detail(ids[2])
    assert waiting["Message"] == "Waiting for resources: insufficient free capacity"
    running = h.detail(ids[0])
    assert (running["ChargeStatus"], running["BillingInfo"], running["ResourceGroupName"]) == (
        "NOT_BILLING",
        "",
        "cpu-pool",
    )
    groups = h.call(
        "DescribeBillingResourceGroups", {"Filters": [{"Name": "ResourceGroupId", "Values": ["ersg-c7kq2m9x"]}]}
    )
    group = groups["ResourceGroupSet"][0]
    assert (group["UsedResource"]["Cpu"], group["FreeInstance"]) == (24000, 0)
    h.tick(T0 + 3)
    h.tick(T0 + 13)  # the first two finish, the third gets a node
    assert [h.detail(t)["Status"] for t in ids] == ["SUCCEED", "SUCCEED", "STARTING"]
    assert h.detail(ids[2])["Message"] == ""


def test_simulate_capacity_is_granted_in_submission_order(tmp_path: Path) -> None:
    h = Harness(tmp_path, catalogue="[capacity]\ncpu = 4000\nmemory = 8192\ngpu = 0\n")
    big = params("big", ResourceConfigInfos=[{"Role": "WORKER", "InstanceType": "TI.S.LARGE.POST"}])  # 4C8G
    small = params("small")  # 2C4G
    first = h.call("CreateTrainingTask", small)["Id"]
    second = h.call("CreateTrainingTask", big)["Id"]
    third = h.call("CreateTrainingTask", small | {"Name": "small-2"})["Id"]
    huge = h.call("CreateTrainingTask", params("huge", ResourceConfigInfos=[
        {"Role": "WORKER", "InstanceType": "TI.S.2XLARGE16.POST"}]))["Id"]  # fmt: skip
    h.tick(T0 + 1)
    # The big task waits for the first; the small one behind it waits too, although it would fit.
    assert [h.detail(t)["Status"] for t in (first, second, third)] == ["STARTING", "PENDING", "PENDING"]
    # A request larger than the pool never fits: it waits, says so, and holds nobody up.
    assert h.detail(huge)["Message"].startswith("Waiting for resources")
    h.tick(T0 + 3)
    h.tick(T0 + 13)
    assert [h.detail(t)["Status"] for t in (first, second, third)] == ["SUCCEED", "STARTING", "PENDING"]
    h.close()


def test_simulate_live_server_timeline(tmp_path: Path, sqlite_url: str) -> None:
    args = ("--executor", "simulate")
    with running_server(sqlite_url, tmp_path, extra_args=args, env={"TIONE_SIMULATE_SECONDS": "0.3,0.3,0.6"}) as srv:
        task_id = create(srv, "simulated", "python train.py")
        seen = watch_statuses(srv, task_id, TERMINAL, timeout=20)
        assert seen[0] == "SUBMITTING"
        assert seen[-1] == "SUCCEED"
        assert "RUNNING" in seen
        d = detail(srv, task_id)
        assert pods(srv, task_id)["PodInfoList"][0]["Status"] == "SUCCEEDED"
        logs = srv.call("DescribeLogs", {"Service": "TRAIN", "ServiceId": d["LatestInstanceId"]})
        assert logs["Content"][0]["Message"] == "[simulate] exited with code 0"


def test_simulate_timeline_on_each_backend(database_url: str, tmp_path: Path) -> None:
    h = Harness(tmp_path, catalogue=ROOMY, database_url=database_url)
    try:
        task_id = h.call("CreateTrainingTask", params("backend"))["Id"]
        h.tick(T0 + 1)
        h.tick(T0 + 3)
        assert h.detail(task_id)["Status"] == "RUNNING"
        h.clock.now = T0 + 4
        h.call("StopTrainingTask", {"Id": task_id})
        h.tick(T0 + 4)
        h.tick(T0 + 5)
        d = h.detail(task_id)
        assert (d["Status"], d["RuntimeInSeconds"], d["UpdateTime"]) == ("STOPPED", 2, _t(T0 + 4))
        assert h.item(task_id)["Status"] == "STOPPED"
        assert (
            h.call("DescribeTrainingTasks", {"Filters": [{"Name": "Status", "Values": ["STOPPED"]}]})["TotalCount"] == 1
        )
    finally:
        h.close()


@pytest.mark.parametrize(
    ("status", "start", "end", "expected"),
    [
        ("RUNNING", 100, None, 50),
        ("STOPPING", 100, None, 50),
        ("SUCCEED", 100, 130, 30),
        ("STOPPED", 100, None, 0),
        ("PENDING", None, None, 0),
        ("RUNNING", 200, None, 0),  # a clock behind StartTime never shows a negative figure
    ],
)
def test_runtime_seconds_counts_only_while_running(
    status: str, start: int | None, end: int | None, expected: int
) -> None:
    """Spec §6.4, the one rule of the runner, the list and the detail (issue 8 item 7)."""
    assert runtime_seconds(status, start, end, 150.9) == expected
