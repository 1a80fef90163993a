"""The runner at scale (issue 12 target 5): it reads the store's change feed instead of every live run, looks at a
run only when the executor says it may have changed, reloads when it (re)gains leadership, and a periodic sweep
catches a change the feed missed. Both backends, the simulate executor, a fake clock."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.inprocess import T0, Harness, params
from tests.test_store import task
from tione_server.executors.base import Observation, RunSpec
from tione_server.models import Run
from tione_server.runner import RESYNC_INTERVAL
from tione_server.store import Store

CATALOGUE = "[capacity]\ncpu = 100000\nmemory = 1000000\n"
IDLE = {"Envs": [{"Name": "TI_SIMULATE_RUN_SECONDS", "Value": "1000"}]}


@pytest.fixture
def h(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, database_url=database_url, catalogue=CATALOGUE)
    yield harness
    harness.close()


def _bypass(store: Store, sql: str, **binds: Any) -> None:
    """A write to `runs` that the change feed does not see (as if its trigger had been lost)."""
    with store.db.engine.begin() as conn:
        if store.db.dialect == "postgresql":
            conn.execute(text("ALTER TABLE runs DISABLE TRIGGER tione_runs_seq"))
            conn.execute(text(sql), binds)
            conn.execute(text("ALTER TABLE runs ENABLE TRIGGER tione_runs_seq"))
        else:  # the trigger stamps only writes that leave seq alone
            conn.execute(text(sql.replace(" WHERE", ", seq = 0 WHERE")), binds)


def _running(h: Harness, count: int) -> list[str]:
    ids = [h.call("CreateTrainingTask", params(f"idle-{i}", **IDLE))["Id"] for i in range(count)]
    for at in (1.0, 3.0, 3.5):
        h.tick(T0 + at)
    assert {h.detail(t)["Status"] for t in ids} == {"RUNNING"}
    return ids


def test_idle_running_runs_are_not_observed(h: Harness) -> None:
    """A tick costs what changed: idle RUNNING runs are not looked at until their timeline says so."""
    ids = _running(h, 12)
    observed: list[str] = []
    observe = h.runner.executor.observe

    def counting(spec: RunSpec, run: Run, now: float) -> dict[str, Observation]:
        observed.append(run.id)
        return observe(spec, run, now)

    h.runner.executor.observe = counting  # type: ignore[method-assign]
    for i in range(20):
        h.tick(T0 + 4 + i * 0.25)
    assert observed == []
    other = h.call("CreateTrainingTask", params("changing"))["Id"]
    for at in (10.0, 12.0, 12.5, 23.0):
        h.tick(T0 + at)
    assert h.detail(other)["Status"] == "SUCCEED"
    assert {h.detail(t)["Status"] for t in ids} == {"RUNNING"}
    assert observed
    assert set(observed) <= {str(h.detail(other)["LatestInstanceId"])}
    h.tick(T0 + 3 + 1000)  # the idle ones end on their timeline
    assert {h.detail(t)["Status"] for t in ids} == {"SUCCEED"}


def test_a_run_changed_by_the_api_is_picked_up(h: Harness) -> None:
    [task_id] = _running(h, 1)
    h.call("StopTrainingTask", {"Id": task_id})
    h.tick(T0 + 5)  # the feed brings the STOPPING run: SIGTERM now
    h.tick(T0 + 6)  # the simulated pod ends a second later
    assert h.detail(task_id)["Status"] == "STOPPED"


def test_the_change_feed_reads_what_was_written_since(h: Harness) -> None:
    runs = h.store.runs
    cursor = runs.cursor()
    assert runs.changed(cursor, 100)[0] == []
    task_id = h.call("CreateTrainingTask", params("fed"))["Id"]
    found, cursor = runs.changed(cursor, 100)
    assert [t.id for _, t in found] == [task_id]
    found, cursor = runs.changed(cursor, 100)
    assert found == []
    h.tick(T0 + 1)  # the runner's own writes are in the feed too
    found, cursor = runs.changed(cursor, 100)
    assert [r.status for r, _ in found] == ["STARTING"]


def test_the_runners_own_writes_are_not_read_again(h: Harness) -> None:
    """A run whose stamp is the one the runner's copy holds (its own write) is left out of the feed's reads;
    a write by anyone else changes the stamp, and the run is read."""
    [task_id] = _running(h, 1)
    runs = h.store.runs
    live = h.runner._live
    [(run, _)] = list(live.items())
    assert run.seq > 0  # stamped by the runner's last write, read back in that write's transaction
    cursor = 0
    found, _ = runs.changed(cursor, 100, live.seq_of)
    assert found == []  # only its own writes since: none is read
    assert [r.num for r, _ in runs.changed(cursor, 100)[0]] == [run.num]  # a reader holding no copy reads it
    h.call("StopTrainingTask", {"Id": task_id})
    found, _ = runs.changed(cursor, 100, live.seq_of)
    assert [(r.num, r.status) for r, _ in found] == [(run.num, "STOPPING")]
    assert found[0][0].seq != run.seq


def test_the_change_feed_misses_no_late_commit(database_url: str) -> None:
    """PostgreSQL commits in any order: a write whose transaction began before a later one committed is still
    read, after it commits (the cursor is the oldest running transaction, store/feed.py)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: commit order is seq order")
    store = Store(database_url)
    try:
        for n in (1, 2):
            run = Run(num=10 + n, id=f"train-{n}-aaaaaaaaaaaa", task_num=n, task_id=f"train-{n}",
                      status="RUNNING", charge_status="BILLING", operation="CREATE", requested_at=T0)  # fmt: skip
            store.lifecycle.create(task(n, name=f"t{n}", status="RUNNING"), run, max_active=10)
        cursor = store.runs.cursor()
        late = store.db.engine.connect()
        tx = late.begin()
        late.execute(text("UPDATE runs SET message = 'late' WHERE num = 11"))  # begins first, commits last
        store.runs.update(store.runs.get("train-2-aaaaaaaaaaaa") or _missing(), message="early")
        found, cursor = store.runs.changed(cursor, 100)
        assert [r.num for r, _ in found] == [12]
        tx.commit()
        late.close()
        found, cursor = store.runs.changed(cursor, 100)
        assert 11 in [r.num for r, _ in found]
    finally:
        store.close()


