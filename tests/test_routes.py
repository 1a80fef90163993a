"""The app's routes and its event loop (issue 8 item 2): /healthz beside the API on every other path, and
handlers off the loop, so a request stuck on the database never stalls the others.

A live server over raw HTTP and the SDK; the stuck request waits on a lock that another transaction, opened
by the test on the server's own database, holds.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.live import Server, running_server
from tests.rawhttp import Creds, RawClient, RawRequest, Reply, check_envelope, tc3_request

HOLD = 2.0
"""Seconds the test's transaction holds the lock the Delete needs."""

FINISHED = {"Id": "train-1000000000000000001", "Name": "done", "Status": "SUCCEED",
            "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-28T18:18:33+08"}  # fmt: skip


def _plain(server: Server, method: str, path: str) -> Reply:
    with RawClient(server.port) as client:
        return client.send(RawRequest(method, path, (("Host", server.endpoint),)))


def test_healthz_answers_ok_beside_the_api(server: Server) -> None:
    reply = _plain(server, "GET", "/healthz")
    assert (reply.status, reply.body, reply.content_type) == (200, b"ok\n", "text/plain; charset=utf-8")
    head = _plain(server, "HEAD", "/healthz")
    assert (head.status, head.body) == (200, b"")
    assert _plain(server, "POST", "/healthz").status == 405
    # api3-protocol §1: every other path is the API (the SDK always sends to `/`).
    creds = Creds(server.key.secret_id, server.key.secret_key)
    with RawClient(server.port) as client:
        for path in ("/", "/healthz/", "/some/where"):
            assert check_envelope(client.send(tc3_request(creds, server.endpoint, {}, path=path)))["TotalCount"] == 0


@contextmanager
def _holding_task(database_url: str, task_id: str) -> Iterator[None]:
    """A transaction on the server's database holding what deleting `task_id` needs: SQLite's one write lock,
    or the task's row on PostgreSQL. Reads go on meanwhile (WAL; MVCC). Released after HOLD seconds by a timer,
    so a server that stalls cannot stall the test with it."""
    conn: Any
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), check_same_thread=False, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        conn = psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"))
        conn.execute("SELECT 1 FROM tasks WHERE id = %s FOR UPDATE", (task_id,))
    timer = threading.Timer(HOLD, conn.rollback)
    timer.start()
    try:
        yield
    finally:
        timer.join()
        conn.close()


def test_delete_training_task_waiting_on_the_database_does_not_stall_other_requests(
    database_url: str, tmp_path: Path
) -> None:
    with running_server(database_url, tmp_path) as srv:
        srv.import_tasks([FINISHED], tmp_path)
        deleted: list[Any] = []
        delete = threading.Thread(target=lambda: deleted.append(srv.call("DeleteTrainingTask", {"Id": FINISHED["Id"]})))
        latencies: list[float] = []
        client = srv.common()
        with _holding_task(database_url, FINISHED["Id"]):
            started = time.monotonic()
            delete.start()
            while delete.is_alive() and time.monotonic() - started < HOLD * 0.8:
                at = time.monotonic()
                client.call_json("DescribeTrainingTasks", {})
                latencies.append(time.monotonic() - at)
        delete.join(30)
        took = time.monotonic() - started
        assert deleted, "the Delete did not answer"
        assert took >= HOLD * 0.9  # it really waited on the lock...
        assert len(latencies) >= 3  # ...while the list kept answering, each far sooner than the wait
        assert max(latencies) < HOLD / 2, latencies
        assert srv.call("DescribeTrainingTasks", {})["TotalCount"] == 0
