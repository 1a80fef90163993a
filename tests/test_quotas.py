"""Quotas of the catalogue's `[limits]` (issue 7 B4) through the official SDK on a live server, on each backend:
pods per task and active tasks per account answer `LimitExceeded` at once and store nothing; a task the catalogue
allows many pods costs the runner work in proportion to its pods and does not hold up another account's task.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.tione.v20211111 import models

from tests.conftest import BACKENDS, make_database
from tests.inprocess import T0, Harness, params
from tests.live import Key, Server, create_key
from tests.training import TERMINAL, error_code, task_params, training_server, wait_status
from tione_server.runner import LAUNCH_BATCH

MAX_PODS = 40
MAX_ACTIVE = 2
CATALOGUE = f"""
[capacity]
cpu = 100000000
memory = 1000000000
gpu = 0

[limits]
max_pods_per_task = {MAX_PODS}
max_active_tasks = {MAX_ACTIVE}
"""
"""A pool nothing waits for; the pod quota raised from its default of 32, the active-task quota lowered."""
SIMULATE = {"TIONE_SIMULATE_SECONDS": "0.1,0.1,600"}
"""Tasks reach RUNNING at once and stay there until stopped: they hold the account's quota."""


@dataclass
class Env:
    server: Server
    uins: Iterator[int]

    def account(self) -> Key:
        """A key of an account no other test uses, so each test starts with no active tasks."""
        return create_key(self.server.database_url, str(next(self.uins)))

    def create(self, key: Key, name: str, **overrides: Any) -> str:
        return str(self.server.call("CreateTrainingTask", task_params(name, "true", **overrides), key=key)["Id"])

    def code(self, key: Key, action: str, params: dict[str, Any]) -> str:
        return error_code(lambda: self.server.call(action, params, key=key))

    def total(self, key: Key, **params: Any) -> int:
        return int(self.server.call("DescribeTrainingTasks", params, key=key)["TotalCount"])

    def stop(self, key: Key, task_id: str, **params: Any) -> None:
        wait_status_as(self.server, key, task_id, "RUNNING", **params)
        self.server.call("StopTrainingTask", {"Id": task_id, **params}, key=key)
        wait_status_as(self.server, key, task_id, *TERMINAL, **params)


