"""Issue 12: list items kept as encoded bytes (service/render.py RenderedItems, store/pages.py stamps).

A kept item must never show what its task no longer is: every write to the row is a new stamp; the one field
that moves without a write, a running task's RuntimeInSeconds, is computed per request. And the reply's bytes
are exactly those that rendering each item afresh gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import msgspec
import pytest

from tests.inprocess import T0, Harness, params
from tione_server.api import codec
from tione_server.api._generated import DescribeTrainingTasksRequest, DescribeTrainingTasksResponse
from tione_server.context import RequestContext
from tione_server.importer import import_file
from tione_server.models import Scope, TaskQuery
from tione_server.service import TioneService
from tione_server.service.render import RenderedItems, list_item
from tione_server.store import Store
from tione_server.store.tasks import patch_doc

REGION = "ap-guangzhou"
ROOMY = "[capacity]\ncpu = 64000\nmemory = 262144\ngpu = 0\n"
IMPORTED = [
    {"Id": f"train-30000000000000000{i:02d}", "Name": f"old-{i}", "Status": status, "ChargeType": "PREPAID",
     "CreateTime": f"2025-05-28T18:{i:02d}:33+08", "RuntimeInSeconds": 7 * i}
    for i, status in enumerate(["SUCCEED", "RUNNING", "FAILED"])
]  # fmt: skip


@pytest.fixture
def h(tmp_path: Path, database_url: str) -> Iterator[Harness]:
    harness = Harness(tmp_path, catalogue=ROOMY, database_url=database_url)
    yield harness
    harness.close()


def _running(h: Harness, name: str) -> str:
    task_id: str = h.call("CreateTrainingTask", params(name))["Id"]
    start = h.clock()
    for at in (start + 1.0, start + 3.0):  # simulate: submitted after 1 s, running after 3 s (Harness defaults)
        h.tick(at)
    assert h.item(task_id)["Status"] == "RUNNING"
    return task_id


def _scope(h: Harness) -> Scope:
    return Scope(uin=h.caller.uin, region="ap-guangzhou", project="")


def test_running_task_runtime_moves_while_its_item_is_kept(h: Harness) -> None:
    task_id = _running(h, "kept-running")
    before = h.item(task_id)
    h.clock.now = T0 + 60.0
    after = h.item(task_id)
    assert after["RuntimeInSeconds"] == before["RuntimeInSeconds"] + int(T0 + 60) - int(T0 + 3)
    assert {k: v for k, v in after.items() if k != "RuntimeInSeconds"} == {
        k: v for k, v in before.items() if k != "RuntimeInSeconds"
    }


def test_a_write_to_the_row_is_seen_at_once(h: Harness) -> None:
    task_id = _running(h, "kept-changing")
    assert h.item(task_id)["Message"] == ""
    task = h.store.tasks.get(_scope(h), task_id)
    assert task is not None
    with h.store.db.tx() as conn:  # only the stored document changes: no counted column, no UpdateTime
        patch_doc(conn, task.num, {"Message": "preempted, retrying"})
    assert h.item(task_id)["Message"] == "preempted, retrying"
    h.call("StopTrainingTask", {"Id": task_id})
    assert h.item(task_id)["Status"] == "STOPPING"


def test_a_reimported_task_is_seen_as_imported_again(h: Harness, tmp_path: Path) -> None:
    first = str(IMPORTED[0]["Id"])
    for name in ("before", "after"):  # the row is deleted and inserted again under the same number
        path = tmp_path / f"{name}.json"
        path.write_text(msgspec.json.encode([IMPORTED[0] | {"Name": name}]).decode(), encoding="utf-8")
        caller = h.caller
        import_file(
            h.store, path, uin=caller.uin, app_id=caller.app_id, region=REGION, project=None, settings=h.settings
        )
        assert h.item(first)["Name"] == name


def test_a_commit_by_another_store_is_seen_at_once(h: Harness, database_url: str) -> None:
    task_id = _running(h, "remembered")
    assert h.call("DescribeTrainingTasks", {})["TotalCount"] == 1
    other = Store(database_url)  # another process's connections, as a second replica or the CLI would hold
    try:
        task = other.tasks.get(_scope(h), task_id)
        assert task is not None
        with other.db.tx() as conn:
            patch_doc(conn, task.num, {"Message": "written elsewhere"})
        assert h.item(task_id)["Message"] == "written elsewhere"
        other.tasks.put([dataclasses.replace(task, id="train-4000000000000000001")])
        assert h.call("DescribeTrainingTasks", {})["TotalCount"] == 2
    finally:
        other.close()


def test_reply_bytes_equal_a_fresh_rendering(h: Harness, tmp_path: Path) -> None:
    path = tmp_path / "import.json"
    path.write_text(msgspec.json.encode(IMPORTED).decode(), encoding="utf-8")
    caller = h.caller
    import_file(h.store, path, uin=caller.uin, app_id=caller.app_id, region=REGION, project=None, settings=h.settings)
    _running(h, "fresh-running")
    h.call("CreateTrainingTask", params("fresh-submitting"))
    h.clock.now = T0 + 42.0
    for _ in range(2):  # the second reply comes from kept items
        got = codec.encode_response(h.service.describe_training_tasks(_ctx(h), _request()), "r")
        tasks, total = h.store.pages.tasks(_scope(h), TaskQuery(limit=50))
        offset = h.settings.time_offset_hours
        fresh = [list_item(t, h.clock(), offset, _service(h).catalogue) for t in tasks]
        want = codec.encode_response(DescribeTrainingTasksResponse(TrainingTaskSet=fresh, TotalCount=total), "r")
        assert got == want
        assert total == len(IMPORTED) + 2


def test_kept_renderings_spare_the_rows_and_a_full_cache_still_lists_right(h: Harness) -> None:
    ids = [_running(h, f"evicted-{i}") for i in range(3)]
    marks: dict[tuple[int, object], str] = {}
    entries, total = h.store.pages.read(_scope(h), TaskQuery(limit=50), have=lambda num, rev: marks.get((num, rev)))
    assert total == 3
    assert all(row is not None and kept is None for _, _, row, kept in entries)
    marks = {(num, rev): f"kept-{num}" for num, rev, _, _ in entries}
    again, _ = h.store.pages.read(_scope(h), TaskQuery(limit=50), have=lambda num, rev: marks.get((num, rev)))
    assert [(row, kept) for _, _, row, kept in again] == [(None, f"kept-{num}") for num, _, _, _ in entries]
    _service(h).items = RenderedItems(_service(h).catalogue, h.settings.time_offset_hours, size=1)
    for _ in range(3):  # each list evicts what the one before kept
        listed = h.call("DescribeTrainingTasks", {"Limit": 50})["TrainingTaskSet"]
        assert sorted(i["Id"] for i in listed) == sorted(ids)


def _service(h: Harness) -> TioneService:
    return cast(TioneService, h.service)


def _ctx(h: Harness) -> RequestContext:
    return RequestContext(caller=h.caller, region="ap-guangzhou", request_id="r", language="", now=h.clock())


def _request() -> DescribeTrainingTasksRequest:
    return DescribeTrainingTasksRequest(Limit=50)
