"""DescribeLogs (spec §4.8) over the logs of real pods, and PushTrainingMetrics (spec §4.9), through the SDK."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS, make_database
from tests.live import Server, create_key, running_server
from tests.training import TERMINAL, cos_tree, create, error_code, python_cmd, training_server, wait_status
from tione_server.executors.runfiles import RunFiles
from tione_server.sealed import seal
from tione_server.service.logs import CONTEXT_KEY
from tione_server.store import Store

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
SCRIPT = (
    "import os, sys, time\n"
    "rank = os.environ['RANK']\n"
    "for i in range(5):\n"
    "    print(f'{rank} out {i}')\n"
    "    print(f'{rank} err {i}', file=sys.stderr)\n"
    "    time.sleep(0.02)\n"
)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    """A server and a finished two-pod task that wrote 5 stdout and 5 stderr lines per pod: (server, task, run)."""
    workdir = tmp_path_factory.mktemp("logs")
    with training_server(f"sqlite:///{workdir / 'tione.db'}", workdir) as srv:
        (cos_tree(srv) / "b" / "code").mkdir(parents=True)
        (cos_tree(srv) / "b" / "code" / "log.py").write_text(SCRIPT.replace("'", '"'))
        task_id = create(
            srv,
            "logger",
            python_cmd('import runpy; runpy.run_path("log.py")'),
            ResourceConfigInfos=[{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 2}],
            CodePackagePath={"Bucket": "b", "Region": "ap-guangzhou", "Paths": ["code"]},
        )
        done = wait_status(srv, task_id, *TERMINAL)
        assert done["Status"] == "SUCCEED", done["FailureReason"]
        yield srv, task_id, done["LatestInstanceId"]


def logs(server: Server, **params: Any) -> dict[str, Any]:
    return dict(server.call("DescribeLogs", {"Service": "TRAIN", **params}))


def messages(resp: dict[str, Any]) -> list[str]:
    return [line["Message"] for line in resp["Content"]]


def test_describe_logs_run_lines_newest_first(logged: tuple[Server, str, str]) -> None:
    srv, _, run = logged
    resp = logs(srv, ServiceId=run)
    content = resp["Content"]
    assert len(content) == 20
    assert resp["Context"] == ""
    stamps = [line["Timestamp"] for line in content]
    assert all(STAMP.match(s) for s in stamps)
    assert stamps == sorted(stamps, reverse=True)
    assert {line["PodName"] for line in content} == {f"{run}-worker-0", f"{run}-worker-1"}
    assert len({line["Id"] for line in content}) == 20
    assert {(line["PkgId"], line["PkgLogId"]) for line in content} == {("", "")}
    assert sorted(messages(resp)) == sorted(f"{r} {s} {i}" for r in "01" for s in ("out", "err") for i in range(5))
    # The same line has the same Id in every answer.
    again = logs(srv, ServiceId=run)
    assert [line["Id"] for line in again["Content"]] == [line["Id"] for line in content]


def test_describe_logs_pod_name_exact_and_prefix(logged: tuple[Server, str, str]) -> None:
    srv, task_id, run = logged
    one = logs(srv, PodName=f"{run}-worker-1", Order="ASC")
    # Within one stream lines keep their order; stdout and stderr interleave as they were read.
    assert sorted(messages(one)) == sorted(f"1 {s} {i}" for s in ("out", "err") for i in range(5))
    assert {line["PodName"] for line in one["Content"]} == {f"{run}-worker-1"}
    assert len(logs(srv, PodName=f"{run}*")["Content"]) == 20
    assert len(logs(srv, PodName=f"{task_id}*")["Content"]) == 20
    assert len(logs(srv, ServiceId=run, PodName=f"{run}-worker-0")["Content"]) == 10
    assert logs(srv, PodName=f"{run}-worker")["Content"] == []  # exact unless it ends in *


def test_describe_logs_stream_keywords_and_order(logged: tuple[Server, str, str]) -> None:
    srv, _, run = logged
    out = logs(srv, ServiceId=run, LogStream="stdout", Order="asc")
    assert sorted(messages(out)) == sorted(f"{r} out {i}" for r in "01" for i in range(5))
    stamps = [line["Timestamp"] for line in out["Content"]]
    assert stamps == sorted(stamps)
    worker0 = logs(srv, PodName=f"{run}-worker-0", LogStream="stdout", Order="ASC")
    assert messages(worker0) == [f"0 out {i}" for i in range(5)]
    both = logs(srv, ServiceId=run, Filters=[{"Name": "Key", "Values": ["err", "3"]}])
    assert sorted(messages(both)) == ["0 err 3", "1 err 3"]
    assert logs(srv, ServiceId=run, Filters=[{"Name": "Key", "Values": ["ERR"]}])["Content"] == []


def test_describe_logs_paging_with_context(logged: tuple[Server, str, str]) -> None:
    srv, _, run = logged
    everything = logs(srv, ServiceId=run, Order="ASC", Limit=1000)
    pages: list[list[str]] = []
    resp = logs(srv, ServiceId=run, Order="ASC", Limit=7)
    while True:
        pages.append([line["Id"] for line in resp["Content"]])
        if not resp["Context"]:
            break
        resp = logs(srv, Context=resp["Context"], Limit=1)  # the cursor carries the query; other fields ignored
    assert [len(p) for p in pages] == [7, 7, 6]
    assert [i for p in pages for i in p] == [line["Id"] for line in everything["Content"]]
    skipped = logs(srv, ServiceId=run, Order="ASC", Offset=15)
    assert [line["Id"] for line in skipped["Content"]] == [line["Id"] for line in everything["Content"]][15:]
    assert error_code(lambda: logs(srv, ServiceId=run, Offset=10000)) == "FailedOperation.ContextLimitError"


def _flip(token: str, at: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[at] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode()


def _genuine(srv: Server, run: str) -> str:
    context = str(logs(srv, ServiceId=run, Order="ASC", Limit=3)["Context"])
    assert context
    return context


def _sealed(srv: Server, run: str, **changes: Any) -> str:
    """A Context signed with the server's real key, claiming `changes` (as if the key had leaked)."""
    key = Store(srv.database_url).secret(CONTEXT_KEY)
    payload = json.loads(base64.urlsafe_b64decode(_genuine(srv, run))[1:-32])
    return seal(json.dumps(payload | changes).encode(), key)


