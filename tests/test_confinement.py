"""Request paths stay inside their account (issue 7 A1, A2) and bad code archives end a task once (A3).

A live server with the local executor, the official SDK, real files and processes; SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.live import Server, create_key, running_server
from tests.training import TERMINAL, cos_tree, create, python_cmd, task_params, training_server, wait_status

UIN_A = "100000000001"
UIN_B = "100000000002"


def _cos(bucket: str, path: str) -> dict[str, Any]:
    return {"Bucket": bucket, "Region": "ap-guangzhou", "Paths": [path]}


def _stdout(server: Server, run_id: str, key: Any = None) -> list[str]:
    out = server.call("DescribeLogs", {"Service": "TRAIN", "ServiceId": run_id, "LogStream": "stdout"}, key)
    return [line["Message"] for line in out["Content"]]


def test_create_training_task_cos_trees_are_per_account(database_url: str, tmp_path: Path) -> None:
    with training_server(database_url, tmp_path) as srv:
        key_b = create_key(database_url, UIN_B)
        code_a = cos_tree(srv, UIN_A) / "bktA" / "code"
        code_a.mkdir(parents=True)
        (code_a / "train.py").write_text('print("code of A")\n')
        # B names A's bucket and path as its Output and writes a train.py there...
        params = task_params(
            "b-writes", python_cmd('open("/".join([__import__("os").environ["TI_OUTPUT_DIR"], "train.py"]), "w")'
                                   '.write("print(\\"code of B\\")")'),
            Output=_cos("bktA", "code"),
        )  # fmt: skip
        b_task = srv.call("CreateTrainingTask", params, key_b)["Id"]
        done = _wait(srv, b_task, key_b)
        assert done["Status"] == "SUCCEED", done["FailureReason"]
        # ...which lands in B's own tree, and A's next task still runs A's code.
        assert (cos_tree(srv, UIN_B) / "bktA" / "code" / "train.py").read_text() == 'print("code of B")'
        assert (code_a / "train.py").read_text() == 'print("code of A")\n'
        a_task = create(
            srv, "a-runs", python_cmd('exec(open("train.py").read())'), CodePackagePath=_cos("bktA", "code")
        )
        done = wait_status(srv, a_task, *TERMINAL)
        assert done["Status"] == "SUCCEED", done["FailureReason"]
        assert _stdout(srv, done["LatestInstanceId"]) == ["code of A"]
        # B cannot read A's code either: in B's tree there is no such package.
        b_reads = srv.call(
            "CreateTrainingTask",
            task_params("b-reads", "true", CodePackagePath=_cos("bktA", "code/train.py")),
            key_b,
        )["Id"]
        assert _wait(srv, b_reads, key_b)["Status"] == "SUCCEED"  # B's own file (written above) is found
        missing = srv.call(
            "CreateTrainingTask", task_params("b-missing", "true", CodePackagePath=_cos("bktOnlyA", "x")), key_b
        )["Id"]
        (cos_tree(srv, UIN_A) / "bktOnlyA" / "x").mkdir(parents=True)
        assert _wait(srv, missing, key_b)["Status"] == "SUBMIT_FAILED"


def _wait(server: Server, task_id: str, key: Any, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = dict(server.call("DescribeTrainingTask", {"Id": task_id}, key)["TrainingTaskDetail"])
        if got["Status"] in TERMINAL:
            return got
        assert time.monotonic() < deadline, got
        time.sleep(0.05)


FORMS = {"dotdot": "a/../../b", "absolute": "/etc", "nul": "a\x00b", "control": "a\x1bb"}
FIELDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "CodePackagePath.Bucket": lambda v: {"CodePackagePath": _cos(v, "code")},
    "CodePackagePath.Paths.0": lambda v: {"CodePackagePath": _cos("b", v)},
    "Output.Bucket": lambda v: {"Output": _cos(v, "out")},
    "Output.Paths.0": lambda v: {"Output": _cos("b", v)},
    "DataConfigs.0.COSSource.Bucket": lambda v: {"DataConfigs": [{"DataSourceType": "COS", "MappingPath": "/d",
                                                                  "COSSource": _cos(v, "data")}]},
    "DataConfigs.0.COSSource.Paths.0": lambda v: {"DataConfigs": [{"DataSourceType": "COS", "MappingPath": "/d",
                                                                   "COSSource": _cos("b", v)}]},
    "DataConfigs.0.MappingPath": lambda v: {"DataConfigs": [{"DataSourceType": "COS", "MappingPath": v,
                                                             "COSSource": _cos("b", "data")}]},
}  # fmt: skip


def test_create_training_task_refuses_paths_leaving_the_account(database_url: str, tmp_path: Path) -> None:
    with running_server(database_url, tmp_path, extra_args=("--executor", "simulate")) as srv:
        refused = 0
        for field, build in FIELDS.items():
            for form, value in FORMS.items():
                if field.endswith("MappingPath") and form == "absolute":
                    continue  # a path inside the pod: absolute is the normal form (below)
                params = task_params(f"p-{refused}", "true", **build(value))
                with pytest.raises(TencentCloudSDKException) as info:
                    srv.call("CreateTrainingTask", params)
                assert info.value.code == "InvalidParameterValue", (field, form, info.value.code)
                assert field in str(info.value.message), (field, form, info.value.message)
                refused += 1
        assert refused == 27
        assert srv.call("DescribeTrainingTasks", {})["TotalCount"] == 0  # nothing stored
        accepted = task_params("inside", "true", **FIELDS["DataConfigs.0.MappingPath"]("/opt/ml/input/data/train"))
        srv.call("CreateTrainingTask", accepted)
        assert srv.call("DescribeTrainingTasks", {})["TotalCount"] == 1


def test_create_training_task_symlink_out_of_the_account_is_submit_failed(database_url: str, tmp_path: Path) -> None:
    with training_server(database_url, tmp_path) as srv:
        bucket = cos_tree(srv) / "b"
        bucket.mkdir(parents=True)
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "train.py").write_text('print("not yours")\n')
        (bucket / "code").symlink_to(outside)
        (bucket / "up").symlink_to("..")  # the account's root itself: still inside
        (bucket / "other").symlink_to(cos_tree(srv, UIN_B))
        (bucket / "pkg").mkdir()
        (bucket / "pkg" / "passwd").symlink_to("/etc/passwd")
        (bucket / "ok").mkdir()
        (bucket / "ok" / "train.py").write_text('print("mine")\n')
        cases: dict[str, dict[str, Any]] = {
            "code": {"CodePackagePath": _cos("b", "code")},
            "other": {"CodePackagePath": _cos("b", "other/b")},
            "output": {"Output": _cos("b", "code/new-dir")},
            "data": {"DataConfigs": [{"DataSourceType": "COS", "MappingPath": "/d", "COSSource": _cos("b", "code")}]},
            "link-in-package": {"CodePackagePath": _cos("b", "pkg")},
        }
        ids = {name: create(srv, f"link-{name}", "true", **extra) for name, extra in cases.items()}
        for name, task_id in ids.items():
            done = wait_status(srv, task_id, *TERMINAL)
            assert done["Status"] == "SUBMIT_FAILED", (name, done["Status"])
            assert "outside" in done["FailureReason"], (name, done["FailureReason"])
        assert sorted(p.name for p in outside.iterdir()) == ["train.py"]  # no new-dir created through the link
        # A symlink that stays inside the account's tree is followed.
        inside = create(
            srv, "link-inside", python_cmd('exec(open("train.py").read())'), CodePackagePath=_cos("b", "up/b/ok")
        )
        done = wait_status(srv, inside, *TERMINAL)
        assert done["Status"] == "SUCCEED", done["FailureReason"]
        assert _stdout(srv, done["LatestInstanceId"]) == ["mine"]


def _bad_archives(bucket: Path) -> dict[str, str]:
    """Four corrupt code packages, by kind: path under the bucket."""
    bucket.mkdir(parents=True)
    (bucket / "x.zip").write_bytes(b"PK but not really a zip file")
    (bucket / "garbage.tar.gz").write_bytes(os.urandom(8192))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("../escape.py")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    (bucket / "escape.tar.gz").write_bytes(buf.getvalue())
    (bucket / "short.tgz").write_bytes(buf.getvalue()[:20])
    return {"zip": "x.zip", "garbage": "garbage.tar.gz", "escape": "escape.tar.gz", "short": "short.tgz"}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_create_training_task_bad_archive_ends_once(database_url: str, tmp_path: Path) -> None:
    with training_server(database_url, tmp_path) as srv:
        archives = _bad_archives(cos_tree(srv) / "b")
        started = time.monotonic()
        ids = {
            kind: create(srv, f"bad-{kind}", "true", CodePackagePath=_cos("b", path)) for kind, path in archives.items()
        }
        for kind, task_id in ids.items():
            done = wait_status(srv, task_id, *TERMINAL, timeout=10)
            assert done["Status"] == "SUBMIT_FAILED", (kind, done["Status"])
            assert f"b/{archives[kind]}" in done["FailureReason"], done["FailureReason"]
        assert time.monotonic() - started < 10
        assert not (tmp_path / "data" / "runs" / "escape.py").exists()
        # Nothing is retried: the server idles (no CPU spent, no log lines written) once the tasks have ended.
        time.sleep(0.5)
        cpu, log_size = _cpu_seconds(srv.process.pid), srv.log_path.stat().st_size
        time.sleep(2)
        assert _cpu_seconds(srv.process.pid) - cpu < 0.5
        assert srv.log_path.stat().st_size == log_size
        for task_id in ids.values():  # and the tasks can be deleted
            srv.call("DeleteTrainingTask", {"Id": task_id})
        assert srv.call("DescribeTrainingTasks", {})["TotalCount"] == 0


@pytest.mark.parametrize("source", ["HostPathSource", "LocalDiskSource"])
def test_create_training_task_host_paths_are_submit_failed(sqlite_url: str, tmp_path: Path, source: str) -> None:
    detail = {"Path": "/etc"} if source == "HostPathSource" else {"LocalPath": "/etc", "InstanceId": "i"}
    with training_server(sqlite_url, tmp_path) as srv:
        dc = {"DataSourceType": "COS", "MappingPath": "/d", source: detail}
        done = wait_status(srv, create(srv, "host", "true", DataConfigs=[dc]), *TERMINAL)
        assert done["Status"] == "SUBMIT_FAILED"
        assert "DataConfigs.0" in done["FailureReason"]
