"""`tione-server serve` as a newcomer meets it (issue 7 F15, F16): the banner, a port in use, `--version`, and the
log: one INFO line per request and per task state change, silenced by `--log-level warning`."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.tione.v20211111 import models

from tests.live import BIN, Server, free_port, running_server, wait_for_port
from tests.training import create, wait_status
from tione_server.executors.registry import EXECUTORS


def _serve_banner(args: list[str], cwd: Path) -> str:
    """Start `serve ARGS`, wait until it accepts connections, stop it; everything it wrote."""
    port = free_port()
    log = cwd / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port), *args], stdout=out, stderr=subprocess.STDOUT, cwd=cwd
        )
    try:
        wait_for_port(port, proc, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return log.read_text()


def test_serve_banner_names_database_executor_workers_regions_and_url(tmp_path: Path) -> None:
    text = _serve_banner(["--database", "sqlite:///banner.db", "--executor", "simulate"], tmp_path)
    port = re.search(r"serving http://127\.0\.0\.1:(\d+)/", text)
    assert port, text
    assert f"database:  sqlite:///{tmp_path / 'banner.db'}" in text
    assert "executor:  simulate" in text
    assert "workers:   1" in text
    assert "regions:   ap-guangzhou, ap-shanghai, ap-beijing, ap-nanjing" in text
    assert "log level: info" in text
    assert f"--endpoint http://127.0.0.1:{port.group(1)}" in text  # the next command to try
    assert f"console:   http://127.0.0.1:{port.group(1)}/console/" in text  # issue 11 item 1
    assert "keys create --uin" in text  # no keys yet: how to make one


def test_serve_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(BIN), "serve", "--port", str(port), "--database", f"sqlite:///{tmp_path / 't.db'}"],
            capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: ")
    assert str(port) in result.stderr
    assert not (tmp_path / "t.db").exists()  # refused before anything was opened


def test_serve_unknown_executor_in_the_environment_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN), "serve", "--port", str(free_port()), "--database", f"sqlite:///{tmp_path / 't.db'}"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
        env={**os.environ, "TIONE_EXECUTOR": "kubernetes"},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: ")
    assert "TIONE_EXECUTOR" in result.stderr
    assert all(name in result.stderr for name in EXECUTORS)  # the registry's names, the ones --executor takes
    assert not (tmp_path / "t.db").exists()


def test_version_prints_the_package_version() -> None:
    from tione_server import __version__

    result = subprocess.run([str(BIN), "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert __version__ in result.stdout


def _wait_for_line(server: Server, pattern: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, server.log_path.read_text())
        if found:
            return found.group(0)
        time.sleep(0.05)
    raise AssertionError(f"no line matching {pattern!r} in:\n{server.log_path.read_text()}")


def test_serve_logs_one_info_line_per_request(server: Server) -> None:
    resp = server.client().DescribeTrainingTasks(models.DescribeTrainingTasksRequest())
    line = _wait_for_line(server, rf"INFO .*RequestId={resp.RequestId} .*")
    assert f"uin={server.key.uin}" in line
    assert "action=DescribeTrainingTasks code=OK ms=" in line


def test_serve_logs_failed_request_with_its_code(server: Server) -> None:
    with pytest.raises(TencentCloudSDKException) as err:
        server.client().DescribeTrainingTask(models.DescribeTrainingTaskRequest())
    request_id = err.value.get_request_id()
    line = _wait_for_line(server, rf"INFO .*RequestId={request_id} .*")
    assert f"uin={server.key.uin} action=DescribeTrainingTask code=MissingParameter" in line


def test_serve_logs_task_state_changes(database_url: str, tmp_path: Path) -> None:
    args = ("--executor", "simulate")
    with running_server(database_url, tmp_path, extra_args=args, env={"TIONE_SIMULATE_SECONDS": "0.1,0.1,0.1"}) as srv:
        task_id = create(srv, "logged")
        wait_status(srv, task_id, "SUCCEED")
        for change in ("- -> SUBMITTING", "SUBMITTING -> PENDING", "PENDING -> STARTING", "STARTING -> RUNNING",
                       "RUNNING -> SUCCEED"):  # fmt: skip
            line = _wait_for_line(srv, rf"INFO .*task {task_id} run {task_id}-\w+ uin={srv.key.uin} {change}.*")
            assert line


def test_serve_request_lines_gathered_are_written_when_it_stops(sqlite_url: str, tmp_path: Path) -> None:
    # Request lines are written in batches (requestlog.py); stopping the server writes the last batch.
    with running_server(sqlite_url, tmp_path) as srv:
        client = srv.client()
        ids = [client.DescribeTrainingTasks(models.DescribeTrainingTasksRequest()).RequestId for _ in range(20)]
        srv.stop()
        text = srv.log_path.read_text()
        assert all(f"RequestId={request_id} " in text for request_id in ids)


def test_serve_log_level_warning_drops_request_lines(sqlite_url: str, tmp_path: Path) -> None:
    with running_server(sqlite_url, tmp_path, extra_args=("--log-level", "warning")) as srv:
        resp = srv.client().DescribeTrainingTasks(models.DescribeTrainingTasksRequest())
        srv.stop()
        assert resp.RequestId not in srv.log_path.read_text()
        assert "log level: warning" in srv.log_path.read_text()


def test_serve_workers_log_requests(sqlite_url: str, tmp_path: Path) -> None:
    # The log level reaches every `--workers N` process through the Settings they are handed.
    with running_server(sqlite_url, tmp_path, extra_args=("--workers", "2")) as srv:
        resp = srv.client().DescribeTrainingTasks(models.DescribeTrainingTasksRequest())
        assert _wait_for_line(srv, rf"INFO .*RequestId={resp.RequestId} .*code=OK.*")