def _missing() -> Run:
    raise AssertionError("run not found")


def test_a_missed_change_is_caught_by_the_sweep(h: Harness) -> None:
    [task_id] = _running(h, 1)
    run_id = str(h.detail(task_id)["LatestInstanceId"])
    _bypass(h.store, "UPDATE runs SET status = 'STOPPING', stop_requested_at = :at WHERE id = :id", at=T0, id=run_id)
    for i in range(8):
        h.tick(T0 + 4 + i)
    found = h.store.runs.get(run_id)
    assert found is not None
    assert found.term_sent_at is None
    h.tick(T0 + 4 + RESYNC_INTERVAL)  # the sweep reads it: SIGTERM
    h.tick(T0 + 6 + RESYNC_INTERVAL)
    found = h.store.runs.get(run_id)
    assert found is not None
    assert found.status == "STOPPED"


def test_a_new_leader_reloads_the_live_runs(h: Harness) -> None:
    [task_id] = _running(h, 1)
    run_id = str(h.detail(task_id)["LatestInstanceId"])
    leading = threading.Event()
    leading.set()
    h.runner.is_leader = leading.is_set
    h.runner.interval = 0.01
    h.runner.start()
    try:
        time.sleep(0.1)
        leading.clear()  # another replica leads now: this one forgets what it knew
        deadline = time.monotonic() + 5
        while h.runner._live.loaded and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not h.runner._live.loaded
        _bypass(h.store, "UPDATE runs SET status = 'STOPPING', stop_requested_at = :at WHERE id = :id", at=T0,
                id=run_id)  # fmt: skip
        h.clock.now = T0 + 5
        leading.set()  # leading again: it reads every live run, the change the feed missed with them
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = h.store.runs.get(run_id)
            if found is not None and found.term_sent_at is not None:
                break
            time.sleep(0.01)
        assert found is not None
        assert found.term_sent_at == T0 + 5
    finally:
        h.runner.stop()


def test_a_deleted_run_leaves_the_live_set(h: Harness) -> None:
    [task_id] = _running(h, 1)
    run_id = str(h.detail(task_id)["LatestInstanceId"])
    with h.store.db.engine.begin() as conn:  # as a Delete would, had the task ended with a callback unsent
        conn.execute(text("DELETE FROM pods"))
        conn.execute(text("DELETE FROM runs"))
    h.tick(T0 + 1000)  # its timeline says it ended: the runner's write finds it gone, and it reads it again
    h.tick(T0 + 1001)
    assert all(r.id != run_id for r, _ in h.runner._live.items())


def test_grants_are_written_together(h: Harness) -> None:
    """Runs granted on one pass are moved to STARTING a chunk per transaction (one commit for many: PENDING used
    to drain at the pace of commits), not one transaction each."""
    calls: list[int] = []
    transition_all = h.store.runs.transition_all

    def counting(moves: Any) -> bool:
        if all(m.fields["status"] == "STARTING" for m in moves):
            calls.append(len(moves))
        return transition_all(moves)

    h.store.runs.transition_all = counting  # type: ignore[method-assign]
    ids = [h.call("CreateTrainingTask", params(f"g-{i}", **IDLE))["Id"] for i in range(20)]
    h.tick(T0 + 1)
    assert {h.detail(t)["Status"] for t in ids} == {"STARTING"}
    assert max(calls) > 1  # several grants in one transaction
    assert len(calls) <= 2  # 20 grants: two chunks at most


