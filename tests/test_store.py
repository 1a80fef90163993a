"""The Store contract, the same on every backend (SQLite file; PostgreSQL): schema, tasks, keys, scopes.

Each test gets a fresh, empty database (`database_url`) and talks to `Store` directly: what one backend
answers, the other must answer identically.
"""

from __future__ import annotations

import json
import string
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from tione_server.executors.base import RunSpec
from tione_server.executors.local import LocalExecutor, handle, proc_stat
from tione_server.models import FieldFilter, Pod, Run, Scope, TagCondition, Task, TaskQuery
from tione_server.store import Store
from tione_server.store.database import SchemaTooNew
from tione_server.store.lifecycle import QuotaExceeded
from tione_server.store.schema import SCHEMA_VERSION, meta
from tione_server.store.tasks import TASK_COLUMNS

A = Scope(uin="100000000001", region="ap-guangzhou", project="")
T = 1748427513  # 2025-05-28T18:18:33+08


def task(
    num: int,
    scope: Scope = A,
    *,
    name: str = "task",
    status: str = "SUCCEED",
    group: str = "",
    create: int = 0,
    update: int = 0,
    start: int | None = None,
    end: int | None = None,
    tags: list[tuple[str, str]] | None = None,
) -> Task:
    """A stored task with the given id number."""
    return Task(
        id=f"train-{num}",
        scope=scope,
        app_id="1250000000",
        name=name,
        creator="200000000001",
        charge_type="POSTPAID_BY_HOUR",
        charge_status="NOT_BILLING",
        status=status,
        resource_group_id=group,
        create_time=T + create,
        update_time=T + update,
        start_time=None if start is None else T + start,
        end_time=None if end is None else T + end,
        tags=tags or [],
        doc={"FrameworkName": "PYTORCH", "Envs": [{"Name": "A", "Value": "é中"}], "RuntimeInSeconds": 3602},
    )


def ids(store: Store, scope: Scope = A, query: TaskQuery | None = None) -> tuple[list[str], int]:
    """(ids of one page, total) for a query (default: everything, newest update first)."""
    found, total = store.pages.tasks(scope, query or TaskQuery(limit=50))
    return [t.id for t in found], total


# -- schema ---------------------------------------------------------------------------------------


def test_store_schema_is_created_once_and_versioned(database_url: str) -> None:
    first = Store(database_url)
    assert first.db.schema_version() == SCHEMA_VERSION
    first.tasks.put([task(1)])
    key = first.keys.create("100000000001", "100000000001", "100000000001")
    first.close()
    again = Store(database_url)  # a second start: nothing re-created, nothing lost
    try:
        assert again.db.schema_version() == SCHEMA_VERSION
        assert again.tasks.get(A, "train-1") == task(1)
        assert again.keys.get(key.secret_id) == key
        with again.db.engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(meta).where(meta.c.key == "schema_version"))
            assert rows.scalar_one() == 1
    finally:
        again.close()


def test_store_refuses_a_newer_schema(database_url: str) -> None:
    first = Store(database_url)
    with first.db.engine.begin() as conn:
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION + 1)))
    first.close()
    with pytest.raises(SchemaTooNew):
        Store(database_url)


def test_store_upgrade_from_version_4_gives_tasks_revisions(database_url: str) -> None:
    store = Store(database_url)
    store.tasks.put([task(1), task(2)])
    with store.db.engine.begin() as conn:  # make it a version-4 database: no rev column, no trigger
        conn.execute(
            text("DROP TRIGGER IF EXISTS tione_tasks_rev" + (" ON tasks" if store.db.dialect == "postgresql" else ""))
        )
        conn.execute(text("ALTER TABLE tasks DROP COLUMN rev"))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="4"))
    store.close()
    store = Store(database_url)
    try:
        assert store.db.schema_version() == SCHEMA_VERSION
        entries, total = store.pages.read(A, TaskQuery(limit=50))
        assert total == 2
        assert {stamp for _, stamp, _, _ in entries} == {0}
        with store.db.tx() as conn:  # any write gives the row a new revision, through the trigger
            conn.execute(text("UPDATE tasks SET name = 'renamed' WHERE num = 1"))
        after = {num: (stamp, row) for num, stamp, row, _ in store.pages.read(A, TaskQuery(limit=50))[0]}
        assert after[1][0] != 0
        assert after[2][0] == 0
        assert after[1][1] is not None
        assert after[1][1][TASK_COLUMNS.index("name")] == "renamed"
    finally:
        store.close()


