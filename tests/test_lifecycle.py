"""Training tasks through the official SDK on a live server, with real subprocesses (local executor).

Covers the lifecycle of spec §4.1-§4.7 and §6: success, failure by exit code, stop (SIGTERM and SIGKILL), restart
from SUCCEED with earlier runs readable, delete rules, PENDING for capacity and its release in submission order,
DDP ranks, submission failures, callbacks (§8), and CreateTrainingTask validation codes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import Server, running_server
from tests.training import (
    PYTHON,
    TERMINAL,
    callback_receiver,
    cos_tree,
    create,
    detail,
    error_code,
    pods,
    python_cmd,
    task_params,
    training_server,
    wait_for,
    wait_status,
    watch_statuses,
)
from tione_server import timefmt

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08$")
RUN_ID = re.compile(r"^train-\d{19}-[a-z0-9]{12}$")
FORWARD = ["SUBMITTING", "PENDING", "STARTING", "RUNNING"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One live server (local executor, a roomy pool) for the tests that do not need their own."""
    workdir = tmp_path_factory.mktemp("lifecycle")
    # The callback receivers of these tests listen on 127.0.0.1, denied unless allowed (issue 7 D10).
    allow = ("--callback-allow", "127.0.0.0/8")
    with training_server(f"sqlite:///{workdir / 'tione.db'}", workdir, extra=allow) as srv:
        yield srv


def _t(text: str) -> int:
    value = timefmt.parse(text, 8)
    assert value is not None
    return value


def _list_item(server: Server, task_id: str) -> dict[str, Any]:
    resp = server.call("DescribeTrainingTasks", {"Filters": [{"Name": "Id", "Values": [task_id]}]})
    assert resp["TotalCount"] == 1
    return dict(resp["TrainingTaskSet"][0])


def test_create_training_task_runs_to_succeed(server: Server) -> None:
    task_id = create(server, "ok-run", python_cmd('import time; print("hello"); time.sleep(1.5); print("bye")'))
    assert re.fullmatch(r"train-\d{19}", task_id)
    first = detail(server, task_id)
    assert first["CreateTime"] == first["UpdateTime"]
    assert RUN_ID.match(first["LatestInstanceId"])
    assert first["LatestInstanceId"].startswith(task_id + "-")
    assert first["OperatorInfo"]["OperationType"] == "CREATE"
    running = wait_status(server, task_id, "RUNNING")
    # While RUNNING a postpaid task is BILLING at the catalogue price (spec §6.6-§6.7), in list and detail alike.
    assert running["ChargeStatus"] == "BILLING"
    assert running["BillingInfo"] == "0.70元/小时"
    assert TIME.match(running["StartTime"])
    assert running["EndTime"] == ""
    item = _list_item(server, task_id)
    assert (item["Status"], item["ChargeStatus"], item["BillingInfo"]) == ("RUNNING", "BILLING", "0.70元/小时")
    done = wait_status(server, task_id, *TERMINAL)
    assert done["Status"] == "SUCCEED"
    assert (done["ChargeStatus"], done["BillingInfo"], done["FailureReason"], done["Message"]) == (
        "NOT_BILLING", "", "", ""
    )  # fmt: skip
    assert TIME.match(done["EndTime"])
    assert done["RuntimeInSeconds"] == _t(done["EndTime"]) - _t(done["StartTime"])
    assert done["UpdateTime"] == first["UpdateTime"]  # the runner never moves UpdateTime (spec §6.4)
    item = _list_item(server, task_id)
    for key in ("Status", "ChargeStatus", "StartTime", "EndTime", "RuntimeInSeconds", "FailureReason", "BillingInfo"):
        assert item[key] == done[key], key
    assert item["LatestOperatorInfo"]["OperationType"] == "CREATE"
    listing = pods(server, task_id)
    assert listing["TotalCount"] == 1
    pod = listing["PodInfoList"][0]
    assert pod["Name"] == f"{done['LatestInstanceId']}-worker-0" == listing["PodNames"][0]
    assert (pod["Status"], pod["IP"]) == ("SUCCEEDED", "127.0.0.1")
    assert TIME.match(pod["StartTime"])
    assert TIME.match(pod["EndTime"])
    assert pod["ResourceConfigInfo"]["InstanceNum"] == 1
    assert pod["ResourceConfigInfo"]["InstanceTypeAlias"] == "2C4G"