def wait_status_as(server: Server, key: Key, task_id: str, *statuses: str, **params: Any) -> None:
    """wait_status for a task of another key's account."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = server.call("DescribeTrainingTask", {"Id": task_id, **params}, key=key)["TrainingTaskDetail"]
        if found["Status"] in statuses:
            return
        time.sleep(0.05)
    raise AssertionError(f"{task_id} never reached {statuses}")


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp(f"quotas-{request.param}")
    with (
        contextmanager(make_database)(request.param, workdir) as url,
        training_server(url, workdir, catalogue=CATALOGUE, extra=("--executor", "simulate"), env=SIMULATE) as srv,
    ):
        yield Env(srv, count(300000000001))


def _pods(total: int) -> list[dict[str, Any]]:
    """ResourceConfigInfos asking for `total` pods, at most 1000 per entry (spec §4.1 rule 4)."""
    return [
        {"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": min(1000, total - start)}
        for start in range(0, total, 1000)
    ]


def test_create_training_task_over_pod_quota_is_refused_at_once(env: Env) -> None:
    key = env.account()
    huge = task_params("huge", "true", ResourceConfigInfos=_pods(40_000))
    client = env.server.client(key)
    req = models.CreateTrainingTaskRequest()
    req.from_json_string(json.dumps(huge))
    started = time.monotonic()
    with pytest.raises(TencentCloudSDKException) as info:
        client.CreateTrainingTask(req)
    elapsed = time.monotonic() - started
    assert info.value.code == "LimitExceeded"
    assert "ResourceConfigInfos" in str(info.value.message)
    assert elapsed < 2.0, f"refusing 40,000 pods took {elapsed:.2f} s"
    one_more = [*_pods(MAX_PODS), {"Role": "PS", "InstanceType": "TI.S.MEDIUM.POST"}]  # InstanceNum absent: 1
    over = task_params("over", "true", ResourceConfigInfos=one_more)
    assert env.code(key, "CreateTrainingTask", over) == "LimitExceeded"
    assert env.total(key) == 0  # nothing stored
    env.create(key, "at-quota", ResourceConfigInfos=_pods(MAX_PODS))  # the catalogue raised it from 32
    assert env.total(key) == 1


def test_create_training_task_over_active_quota_is_refused(env: Env) -> None:
    key, other = env.account(), env.account()
    first = env.create(key, "first")
    second = env.create(key, "second", TiProjectId="ws-2")
    assert env.code(key, "CreateTrainingTask", task_params("third", "true")) == "LimitExceeded"
    # The quota is the account's, whatever the workspace or region.
    assert env.code(key, "CreateTrainingTask", task_params("third", "true", TiProjectId="ws-3")) == "LimitExceeded"
    assert (
        error_code(
            lambda: env.server.call("CreateTrainingTask", task_params("third", "true"), key=key, region="ap-shanghai")
        )
        == "LimitExceeded"
    )
    assert (env.total(key), env.total(key, TiProjectId="ws-2"), env.total(key, TiProjectId="ws-3")) == (1, 1, 0)
    env.create(other, "third")  # another account is not held back
    env.stop(key, first)
    third = env.create(key, "third")  # a finished task frees its place
    # StartTrainingTask makes a task active again: the same quota.
    assert env.code(key, "StartTrainingTask", {"Id": first}) == "LimitExceeded"
    assert env.server.call("DescribeTrainingTask", {"Id": first}, key=key)["TrainingTaskDetail"]["Status"] == "STOPPED"
    env.stop(key, third)
    env.server.call("StartTrainingTask", {"Id": first}, key=key)
    env.stop(key, first)
    env.stop(key, second, TiProjectId="ws-2")


def test_create_training_task_active_quota_holds_under_concurrent_creates(env: Env) -> None:
    key = env.account()
    codes: list[str] = []
    barrier = threading.Barrier(8)

    def create(i: int) -> None:
        client = env.server.client(key)
        req = models.CreateTrainingTaskRequest()
        req.from_json_string(json.dumps(task_params(f"race-{i}", "true")))
        barrier.wait()
        try:
            client.CreateTrainingTask(req)
            codes.append("")
        except TencentCloudSDKException as err:
            codes.append(str(err.code))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [""] * MAX_ACTIVE + ["LimitExceeded"] * (8 - MAX_ACTIVE)
    assert env.total(key) == MAX_ACTIVE


def test_create_training_task_large_task_does_not_hold_up_other_accounts(tmp_path: Path, sqlite_url: str) -> None:
    """A task of 2,000 pods (allowed by the catalogue) is launched a batch per runner pass; another account's
    one-pod task created just after it reaches RUNNING as quickly as on an idle server."""
    catalogue = CATALOGUE.replace(f"max_pods_per_task = {MAX_PODS}", "max_pods_per_task = 2000")
    with training_server(
        sqlite_url, tmp_path, catalogue=catalogue, extra=("--executor", "simulate"), env=SIMULATE
    ) as srv:
        other = create_key(srv.database_url, "300000000999")
        big = str(srv.call("CreateTrainingTask", task_params("big", "true", ResourceConfigInfos=_pods(2000)))["Id"])
        started = time.monotonic()
        small = str(srv.call("CreateTrainingTask", task_params("small", "true"), key=other)["Id"])
        wait_status_as(srv, other, small, "RUNNING")
        elapsed = time.monotonic() - started
        assert elapsed < 8.0, f"another account's task took {elapsed:.1f} s to reach RUNNING"
        wait_status(srv, big, "RUNNING", timeout=120)
        assert srv.call("DescribeTrainingTaskPods", {"Id": big})["TotalCount"] == 2000


def test_create_training_task_large_task_launches_a_batch_per_runner_pass(tmp_path: Path) -> None:
    """An MPI task of 130 workers: 64 pods per pass, the launcher with the last workers (spec §6.5: it drives them)."""
    h = Harness(tmp_path, catalogue=CATALOGUE.replace(f"max_pods_per_task = {MAX_PODS}", "max_pods_per_task = 130"))
    try:
        workers = [{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 130}]
        task_id = h.call("CreateTrainingTask", params("mpi", TrainingMode="MPI", ResourceConfigInfos=workers))["Id"]
        run_id = h.detail(task_id)["LatestInstanceId"]
        launched: list[list[str]] = []
        for k in range(4):
            h.tick(T0 + 1 + k * 0.1)
            run = h.store.runs.get(run_id)
            assert run is not None
            launched.append([p.role for p in run.pods if p.launched_at is not None])
        assert [len(roles) for roles in launched] == [LAUNCH_BATCH, 2 * LAUNCH_BATCH, 131, 131]
        assert "LAUNCHER" not in launched[1]
        assert "LAUNCHER" in launched[2]
        h.tick(T0 + 4)
        assert h.detail(task_id)["Status"] == "RUNNING"
    finally:
        h.close()
