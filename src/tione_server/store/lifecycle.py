"""The lifecycle requests: create, start, stop and delete a task, each one transaction over its task and runs.

Each change is a guarded write (an INSERT a constraint refuses; an UPDATE or DELETE `WHERE status IN ...`), so a
concurrent runner step or request makes it match nothing instead of being overwritten. Creates and starts also
serialise per account (quota and names): the first write's lock on SQLite, an advisory lock on PostgreSQL.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from tione_server.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Run, Scope, Task
from tione_server.store import batch
from tione_server.store.batch import Prepared, Refused, Values
from tione_server.store.database import Database
from tione_server.store.keys import judge, key_check
from tione_server.store.runs import latest_num, run_row, runs_where
from tione_server.store.schema import UNSET_TIME, metrics, pods, runs, scopes, task_names, task_tags, tasks
from tione_server.store.scopes import Scopes
from tione_server.store.tasks import Tasks, patch_doc, task_row


class NameTaken(Exception):
    """A non-deleted task of the scope already has this name (spec §4.1 rule 14)."""


class IdTaken(Exception):
    """The generated task or run number is in use (another process, or an imported id): retry."""


class QuotaExceeded(Exception):
    """The account already holds as many active tasks as it may (issue 7 B4)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a state-changing request found: `ok`, or why not (`missing`, or the refusing status)."""

    ok: bool
    status: str = ""
    """The task's status when the change was refused; "" when the task does not exist."""
    task: Task | None = None
    runs: tuple[Run, ...] = ()


_INSERT_TASK = insert(tasks)
_INSERT_TAG = insert(task_tags)
_INSERT_RUN = insert(runs).values({c.name: bindparam(c.name) for c in runs.c if c.name != "seq"})
"""Every column but seq, which a trigger stamps (store/feed.py)."""
_LOCK_ACCOUNT = select(func.pg_advisory_xact_lock(bindparam("k")))
_ACTIVE_RUNS = (
    select(func.count())
    .select_from(runs)
    .where(
        runs.c.scope_id.in_(select(scopes.c.id).where(scopes.c.uin == bindparam("uin"))),
        runs.c.live.is_(True),
        runs.c.status.in_(ACTIVE_STATUSES),
    )
)
_CREATE_CHECKS = select(
    # Tasks of the name without a task_names row: imported ones, and ones created before the table.
    select(tasks.c.num)
    .where(tasks.c.scope_id == bindparam("sid"), tasks.c.name == bindparam("name"), tasks.c.num != bindparam("num"))
    .limit(1)
    .scalar_subquery(),
    _ACTIVE_RUNS.scalar_subquery(),
    key_check(bindparam("key")),
)
"""A create's reads, in one statement: a clash of names, the account's active runs, the signing key's state."""


def _tag_row(num: int, position: int, key: str, value: str) -> dict[str, Any]:
    return {"num": num, "tag_key": key, "tag_value": value, "position": position}


def _account_lock(uin: str) -> dict[str, int]:
    return {"k": zlib.crc32(f"account\0{uin}".encode())}