def test_create_training_task_states_follow_the_state_machine(server: Server) -> None:
    task_id = create(server, "watched", python_cmd("import time; time.sleep(1)"))
    seen = watch_statuses(server, task_id)
    assert seen[-1] == "SUCCEED"
    assert "RUNNING" in seen
    # Only forward moves: whatever the polling caught is a subsequence of the happy path.
    positions = [([*FORWARD, "SUCCEED"]).index(s) for s in seen]
    assert positions == sorted(positions)


def test_create_training_task_nonzero_exit_fails(server: Server) -> None:
    task_id = create(server, "exit-three", "echo failing >&2; exit 3")
    done = wait_status(server, task_id, *TERMINAL)
    assert done["Status"] == "FAILED"
    assert done["FailureReason"] == "worker-0 exited with code 3"
    assert done["ChargeStatus"] == "NOT_BILLING"
    assert pods(server, task_id)["PodInfoList"][0]["Status"] == "FAILED"


def test_stop_training_task_running_task_ends_stopped(server: Server) -> None:
    task_id = create(server, "to-stop", python_cmd("import time; time.sleep(60)"))
    running = wait_status(server, task_id, "RUNNING")
    server.call("StopTrainingTask", {"Id": task_id})
    assert detail(server, task_id)["Status"] in ("STOPPING", "STOPPED")
    done = wait_status(server, task_id, *TERMINAL, timeout=15)
    assert done["Status"] == "STOPPED"
    assert done["FailureReason"] == "User Stop"
    assert done["OperatorInfo"]["OperationType"] == "STOP"
    assert _t(done["UpdateTime"]) >= _t(running["UpdateTime"])
    assert done["ChargeStatus"] == "NOT_BILLING"
    assert [p["Status"] for p in pods(server, task_id)["PodInfoList"]] == ["TERMINATED"]
    assert error_code(lambda: server.call("StopTrainingTask", {"Id": task_id})) == "InternalError.NotAllow"


def test_stop_training_task_kills_after_grace(tmp_path: Path, sqlite_url: str) -> None:
    # The command ignores SIGTERM; with a 1 s grace period the SIGKILL ends it.
    with training_server(sqlite_url, tmp_path, env={"TIONE_STOP_GRACE_SECONDS": "1"}) as srv:
        task_id = create(srv, "stubborn", "trap '' TERM; while :; do sleep 0.1; done")
        wait_status(srv, task_id, "RUNNING")
        srv.call("StopTrainingTask", {"Id": task_id})
        assert wait_status(srv, task_id, *TERMINAL, timeout=15)["Status"] == "STOPPED"


def test_start_training_task_after_succeed_starts_a_new_run(server: Server) -> None:
    task_id = create(server, "again", python_cmd('import os; print(os.environ["TI_INSTANCE_ID"])'))
    first = wait_status(server, task_id, *TERMINAL)
    assert first["Status"] == "SUCCEED"
    assert error_code(lambda: server.call("StartTrainingTask", {"Id": "train-1"})) == "ResourceNotFound"
    server.call("StartTrainingTask", {"Id": task_id})
    restarted = detail(server, task_id)
    assert restarted["LatestInstanceId"] != first["LatestInstanceId"]
    assert restarted["OperatorInfo"]["OperationType"] == "START"
    assert restarted["Status"] in [*FORWARD, "SUCCEED"]
    assert _t(restarted["UpdateTime"]) >= _t(first["UpdateTime"])
    second = wait_status(server, task_id, *TERMINAL)
    assert second["Status"] == "SUCCEED"
    # The earlier run stays readable; definition fields and LatestInstanceId stay current (spec §4.2).
    old = detail(server, task_id, first["LatestInstanceId"])
    assert (old["Status"], old["StartTime"], old["EndTime"]) == ("SUCCEED", first["StartTime"], first["EndTime"])
    assert old["LatestInstanceId"] == second["LatestInstanceId"]
    bogus = task_id + "-zzzzzzzzzzzz"
    assert error_code(lambda: detail(server, task_id, bogus)) == "ResourceNotFound"
    logs = server.call("DescribeLogs", {"Service": "TRAIN", "ServiceId": second["LatestInstanceId"]})
    assert [line["Message"] for line in logs["Content"]] == [second["LatestInstanceId"]]