def test_moves_of_the_runs_a_pass_steps_are_written_together(h: Harness) -> None:
    """Runs submitted, started or ended on one pass are moved a chunk per transaction, as grants are: a queue no
    longer drains at the pace of commits."""
    calls: list[tuple[str, int]] = []
    transition_all = h.store.runs.transition_all

    def counting(moves: Any) -> bool:
        calls.append((moves[0].fields["status"], len(moves)))
        return transition_all(moves)

    h.store.runs.transition_all = counting  # type: ignore[method-assign]
    ids = [h.call("CreateTrainingTask", params(f"m-{i}", **IDLE))["Id"] for i in range(20)]
    h.tick(T0 + 1)
    assert {h.detail(t)["Status"] for t in ids} == {"STARTING"}
    submitted = [n for status, n in calls if status == "PENDING"]
    assert sum(submitted) == 20
    assert len(submitted) <= 2  # 20 moves SUBMITTING -> PENDING: two chunks at most


def test_a_stop_racing_a_batch_of_moves_is_kept(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """A run stopped between its step and the write of the pass's moves makes that write refused; each run's moves
    are then written on their own. The stopped run is put back as it was (no SUCCEED, no state line saying so) and
    read again, so it ends STOPPED; the others end as their step decided."""
    short = {"Envs": [{"Name": "TI_SIMULATE_RUN_SECONDS", "Value": "5"}], "CallbackUrl": "http://192.168.1.10/hook"}
    ids = [h.call("CreateTrainingTask", params(f"short-{i}", **short))["Id"] for i in range(4)]
    for at in (1.0, 3.0, 3.5):
        h.tick(T0 + at)
    assert {h.detail(t)["Status"] for t in ids} == {"RUNNING"}
    transition_all = h.store.runs.transition_all
    raced: list[str] = []

    def racing(moves: Any) -> bool:
        if len(moves) > 1 and not raced and all(m.fields["status"] == "SUCCEED" for m in moves):
            raced.append(ids[1])
            h.call("StopTrainingTask", {"Id": ids[1]})  # another request, its own transaction, first
        return transition_all(moves)

    h.store.runs.transition_all = racing  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="tione_server.tasks"):
        for at in range(4, 30):
            h.tick(T0 + at)
            if raced:
                break
        assert raced == [ids[1]]
        statuses = [h.detail(t)["Status"] for t in ids]
        assert [statuses[i] for i in (0, 2, 3)] == ["SUCCEED"] * 3
        assert statuses[1] == "STOPPING"
        for at in range(30, 60):
            h.tick(T0 + at)
    assert h.detail(ids[1])["Status"] == "STOPPED"
    lines = [r.getMessage() for r in caplog.records]
    assert not [line for line in lines if f"task {ids[1]} " in line and "-> SUCCEED" in line]
    assert [line for line in lines if f"task {ids[1]} " in line and "-> STOPPED" in line]
    assert len([line for line in lines if "RUNNING -> SUCCEED" in line]) == 3
    sent = sorted((str(body["id"]), str(body["message"])) for _, body in h.callbacks.sent)
    assert sent == sorted([(ids[0], "SUCCEED"), (ids[1], "STOPPED"), (ids[2], "SUCCEED"), (ids[3], "SUCCEED")])


def test_a_stop_racing_a_batch_of_grants_is_kept(database_url: str, tmp_path: Path) -> None:
    """A run stopped between the pass's decision and its batched write makes the batch write nothing; each run is
    then moved on its own: the stopped one stays stopped and gives back the capacity counted for it. The runs wait
    PENDING first, so the pass that grants them does not step them (nothing else recounts what they hold)."""
    four = "[capacity]\ncpu = 8000\nmemory = 16384\n"  # four TI.S.MEDIUM.POST (2 cores, 4 GB each)
    h = Harness(tmp_path, database_url=database_url, catalogue=four)
    try:
        first = [h.call("CreateTrainingTask", params(f"first-{i}", **IDLE))["Id"] for i in range(4)]
        h.tick(T0 + 1)
        waiting = [h.call("CreateTrainingTask", params(f"waiting-{i}", **IDLE))["Id"] for i in range(4)]
        h.tick(T0 + 2)
        assert {h.detail(t)["Status"] for t in waiting} == {"PENDING"}
        transition_all = h.store.runs.transition_all
        raced: list[str] = []

        def racing(moves: Any) -> bool:
            if len(moves) > 1 and not raced:
                raced.append(waiting[1])
                h.call("StopTrainingTask", {"Id": waiting[1]})  # another request, its own transaction, first
            return transition_all(moves)

        h.store.runs.transition_all = racing  # type: ignore[method-assign]
        for task_id in first:
            h.call("StopTrainingTask", {"Id": task_id})
        for at in range(3, 20):
            h.tick(T0 + at)
            if raced:
                break
        assert raced == [waiting[1]]
        statuses = [h.detail(t)["Status"] for t in waiting]
        assert statuses[1] in ("STOPPING", "STOPPED")
        assert [statuses[i] for i in (0, 2, 3)] == ["STARTING"] * 3
        nums = {task.id: run.num for run, task in h.runner._live.items()}
        assert nums.get(waiting[1]) not in h.runner._held  # what was counted for it was given back
        assert all(nums[t] in h.runner._held for t in (waiting[0], waiting[2], waiting[3]))
    finally:
        h.close()
