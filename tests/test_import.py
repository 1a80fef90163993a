"""`tione-server import`: the three file shapes, fields kept as given, time shapes, replacement, and
all-or-nothing refusal of bad files, checked through a live server and the official SDK on each backend.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.tione.v20211111 import models

from tests.conftest import BACKENDS, make_database
from tests.live import REGION, Key, Server, cli, running_server
from tione_server.config import Settings
from tione_server.importer import ImportError_, import_file
from tione_server.store import Store

UIN = "100000000001"

REAL_TASK: dict[str, Any] = {
    "Id": "train-1329791605108055040",
    "Name": "pytorch-ddp-mnist",
    "FrameworkName": "PYTORCH",
    "FrameworkVersion": "",
    "FrameworkEnvironment": "PYTORCH1.9.1-PY3.8-CUDA11.1",
    "ChargeType": "POSTPAID_BY_HOUR",
    "ChargeStatus": "NOT_BILLING",
    "ResourceGroupId": "",
    "ResourceConfigInfos": [
        {
            "Role": "WORKER",
            "Cpu": 2000,
            "Memory": 2048,
            "GpuType": "",
            "Gpu": 0,
            "InstanceType": "TI.S6.MEDIUM2.POST",
            "InstanceNum": 1,
            "InstanceTypeAlias": "2C2G",
            "RDMAConfig": {"Enable": False},
        }
    ],
    "TrainingMode": "DDP",
    "Status": "SUCCEED",
    "RuntimeInSeconds": 3602,
    "CreateTime": "2025-05-28T18:18:33+08",
    "StartTime": "2025-05-29T14:43:53+08",
    "EndTime": "2025-05-29T15:43:55+08",
    "Output": {"Bucket": "tione-demo-1300000000", "Region": "ap-guangzhou", "Paths": ["/output/"]},
    "FailureReason": "",
    "UpdateTime": "2025-05-29T14:41:57+08",
    "BillingInfo": "",
    "ResourceGroupName": "",
    "ImageInfo": {
        "ImageType": "PRE_SET",
        "ImageUrl": "ccr.ccs.tencentyun.com/tione-public-images/ti-pytorch:1.9.1-py3.8-cuda11.1",
        "RegistryRegion": "",
        "RegistryId": "",
        "AllowSaveAllContent": False,
        "ImageName": "PYTORCH1.9.1-PY3.8-CUDA11.1",
        "SupportDataPipeline": False,
        "ImageSecret": {"KeyId": "", "Username": "", "Password": "", "SecretId": ""},
    },
    "Message": "",
    "Tags": [{"TagKey": "team", "TagValue": "训练"}, {"TagKey": "env", "TagValue": "prod"}],
    "CallbackUrl": "",
    "SubUin": "100031385875",
    "SubUinName": "alice",
    "AppId": "1300000000",
    "Envs": [{"Name": "EPOCHS", "Value": "10", "IsPrivate": False}],
    "LatestOperatorInfo": {
        "SubUin": "100031385875",
        "SubUinName": "alice",
        "IsPlatformOperator": False,
        "OperationType": "START",
    },
}
"""The real task of spec §0 ([OBS]) as a list item, every member filled the way the service fills it."""


@dataclass
class Env:
    """One live server per backend for the module; each test imports into workspaces of its own."""

    server: Server
    url: str
    workdir: Path
    serial: Iterator[int]

    def case(self) -> Case:
        return Case(self, next(self.serial))


@dataclass
class Case:
    env: Env
    n: int

    @property
    def project(self) -> str:
        return f"import-{self.n}"

    def id(self, k: int) -> str:
        return f"train-{k}{self.n:05d}"

    def item(self, k: int, **fields: Any) -> dict[str, Any]:
        """A small valid list item."""
        base = {"Id": self.id(k), "Name": f"task-{k}", "Status": "SUCCEED", "CreateTime": "2025-05-28T18:18:33+08"}
        return base | fields

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.env.workdir / f"{self.n}-{name}"
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        return path

    def run(
        self, path: Path, *, project: str | None = None, uin: str = UIN, region: str = REGION, app_id: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """`tione-server import` into this case's workspace (exit status not checked)."""
        args = ["import", str(path), "--uin", uin, "--region", region, "--project", project or self.project]
        return cli(*args, *(["--app-id", app_id] if app_id else []), database_url=self.env.url, check=False)

    def listed(self, **params: Any) -> tuple[list[Any], int]:
        """(TrainingTaskSetItem models, TotalCount) of this workspace, through the SDK."""
        req = models.DescribeTrainingTasksRequest()
        req.from_json_string(json.dumps({"TiProjectId": self.project, "Limit": 50, **params}))
        resp = self.env.server.client().DescribeTrainingTasks(req)
        return list(resp.TrainingTaskSet), resp.TotalCount

    def ids(self, **params: Any) -> list[str]:
        items, total = self.listed(**params)
        assert total == len(items)
        return sorted(t.Id for t in items)

    def raw(self) -> list[dict[str, Any]]:
        """The list's items as raw JSON (CommonClient)."""
        resp = self.env.server.call("DescribeTrainingTasks", {"TiProjectId": self.project, "Limit": 50})
        return list(resp["TrainingTaskSet"])


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp(f"import-{request.param}")
    with (
        contextmanager(make_database)(request.param, workdir) as url,
        running_server(url, workdir, uin=UIN) as server,
    ):
        yield Env(server, url, workdir, itertools.count(1))


