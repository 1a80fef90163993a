"""Every request form the official SDK can send (TC3 POST/GET, v1 HmacSHA1/HmacSHA256 over POST/GET)
returns the same DescribeTrainingTasks answer as TC3 POST, with filter values holding spaces, slashes,
`+` and Chinese text that each form encodes differently on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.tione.v20211111 import models, tione_client

from tests.live import Server, running_server

TASKS: list[dict[str, Any]] = [
    {
        "Id": "train-1000000000000000001", "Name": "alpha run/1", "Status": "SUCCEED",
        "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-28T18:18:33+08",
        "Tags": [{"TagKey": "team", "TagValue": "vision/图像 a+b"}],
    },
    {
        "Id": "train-1000000000000000002", "Name": "训练 任务+2", "Status": "RUNNING",
        "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-29T09:00:00+08",
        "Tags": [{"TagKey": "team", "TagValue": "nlp"}],
    },
    {
        "Id": "train-1000000000000000003", "Name": "a+b c/d", "Status": "FAILED",
        "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-30T10:30:00+08",
    },
    {
        "Id": "train-1000000000000000004", "Name": "plain", "Status": "STOPPED",
        "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-31T23:59:59+08",
    },
]  # fmt: skip

QUERIES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("exact-space-slash-chinese-plus",
     {"Filters": [{"Name": "Name", "Values": ["alpha run/1", "训练 任务+2"]}], "Order": "ASC",
      "OrderField": "CreateTime"},
     ["train-1000000000000000001", "train-1000000000000000002"]),
    ("fuzzy-chinese-plus", {"Filters": [{"Name": "Name", "Values": ["任务+"], "Fuzzy": True}]},
     ["train-1000000000000000002"]),
    ("exact-plus-space-slash", {"Filters": [{"Name": "Name", "Values": ["a+b c/d"]}]},
     ["train-1000000000000000003"]),
    ("tag-slash-chinese-plus", {"TagFilters": [{"TagKey": "team", "TagValues": ["vision/图像 a+b"]}]},
     ["train-1000000000000000001"]),
    ("negative-fuzzy-slash",
     {"Filters": [{"Name": "Name", "Values": ["/"], "Fuzzy": True, "Negative": True}], "Order": "ASC",
      "OrderField": "CreateTime"},
     ["train-1000000000000000002", "train-1000000000000000004"]),
    ("paging", {"Limit": 2, "Offset": 1, "Order": "ASC", "OrderField": "CreateTime"},
     ["train-1000000000000000002", "train-1000000000000000003"]),
]  # fmt: skip

FORMS = [
    ("TC3-HMAC-SHA256", "GET"),
    ("HmacSHA1", "POST"),
    ("HmacSHA256", "GET"),
    ("HmacSHA1", "GET"),
    ("HmacSHA256", "POST"),
]
FORM_IDS = ["tc3-get", "v1-sha1-post", "v1-sha256-get", "v1-sha1-get", "v1-sha256-post"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A live server holding TASKS for its key's account in ap-guangzhou."""
    workdir = tmp_path_factory.mktemp("sdk_forms")
    url = f"sqlite:///{workdir / 'tione.db'}"
    with running_server(url, workdir) as srv:
        srv.import_tasks(TASKS, workdir)
        yield srv


def _model_request(params: dict[str, Any]) -> models.DescribeTrainingTasksRequest:
    req = models.DescribeTrainingTasksRequest()
    req.from_json_string(json.dumps(params))
    return req


def _model_answer(server: Server, params: dict[str, Any], sign: str, method: str) -> dict[str, Any]:
    resp = server.client(sign_method=sign, req_method=method).DescribeTrainingTasks(_model_request(params))
    answer: dict[str, Any] = json.loads(resp.to_json_string())
    assert answer.pop("RequestId")
    return answer


def _common_answer(server: Server, params: dict[str, Any], sign: str, method: str) -> dict[str, Any]:
    answer = dict(server.call("DescribeTrainingTasks", params, sign_method=sign, req_method=method))
    assert answer.pop("RequestId")
    return answer


@pytest.mark.parametrize(("params", "ids"), [(p, i) for _, p, i in QUERIES], ids=[n for n, _, _ in QUERIES])
def test_describe_training_tasks_tc3_post_baseline(server: Server, params: dict[str, Any], ids: list[str]) -> None:
    """The reference answers are right in the first place (so agreeing with them means something)."""
    answer = _model_answer(server, params, "TC3-HMAC-SHA256", "POST")
    assert [t["Id"] for t in answer["TrainingTaskSet"]] == ids
    if "Limit" not in params:
        assert answer["TotalCount"] == len(ids)


@pytest.mark.parametrize(("sign", "method"), FORMS, ids=FORM_IDS)
@pytest.mark.parametrize("params", [p for _, p, _ in QUERIES], ids=[n for n, _, _ in QUERIES])
def test_describe_training_tasks_sdk_form_matches_tc3_post(
    server: Server, params: dict[str, Any], sign: str, method: str
) -> None:
    expected = _model_answer(server, params, "TC3-HMAC-SHA256", "POST")
    assert _model_answer(server, params, sign, method) == expected


@pytest.mark.parametrize(("sign", "method"), FORMS, ids=FORM_IDS)
def test_describe_training_tasks_common_client_form_matches_tc3_post(server: Server, sign: str, method: str) -> None:
    for _, params, ids in QUERIES:
        expected = _common_answer(server, params, "TC3-HMAC-SHA256", "POST")
        assert [t["Id"] for t in expected["TrainingTaskSet"]] == ids
        assert _common_answer(server, params, sign, method) == expected


def test_describe_training_tasks_sdk_form_tccli_style_endpoint(server: Server) -> None:
    """The `http://host:port` endpoint (a Host header with a scheme) works in every form too."""
    params = QUERIES[0][1]
    expected = _model_answer(server, params, "TC3-HMAC-SHA256", "POST")
    cred = credential.Credential(server.key.secret_id, server.key.secret_key)
    for sign, method in [("TC3-HMAC-SHA256", "POST"), *FORMS]:
        hp = HttpProfile(endpoint=f"http://{server.endpoint}", reqMethod=method)
        client = tione_client.TioneClient(cred, "ap-guangzhou", ClientProfile(httpProfile=hp, signMethod=sign))
        answer = json.loads(client.DescribeTrainingTasks(_model_request(params)).to_json_string())
        assert answer.pop("RequestId")
        assert answer == expected, (sign, method)