def test_delete_training_task_only_when_finished(server: Server, tmp_path: Path) -> None:
    task_id = create(server, "to-delete", python_cmd("import time; time.sleep(60)"))
    assert error_code(lambda: server.call("DeleteTrainingTask", {"Id": task_id})) == "InternalError.NotAllow"
    running = wait_status(server, task_id, "RUNNING")
    assert error_code(lambda: server.call("DeleteTrainingTask", {"Id": task_id})) == "InternalError.NotAllow"
    assert error_code(lambda: server.call("StartTrainingTask", {"Id": task_id})) == "InternalError.NotAllow"
    server.call("StopTrainingTask", {"Id": task_id})
    wait_status(server, task_id, "STOPPED", timeout=15)
    run_dir = Path(server.log_path).parent / "data" / "runs" / running["LatestInstanceId"]
    assert run_dir.is_dir()
    server.call("DeleteTrainingTask", {"Id": task_id})
    assert not run_dir.exists()
    for action in ("DescribeTrainingTask", "DescribeTrainingTaskPods", "StartTrainingTask", "StopTrainingTask"):
        assert error_code(lambda a=action: server.call(a, {"Id": task_id})) == "ResourceNotFound", action  # type: ignore[misc]
    assert error_code(lambda: server.call("DeleteTrainingTask", {"Id": task_id})) == "ResourceNotFound"
    listed = server.call("DescribeTrainingTasks", {"Filters": [{"Name": "Name", "Values": ["to-delete"]}]})
    assert listed["TotalCount"] == 0
    again = create(server, "to-delete", "true")  # the name is free again
    assert wait_status(server, again, *TERMINAL)["Status"] == "SUCCEED"


SMALL_POOL = """
[capacity]
cpu = 2000
memory = 4096
gpu = 0
"""


def test_training_task_waits_pending_for_capacity(tmp_path: Path, sqlite_url: str) -> None:
    with training_server(sqlite_url, tmp_path, catalogue=SMALL_POOL) as srv:
        sleeper = python_cmd("import time; time.sleep(60)")
        first = create(srv, "first", sleeper)  # TI.S.MEDIUM.POST: the whole 2-core, 4 GB pool
        wait_status(srv, first, "RUNNING")
        second = create(srv, "second", sleeper)
        third = create(srv, "third", sleeper)
        waiting = wait_for(srv, second, lambda d: d["Message"] != "")
        assert waiting["Status"] == "PENDING"
        assert waiting["Message"] == "Waiting for resources: insufficient free capacity"
        assert (waiting["ChargeStatus"], waiting["BillingInfo"]) == ("NOT_BILLING", "")
        assert _list_item(srv, second)["Message"] == waiting["Message"]
        assert [p["Status"] for p in pods(srv, second)["PodInfoList"]] == ["PENDING"]
        # Stopping a PENDING task needs no teardown.
        wait_status(srv, third, "PENDING")  # the runner has taken it in (it may pass a little after the second)
        srv.call("StopTrainingTask", {"Id": third})
        assert wait_status(srv, third, *TERMINAL)["Status"] == "STOPPED"
        assert [p["Status"] for p in pods(srv, third)["PodInfoList"]] == ["TERMINATED"]
        fourth = create(srv, "fourth", sleeper)
        srv.call("StopTrainingTask", {"Id": first})
        released = wait_status(srv, second, "RUNNING", timeout=15)
        assert released["Message"] == ""
        # Submission order: the fourth still waits for the second.
        assert detail(srv, fourth)["Status"] == "PENDING"
        srv.call("StopTrainingTask", {"Id": second})
        wait_status(srv, fourth, "RUNNING", timeout=15)
        srv.call("StopTrainingTask", {"Id": fourth})
        wait_status(srv, fourth, "STOPPED", timeout=15)


DDP_SCRIPT = """
import os, socket, sys, time
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
data = open(os.path.join(os.environ["TI_MOUNT_ROOT"], "opt/ml/input/data/train/words.txt")).read().strip()
if rank == 0:
    server = socket.create_server((addr, port))
    conn, _ = server.accept()
    peer = int(conn.recv(16).decode())
    conn.sendall(str(rank).encode())
else:
    for _ in range(200):
        try:
            conn = socket.create_connection((addr, port))
            break
        except OSError:
            time.sleep(0.05)
    conn.sendall(str(rank).encode())
    peer = int(conn.recv(16).decode())
print(f"rank {rank} of {world} sees peer {peer}; task {os.environ['TI_TASK_ID']}; data {data}")
print(f"rank {rank} done", file=sys.stderr)
"""