def lines(*items: Any) -> str:
    return "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items)


def _without_nulls(value: Any) -> Any:
    """The SDK model's dict minus members the server did not send (models may know newer members)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


# -- file shapes ----------------------------------------------------------------------------------


def test_import_describe_response_file(env: Env) -> None:
    c = env.case()
    response = {"Response": {"TrainingTaskSet": [c.item(1), c.item(2)], "TotalCount": 2, "RequestId": "r-1"}}
    done = c.run(c.write("response.json", json.dumps(response, indent=2)))
    assert done.returncode == 0, done.stderr
    assert "2" in done.stdout
    assert c.ids() == [c.id(1), c.id(2)]


def test_import_json_list_file(env: Env) -> None:
    c = env.case()
    done = c.run(c.write("list.json", json.dumps([c.item(1), c.item(2), c.item(3)], indent=1)))
    assert done.returncode == 0, done.stderr
    assert c.ids() == [c.id(1), c.id(2), c.id(3)]


def test_import_json_lines_file(env: Env) -> None:
    c = env.case()
    done = c.run(c.write("tasks.jsonl", "\n" + lines(c.item(1), c.item(2)) + "\n\n" + lines(c.item(3))))
    assert done.returncode == 0, done.stderr
    assert c.ids() == [c.id(1), c.id(2), c.id(3)]


def test_import_json_lines_file_of_one_line(env: Env) -> None:
    c = env.case()
    done = c.run(c.write("one.jsonl", lines(c.item(1))))
    assert done.returncode == 0, done.stderr
    assert c.ids() == [c.id(1)]


def test_import_file_with_byte_order_mark(env: Env) -> None:
    c = env.case()
    for k, text in enumerate([json.dumps([c.item(1)]), lines(c.item(2), c.item(3))]):
        done = c.run(c.write(f"bom-{k}.json", b"\xef\xbb\xbf" + text.encode()))
        assert done.returncode == 0, done.stderr
    assert c.ids() == [c.id(1), c.id(2), c.id(3)]


# -- what is kept ---------------------------------------------------------------------------------


def test_import_keeps_every_field(env: Env) -> None:
    c = env.case()
    done = c.run(c.write("real.json", json.dumps([REAL_TASK], ensure_ascii=False)))
    assert done.returncode == 0, done.stderr
    assert c.raw() == [REAL_TASK]
    items, total = c.listed()
    assert total == 1
    assert _without_nulls(json.loads(items[0].to_json_string())) == REAL_TASK


def test_import_reads_time_shapes_and_shows_them_as_beijing_time(env: Env) -> None:
    c = env.case()
    shapes = {
        "2025-11-21 00:00:00": "2025-11-21T00:00:00+08",  # no offset: read as Beijing time
        "2025-11-21T00:00:00+08:00": "2025-11-21T00:00:00+08",
        "2025-11-20T16:00:00Z": "2025-11-21T00:00:00+08",
        "2025-11-21T00:00:00.999+08": "2025-11-21T00:00:00+08",
        "2025-11-20T16:00:00.123456Z": "2025-11-21T00:00:00+08",
        "2025-11-20T11:00:00-05:00": "2025-11-21T00:00:00+08",
        "2025-11-21T00:00:00+0800": "2025-11-21T00:00:00+08",
    }
    items = [
        c.item(k, CreateTime=given, UpdateTime=given, StartTime=given, EndTime=given)
        for k, given in enumerate(shapes, 1)
    ]
    done = c.run(c.write("times.json", json.dumps(items)))
    assert done.returncode == 0, done.stderr
    by_id = {t["Id"]: t for t in c.raw()}
    for k, want in enumerate(shapes.values(), 1):
        got = by_id[c.id(k)]
        assert (got["CreateTime"], got["UpdateTime"], got["StartTime"], got["EndTime"]) == (want,) * 4


def test_import_sub_uin_is_the_creator(env: Env) -> None:
    c = env.case()
    done = c.run(c.write("creators.json", json.dumps([c.item(1, SubUin="200000000001"), c.item(2)])))
    assert done.returncode == 0, done.stderr
    shown = {t["Id"]: t["SubUin"] for t in c.raw()}
    assert shown == {c.id(1): "200000000001", c.id(2): UIN}
    assert c.ids(Filters=[{"Name": "Creator", "Values": ["200000000001"]}]) == [c.id(1)]
    assert c.ids(Filters=[{"Name": "Creator", "Values": [UIN]}]) == [c.id(2)]


def test_import_again_replaces_the_task(env: Env) -> None:
    c = env.case()
    first = c.item(1, Name="first", Tags=[{"TagKey": "a", "TagValue": "1"}, {"TagKey": "b", "TagValue": "2"}])
    assert c.run(c.write("v1.json", json.dumps([first, c.item(2)]))).returncode == 0
    second = c.item(1, Name="second", Status="FAILED", Tags=[{"TagKey": "c", "TagValue": "3"}])
    done = c.run(c.write("v2.json", json.dumps([second])))
    assert done.returncode == 0, done.stderr
    got = {t["Id"]: t for t in c.raw()}
    assert len(got) == 2
    assert (got[c.id(1)]["Name"], got[c.id(1)]["Status"]) == ("second", "FAILED")
    assert got[c.id(1)]["Tags"] == [{"TagKey": "c", "TagValue": "3"}]
    assert c.ids(TagFilters=[{"TagKey": "a"}]) == []


def test_import_ignores_members_this_server_does_not_emit(env: Env) -> None:
    """Tencent's own list items may carry members outside the public spec (§7); they are dropped."""
    c = env.case()
    extra = copy.deepcopy(REAL_TASK) | {"Id": c.id(1), "TaskType": "TRAIN", "Warnings": [], "WaitingQueueIndex": 0}
    extra["ResourceConfigInfos"][0]["SomethingNew"] = 1
    done = c.run(c.write("extra.json", json.dumps([extra])))
    assert done.returncode == 0, done.stderr
    assert c.raw() == [REAL_TASK | {"Id": c.id(1)}]