class Lifecycle:
    """Create, Start, Stop and Delete of a task, over the tables of tasks and runs."""

    def __init__(self, db: Database, scopes: Scopes, tasks: Tasks) -> None:
        self._db = db
        self._scopes = scopes
        self._tasks = tasks
        # The name's row, or nothing when the scope has a task of that name (issue 7 E12: the database's own
        # uniqueness decides, whichever process creates it); a clash of numbers still breaks the constraint.
        self._insert_name = (
            db.upsert(task_names)
            .on_conflict_do_nothing(index_elements=[task_names.c.scope_id, task_names.c.name])
            .returning(task_names.c.num)
        )

    def _lock_account(self, conn: Connection, uin: str) -> None:
        """Serialise the account's creates and starts across PostgreSQL connections, so its active-task count
        and names are read and written as one step. SQLite needs no lock: those transactions write first, and
        the first write holds the database's one write lock until commit."""
        if self._db.dialect == "postgresql":
            conn.execute(_LOCK_ACCOUNT, _account_lock(uin))

    @staticmethod
    def _check_quota(conn: Connection, uin: str, max_active: int) -> None:
        """Raise QuotaExceeded when the account's runs not yet in a terminal state number `max_active` already.

        Runs, not tasks: imported history never runs and holds nothing. Counted from the account's own live runs
        (ix_runs_scope), not over every live run: a create costs the same with 10,000 active tasks (issue 12).
        """
        if int(conn.execute(_ACTIVE_RUNS, {"uin": uin}).scalar_one()) >= max_active:
            raise QuotaExceeded(max_active)

    def create(self, task: Task, run: Run, max_active: int, key: str | None = None) -> None:
        """Store a new task and its first run in one transaction, its statements sent together (store/batch.py:
        one round trip and the commit on PostgreSQL, where one each made a create eight round trips).

        `key`: the SecretId of a cached key that signed the request; the same reads check it is still valid.
        Raises NameTaken when the scope already has a task of that name, QuotaExceeded when the account holds
        `max_active` active tasks, IdTaken on a number clash, KeyWithdrawn when `key` may no longer sign.
        """
        prepared = self._db.prepared
        with self._db.tx() as conn:
            row = task_row(task, self._scopes.creating(conn)(task.scope))
            steps: list[tuple[Prepared, Values]] = []
            if self._db.dialect == "postgresql":
                steps.append((prepared(_LOCK_ACCOUNT), _account_lock(task.scope.uin)))
            # The first write: on SQLite it takes the write lock, so what is read after it is current.
            named = len(steps) + 1
            steps += [
                (prepared(_INSERT_TASK), row),
                (prepared(self._insert_name), {"scope_id": row["scope_id"], "name": task.name, "num": task.num}),
                (
                    prepared(_CREATE_CHECKS),
                    {"sid": row["scope_id"], "name": task.name, "num": task.num, "uin": task.scope.uin, "key": key},
                ),
                (prepared(_INSERT_RUN), {**run_row(run), "scope_id": row["scope_id"]}),
            ]
            if task.tags:
                tags = enumerate(task.tags)
                steps.append((prepared(_INSERT_TAG), [_tag_row(task.num, i, k, v) for i, (k, v) in tags]))
            try:
                done = batch.run(conn, steps)
            except Refused as err:
                raise IdTaken(task.id) from err
            clash, active, key_state = done[named + 1].rows[0]
            if key is not None:
                judge(key_state)
            if clash is not None or not done[named].rows:
                raise NameTaken(task.name)
            if int(active) >= max_active:
                raise QuotaExceeded(max_active)

    def start(self, scope: Scope, task_id: str, run: Run, now: int, patch: dict[str, Any], max_active: int) -> Outcome:
        """Begin a new run of a terminal task (spec §4.4): SUBMITTING, times reset, UpdateTime now.

        Raises QuotaExceeded when the account holds `max_active` active tasks already (issue 7 B4).
        """
        with self._db.tx() as conn:
            self._lock_account(conn, scope.uin)
            task = self._tasks.find(conn, scope, task_id)
            if task is None:
                return Outcome(ok=False)
            res = conn.execute(
                update(tasks)
                .where(tasks.c.num == task.num, tasks.c.status.in_(TERMINAL_STATUSES))
                .values(
                    status=run.status,
                    charge_status=run.charge_status,
                    start_time=UNSET_TIME,
                    end_time=UNSET_TIME,
                    update_time=now,
                )
            )
            if res.rowcount != 1:
                return Outcome(ok=False, status=task.status, task=task)
            self._check_quota(conn, scope.uin, max_active)  # after the write: see create
            scope_id = select(tasks.c.scope_id).where(tasks.c.num == task.num).scalar_subquery()
            conn.execute(insert(runs).values(**run_row(run), scope_id=scope_id))
            patch_doc(conn, task.num, patch)
        return Outcome(ok=True, task=task)

    def request_stop(self, scope: Scope, task_id: str, now: float, patch: dict[str, Any]) -> Outcome:
        """Mark the latest run STOPPING if it is PENDING, STARTING or RUNNING (spec §4.5)."""
        with self._db.tx() as conn:
            task = self._tasks.find(conn, scope, task_id)
            if task is None:
                return Outcome(ok=False)
            latest = latest_num(conn, task.num)
            stoppable = ("PENDING", "STARTING", "RUNNING")
            if latest is None or task.status not in stoppable:
                return Outcome(ok=False, status=task.status, task=task)
            res = conn.execute(
                update(runs)
                .where(runs.c.num == latest, runs.c.status.in_(stoppable))
                .values(status="STOPPING", stop_requested_at=now, stop_reason="User Stop", message="")
            )
            if res.rowcount != 1:  # the runner moved it on meanwhile: refuse as that state would
                current = conn.execute(select(runs.c.status).where(runs.c.num == latest)).scalar_one()
                return Outcome(ok=False, status=current, task=task)
            values: dict[str, Any] = {"status": "STOPPING", "update_time": int(now)}
            conn.execute(update(tasks).where(tasks.c.num == task.num).values(**values))
            patch_doc(conn, task.num, patch | {"Message": ""})
        return Outcome(ok=True, task=task)

    def touch_stop(self, scope: Scope, task_id: str, now: int, patch: dict[str, Any]) -> None:
        """A repeated Stop of a STOPPING task: a user operation, so UpdateTime and operator move (spec §6.4)."""
        with self._db.tx() as conn:
            task = self._tasks.find(conn, scope, task_id)
            if task is not None:
                conn.execute(update(tasks).where(tasks.c.num == task.num).values(update_time=now))
                patch_doc(conn, task.num, patch)

    def delete(self, scope: Scope, task_id: str) -> Outcome:
        """Remove a terminal task with its runs, pods and metrics; the runs are returned for file cleanup."""
        with self._db.tx() as conn:
            task = self._tasks.find(conn, scope, task_id)
            if task is None:
                return Outcome(ok=False)
            found = runs_where(conn, runs.c.task_num == task.num)
            # The guarded delete is the first write: a concurrent Start makes it match nothing.
            res = conn.execute(delete(tasks).where(tasks.c.num == task.num, tasks.c.status.not_in(ACTIVE_STATUSES)))
            if res.rowcount != 1:
                current = conn.execute(select(tasks.c.status).where(tasks.c.num == task.num)).scalar()
                return Outcome(ok=False, status=current or "", task=task)
            # Foreign keys cascade; explicit deletes keep a database without them clean too.
            nums = [r.num for r in found]
            if nums:
                conn.execute(delete(pods).where(pods.c.run_num.in_(nums)))
            conn.execute(delete(runs).where(runs.c.task_num == task.num))
            conn.execute(delete(metrics).where(metrics.c.task_num == task.num))
            conn.execute(delete(task_tags).where(task_tags.c.num == task.num))
            conn.execute(delete(task_names).where(task_names.c.num == task.num))
        return Outcome(ok=True, task=task, runs=tuple(found))
