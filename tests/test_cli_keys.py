"""`tione-server keys create|list|revoke`: the exact forms other tools depend on."""

from __future__ import annotations

import json

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.tione.v20211111 import models

from tests.live import Server, cli, create_key


def test_keys_create_json_prints_one_object(sqlite_url: str) -> None:
    out = cli(
        "keys",
        "create",
        "--uin",
        "100000000009",
        "--sub-uin",
        "100000000010",
        "--json",
        database_url=sqlite_url,
    )
    record = json.loads(out.stdout)
    assert record["Uin"] == "100000000009"
    assert record["SubUin"] == "100000000010"
    assert record["AppId"] == "100000000009"
    assert record["SecretId"].startswith("AKID")
    assert len(record["SecretKey"]) >= 32


def test_keys_create_rejects_non_digit_uin(sqlite_url: str) -> None:
    out = cli("keys", "create", "--uin", "abc", database_url=sqlite_url, check=False)
    assert out.returncode != 0


def test_keys_list_never_shows_secrets(sqlite_url: str) -> None:
    key = create_key(sqlite_url, "100000000011")
    listing = cli("keys", "list", database_url=sqlite_url).stdout
    assert key.secret_id in listing
    assert key.secret_key not in listing


def test_keys_revoke_refuses_later_requests(server: Server) -> None:
    client = server.client()
    client.DescribeTrainingTasks(models.DescribeTrainingTasksRequest())
    cli("keys", "revoke", server.key.secret_id, database_url=server.database_url)
    with pytest.raises(TencentCloudSDKException) as err:
        client.DescribeTrainingTasks(models.DescribeTrainingTasksRequest())
    assert err.value.code == "AuthFailure.SecretIdNotFound"
    assert "revoked" in cli("keys", "list", database_url=server.database_url).stdout


def test_keys_revoke_unknown_exits_1(sqlite_url: str) -> None:
    assert cli("keys", "revoke", "AKIDnope", database_url=sqlite_url, check=False).returncode == 1


def test_serve_without_keys_says_how_to_create_one(sqlite_url: str) -> None:
    import subprocess

    from tests.live import BIN, free_port

    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(free_port()), "--database", sqlite_url],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        banner = [proc.stderr.readline() for _ in range(10)]  # the banner, then the key hint
        assert any("keys create" in line for line in banner)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