def test_store_upgrade_from_version_3_gives_live_pods_a_handle(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url)
    run = Run(num=10, id="train-1-aaaaaaaaaaaa", task_num=1, task_id="train-1", status="RUNNING",
              charge_status="BILLING", operation="CREATE", requested_at=T)  # fmt: skip
    store.lifecycle.create(task(1, status="RUNNING"), run, max_active=10)
    live = Pod(name=f"{run.id}-worker-0", role="WORKER", index=0, status="RUNNING", launched_at=T)
    done = Pod(name=f"{run.id}-worker-1", role="WORKER", index=1, status="SUCCEEDED", launched_at=T, exit_code=0)
    assert store.runs.transition(run, ["RUNNING"], pods_insert=[live, done], status="RUNNING")
    sleeper = subprocess.Popen(["sleep", "30"])  # the live pod's process, running through the upgrade
    try:
        stat = proc_stat(sleeper.pid)
        assert stat is not None
        # Make it a version-3 database: process ids in three columns, no handle.
        with store.db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE pods DROP COLUMN handle"))
            for column, kind in (("pid", "INTEGER"), ("pgid", "INTEGER"), ("proc_start", "BIGINT")):
                conn.execute(text(f"ALTER TABLE pods ADD COLUMN {column} {kind}"))
            conn.execute(
                text("UPDATE pods SET pid = :pid, pgid = :pid, proc_start = :start"),
                {"pid": sleeper.pid, "start": stat[1]},
            )
            conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="3"))
        store.close()
        store = Store(database_url)
        assert store.db.schema_version() == SCHEMA_VERSION
        upgraded = store.runs.get(run.id)
        assert upgraded is not None
        assert json.loads(upgraded.pods[0].handle) == json.loads(handle(sleeper.pid, stat[1]))
        assert upgraded.pods[1].handle == ""  # an ended pod is never observed again: it needs none
        # The local executor re-attaches the live pod from the handle the upgrade gave it.
        executor = LocalExecutor(data_dir=tmp_path / "data", cos_root=tmp_path / "cos")
        spec = RunSpec(run_id=run.id, task_id="train-1", mode="", pods=())
        pod_dir = executor.files.pod_dir(run.id, live.name)
        pod_dir.mkdir(parents=True)
        (pod_dir / "pid").write_text(json.dumps({"pid": sleeper.pid, "child": 0, "time": T}))
        assert executor.observe(spec, upgraded, T)[live.name].phase == "RUNNING"
        sleeper.kill()
        sleeper.wait()
        assert executor.observe(spec, upgraded, T)[live.name].phase == "LOST"
        # Pods are written and read as before, the old columns left aside.
        upgraded.pods[0].status, upgraded.pods[0].handle = "FAILED", "changed"
        store.runs.save_pods(upgraded, upgraded.pods[:1])
        again = store.runs.get(run.id)
        assert again is not None
        assert again.pods == upgraded.pods
    finally:
        sleeper.kill()
        sleeper.wait()
        store.close()


def test_store_upgrade_from_version_4_adds_the_runs_change_feed(database_url: str) -> None:
    """Schema 5 (issue 12 target 5): an older database gains runs.seq and its trigger, and the feed reads the runs
    written from then on; and runs.scope_id, filled, which the quota counts."""
    store = Store(database_url)
    run = Run(num=10, id="train-1-aaaaaaaaaaaa", task_num=1, task_id="train-1", status="RUNNING",
              charge_status="BILLING", operation="CREATE", requested_at=T)  # fmt: skip
    store.lifecycle.create(task(1, status="RUNNING"), run, max_active=10)
    with store.db.engine.begin() as conn:  # make it a version-4 database: no seq, no trigger, no counter
        if store.db.dialect == "postgresql":
            conn.execute(text("DROP TRIGGER tione_runs_seq ON runs"))
        else:
            conn.execute(text("DROP TRIGGER tione_runs_seq_ai"))
            conn.execute(text("DROP TRIGGER tione_runs_seq_au"))
            conn.execute(text("DELETE FROM meta WHERE key = 'runs_seq'"))
        conn.execute(text("DROP INDEX ix_runs_seq"))
        conn.execute(text("DROP INDEX ix_runs_scope"))
        conn.execute(text("ALTER TABLE runs DROP COLUMN seq"))
        conn.execute(text("ALTER TABLE runs DROP COLUMN scope_id"))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="4"))
    store.close()
    store = Store(database_url)
    try:
        assert store.db.schema_version() == SCHEMA_VERSION == 5
        with store.db.engine.connect() as conn:  # filled from the task: the account's quota counts the run
            assert (
                conn.execute(text("SELECT scope_id FROM runs")).scalar_one()
                == conn.execute(text("SELECT scope_id FROM tasks WHERE num = 1")).scalar_one()
            )
        with pytest.raises(QuotaExceeded):
            store.lifecycle.create(task(2, name="second"), Run(num=20, id="train-2-bbbbbbbbbbbb", task_num=2,
                task_id="train-2", status="SUBMITTING", charge_status="NOT_BILLING", operation="CREATE",
                requested_at=T), max_active=1)  # fmt: skip
        cursor = store.runs.cursor()
        assert store.runs.changed(cursor, 10)[0] == []
        found = store.runs.get(run.id)
        assert found is not None
        store.runs.update(found, message="moved")
        changed, _ = store.runs.changed(cursor, 10)
        assert [(r.id, r.message) for r, _ in changed] == [(run.id, "moved")]
    finally:
        store.close()


