"""The lifecycle through tccli (as a user would do it): create a task running a Python script, watch it, read its
logs, stop another one halfway. tccli starts slowly, so invocations are few and polling uses the SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.live import Server
from tests.training import PYTHON, TERMINAL, cos_tree, training_server, wait_status

TCCLI = Path(sys.executable).parent / "tccli"
TRAIN_PY = """
import time
for epoch in range(3):
    print(f"epoch {epoch} loss {1.0 / (epoch + 1):.3f}")
    time.sleep(0.3)
print("training done")
"""


def tccli(server: Server, home: Path, action: str, **params: Any) -> dict[str, Any]:
    """`tccli tione ACTION --Param value ...`; returns the printed JSON (fails the test on a non-zero exit)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("TENCENTCLOUD")}
    env["HOME"] = str(home)
    args: list[str] = []
    for name, value in params.items():
        args += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
    command = [
        str(TCCLI), "tione", action,
        "--endpoint", f"http://{server.endpoint}",
        "--secretId", server.key.secret_id,
        "--secretKey", server.key.secret_key,
        "--region", "ap-guangzhou",
        *args,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr + result.stdout
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_tccli_create_describe_stop(tmp_path: Path, sqlite_url: str) -> None:
    with training_server(sqlite_url, tmp_path) as srv:
        code = cos_tree(srv) / "my-bucket-1250000000" / "mnist"
        code.mkdir(parents=True)
        (code / "train.py").write_text(TRAIN_PY)
        common = {
            "ChargeType": "POSTPAID_BY_HOUR",
            "ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 1}],
            "FrameworkName": "PYTORCH",
            "FrameworkEnvironment": "torch1.9-py3.8-cuda11.1-gpu",
            "TrainingMode": "DDP",
            "CodePackagePath": {"Bucket": "my-bucket-1250000000", "Region": "ap-guangzhou", "Paths": ["mnist"]},
        }
        start = {"StartCmd": f"{PYTHON} train.py"}
        created = tccli(srv, tmp_path, "CreateTrainingTask", Name="mnist", StartCmdInfo=start, **common)
        task_id = created["Id"]
        done = wait_status(srv, task_id, *TERMINAL)
        assert done["Status"] == "SUCCEED", done["FailureReason"]
        shown = tccli(srv, tmp_path, "DescribeTrainingTask", Id=task_id)["TrainingTaskDetail"]
        assert (shown["Status"], shown["FailureReason"], shown["LatestInstanceId"]) == (
            "SUCCEED", "", done["LatestInstanceId"]
        )  # fmt: skip
        logs = tccli(srv, tmp_path, "DescribeLogs", Service="TRAIN", ServiceId=done["LatestInstanceId"], Order="ASC")
        assert [line["Message"] for line in logs["Content"]] == [
            "epoch 0 loss 1.000", "epoch 1 loss 0.500", "epoch 2 loss 0.333", "training done"
        ]  # fmt: skip
        listed = tccli(srv, tmp_path, "DescribeTrainingTasks")
        assert [(t["Id"], t["Status"]) for t in listed["TrainingTaskSet"]] == [(task_id, "SUCCEED")]

        slow = f"{PYTHON} -c 'import time; time.sleep(120)'"
        other = tccli(srv, tmp_path, "CreateTrainingTask", Name="halfway", StartCmdInfo={"StartCmd": slow}, **common)
        wait_status(srv, other["Id"], "RUNNING")
        tccli(srv, tmp_path, "StopTrainingTask", Id=other["Id"])
        assert wait_status(srv, other["Id"], *TERMINAL)["Status"] == "STOPPED"
        stopped = tccli(srv, tmp_path, "DescribeTrainingTask", Id=other["Id"])["TrainingTaskDetail"]
        assert (stopped["Status"], stopped["FailureReason"]) == ("STOPPED", "User Stop")