def test_import_reports_progress(env: Env) -> None:
    c = env.case()
    path = c.write("progress.jsonl", lines(*(c.item(k) for k in range(1, 4502))))
    seen: list[int] = []
    store = Store(env.url)
    try:
        count = import_file(
            store, path, uin=UIN, app_id=UIN, region=REGION, project=c.project,
            settings=Settings(database_url=env.url), progress=seen.append,
        )  # fmt: skip
    finally:
        store.close()
    assert count == 4501
    assert sum(seen) == 4501
    assert len(seen) >= 3
    assert c.listed(Limit=1)[1] == 4501


def test_import_cli_shows_progress_on_stderr_for_large_files(env: Env) -> None:
    c = env.case()
    done = c.run(c.write("large.jsonl", lines(*(c.item(k) for k in range(1, 5001)))))
    assert done.returncode == 0, done.stderr
    assert re.search(r"\b[1-9]\d{3}\b", done.stderr), done.stderr


# -- bad files ------------------------------------------------------------------------------------

GOOD = 2
"""Bad files start with this many good items, so a partial import would show."""

BAD_ITEMS: dict[str, tuple[dict[str, Any], str]] = {
    "bad-time": ({"CreateTime": "2025-13-01T00:00:00+08"}, "CreateTime"),
    "bad-time-shape": ({"StartTime": "yesterday"}, "StartTime"),
    "time-before-1970": ({"StartTime": "1969-12-31T23:59:59Z"}, "StartTime"),
    "time-after-9999-in-beijing": ({"EndTime": "9999-12-31T23:59:59-08:00"}, "EndTime"),
    "time-with-non-ascii-digits": ({"CreateTime": "２０２５-05-28T18:18:33+08"}, "CreateTime"),
    "bad-id": ({"Id": "task-1"}, "Id"),
    "id-with-leading-zero": ({"Id": "train-0100001"}, "Id"),
    "id-too-large": ({"Id": "train-99999999999999999999"}, "Id"),
    "wrong-type": ({"RuntimeInSeconds": "3602"}, "RuntimeInSeconds"),
    "wrong-nested-type": ({"ResourceConfigInfos": [{"Role": "WORKER", "Cpu": "2"}]}, "Cpu"),
    "unknown-status": ({"Status": "SUCCEEDED"}, "Status"),
    "unknown-charge-type": ({"ChargeType": "PAID"}, "ChargeType"),
    "missing-status": ({"Status": None}, "Status"),
    "missing-create-time": ({"CreateTime": None}, "CreateTime"),
    "repeated-tag-key": ({"Tags": [{"TagKey": "a", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}]}, "Tags"),
    "nul-in-name": ({"Name": "a\x00b"}, "Name"),
    "nul-in-tag": ({"Tags": [{"TagKey": "k", "TagValue": "\x00"}]}, "Tags"),
}


