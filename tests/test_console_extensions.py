"""The console's extension actions (issue 11 items 2-4), over the official SDK's CommonClient, on both backends:
signed like every action, scoped to the caller's account, answering only what is stored or measured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.live import Server, create_key
from tests.training import create, python_cmd, training_server, wait_status


@pytest.fixture
def srv(database_url: str, tmp_path: Path) -> Iterator[Server]:
    with training_server(database_url, tmp_path) as server:
        yield server


def _code(server: Server, action: str, params: dict[str, object], **kw: object) -> str:
    with pytest.raises(TencentCloudSDKException) as err:
        server.call(action, params, **kw)  # type: ignore[arg-type]
    return str(err.value.code)


def test_describe_caller_identity_names_the_key(srv: Server) -> None:
    sub = create_key(srv.database_url, srv.key.uin, "100000000077")
    assert srv.call("DescribeCallerIdentity", {})["SubAccountUin"] == srv.key.uin
    got = srv.call("DescribeCallerIdentity", {}, key=sub)
    assert (got["Uin"], got["SubAccountUin"], got["AppId"]) == (sub.uin, "100000000077", sub.app_id)


def test_describe_caller_identity_wrong_key_is_signature_failure(srv: Server) -> None:
    bad = create_key(srv.database_url, srv.key.uin)
    bad.secret_key = "x" * len(bad.secret_key)
    assert _code(srv, "DescribeCallerIdentity", {}, key=bad) == "AuthFailure.SignatureFailure"


def test_describe_training_metrics_reads_back_pushed_points(srv: Server) -> None:
    task = create(srv, "metrics", python_cmd("print(1)"))
    data = [
        {"TaskId": task, "Timestamp": 1_700_000_000 + s, "Step": s, "Epoch": 0, "TotalSteps": 3,
         "Points": [{"Name": "loss", "Value": 1.0 / (s + 1)}, {"Name": "acc", "Value": 0.1 * s}]}
        for s in range(3)
    ]  # fmt: skip
    srv.call("PushTrainingMetrics", {"Data": data})
    got = srv.call("DescribeTrainingMetrics", {"TaskId": task})
    assert got["TaskId"] == task
    assert [(m["Step"], m["Timestamp"], m["Points"]) for m in got["Data"]] == [
        (d["Step"], d["Timestamp"], d["Points"]) for d in data
    ]


def test_describe_training_metrics_other_account_task_is_not_found(srv: Server) -> None:
    task = create(srv, "mine", python_cmd("print(1)"))
    other = create_key(srv.database_url, "100000000002")
    assert _code(srv, "DescribeTrainingMetrics", {"TaskId": task}, key=other) == "ResourceNotFound"
    assert _code(srv, "DescribeTrainingMetrics", {}) == "MissingParameter"
    assert _code(srv, "DescribeTrainingMetrics", {"TaskId": task, "Bogus": 1}) == "UnknownParameter"


def test_describe_training_task_runs_lists_every_run_oldest_first(srv: Server) -> None:
    task = create(srv, "runs", python_cmd("print(1)"))
    wait_status(srv, task, "SUCCEED")
    srv.call("StartTrainingTask", {"Id": task})
    wait_status(srv, task, "SUCCEED")
    got = srv.call("DescribeTrainingTaskRuns", {"Id": task})
    detail = srv.call("DescribeTrainingTask", {"Id": task})["TrainingTaskDetail"]
    assert got["TotalCount"] == 2
    assert [r["Operation"] for r in got["Runs"]] == ["CREATE", "START"]
    assert got["Runs"][-1]["InstanceId"] == detail["LatestInstanceId"]
    assert all(r["Status"] == "SUCCEED" and r["StartTime"] and r["EndTime"] and r["PodNames"] for r in got["Runs"])


def test_describe_training_pod_usage_answers_unmeasured_pods_with_no_samples(srv: Server) -> None:
    task = create(srv, "usage", python_cmd("print(1)"))
    wait_status(srv, task, "SUCCEED")
    got = srv.call("DescribeTrainingPodUsage", {"Id": task})
    pods = srv.call("DescribeTrainingTaskPods", {"Id": task})["PodNames"]
    assert [p["PodName"] for p in got["Pods"]] == pods
    assert all(p["Measured"] is False and p["Samples"] == [] for p in got["Pods"])
    assert _code(srv, "DescribeTrainingPodUsage", {"Id": task, "InstanceId": "nope"}) == "ResourceNotFound"