def test_ddp_two_workers_see_each_other(server: Server) -> None:
    cos = cos_tree(server)
    (cos / "bucket-1250000000" / "code").mkdir(parents=True)
    (cos / "bucket-1250000000" / "code" / "train.py").write_text(DDP_SCRIPT)
    (cos / "bucket-1250000000" / "data").mkdir(parents=True)
    (cos / "bucket-1250000000" / "data" / "words.txt").write_text("hello-data\n")
    params = task_params(
        "ddp",
        f"{PYTHON} train.py",
        ResourceConfigInfos=[{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 2}],
        TrainingMode="DDP",
        FrameworkName="PYTORCH",
        FrameworkEnvironment="torch1.9-py3.8-cuda11.1-gpu",
        CodePackagePath={"Bucket": "bucket-1250000000", "Region": "ap-guangzhou", "Paths": ["code"]},
        DataConfigs=[
            {
                "MappingPath": "/opt/ml/input/data/train",
                "DataSourceType": "COS",
                "COSSource": {"Bucket": "bucket-1250000000", "Region": "ap-guangzhou", "Paths": ["data"]},
            }
        ],
    )
    del params["ImageInfo"]
    task_id = str(server.call("CreateTrainingTask", params)["Id"])
    done = wait_status(server, task_id, *TERMINAL)
    assert done["Status"] == "SUCCEED", done["FailureReason"]
    assert done["ImageInfo"]["ImageType"] == "PRE_SET"
    run = done["LatestInstanceId"]
    listing = pods(server, task_id)
    assert listing["PodNames"] == [f"{run}-master-0", f"{run}-worker-0"]
    assert [p["Status"] for p in listing["PodInfoList"]] == ["SUCCEEDED", "SUCCEEDED"]
    for rank, name in enumerate(listing["PodNames"]):
        out = server.call("DescribeLogs", {"Service": "TRAIN", "PodName": name, "LogStream": "stdout"})
        assert [line["Message"] for line in out["Content"]] == [
            f"rank {rank} of 2 sees peer {1 - rank}; task {task_id}; data hello-data"
        ]
        err = server.call("DescribeLogs", {"Service": "TRAIN", "PodName": name, "LogStream": "stderr"})
        assert [line["Message"] for line in err["Content"]] == [f"rank {rank} done"]


def test_create_training_task_missing_code_package_is_submit_failed(server: Server) -> None:
    with callback_receiver() as receiver:
        code = {"Bucket": "nowhere-1250000000", "Region": "ap-guangzhou", "Paths": ["missing/code.tar.gz"]}
        task_id = create(server, "no-code", "true", CodePackagePath=code, CallbackUrl=receiver.url)
        done = wait_status(server, task_id, *TERMINAL)
        assert done["Status"] == "SUBMIT_FAILED"
        assert "nowhere-1250000000/missing/code.tar.gz" in done["FailureReason"]
        assert (done["StartTime"], done["EndTime"] != "", done["RuntimeInSeconds"]) == ("", True, 0)
        assert pods(server, task_id) | {"RequestId": ""} == {
            "PodNames": [], "TotalCount": 0, "PodInfoList": [], "RequestId": ""
        }  # fmt: skip
        body = receiver.wait(1)[0]
        assert (body["code"], body["taskName"], body["id"]) == (10001, "Start", task_id)
        assert body["message"] == done["FailureReason"]


def test_callback_url_gets_the_outcomes(server: Server) -> None:
    with callback_receiver() as receiver:
        ok = create(server, "cb-ok", "true", CallbackUrl=receiver.url)
        wait_status(server, ok, *TERMINAL)
        bodies = receiver.wait(1)
        assert bodies[0] | {"totalTime": 0.0, "responseTime": ""} == {
            "code": 0, "message": "SUCCEED", "id": ok, "appName": "tione", "projectName": "training",
            "taskName": "Start", "totalTime": 0.0, "responseTime": "",
        }  # fmt: skip
        assert 0 < bodies[0]["totalTime"] < 30
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", bodies[0]["responseTime"])
        failed = create(server, "cb-fail", "exit 2", CallbackUrl=receiver.url)
        wait_status(server, failed, *TERMINAL)
        assert receiver.wait(2)[1] | {"totalTime": 0, "responseTime": ""} == bodies[0] | {
            "code": 10002, "message": "worker-0 exited with code 2", "id": failed, "totalTime": 0, "responseTime": ""
        }  # fmt: skip
        stopped = create(server, "cb-stop", python_cmd("import time; time.sleep(60)"), CallbackUrl=receiver.url)
        wait_status(server, stopped, "RUNNING")
        server.call("StopTrainingTask", {"Id": stopped})
        wait_status(server, stopped, "STOPPED", timeout=15)
        third = receiver.wait(3)[2]
        assert (third["code"], third["message"], third["taskName"], third["id"]) == (0, "STOPPED", "Stop", stopped)