def _bad_item(case: Case, change: dict[str, Any]) -> dict[str, Any]:
    bad = case.item(GOOD + 1) | change
    return {k: v for k, v in bad.items() if v is not None}


@pytest.mark.parametrize("kind", list(BAD_ITEMS))
def test_import_bad_item_imports_nothing(env: Env, kind: str) -> None:
    """The CLI with a JSON list; the importer itself (quicker than a process) with JSON lines."""
    c = env.case()
    change, field_name = BAD_ITEMS[kind]
    good = [c.item(k) for k in range(1, GOOD + 1)]
    done = c.run(c.write(f"{kind}.json", json.dumps([*good, _bad_item(c, change)])))
    assert done.returncode != 0, done.stdout
    assert f"item {GOOD}" in done.stderr
    assert field_name in done.stderr
    assert "Traceback" not in done.stderr
    assert c.listed() == ([], 0)
    path = c.write(f"{kind}.jsonl", lines(*good, _bad_item(c, change)))
    store = Store(env.url)
    try:
        with pytest.raises(ImportError_) as info:
            import_file(
                store, path, uin=UIN, app_id=UIN, region=REGION, project=c.project,
                settings=Settings(database_url=env.url),
            )  # fmt: skip
    finally:
        store.close()
    assert f"line {GOOD + 1}" in str(info.value)
    assert field_name in str(info.value)
    assert c.listed() == ([], 0)