def test_store_secret_is_made_once_and_shared(database_url: str) -> None:
    """Issue 7 C9: the key sealing log Contexts is the same for every process on the database, even when
    several make it at the same moment, and survives a restart."""
    stores = [Store(database_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            keys = list(pool.map(lambda s: s.secrets.get("log_context"), stores))
        assert len(keys[0]) == 32
        assert keys == [keys[0]] * len(stores)
        assert stores[0].secrets.get("other") not in (keys[0], b"")
    finally:
        for s in stores:
            s.close()
    again = Store(database_url)
    try:
        assert again.secrets.get("log_context") == keys[0]
    finally:
        again.close()


# -- tasks ----------------------------------------------------------------------------------------


def test_store_task_round_trip(store: Store) -> None:
    full = task(1329791605108055040, name="训练-Éé%_\\", start=100, end=3702, tags=[("team", "ml"), ("a", "")])
    bare = task(7, name="bare")
    assert store.tasks.put([full, bare]) == 2
    assert store.tasks.get(A, full.id) == full
    assert store.tasks.get(A, bare.id) == bare
    page, total = store.pages.tasks(A, TaskQuery(limit=50))
    assert (page, total) == ([full, bare], 2)  # equal update times: the larger id first
    assert store.tasks.get(A, "train-8") is None
    assert store.tasks.get(A, "not-an-id") is None


def test_store_reput_replaces_the_task_and_its_tags(store: Store) -> None:
    store.tasks.put([task(1, name="old", tags=[("k1", "v1"), ("k2", "v2")]), task(2, tags=[("k1", "v1")])])
    new = task(1, name="new", status="FAILED", tags=[("k3", "v3")])
    store.tasks.put([new])
    assert store.tasks.get(A, "train-1") == new
    assert ids(store) == (["train-2", "train-1"], 2)
    with_k1 = TaskQuery(tags=(TagCondition("k1", ()),), limit=50)
    assert ids(store, query=with_k1) == (["train-2"], 1)
    assert ids(store, query=TaskQuery(tags=(TagCondition("k3", ("v3",)),))) == (["train-1"], 1)


def test_store_repeated_id_in_one_put_last_wins_across_batches(store: Store) -> None:
    seen: list[int] = []
    many = [task(n) for n in range(1, 2101)] + [task(1, name="last")]
    store.tasks.put(many, progress=seen.append)
    assert sum(seen) == len(many)
    assert len(seen) >= 2  # progress is reported batch by batch
    got = store.tasks.get(A, "train-1")
    assert got is not None
    assert got.name == "last"
    assert ids(store)[1] == 2100


def test_store_failed_put_leaves_no_trace(store: Store, database_url: str) -> None:
    a = Scope("100000000001", "ap-guangzhou", "ws-a")
    b = Scope("100000000001", "ap-guangzhou", "ws-b")

    def items() -> Iterator[Task]:
        yield from (task(n, a) for n in range(1, 2502))  # past the first batch: some rows are written
        raise ValueError("item 2501 is bad")

    with pytest.raises(ValueError, match="item 2501"):
        store.tasks.put(items())
    assert store.tasks.get(a, "train-1") is None
    # The rolled-back scope must not linger, in the database or in this Store's memory.
    store.tasks.put([task(3000, b)])
    store.tasks.put([task(4000, a)])
    assert ids(store, b) == (["train-3000"], 1)
    assert ids(store, a) == (["train-4000"], 1)
    fresh = Store(database_url)
    try:
        assert ids(fresh, b) == (["train-3000"], 1)
        assert ids(fresh, a) == (["train-4000"], 1)
    finally:
        fresh.close()


# -- keys -----------------------------------------------------------------------------------------


def test_store_keys_create_get_list_revoke(store: Store) -> None:
    assert store.keys.list() == []
    k1 = store.keys.create("100000000001", "1250000000", "100000000001")
    k2 = store.keys.create("100000000002", "100000000002", "200000000002")
    assert k1.secret_id.startswith("AKID")
    assert len(k1.secret_id) == 36
    assert set(k1.secret_id[4:] + k1.secret_key) <= set(string.ascii_letters + string.digits)
    assert len(k1.secret_key) == 32
    assert k1.secret_id != k2.secret_id
    assert (k1.uin, k1.app_id, k1.sub_uin, k1.revoked) == ("100000000001", "1250000000", "100000000001", False)
    assert store.keys.get(k1.secret_id) == k1
    assert store.keys.get("AKIDunknown") is None
    assert {k.secret_id for k in store.keys.list()} == {k1.secret_id, k2.secret_id}
    assert store.keys.count_active() == 2
    assert store.keys.revoke(k1.secret_id) is True
    assert store.keys.revoke(k1.secret_id) is False  # already revoked
    assert store.keys.revoke("AKIDunknown") is False
    revoked = store.keys.get(k1.secret_id)
    assert revoked is not None
    assert revoked.revoked is True
    assert revoked.secret_key == k1.secret_key
    assert store.keys.count_active() == 1


# -- scopes ---------------------------------------------------------------------------------------


def test_store_scopes_isolate(store: Store) -> None:
    scopes = [
        A,
        Scope("100000000002", A.region, A.project),
        Scope(A.uin, "ap-shanghai", A.project),
        Scope(A.uin, A.region, "ws-1"),
    ]
    store.tasks.put([task(10 + i, s) for i, s in enumerate(scopes)])
    for i, s in enumerate(scopes):
        assert ids(store, s) == ([f"train-{10 + i}"], 1)
        for j, other in enumerate(scopes):
            found = store.tasks.get(other, f"train-{10 + i}")
            assert (found is not None) == (i == j)
    assert ids(store, Scope("100000000003", A.region, A.project)) == ([], 0)
    assert store.tasks.get(Scope("100000000003", A.region, A.project), "train-10") is None


# -- queries --------------------------------------------------------------------------------------


def _name(*values: str, fuzzy: bool = True, negative: bool = False) -> TaskQuery:
    return TaskQuery(filters=(FieldFilter("name", values, fuzzy, negative),), limit=50)


def test_store_query_text_matching(store: Store) -> None:
    names = ["Éclair", "éclair", "100%", "a_b", "axb", "c:\\d", "训练"]
    store.tasks.put([task(i + 1, name=n) for i, n in enumerate(names)])

    def hits(query: TaskQuery) -> set[str]:
        found, total = store.pages.tasks(A, query)
        assert total == len(found)
        return {t.name for t in found}

    assert hits(_name("É")) == {"Éclair"}
    assert hits(_name("ÉCLAIR")) == {"Éclair"}
    assert hits(_name("%")) == {"100%"}
    assert hits(_name("_")) == {"a_b"}
    assert hits(_name("\\")) == {"c:\\d"}
    assert hits(_name("训")) == {"训练"}
    assert hits(_name("", "zz")) == set(names)
    assert hits(_name("a_b", fuzzy=False)) == {"a_b"}
    assert hits(_name("A_B", fuzzy=False)) == set()
    # No stored text holds NUL, so a value with NUL matches nothing, on both backends.
    assert hits(_name("\x00")) == set()
    assert hits(_name("\x00", "1")) == {"100%"}
    assert hits(_name("a\x00", fuzzy=False)) == set()
    assert hits(_name("\x00", negative=True)) == set(names)
    assert hits(TaskQuery(tags=(TagCondition("k\x00", ()),), limit=50)) == set()


def test_store_query_order_and_paging(store: Store) -> None:
    store.tasks.put(
        [
            task(9, start=None, update=5),
            task(10, start=3, update=5),
            task(100, start=None, update=5),
            task(11, start=3, update=1),
        ]
    )
    assert ids(store) == (["train-100", "train-10", "train-9", "train-11"], 4)
    by_start = TaskQuery(order_by="start_time", descending=False, limit=50)
    assert ids(store, query=by_start) == (["train-9", "train-100", "train-10", "train-11"], 4)
    assert ids(store, query=TaskQuery(offset=1, limit=2)) == (["train-10", "train-9"], 4)
    assert ids(store, query=TaskQuery(offset=4, limit=2)) == ([], 4)
    assert ids(store, query=TaskQuery(offset=2**63 - 1, limit=2)) == ([], 4)