def test_callback_url_dead_never_slows_the_api(server: Server) -> None:
    # Nothing listens on port 9 (discard): delivery fails, twice, off the request path.
    task_id = create(server, "cb-dead", "true", CallbackUrl="http://127.0.0.1:9/hook")
    assert wait_status(server, task_id, *TERMINAL)["Status"] == "SUCCEED"


# -- validation (spec §4.1): each refusal, its code, and nothing stored ---------------------------------------

BAD: list[tuple[str, dict[str, Any], str]] = [
    ("empty name", {"Name": ""}, "InvalidParameterValue.BadName"),
    ("name starts with _", {"Name": "_x"}, "InvalidParameterValue.BadName"),
    ("name with space", {"Name": "a b"}, "InvalidParameterValue.BadName"),
    ("name 61 chars", {"Name": "a" * 61}, "InvalidParameterValue.BadName"),
    ("charge type", {"ChargeType": "MONTHLY"}, "InvalidParameterValue"),
    ("no configs", {"ResourceConfigInfos": []}, "InvalidParameterValue.ResourceConfigIllegal"),
    ("role", {"ResourceConfigInfos": [{"Role": "CHIEF", "InstanceType": "TI.S.MEDIUM.POST"}]},
     "InvalidParameterValue.ResourceConfigIllegal"),
    ("instance num", {"ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST",
                                               "InstanceNum": 1001}]}, "InvalidParameterValue.ResourceConfigIllegal"),
    ("unknown type", {"ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.NOPE"}]},
     "InvalidParameterValue.ResourceConfigIllegal"),
    ("prepaid without cpu", {"ChargeType": "PREPAID", "ResourceGroupId": "ersg-c7kq2m9x",
                             "ResourceConfigInfos": [{"Role": "WORKER", "Memory": 1024}]},
     "InvalidParameterValue.ResourceConfigIllegal"),
    ("prepaid gpu without type", {"ChargeType": "PREPAID", "ResourceGroupId": "ersg-v5r8b1ht",
                                  "ResourceConfigInfos": [{"Role": "WORKER", "Cpu": 1000, "Memory": 1024, "Gpu": 100}]},
     "InvalidParameterValue.ResourceConfigIllegal"),
    ("prepaid without group", {"ChargeType": "PREPAID",
                               "ResourceConfigInfos": [{"Role": "WORKER", "Cpu": 1000, "Memory": 1024}]},
     "MissingParameter"),
    ("postpaid with group", {"ResourceGroupId": "ersg-c7kq2m9x"}, "InvalidParameterValue"),
    ("unknown group", {"ChargeType": "PREPAID", "ResourceGroupId": "ersg-00000000",
                       "ResourceConfigInfos": [{"Role": "WORKER", "Cpu": 1000, "Memory": 1024}]},
     "ResourceNotFound.ResourceGroupNotFound"),
    ("group too small", {"ChargeType": "PREPAID", "ResourceGroupId": "ersg-c7kq2m9x",
                         "ResourceConfigInfos": [{"Role": "WORKER", "Cpu": 64000, "Memory": 1024}]},
     "OperationDenied.ResourceGroupInsufficient"),
    ("no image, no framework", {"ImageInfo": None}, "InvalidParameterValue.FrameworkVersionNotSupport"),
    ("unknown framework", {"ImageInfo": None, "FrameworkName": "PYTORCH", "FrameworkEnvironment": "torch0.1"},
     "InvalidParameterValue.FrameworkVersionNotSupport"),
    ("mode not of the framework", {"ImageInfo": None, "FrameworkName": "PYTORCH", "TrainingMode": "PS_WORKER",
                                   "FrameworkEnvironment": "torch1.9-py3.8-cuda11.1-gpu"},
     "InvalidParameterValue.FrameworkVersionNotSupport"),
    ("unknown mode", {"TrainingMode": "GANG"}, "InvalidParameterValue"),
    ("image type", {"ImageInfo": {"ImageType": "DOCKERHUB", "ImageUrl": "x"}}, "InvalidParameterValue"),
    ("rdma", {"ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST",
                                       "RDMAConfig": {"Enable": True}}]}, "InvalidParameterValue.RDMAConfigIllegal"),
    ("11 data configs", {"DataConfigs": [{"MappingPath": f"/d{i}", "DataSourceType": "COS"} for i in range(11)]},
     "InvalidParameterValue.DataConfigNumLimitExceeded"),
    ("tuning too long", {"TuningParameters": "x" * 2049}, "InvalidParameterValue.ParamLengthExceedLimit"),
    ("remark too long", {"Remark": "x" * 1025}, "InvalidParameterValue.ParamLengthExceedLimit"),
    ("two code paths", {"CodePackagePath": {"Bucket": "b", "Region": "r", "Paths": ["a", "b"]}},
     "InvalidParameterValue"),
    ("encoded not base64", {"EncodedStartCmdInfo": {"StartCmdInfo": "%%%"}}, "InvalidParameterValue"),
    ("encoded missing key", {"EncodedStartCmdInfo": {"StartCmdInfo": "eyJTdGFydENtZCI6ICJ0cnVlIn0="}},
     "InvalidParameterValue"),
    ("callback url", {"CallbackUrl": "ftp://example.com/x"}, "InvalidParameterValue"),
    ("relative callback url", {"CallbackUrl": "/hook"}, "InvalidParameterValue"),
    ("log enable without config", {"LogEnable": True}, "InvalidParameterValue.ClsConfigRequired"),
    ("duplicate tag keys", {"Tags": [{"TagKey": "a", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}]},
     "InvalidParameterValue"),
    ("missing name", {"Name": None}, "MissingParameter"),
    ("missing role", {"ResourceConfigInfos": [{"InstanceType": "TI.S.MEDIUM.POST"}]}, "MissingParameter"),
    ("cpu as string", {"ResourceConfigInfos": [{"Role": "WORKER", "Cpu": "1000"}]}, "InvalidParameter"),
]  # fmt: skip


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The simulate executor: validation tests need no processes."""
    workdir = tmp_path_factory.mktemp("validation")
    with running_server(f"sqlite:///{workdir / 'tione.db'}", workdir, extra_args=("--executor", "simulate")) as srv:
        yield srv


@pytest.mark.parametrize(("case", "overrides", "code"), BAD, ids=[b[0] for b in BAD])
def test_create_training_task_refusals(quiet_server: Server, case: str, overrides: dict[str, Any], code: str) -> None:
    params = task_params("valid-name", "true")
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    assert error_code(lambda: quiet_server.call("CreateTrainingTask", params)) == code
    assert quiet_server.call("DescribeTrainingTasks", {})["TotalCount"] == 0  # a refused request stores nothing


def test_create_training_task_duplicate_name(quiet_server: Server) -> None:
    params = task_params("dup-名字", "true", TiProjectId="ws-dup")
    quiet_server.call("CreateTrainingTask", params)
    assert error_code(lambda: quiet_server.call("CreateTrainingTask", params)) == "InvalidParameterValue.DuplicateName"
    # Names are case-sensitive and per workspace.
    quiet_server.call("CreateTrainingTask", params | {"Name": "DUP-名字"})
    quiet_server.call("CreateTrainingTask", params | {"TiProjectId": "ws-other"})
    assert quiet_server.call("DescribeTrainingTasks", {"TiProjectId": "ws-dup"})["TotalCount"] == 2


def test_create_training_task_normalises_what_it_stores(quiet_server: Server) -> None:
    import base64
    import json

    encoded = base64.b64encode(json.dumps({"StartCmd": "run", "PsStartCmd": "", "WorkerStartCmd": ""}).encode())
    params = task_params(
        "normalised",
        "ignored",
        TiProjectId="ws-norm",
        EncodedStartCmdInfo={"StartCmdInfo": encoded.decode()},
        ResourceConfigInfos=[{"Role": "worker", "InstanceType": "TI.GN10.2XLARGE40.POST", "Cpu": 1, "InstanceNum": 0}],
        Envs=[{"Name": "TOKEN", "Value": "secret", "IsPrivate": True}, {"Name": "MODE", "Value": "fast"}],
        Tags=[{"TagKey": "team", "TagValue": "cv"}],
        ImageInfo={"ImageType": "PreSet", "ImageUrl": "x", "ImageSecret": {"Username": "u", "Password": "cA=="}},
    )
    task_id = str(quiet_server.call("CreateTrainingTask", params)["Id"])
    d = quiet_server.call("DescribeTrainingTask", {"Id": task_id, "TiProjectId": "ws-norm"})["TrainingTaskDetail"]
    assert d["StartCmdInfo"] == {"StartCmd": "run", "PsStartCmd": "", "WorkerStartCmd": ""}
    assert d["ResourceConfigInfos"][0] | {"RDMAConfig": None} == {
        "Role": "WORKER", "Cpu": 8000, "Memory": 40960, "GpuType": "V100", "Gpu": 100,
        "InstanceType": "TI.GN10.2XLARGE40.POST", "InstanceNum": 1, "InstanceTypeAlias": "8C40G V100*1",
        "RDMAConfig": None,
    }  # fmt: skip
    assert d["ImageInfo"]["ImageType"] == "PRE_SET"
    assert d["ImageInfo"]["ImageSecret"]["Password"] == ""
    assert (d["Uin"], d["Region"], d["Status"], d["ChargeStatus"]) == (
        quiet_server.key.uin, "ap-guangzhou", "SUBMITTING", "NOT_BILLING"
    )  # fmt: skip
    item = quiet_server.call("DescribeTrainingTasks", {"TiProjectId": "ws-norm"})["TrainingTaskSet"][0]
    assert item["Envs"] == [
        {"Name": "TOKEN", "Value": "******", "IsPrivate": True},
        {"Name": "MODE", "Value": "fast", "IsPrivate": False},
    ]
    assert item["Tags"] == [{"TagKey": "team", "TagValue": "cv"}]
    assert (item["StartTime"], item["EndTime"], item["RuntimeInSeconds"]) == ("", "", 0)


def test_lifecycle_on_each_backend(database_url: str, tmp_path: Path) -> None:
    """Create, run, stop, start again and delete on SQLite and on PostgreSQL."""
    with training_server(database_url, tmp_path) as srv:
        task_id = create(srv, "backend", python_cmd("import time; time.sleep(60)"))
        wait_status(srv, task_id, "RUNNING")
        srv.call("StopTrainingTask", {"Id": task_id})
        assert wait_status(srv, task_id, *TERMINAL, timeout=15)["Status"] == "STOPPED"
        first = detail(srv, task_id)["LatestInstanceId"]
        srv.call("StartTrainingTask", {"Id": task_id})
        wait_status(srv, task_id, "RUNNING")
        srv.call("StopTrainingTask", {"Id": task_id})
        assert wait_status(srv, task_id, *TERMINAL, timeout=15)["Status"] == "STOPPED"
        assert detail(srv, task_id, first)["FailureReason"] == "User Stop"
        srv.call("DeleteTrainingTask", {"Id": task_id})
        assert srv.call("DescribeTrainingTasks", {})["TotalCount"] == 0


def test_imported_tasks_are_history(quiet_server: Server, tmp_path: Path) -> None:
    from tests.live import cli

    item = {"Id": "train-1329791605108055040", "Name": "from-tencent", "Status": "SUCCEED",
            "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-28T18:18:33+08", "BillingInfo": ""}  # fmt: skip
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([item]))
    project = ["--project", "ws-imported"]
    cli("import", str(path), "--uin", quiet_server.key.uin, "--region", "ap-guangzhou", *project,
        database_url=quiet_server.database_url)  # fmt: skip
    where = {"Id": item["Id"], "TiProjectId": "ws-imported"}
    d = quiet_server.call("DescribeTrainingTask", where)["TrainingTaskDetail"]
    assert (d["Status"], d["Name"], d["LatestInstanceId"]) == ("SUCCEED", "from-tencent", "")
    assert quiet_server.call("DescribeTrainingTaskPods", where)["TotalCount"] == 0
    assert error_code(lambda: quiet_server.call("StartTrainingTask", where)) == "InternalError.NotAllow"
    assert error_code(lambda: quiet_server.call("StopTrainingTask", where)) == "InternalError.NotAllow"
    quiet_server.call("DeleteTrainingTask", where)
    assert error_code(lambda: quiet_server.call("DescribeTrainingTask", where)) == "ResourceNotFound"
