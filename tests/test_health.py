"""`GET /healthz`, `/readyz` and `/metrics` (issue 10 item 10): plain HTTP beside the API, no signature, no account
data; /metrics in the Prometheus text format, adding up every `--workers N` process."""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.conftest import POSTGRES_URL
from tests.live import Server, drop_postgres_database, fresh_postgres_database, running_server
from tests.training import callback_receiver, create, wait_status, write_catalogue

PAGE_LIMIT = "InvalidParameterValue.PageLimitExceeded"


def _get(server: Server, path: str, method: str = "GET") -> tuple[int, str, str]:
    """(status, Content-Type, body) of a plain, unsigned request."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path)
        reply = conn.getresponse()
        return reply.status, reply.getheader("content-type", ""), reply.read().decode()
    finally:
        conn.close()


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus text exposition (labels matched exactly)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    series = f"{name}{{{wanted}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def _code(call: Callable[[], object]) -> str | None:
    """The API error code of `call`, None when it succeeds."""
    try:
        call()
    except TencentCloudSDKException as err:
        return str(err.code)
    return None


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_healthz_answers_without_a_signature(server: Server) -> None:
    assert _get(server, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
    assert _get(server, "/healthz", "HEAD")[0] == 200
    assert _get(server, "/healthz", "POST")[0] == 405
    # Every other path is still the API: an unsigned request gets the API's error envelope, not a page.
    status, content_type, body = _get(server, "/health")
    assert (status, content_type) == (200, "application/json")
    assert '"Code":"MissingParameter"' in body


def test_readyz_reports_database_runner_and_executor(any_server: Server) -> None:
    _eventually(lambda: _get(any_server, "/readyz")[0] == 200)
    _, _, body = _get(any_server, "/readyz")
    assert body.splitlines() == ["ready", "database: ok", "runner: ok", "executor: ok"]


@pytest.mark.postgres
def test_readyz_fails_when_the_database_is_gone(tmp_path: Path) -> None:
    url, name = fresh_postgres_database(POSTGRES_URL)
    try:
        with running_server(url, tmp_path) as srv:
            _eventually(lambda: _get(srv, "/readyz")[0] == 200)
            drop_postgres_database(POSTGRES_URL, name)
            status, _, body = _get(srv, "/readyz")
            assert status == 503
            assert body.splitlines()[:2][0] == "not ready"
            assert not body.splitlines()[1].endswith(": ok")  # the database line names the failure
            assert _get(srv, "/healthz")[0] == 200  # alive all the same
    finally:
        drop_postgres_database(POSTGRES_URL, name)


def test_metrics_count_requests_tasks_and_pods_without_account_data(database_url: str, tmp_path: Path) -> None:
    args = ("--executor", "simulate", "--callback-allow", "127.0.0.0/8", "--catalogue", str(write_catalogue(tmp_path)))
    env = {"TIONE_SIMULATE_SECONDS": "0.1,0.1,60"}
    with running_server(database_url, tmp_path, extra_args=args, env=env) as srv, callback_receiver() as hook:
        srv.import_tasks(
            [{"Id": "train-1000000000000000001", "Name": "secret-name", "Status": "SUCCEED",
              "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-28T18:18:33+08"}],
            tmp_path,
        )  # fmt: skip
        running = create(srv, "another-secret-name", "true")
        stopped = create(srv, "a-third-secret-name", "true", CallbackUrl=hook.url)
        for task_id in (running, stopped):
            wait_status(srv, task_id, "RUNNING")
        srv.call("StopTrainingTask", {"Id": stopped})
        hook.wait(1)  # the callback of its end (spec §8)
        for _ in range(3):
            srv.call("DescribeTrainingTasks", {"Limit": 1})
        assert _code(lambda: srv.call("DescribeTrainingTasks", {"Limit": 1000})) == PAGE_LIMIT
        status, content_type, text = _get(srv, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=")  # the Prometheus text format
    assert _sample(text, "tione_requests_total", action="DescribeTrainingTasks", code="OK") == 3
    assert _sample(text, "tione_requests_total", action="DescribeTrainingTasks", code=PAGE_LIMIT) == 1
    assert _sample(text, "tione_requests_total", action="CreateTrainingTask", code="OK") == 2
    assert _sample(text, "tione_request_duration_seconds_count", action="DescribeTrainingTasks") == 4
    assert _sample(text, "tione_tasks", status="SUCCEED") == 1
    assert _sample(text, "tione_tasks", status="RUNNING") == 1
    assert _sample(text, "tione_tasks", status="STOPPED") == 1
    assert _sample(text, "tione_pods", executor="simulate", status="RUNNING") == 1
    assert (_sample(text, "tione_callback_deliveries_total", outcome="delivered") or 0) >= 1
    assert _sample(text, "tione_database_up") == 1
    assert _sample(text, "tione_runner_lag_seconds") == 0
    assert re.search(r'^tione_runner_lease_holder\{holder="[^"]+:\d+:[0-9a-f]{8}"\} 1\.0$', text, re.M)
    for secret in (srv.key.uin, srv.key.secret_id, running, stopped, "train-1000000000000000001", "secret-name"):
        assert secret not in text


def test_metrics_count_rate_limit_refusals(sqlite_url: str, tmp_path: Path) -> None:
    with running_server(sqlite_url, tmp_path, extra_args=("--rate-limit", "1")) as srv:
        codes = [_code(lambda: srv.call("DescribeTrainingTasks", {"Limit": 1})) for _ in range(4)]
        refused = codes.count("RequestLimitExceeded")
        _, _, text = _get(srv, "/metrics")
    assert refused >= 1
    assert _sample(text, "tione_rate_limit_refusals_total", action="DescribeTrainingTasks") == refused


def test_metrics_add_up_every_worker(sqlite_url: str, tmp_path: Path) -> None:
    """With `--workers 2` a scrape answered by either worker counts the requests of both (multiprocess mode)."""
    with running_server(sqlite_url, tmp_path, extra_args=("--workers", "2")) as srv:

        def calls() -> None:
            for _ in range(10):
                srv.call("DescribeTrainingTasks", {"Limit": 1})

        threads = [threading.Thread(target=calls) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for _ in range(4):  # fresh connections: either worker may answer the scrape
            _, _, text = _get(srv, "/metrics")
            assert _sample(text, "tione_requests_total", action="DescribeTrainingTasks", code="OK") == 40
