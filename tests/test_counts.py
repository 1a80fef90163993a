"""TotalCount stays exact however tasks change: the trigger-kept counts and the gen-checked count cache.

Every test compares what the store answers with a plain count of the task rows, on both backends,
after imports, re-imports, deletes, status changes, concurrent writers and a schema upgrade.
"""

from __future__ import annotations

import random
import threading

from sqlalchemy import delete, func, select, text, update

from tione_server.models import FieldFilter, Scope, TagCondition, Task, TaskQuery
from tione_server.store import Store
from tione_server.store import query as q
from tione_server.store.schema import COUNTED, SCHEMA_VERSION, count_deltas, meta, task_counts, task_tags, tasks

A = Scope(uin="100000000001", region="ap-guangzhou", project="")
B = Scope(uin="100000000002", region="ap-guangzhou", project="")
STATUSES = ("SUCCEED", "FAILED", "RUNNING", "STOPPED", "PENDING")
CREATORS = ("200000000001", "200000000002", "200000000003")


def make_task(num: int, rng: random.Random, scope: Scope = A) -> Task:
    """A task with random filterable columns and tags."""
    return Task(
        id=f"train-{num}",
        scope=scope,
        app_id="1250000000",
        name=f"{rng.choice(['resnet', 'bert', 'gpt'])}-{rng.randrange(100)}",
        creator=rng.choice(CREATORS),
        charge_type=rng.choice(("PREPAID", "POSTPAID_BY_HOUR")),
        charge_status=rng.choice(("NOT_BILLING", "BILLING")),
        status=rng.choice(STATUSES),
        resource_group_id=rng.choice(("", "ersg-aaaaaaaa")),
        create_time=1_700_000_000 + num,
        update_time=1_700_000_000 + num,
        tags=[("team", rng.choice(("cv", "nlp")))] if rng.random() < 0.5 else [],
    )


def scanned_counts(store: Store) -> dict[tuple[object, ...], int]:
    """Per-combination counts computed from the task rows themselves."""
    cols = [tasks.c.scope_id, *(tasks.c[c] for c in COUNTED)]
    with store.db.engine.connect() as conn:
        rows = conn.execute(select(*cols, func.count()).group_by(*cols)).all()
    return {tuple(r[:-1]): int(r[-1]) for r in rows}


def kept_counts(store: Store) -> dict[tuple[object, ...], int]:
    """What the kept counts say, folded and unfolded together, zero entries left out."""
    found: dict[tuple[object, ...], int] = {}
    with store.db.engine.connect() as conn:
        for table, value in ((task_counts, "n"), (count_deltas, "d")):
            cols = [table.c.scope_id, *(table.c[c] for c in COUNTED)]
            for r in conn.execute(select(*cols, table.c[value])):
                found[tuple(r[:-1])] = found.get(tuple(r[:-1]), 0) + int(r[-1])
    return {k: v for k, v in found.items() if v}


def queries() -> list[TaskQuery]:
    """Countable and non-countable queries over every kind of filter."""
    return [
        TaskQuery(),
        TaskQuery(filters=(FieldFilter("status", ("SUCCEED",), fuzzy=False, negative=False),)),
        TaskQuery(filters=(FieldFilter("status", ("RUN",), fuzzy=True, negative=True),)),
        TaskQuery(
            filters=(
                FieldFilter("creator", CREATORS[:2], fuzzy=False, negative=False),
                FieldFilter("charge_type", ("PREPAID",), fuzzy=False, negative=True),
            )
        ),
        TaskQuery(filters=(FieldFilter("name", ("resnet",), fuzzy=True, negative=False),)),
        TaskQuery(
            filters=(
                FieldFilter("name", ("be",), fuzzy=True, negative=False),
                FieldFilter("status", ("FAILED", "RUNNING"), fuzzy=False, negative=False),
            )
        ),
        TaskQuery(tags=(TagCondition("team", ("nlp",)),)),
        TaskQuery(tags=(TagCondition("team", ()),)),
    ]


def assert_exact(store: Store) -> None:
    """Kept counts equal scanned counts, and every query's TotalCount equals a plain count of its rows."""
    assert kept_counts(store) == scanned_counts(store)
    for scope in (A, B):
        for query in queries():
            _, total = store.pages.tasks(scope, query)
            everything = TaskQuery(filters=query.filters, tags=query.tags, limit=10**9)
            with store.db.engine.connect() as conn:
                sid = store.scopes.id(conn, scope)
            if sid is None:
                assert total == 0
                continue
            with store.db.engine.connect() as conn:
                scanned = conn.execute(q.count_by_scan(sid, everything, store.db.dialect)).scalar_one()
            assert total == scanned, query