@pytest.mark.parametrize(
    "content",
    [
        '[{"Id": "train-1", "Name": "a", "Status": "SUCCEED", "CreateTime": "2025-05-28 00:00:00"}, {"Id": ',
        '{"Id": "train-1", "Name": "a", "Status": "SUCCEED", "CreateTime": "2025-05-28 00:00:00"}\n{"Id": \n',
        '{"Response": {"TrainingTaskSet": "none"}}',
        '{"Response": "none"}',
        '{"Response": {"Error": {"Code": "AuthFailure", "Message": "no"}, "RequestId": "r"}}',
        "[1, 2]",
        "not json at all",
    ],
    ids=[
        "list-truncated",
        "lines-truncated",
        "set-not-a-list",
        "response-not-an-object",
        "error-response",
        "items-not-objects",
        "garbage",
    ],
)
def test_import_invalid_json_imports_nothing(env: Env, content: str) -> None:
    c = env.case()
    done = c.run(c.write("invalid.json", content))
    assert done.returncode != 0, done.stdout
    assert done.stderr.strip()
    assert "Traceback" not in done.stderr
    assert c.listed() == ([], 0)


def test_import_bad_item_after_many_good_ones_imports_nothing(env: Env) -> None:
    """Past the first write batch: the whole file is still one transaction."""
    c = env.case()
    good = [c.item(k) for k in range(1, 2502)]
    done = c.run(c.write("many.jsonl", lines(*good, c.item(9999, Status="DONE"))))
    assert done.returncode != 0
    assert "line 2502" in done.stderr
    assert "Status" in done.stderr
    assert c.listed() == ([], 0)
    again = c.run(c.write("fixed.jsonl", lines(*good)))  # the same Store path works afterwards
    assert again.returncode == 0, again.stderr
    assert c.listed(Limit=1)[1] == 2501


# -- nothing hidden or lost (issue 7 E13) ---------------------------------------------------------


def _key(env: Env, uin: str, app_id: str) -> Key:
    out = json.loads(cli("keys", "create", "--uin", uin, "--app-id", app_id, "--json", database_url=env.url).stdout)
    return Key(out["SecretId"], out["SecretKey"], out["Uin"], out["AppId"], out["SubUin"])


@pytest.mark.parametrize("region", ["guangzhou", "ap-tokyo"], ids=["not-a-region", "not-served"])
def test_import_region_the_api_cannot_reach_imports_nothing(env: Env, region: str) -> None:
    c = env.case()
    assert c.run(c.write("first.json", json.dumps([c.item(1)]))).returncode == 0
    done = c.run(c.write("elsewhere.json", json.dumps([c.item(1, Name="moved"), c.item(2)])), region=region)
    assert done.returncode == 1, done.stdout
    assert "--region" in done.stderr
    assert region in done.stderr
    assert "Traceback" not in done.stderr
    assert [(t["Id"], t["Name"]) for t in c.raw()] == [(c.id(1), "task-1")]  # still where the API shows it
    other = env.server.call("DescribeTrainingTasks", {"TiProjectId": c.project}, region="ap-shanghai")
    assert other["TotalCount"] == 0


@pytest.mark.parametrize("owner", ["workspace", "region", "account"])
def test_import_id_of_another_owner_imports_nothing(env: Env, owner: str) -> None:
    c = env.case()
    assert c.run(c.write("mine.json", json.dumps([c.item(1)]))).returncode == 0
    other_uin = f"1000000{c.n:05d}"
    key = _key(env, other_uin, f"13{c.n:08d}")
    target = {
        "workspace": {"project": c.project + "-other"},
        "region": {"region": "ap-shanghai"},
        "account": {"uin": other_uin},
    }[owner]
    done = c.run(c.write("theirs.json", json.dumps([c.item(2), c.item(1, Name="taken")])), **target)
    assert done.returncode == 1, done.stdout
    assert c.id(1) in done.stderr
    assert "Id" in done.stderr
    assert "Traceback" not in done.stderr
    assert [(t["Id"], t["Name"]) for t in c.raw()] == [(c.id(1), "task-1")]
    where = {"TiProjectId": target.get("project", c.project)}
    seen_by = env.server.call(
        "DescribeTrainingTasks", where, key=key if owner == "account" else None, region=target.get("region", REGION)
    )
    assert seen_by["TotalCount"] == 0  # the good item of the refused file is not imported either


