"""tccli 3.1.189.1, run as a subprocess against a live server: `http://host:port` as endpoint (so the Host
header carries the scheme), TC3 over JSON, successes printed as JSON with exit 0 and errors exiting 255
with the code on stderr. tccli starts slowly, so the invocations are few.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import Server, running_server

TCCLI = Path(sys.executable).parent / "tccli"
TASKS: list[dict[str, Any]] = [
    {
        "Id": "train-1000000000000000011", "Name": "cli run/1", "Status": "SUCCEED",
        "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-28T18:18:33+08",
        "Tags": [{"TagKey": "team", "TagValue": "视觉 a+b"}],
    },
    {
        "Id": "train-1000000000000000012", "Name": "训练 任务+2", "Status": "RUNNING",
        "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-29T09:00:00+08",
        "Tags": [{"TagKey": "team", "TagValue": "nlp"}],
    },
    {
        "Id": "train-1000000000000000013", "Name": "third", "Status": "FAILED",
        "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-30T10:30:00+08",
    },
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A live server holding TASKS for its key's account in ap-guangzhou."""
    workdir = tmp_path_factory.mktemp("tccli")
    url = f"sqlite:///{workdir / 'tione.db'}"
    with running_server(url, workdir) as srv:
        srv.import_tasks(TASKS, workdir)
        yield srv


def tccli(
    server: Server, home: Path, *args: str, secret_key: str | None = None, region: str = "ap-guangzhou"
) -> subprocess.CompletedProcess[str]:
    """`tccli tione DescribeTrainingTasks ARGS` with HOME in a temp dir and no proxy in the way."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("TENCENTCLOUD")}
    env["HOME"] = str(home)
    command = [
        str(TCCLI), "tione", "DescribeTrainingTasks",
        "--endpoint", f"http://{server.endpoint}",
        "--secretId", server.key.secret_id,
        "--secretKey", secret_key or server.key.secret_key,
        "--region", region,
        *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def _ids(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    return [t["Id"] for t in out["TrainingTaskSet"]]


def test_tccli_describe_training_tasks_filters_limit_order(server: Server, tmp_path: Path) -> None:
    filters = json.dumps([{"Name": "Name", "Values": ["cli run/1", "训练 任务+2"]}], ensure_ascii=False)
    result = tccli(
        server, tmp_path, "--Filters", filters, "--Limit", "5", "--Order", "ASC", "--OrderField", "CreateTime"
    )
    assert _ids(result) == ["train-1000000000000000011", "train-1000000000000000012"]
    out = json.loads(result.stdout)
    assert out["TotalCount"] == 2
    assert out["RequestId"]


def test_tccli_describe_training_tasks_tag_filters(server: Server, tmp_path: Path) -> None:
    tag_filters = json.dumps([{"TagKey": "team", "TagValues": ["视觉 a+b"]}], ensure_ascii=False)
    assert _ids(tccli(server, tmp_path, "--TagFilters", tag_filters)) == ["train-1000000000000000011"]


def test_tccli_describe_training_tasks_limit_and_default_order(server: Server, tmp_path: Path) -> None:
    result = tccli(server, tmp_path, "--Limit", "1", "--Order", "DESC", "--OrderField", "CreateTime")
    assert _ids(result) == ["train-1000000000000000013"]
    assert json.loads(result.stdout)["TotalCount"] == 3


def test_tccli_describe_training_tasks_bad_signature_exits_255(server: Server, tmp_path: Path) -> None:
    result = tccli(server, tmp_path, "--Limit", "1", secret_key="x" * 32)
    assert result.returncode == 255, (result.stdout, result.stderr)
    assert "AuthFailure.SignatureFailure" in result.stderr


def test_tccli_describe_training_tasks_unserved_region_exits_255(server: Server, tmp_path: Path) -> None:
    result = tccli(server, tmp_path, "--Limit", "1", region="ap-tokyo")
    assert result.returncode == 255, (result.stdout, result.stderr)
    assert "UnsupportedRegion" in result.stderr