def test_counts_follow_imports_reimports_and_deletes(store: Store) -> None:
    rng = random.Random(1)
    store.tasks.put(make_task(n, rng, A if n % 3 else B) for n in range(1, 301))
    assert_exact(store)
    # Re-importing ids replaces them (delete + insert): counts move with them. An Id stays in its scope (import
    # refuses to move one, issue 7 E13), so a move across scopes is a direct update here.
    store.tasks.put(make_task(n, rng, A if n % 3 else B) for n in range(1, 151))
    assert_exact(store)
    with store.db.engine.begin() as conn:
        moved = select(tasks.c.scope_id).where(tasks.c.num == 3).scalar_subquery()
        conn.execute(update(tasks).where(tasks.c.num % 3 != 0, tasks.c.num < 100).values(scope_id=moved))
    assert_exact(store)
    with store.db.engine.begin() as conn:
        conn.execute(delete(task_tags).where(task_tags.c.num < 50))
        conn.execute(delete(tasks).where(tasks.c.num < 50))
    assert_exact(store)


def test_counts_follow_status_changes_and_cached_counts_expire(store: Store) -> None:
    rng = random.Random(2)
    store.tasks.put(make_task(n, rng) for n in range(1, 201))
    assert_exact(store)  # fills the cache for the non-countable queries
    with store.db.engine.begin() as conn:
        conn.execute(update(tasks).where(tasks.c.num % 2 == 0).values(status="STOPPING", charge_status="BILLING"))
        conn.execute(update(tasks).where(tasks.c.num % 5 == 0).values(name="resnet-moved"))
    assert_exact(store)
    store.tasks.fold_counts()
    assert_exact(store)
    # A write that touches no filtered column leaves the counts (and the cached ones) valid.
    with store.db.engine.begin() as conn:
        conn.execute(update(tasks).values(update_time=tasks.c.update_time + 1))
    assert_exact(store)


def test_counts_stay_exact_under_concurrent_writers(store: Store) -> None:
    rng = random.Random(3)
    store.tasks.put(make_task(n, rng) for n in range(1, 201))
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        local = random.Random(seed)
        try:
            for _ in range(15):
                nums = local.sample(range(1, 260), 5)
                if local.random() < 0.5:
                    # Each writer re-imports its own ids (concurrent imports of one id are not supported).
                    own = [1000 * (seed + 1) + n for n in nums]
                    store.tasks.put(make_task(n, local, A if n % 2 else B) for n in own)
                else:
                    with store.db.engine.begin() as conn:
                        conn.execute(update(tasks).where(tasks.c.num.in_(nums)).values(status=local.choice(STATUSES)))
        except BaseException as err:  # reported below, on the test's own thread
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert_exact(store)


def test_counts_are_rebuilt_when_upgrading_a_version_2_database(database_url: str) -> None:
    store = Store(database_url)
    rng = random.Random(4)
    store.tasks.put(make_task(n, rng, A if n % 2 else B) for n in range(1, 101))
    # Make it look like a version-2 database: no counts, no triggers, no gen column.
    with store.db.engine.begin() as conn:
        if store.db.dialect == "postgresql":
            for trig in ("tione_tasks_ins", "tione_tasks_del", "tione_tasks_upd"):
                conn.execute(text(f"DROP TRIGGER {trig} ON tasks"))
        else:
            for trig in ("tione_tasks_ai", "tione_tasks_ad", "tione_tasks_au"):
                conn.execute(text(f"DROP TRIGGER {trig}"))
        conn.execute(delete(task_counts))
        conn.execute(text("ALTER TABLE scopes DROP COLUMN gen"))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="2"))
    store.close()
    upgraded = Store(database_url)
    try:
        assert upgraded.db.schema_version() == SCHEMA_VERSION  # version 3 and every later step
        assert_exact(upgraded)
        upgraded.tasks.put(make_task(n, rng, A if n % 2 else B) for n in range(90, 130))
        assert_exact(upgraded)
    finally:
        upgraded.close()
