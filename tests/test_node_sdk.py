"""The official Node.js SDK (tencentcloud-sdk-nodejs from npm) against a live server, on SQLite and PostgreSQL
(issue 13): every request form it sends answers what the Python SDK answers for the same call, errors
reach it as its exception, and a task goes through create, describe and stop with it.

The SDK is installed once, pinned, into var/node/ (ignored by git); tests/node/call.mjs runs the calls.
Without node or npm on PATH these tests are skipped, saying so; `.ci/run` makes sure both are there.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS, make_database
from tests.live import Server, running_server
from tests.test_readme import SNIPPET_TASKS
from tests.test_sdk_forms import QUERIES, TASKS
from tests.training import task_params, wait_for, wait_status

NODE_SDK_VERSION = "4.1.313"
ROOT = Path(__file__).resolve().parents[1]
NODE_PREFIX = ROOT / "var" / "node"
CALL_SCRIPT = ROOT / "tests" / "node" / "call.mjs"
README = ROOT / "README.md"

# (signMethod, reqMethod): the SDK signs TC3 (its default) over POST JSON or GET query, and v1 with either
# HMAC over POST form or GET query (common/abstract_client.js doRequest); it sends no other form.
FORMS = [
    ("TC3-HMAC-SHA256", "POST"),
    ("TC3-HMAC-SHA256", "GET"),
    ("HmacSHA256", "POST"),
    ("HmacSHA256", "GET"),
    ("HmacSHA1", "POST"),
    ("HmacSHA1", "GET"),
]
FORM_IDS = ["tc3-post", "tc3-get", "v1-sha256-post", "v1-sha256-get", "v1-sha1-post", "v1-sha1-get"]


@pytest.fixture(scope="session")
def node_sdk() -> Path:
    """The pinned SDK package folder, installed with npm on first use (skipped where node or npm is missing)."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not on PATH: the Node.js SDK tests need both (.ci/run installs them)")
    package = NODE_PREFIX / "node_modules" / "tencentcloud-sdk-nodejs"
    manifest = package / "package.json"
    if not manifest.exists() or json.loads(manifest.read_text())["version"] != NODE_SDK_VERSION:
        done = subprocess.run(
            ["npm", "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund",
             f"tencentcloud-sdk-nodejs@{NODE_SDK_VERSION}"],
            check=False, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, f"npm install failed:\n{done.stderr[-4000:]}"
    return package


def node_calls(
    sdk: Path, server: Server, calls: list[tuple[str, str, str, dict[str, Any]]], endpoint: str = ""
) -> list[dict[str, Any]]:
    """Run (signMethod, reqMethod, action, params) calls through the Node.js SDK, in order; one result each:
    `{"response": {...}}` or `{"error": {"code", "message", "requestId"}}`."""
    job = {
        "sdk": str(sdk),
        "endpoint": endpoint or server.endpoint,
        "secretId": server.key.secret_id,
        "secretKey": server.key.secret_key,
        "region": "ap-guangzhou",
        "calls": [{"signMethod": s, "reqMethod": m, "action": a, "params": p} for s, m, a, p in calls],
    }
    done = subprocess.run(
        ["node", str(CALL_SCRIPT)], input=json.dumps(job), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def node_response(result: dict[str, Any]) -> dict[str, Any]:
    """The `Response` of a successful Node.js call, without its RequestId."""
    assert "response" in result, result
    response = dict(result["response"])
    assert response.pop("RequestId")
    return response


def python_response(server: Server, action: str, params: dict[str, Any], sign: str, method: str) -> dict[str, Any]:
    """The same call through the Python SDK's CommonClient, without its RequestId."""
    response = dict(server.call(action, params, sign_method=sign, req_method=method))
    assert response.pop("RequestId")
    return response


@contextmanager
def _database(kind: str, workdir: Path) -> Iterator[str]:
    yield from make_database(kind, workdir)


@pytest.fixture(scope="module", params=BACKENDS)
def backend_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, node_sdk: Path
) -> Iterator[Server]:
    """A live server per backend on the simulate executor, holding the tasks of tests/test_sdk_forms.py."""
    workdir = tmp_path_factory.mktemp("node_sdk")
    with (
        _database(request.param, workdir) as url,
        running_server(url, workdir, extra_args=("--executor", "simulate")) as srv,
    ):
        srv.import_tasks(TASKS, workdir)
        yield srv


@pytest.mark.parametrize(("sign", "method"), FORMS, ids=FORM_IDS)
def test_describe_training_tasks_node_sdk_form_matches_python_sdk(
    node_sdk: Path, backend_server: Server, sign: str, method: str
) -> None:
    """Filters (exact, fuzzy, negative, tags), paging and order with space, `/`, `+` and Chinese values."""
    calls = [(sign, method, "DescribeTrainingTasks", params) for _, params, _ in QUERIES]
    results = node_calls(node_sdk, backend_server, calls)
    for (name, params, ids), result in zip(QUERIES, results, strict=True):
        answer = node_response(result)
        assert [t["Id"] for t in answer["TrainingTaskSet"]] == ids, name
        assert answer == python_response(backend_server, "DescribeTrainingTasks", params, sign, method), name


def test_describe_training_tasks_node_sdk_page_limit_exceeded(node_sdk: Path, backend_server: Server) -> None:
    """An error reply becomes the SDK's exception, with the code and RequestId, in every form."""
    results = node_calls(node_sdk, backend_server, [(s, m, "DescribeTrainingTasks", {"Limit": 100}) for s, m in FORMS])
    for (sign, method), result in zip(FORMS, results, strict=True):
        assert "error" in result, (sign, method, result)
        assert result["error"]["code"] == "InvalidParameterValue.PageLimitExceeded", (sign, method)
        assert "Limit" in result["error"]["message"]
        assert result["error"]["requestId"]


def test_training_task_node_sdk_create_describe_stop(node_sdk: Path, backend_server: Server) -> None:
    """One task's round trip through the Node.js SDK, each step in another form; the Python SDK agrees."""
    params = task_params("node-round-trip", "python train.py", Tags=[{"TagKey": "sdk", "TagValue": "node"}])
    (created,) = node_calls(node_sdk, backend_server, [("TC3-HMAC-SHA256", "POST", "CreateTrainingTask", params)])
    task_id = node_response(created)["Id"]
    assert task_id.startswith("train-")

    (described,) = node_calls(
        node_sdk, backend_server, [("TC3-HMAC-SHA256", "GET", "DescribeTrainingTask", {"Id": task_id})]
    )
    detail = node_response(described)["TrainingTaskDetail"]
    assert (detail["Id"], detail["Name"], detail["Tags"]) == (task_id, "node-round-trip", params["Tags"])

    wait_for(backend_server, task_id, lambda d: d["Status"] != "SUBMITTING")  # a SUBMITTING task cannot be stopped
    (stopped,) = node_calls(node_sdk, backend_server, [("HmacSHA256", "POST", "StopTrainingTask", {"Id": task_id})])
    assert node_response(stopped) == {}
    wait_status(backend_server, task_id, "STOPPED")

    (final,) = node_calls(node_sdk, backend_server, [("HmacSHA1", "GET", "DescribeTrainingTask", {"Id": task_id})])
    answer = node_response(final)
    assert answer["TrainingTaskDetail"]["Status"] == "STOPPED"
    assert answer == python_response(backend_server, "DescribeTrainingTask", {"Id": task_id}, "TC3-HMAC-SHA256", "POST")


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST"])
def test_describe_training_tasks_node_sdk_endpoint_without_dots(
    node_sdk: Path, backend_server: Server, host: str
) -> None:
    """`localhost:PORT` puts `localhost:PORT` in the scope (the port too: there is no dot to split at).

    The SDK lower-cases the Host it sends but not the scope, which TC3 allows for; its v1 forms sign the
    endpoint as configured against that lower-cased Host, so an upper-case endpoint only works with TC3
    (README, "Use it from Node.js").
    """
    calls = [(s, m, "DescribeTrainingTasks", {"Limit": 1}) for s, m in FORMS]
    results = node_calls(node_sdk, backend_server, calls, endpoint=f"{host}:{backend_server.port}")
    for (sign, method), result in zip(FORMS, results, strict=True):
        if host.isupper() and not sign.startswith("TC3"):
            assert result["error"]["code"] == "AuthFailure.SignatureFailure", (sign, method)
        else:
            assert node_response(result)["TotalCount"] >= len(TASKS), (sign, method)


def test_readme_node_snippet_lists_running_tasks(node_sdk: Path, server: Server, tmp_path: Path) -> None:
    """The README's Node.js snippet runs as written (with a real key and port), requiring the package root."""
    server.import_tasks(SNIPPET_TASKS, tmp_path)
    match = re.search(r"```javascript\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, "README has no javascript snippet"
    code = (
        match.group(1)
        .replace('"AKID..."', json.dumps(server.key.secret_id))
        .replace('"your-secret-key"', json.dumps(server.key.secret_key))
        .replace("127.0.0.1:8080", server.endpoint)
    )
    # Run from the install prefix so that `require("tencentcloud-sdk-nodejs")` finds the package there.
    out = subprocess.run(
        ["node", "-"], input=code, cwd=NODE_PREFIX, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "1 [ 'resnet-a' ]", out.stderr