def test_describe_logs_forged_or_altered_context_is_invalid(logged: tuple[Server, str, str]) -> None:
    """Issue 7 C9: no crafted Context answers InternalError or lifts the page size."""
    srv, task_id, run = logged
    genuine = _genuine(srv, run)
    old_style = {
        "uin": srv.key.uin, "region": "ap-guangzhou", "project": "", "service_id": run, "pod_name": "",
        "start_ns": 0, "end_ns": 2**62, "limit": 10**9, "descending": False, "keywords": [], "stream": "",
        "position": 0,
    }  # fmt: skip
    forged = [
        base64.urlsafe_b64encode(json.dumps(old_style).encode()).decode(),  # unsigned, as today's cursors were
        base64.urlsafe_b64encode(json.dumps(old_style | {"start_ns": "x"}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(old_style | {"keywords": 5}).encode()).decode(),
        base64.urlsafe_b64encode(b"[]").decode(),
        _flip(genuine, 1),  # the payload
        _flip(genuine, -1),  # the MAC
        _flip(genuine, 0),  # the version byte
        genuine[:-8],
        genuine + "AAAA",
        "!" + genuine[1:],
        "x" * 20000,
        "é",
        # Signed with the real key but out of range: refused all the same.
        _sealed(srv, run, limit=10**9),
        _sealed(srv, run, limit=0),
        _sealed(srv, run, position=-5),
        _sealed(srv, run, start_ns=10, end_ns=5),
        _sealed(srv, run, stream="secrets"),
        _sealed(srv, run, keywords="x"),
        _sealed(srv, run, end_ns="now"),
    ]
    for context in forged:
        assert error_code(partial(logs, srv, Context=context)) == "InvalidParameterValue", context[:80]
    # Bound to the task (and pods) it was made for, and to the caller's account and workspace.
    other_run = f"{task_id}-zzzzzzzzzzzz"
    assert error_code(lambda: logs(srv, Context=genuine, ServiceId=other_run)) == "InvalidParameterValue"
    assert error_code(lambda: logs(srv, Context=genuine, PodName=f"{task_id}*")) == "InvalidParameterValue"
    stranger = create_key(srv.database_url, "100000000998")
    body = {"Service": "TRAIN", "Context": genuine}
    assert error_code(lambda: srv.call("DescribeLogs", body, key=stranger)) == "InvalidParameterValue"
    assert error_code(lambda: logs(srv, Context=genuine, TiProjectId="ws-elsewhere")) == "InvalidParameterValue"
    # The genuine one, with the same ServiceId, still pages on: 3 lines, as asked on the first page.
    assert len(logs(srv, Context=genuine, ServiceId=run)["Content"]) == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_describe_logs_context_pages_on_another_server_process(backend: str, tmp_path: Path) -> None:
    """The key sealing Contexts lives in the database: every process (worker, replica) on it accepts them."""
    for url in make_database(backend, tmp_path):
        env = {"TIONE_SIMULATE_SECONDS": "0,0,3"}
        args = ("--executor", "simulate")
        with running_server(url, tmp_path, extra_args=args, env=env) as one:
            task_id = create(one, "paged", "true")
            run = wait_status(one, task_id, *TERMINAL, timeout=20)["LatestInstanceId"]
            everything = [line["Id"] for line in logs(one, ServiceId=run, Order="ASC", Limit=1000)["Content"]]
            assert len(everything) >= 4
            first = logs(one, ServiceId=run, Order="ASC", Limit=2)
            with running_server(url, tmp_path, extra_args=args, env=env) as two:
                second = logs(two, Context=first["Context"], ServiceId=run)
        assert [line["Id"] for line in first["Content"] + second["Content"]] == everything[:4]


def test_describe_logs_time_window(logged: tuple[Server, str, str]) -> None:
    srv, _, run = logged
    content = logs(srv, ServiceId=run, Order="ASC")["Content"]
    first = datetime.strptime(content[0]["Timestamp"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    before = (first - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert logs(srv, ServiceId=run, EndTime=before)["Content"] == []
    start = (first - timedelta(seconds=1)).astimezone().isoformat(timespec="seconds")
    assert len(logs(srv, ServiceId=run, StartTime=start)["Content"]) == 20
    late = (first + timedelta(hours=2)).isoformat(timespec="seconds")
    assert logs(srv, ServiceId=run, StartTime=late, EndTime=late)["Content"] == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Service": "NOTEBOOK", "ServiceId": "x"}, "InvalidParameterValue"),
        ({}, "MissingParameter"),
        ({"ServiceId": "x", "Limit": 1001}, "InvalidParameterValue"),
        ({"ServiceId": "x", "Order": "UP"}, "InvalidParameterValue"),
        ({"ServiceId": "x", "OrderField": "PodName"}, "InvalidParameterValue"),
        ({"ServiceId": "x", "LogStream": "both"}, "InvalidParameterValue"),
        ({"ServiceId": "x", "Filters": [{"Name": "Level", "Values": ["x"]}]}, "InvalidParameterValue"),
        ({"ServiceId": "x", "StartTime": "yesterday"}, "InvalidParameterValue"),
        ({"ServiceId": "x", "StartTime": "2025-01-02T00:00:00+08:00", "EndTime": "2025-01-01T00:00:00+08:00"},
         "InvalidParameterValue"),
        ({"Context": "not a cursor"}, "InvalidParameterValue"),
    ],
)  # fmt: skip
def test_describe_logs_refusals(logged: tuple[Server, str, str], params: dict[str, Any], code: str) -> None:
    srv, _, _ = logged
    body = {"Service": "TRAIN"} | params
    assert error_code(lambda: srv.call("DescribeLogs", body)) == code


def test_describe_logs_other_accounts_see_nothing(logged: tuple[Server, str, str]) -> None:
    srv, task_id, run = logged
    assert logs(srv, ServiceId="train-1-aaaaaaaaaaaa")["Content"] == []
    stranger = create_key(srv.database_url, "100000000999")
    assert srv.call("DescribeLogs", {"Service": "TRAIN", "ServiceId": run}, key=stranger)["Content"] == []
    assert srv.call("DescribeLogs", {"Service": "TRAIN", "PodName": f"{task_id}*"}, key=stranger)["Content"] == []
    # Another workspace of the same account does not see them either.
    assert logs(srv, ServiceId=run, TiProjectId="ws-elsewhere")["Content"] == []


def test_push_training_metrics(logged: tuple[Server, str, str]) -> None:
    srv, task_id, _ = logged
    point = {"TaskId": task_id, "Epoch": 1, "Step": 10, "TotalSteps": 100, "Points": [{"Name": "loss", "Value": 0.5}]}
    srv.call("PushTrainingMetrics", {"Data": [point, point | {"Timestamp": 1750000000}]})
    assert error_code(lambda: srv.call("PushTrainingMetrics", {"Data": []})) == "MissingParameter"
    unknown = point | {"TaskId": "train-1"}
    assert error_code(lambda: srv.call("PushTrainingMetrics", {"Data": [unknown]})) == "InvalidParameter"
    many = point | {"Points": [{"Name": f"m{i}", "Value": 1.0} for i in range(11)]}
    assert error_code(lambda: srv.call("PushTrainingMetrics", {"Data": [many]})) == "InvalidParameter"
    # Spec §4.9: a missing TaskId, or a point without Name or Value, is InvalidParameter (not MissingParameter).
    no_task = {k: v for k, v in point.items() if k != "TaskId"}
    assert error_code(lambda: srv.call("PushTrainingMetrics", {"Data": [no_task]})) == "InvalidParameter"
    without_name = point | {"Points": [{"Value": 0.5}]}
    assert error_code(lambda: srv.call("PushTrainingMetrics", {"Data": [without_name]})) == "InvalidParameter"
    without_value = point | {"Points": [{"Name": "loss"}]}
    assert error_code(lambda: srv.call("PushTrainingMetrics", {"Data": [without_value]})) == "InvalidParameter"
    # The task does not change.
    assert srv.call("DescribeTrainingTask", {"Id": task_id})["TrainingTaskDetail"]["Status"] == "SUCCEED"


def test_log_files_window_reads_both_ways(tmp_path: Path) -> None:
    """The binary-searched window of a stored log, forwards and backwards, across chunk boundaries."""
    files = RunFiles(tmp_path)
    path = files.log("run", "pod", "stdout")
    path.parent.mkdir(parents=True)
    lines = [(1_000 + i * 10, f"line {i} " + "x" * (i % 7) * 3000) for i in range(400)]
    with path.open("wb") as fh:
        for ns, text in lines:
            fh.write(b"%d %s\n" % (ns, text.encode()))
        fh.write(b"5000 torn line without its newline")
    everything = list(files.read_log("run", "pod", "stdout"))
    assert [(line.ns, line.text) for line in everything] == lines
    assert len({line.offset for line in everything}) == 400
    window = [(line.ns, line.text) for line in files.read_log("run", "pod", "stdout", start_ns=1_505, end_ns=2_000)]
    assert window == [(ns, t) for ns, t in lines if 1_505 <= ns <= 2_000]
    newest = list(files.read_log("run", "pod", "stdout", start_ns=1_505, end_ns=2_000, descending=True))
    assert [(line.ns, line.text) for line in newest] == window[::-1]
    assert [line.offset for line in newest] == [line.offset for line in everything if 1_505 <= line.ns <= 2_000][::-1]
    assert [line.ns for line in files.read_log("run", "pod", "stdout", descending=True)][:2] == [4_990, 4_980]
    assert list(files.read_log("run", "pod", "stdout", start_ns=9_999)) == []
    assert list(files.read_log("run", "pod", "stdout", end_ns=999, descending=True)) == []
    assert list(files.read_log("run", "nobody", "stdout")) == []