def test_import_id_of_a_task_created_here_imports_nothing(env: Env) -> None:
    c = env.case()
    created = env.server.call("CreateTrainingTask", {
        "Name": "created-here", "ChargeType": "POSTPAID_BY_HOUR", "TiProjectId": c.project,
        "ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST"}],
        "ImageInfo": {"ImageType": "CUSTOM", "ImageUrl": "local"}, "StartCmdInfo": {"StartCmd": "true"},
    })["Id"]  # fmt: skip
    done = c.run(c.write("over.json", json.dumps([c.item(1) | {"Id": created, "Name": "imported"}])))
    assert done.returncode == 1, done.stdout
    assert created in done.stderr
    shown = env.server.call("DescribeTrainingTask", {"Id": created, "TiProjectId": c.project})["TrainingTaskDetail"]
    assert (shown["Name"], bool(shown["LatestInstanceId"])) == ("created-here", True)


def test_import_running_task_keeps_its_runtime(env: Env) -> None:
    c = env.case()
    running = c.item(1, Status="RUNNING", StartTime="2023-09-01T10:00:00+08", RuntimeInSeconds=3602)
    done = c.run(c.write("running.json", json.dumps([running, c.item(2, Status="RUNNING")])))
    assert done.returncode == 0, done.stderr
    items = {t.Id: t for t in c.listed()[0]}
    assert (items[c.id(1)].RuntimeInSeconds, items[c.id(2)].RuntimeInSeconds) == (3602, 0)
    req = models.DescribeTrainingTaskRequest()
    req.from_json_string(json.dumps({"Id": c.id(1), "TiProjectId": c.project}))
    assert env.server.client().DescribeTrainingTask(req).TrainingTaskDetail.RuntimeInSeconds == 3602


def test_import_item_without_app_id_shows_the_accounts(env: Env) -> None:
    c = env.case()
    uin = f"2000000{c.n:05d}"
    path = c.write("apps.json", json.dumps([c.item(1), c.item(2, AppId="1300000001")]))
    # No key, so no AppId known: refused rather than showing the UIN.
    refused = c.run(path, uin=uin)
    assert refused.returncode == 1
    assert "--app-id" in refused.stderr
    key = _key(env, uin, "1300000077")
    mismatch = c.run(path, uin=uin, app_id="1300000078")
    assert mismatch.returncode == 1
    assert "--app-id" in mismatch.stderr
    assert env.server.call("DescribeTrainingTasks", {"TiProjectId": c.project}, key=key)["TotalCount"] == 0
    done = c.run(path, uin=uin)
    assert done.returncode == 0, done.stderr
    listed = env.server.call("DescribeTrainingTasks", {"TiProjectId": c.project}, key=key)["TrainingTaskSet"]
    assert {t["Id"]: t["AppId"] for t in listed} == {c.id(1): "1300000077", c.id(2): "1300000001"}
    # An account without keys yet: `--app-id` names its AppId.
    keyless = f"3000000{c.n:05d}"
    given = c.run(c.write("given.json", json.dumps([c.item(3)])), uin=keyless, app_id="1300000099")
    assert given.returncode == 0, given.stderr
    later = _key(env, keyless, "1300000099")
    listed = env.server.call("DescribeTrainingTasks", {"TiProjectId": c.project}, key=later)["TrainingTaskSet"]
    assert [t["AppId"] for t in listed] == ["1300000099"]
