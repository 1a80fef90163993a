"""Issue 12: the list's key cache never outlives a revocation, in any worker or replica.

The gateway keeps keys in memory for the list's hot path and checks them in the same reads that serve the
request; these tests revoke a key through the CLI (another process) after two servers on one database have
cached it, and expect the very next request to each to be refused exactly as an uncached key would be.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.live import Key, Server, cli, create_key, running_server
from tests.rawhttp import Creds, RawClient, check_envelope, tc3_request
from tests.training import task_params

NOT_FOUND = "AuthFailure.SecretIdNotFound"
TASKS = [
    {"Id": f"train-20000000000000000{i:02d}", "Name": f"cached-{i}", "Status": "SUCCEED",
     "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": f"2025-05-28T18:{i:02d}:33+08"}
    for i in range(3)
]  # fmt: skip


def _code(call: Callable[[], Any]) -> str:
    try:
        call()
    except TencentCloudSDKException as err:
        return str(err.code)
    return "OK"


def _list(server: Server, key: Key, **params: Any) -> Callable[[], Any]:
    return lambda: server.call("DescribeTrainingTasks", params, key=key)


def test_revocation_reaches_every_replica_at_once(database_url: str, tmp_path: Path) -> None:
    with (
        running_server(database_url, tmp_path) as one,
        running_server(database_url, tmp_path, extra_args=("--workers", "2")) as other,
    ):
        one.import_tasks(TASKS, tmp_path)
        key = create_key(database_url, one.key.uin)  # the account holding the imported tasks
        empty = create_key(database_url, "100000000099")  # an account with no task at all
        for server in (one, other):
            for _ in range(4):  # both workers of `other` have seen it (connections are dealt between them)
                assert server.call("DescribeTrainingTasks", {}, key=key)["TotalCount"] == len(TASKS)
                assert server.call("DescribeTrainingTasks", {}, key=empty)["TotalCount"] == 0

        cli("keys", "revoke", key.secret_id, database_url=database_url)
        cli("keys", "revoke", empty.secret_id, database_url=database_url)
        for server in (one, other):
            for _ in range(4):
                assert _code(_list(server, key)) == NOT_FOUND
                assert _code(_list(server, empty)) == NOT_FOUND
                # A refusal that a live key would get (a bad parameter) is still the key's refusal first.
                assert _code(_list(server, key, Limit=1000)) == NOT_FOUND
            assert server.call("DescribeTrainingTasks", {})["TotalCount"] == len(TASKS)  # other keys unaffected


@pytest.mark.parametrize("wrong", ["signature", "version"])
def test_cached_revoked_key_is_refused_before_other_checks(server: Server, wrong: str) -> None:
    key = create_key(server.database_url, server.key.uin)
    creds = Creds(key.secret_id, key.secret_key)
    with RawClient(server.port) as raw:
        assert "Error" not in check_envelope(raw.send(tc3_request(creds, server.endpoint, {"Limit": 1})))
        cli("keys", "revoke", key.secret_id, database_url=server.database_url)
        if wrong == "signature":
            bad = tc3_request(Creds(key.secret_id, "not-the-secret"), server.endpoint, {"Limit": 1})
        else:
            bad = tc3_request(creds, server.endpoint, {"Limit": 1}, version="2019-01-01")
        assert check_envelope(raw.send(bad))["Error"]["Code"] == NOT_FOUND


def test_every_action_refuses_a_revoked_key_at_once(database_url: str, tmp_path: Path) -> None:
    """Every TC3 request takes its key from the cache (no read on the event loop): the create checks it in its
    own statements, the other actions read it again on their handler thread. Revoked between two requests, a
    key is refused by the very next one, and the refused create stored nothing, even where its Name was taken.
    A key per action, each cached by one request before they are all revoked: a refusal drops a key from the
    cache, and must not be what makes the next action's check work."""
    with running_server(database_url, tmp_path, extra_args=("--executor", "simulate")) as server:
        task_id = server.call("CreateTrainingTask", task_params("before"))["Id"]
        calls = {
            "create": ("CreateTrainingTask", task_params("after")),
            "create, name taken": ("CreateTrainingTask", task_params("before")),
            "describe": ("DescribeTrainingTask", {"Id": task_id}),
            "stop": ("StopTrainingTask", {"Id": task_id}),
            "list": ("DescribeTrainingTasks", {}),
        }
        keys = {what: create_key(database_url, server.key.uin) for what in calls}
        for key in keys.values():
            assert server.call("DescribeTrainingTasks", {}, key=key)["TotalCount"] == 1  # now cached
        for key in keys.values():
            cli("keys", "revoke", key.secret_id, database_url=database_url)
        for what, (action, params) in calls.items():
            assert _code(partial(server.call, action, params, key=keys[what])) == NOT_FOUND, what
        listed = server.call("DescribeTrainingTasks", {})  # the server's own key, still valid
        assert [t["Name"] for t in listed["TrainingTaskSet"]] == ["before"]
        assert listed["TrainingTaskSet"][0]["Status"] not in ("STOPPING", "STOPPED")
