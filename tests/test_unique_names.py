"""A task Name stays unique in its workspace whichever process creates it (issue 7 E12): concurrent creates of one
new Name through the official SDK, against two servers sharing one database (SQLite file and PostgreSQL) and
against `serve --workers 2`; exactly one succeeds each round. Also: a database from before the `task_names` table
gains it on open.
"""

from __future__ import annotations

import json
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.tione.v20211111 import models

from tests.conftest import BACKENDS, make_database
from tests.live import Server, running_server
from tests.training import error_code, task_params
from tione_server.store import Store

ROUNDS = 12
THREADS = 8
REFUSALS = {"InvalidParameterValue.DuplicateName", "FailedOperation.DuplicateNameTaskIsCreating"}
SIMULATE = ("--executor", "simulate")


def race(servers: list[Server], name: str) -> list[str]:
    """THREADS concurrent CreateTrainingTask calls with one Name, spread over the servers; their error codes
    ("" for a success)."""
    codes: list[str] = []
    barrier = threading.Barrier(THREADS)

    def create(i: int) -> None:
        client = servers[i % len(servers)].client()  # a client (and connection) per thread
        req = models.CreateTrainingTaskRequest()
        req.from_json_string(json.dumps(task_params(name, "true")))
        barrier.wait()
        try:
            client.CreateTrainingTask(req)
            codes.append("")
        except TencentCloudSDKException as err:
            codes.append(str(err.code))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return codes


def assert_one_wins(servers: list[Server]) -> None:
    """ROUNDS races, each with a new Name."""
    for round_ in range(ROUNDS):
        codes = race(servers, f"same-{round_}")
        assert len(codes) == THREADS
        assert codes.count("") == 1, f"round {round_}: {codes}"
        assert set(codes) - {""} <= REFUSALS, codes
    same = [{"Name": "Name", "Values": ["same-"], "Fuzzy": True}]
    listed = servers[0].call("DescribeTrainingTasks", {"Limit": 50, "Filters": same})
    assert listed["TotalCount"] == ROUNDS
    assert sorted(t["Name"] for t in listed["TrainingTaskSet"]) == sorted(f"same-{r}" for r in range(ROUNDS))


database = contextmanager(make_database)


@pytest.mark.parametrize("backend", BACKENDS)
def test_create_training_task_one_name_across_two_servers(backend: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        url = stack.enter_context(database(backend, tmp_path))
        servers = [stack.enter_context(running_server(url, tmp_path, extra_args=SIMULATE)) for _ in range(2)]
        assert_one_wins(servers)


@pytest.mark.parametrize("backend", BACKENDS)
def test_create_training_task_one_name_across_workers(backend: str, tmp_path: Path) -> None:
    with (
        database(backend, tmp_path) as url,
        running_server(url, tmp_path, extra_args=(*SIMULATE, "--workers", "2")) as srv,
    ):
        assert_one_wins([srv])


@pytest.mark.parametrize("backend", BACKENDS)
def test_create_training_task_names_of_a_database_from_before_task_names(backend: str, tmp_path: Path) -> None:
    """An existing database gains the table when opened; names created before it still refuse a duplicate."""
    with database(backend, tmp_path) as url:
        with running_server(url, tmp_path, extra_args=SIMULATE) as srv:
            srv.call("CreateTrainingTask", task_params("before", "true"))
        store = Store(url)
        with store.db.engine.begin() as conn:
            conn.execute(text("DROP TABLE task_names"))  # what a database of the previous release looks like
        store.close()
        with running_server(url, tmp_path, extra_args=SIMULATE) as srv:
            again = task_params("before", "true")
            assert error_code(lambda: srv.call("CreateTrainingTask", again)) == "InvalidParameterValue.DuplicateName"
            assert_one_wins([srv])
            srv.call("CreateTrainingTask", task_params("after", "true"))
            refused = error_code(lambda: srv.call("CreateTrainingTask", task_params("after", "true")))
            assert refused == "InvalidParameterValue.DuplicateName"
