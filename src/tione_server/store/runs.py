"""Runs, pods and metrics of executed tasks: the Store methods the lifecycle actions and the runner use.

A mixin of `Store`. Every state change is a compare-and-set that writes first (`UPDATE ... WHERE status IN`),
so API handlers and the runner never overwrite each other, and a SQLite transaction takes its write lock at
its first statement. The task row mirrors the latest run (status, charge status, times and, in `doc`,
FailureReason/Message/RuntimeInSeconds): the list filters and sorts on those columns (spec §5).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from tione_server.models import (
    ACTIVE_STATUSES,
    HOLDING_STATUSES,
    TERMINAL_STATUSES,
    Pod,
    Run,
    Scope,
    Task,
)
from tione_server.store.schema import (
    UNSET_TIME,
    meta,
    metrics,
    pods,
    runs,
    scopes,
    task_names,
    task_tags,
    tasks,
)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


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


def _time(value: int | None) -> int:
    return UNSET_TIME if value is None else value


def _untime(value: int) -> int | None:
    return None if value == UNSET_TIME else value


def run_row(run: Run) -> dict[str, Any]:
    """The `runs` row of a Run (pods are rows of their own)."""
    return {
        "num": run.num,
        "id": run.id,
        "task_num": run.task_num,
        "status": run.status,
        "charge_status": run.charge_status,
        "operation": run.operation,
        "requested_at": run.requested_at,
        "pool": run.pool,
        "cpu": run.cpu,
        "memory": run.memory,
        "gpu": run.gpu,
        "failure_reason": run.failure_reason,
        "message": run.message,
        "start_time": _time(run.start_time),
        "end_time": _time(run.end_time),
        "stop_requested_at": run.stop_requested_at,
        "stop_reason": run.stop_reason,
        "term_sent_at": run.term_sent_at,
        "kill_sent": run.kill_sent,
        "callback": run.callback,
        "live": True,
    }


def pod_row(run_num: int, pod: Pod) -> dict[str, Any]:
    """The `pods` row of a Pod."""
    return {
        "run_num": run_num,
        "name": pod.name,
        "role": pod.role,
        "position": pod.index,
        "cpu": pod.cpu,
        "memory": pod.memory,
        "gpu": pod.gpu,
        "status": pod.status,
        "node": pod.node,
        "handle": pod.handle,
        "launched_at": pod.launched_at,
        "start_time": pod.start_time,
        "end_time": pod.end_time,
        "exit_code": pod.exit_code,
        "ip": pod.ip,
    }


def _pod(row: Any) -> Pod:
    m = row._mapping
    return Pod(
        name=m["name"],
        role=m["role"],
        index=m["position"],
        cpu=m["cpu"],
        memory=m["memory"],
        gpu=m["gpu"],
        status=m["status"],
        node=m["node"],
        handle=m["handle"],
        launched_at=m["launched_at"],
        start_time=m["start_time"],
        end_time=m["end_time"],
        exit_code=m["exit_code"],
        ip=m["ip"],
    )


def _run(row: Any, task_id: str) -> Run:
    m = row._mapping
    return Run(
        num=m["num"],
        id=m["id"],
        task_num=m["task_num"],
        task_id=task_id,
        status=m["status"],
        charge_status=m["charge_status"],
        operation=m["operation"],
        requested_at=m["requested_at"],
        pool=m["pool"],
        cpu=m["cpu"],
        memory=m["memory"],
        gpu=m["gpu"],
        failure_reason=m["failure_reason"],
        message=m["message"],
        start_time=_untime(m["start_time"]),
        end_time=_untime(m["end_time"]),
        stop_requested_at=m["stop_requested_at"],
        stop_reason=m["stop_reason"],
        term_sent_at=m["term_sent_at"],
        kill_sent=bool(m["kill_sent"]),
        callback=m["callback"],
    )


_RUN_COLUMNS = (*runs.c, tasks.c.id.label("task_id"))
_SAVE_PODS = (
    update(pods)
    .where(pods.c.run_num == bindparam("_run_num"), pods.c.name == bindparam("_name"))
    .values({c.name: bindparam(f"_{c.name}") for c in pods.c if c.name not in ("run_num", "name")})
)
"""UPDATE of one pod's row by (run, name), bound per pod; parameters are prefixed so they never clash with columns."""


class RunStore:
    """Runs, pods and metrics; mixed into `Store`, whose connection helpers it uses."""

    engine: Engine
    dialect: str

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _scope_id(self, conn: Connection, scope: Scope, *, create: bool) -> int | None:
        raise NotImplementedError

    def _task_row(self, conn: Connection, t: Task) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _task(row: Row[Any], scope: Scope) -> Task:
        raise NotImplementedError

    def _task_of(self, row: Any, scope: Scope) -> Task:
        return self._task(row, scope)

    # -- helpers ----------------------------------------------------------------------------------

    def _lock_account(self, conn: Connection, uin: str) -> None:
        """Serialise the account's creates and starts across PostgreSQL connections, so its active-task count
        and names are read and written as one step. SQLite needs no lock: those transactions write first, and
        the first write holds the database's one write lock until commit."""
        if self.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(f"account\0{uin}".encode())})

    @staticmethod
    def _check_quota(conn: Connection, uin: str, max_active: int) -> None:
        """Raise QuotaExceeded when the account's runs not yet in a terminal state number `max_active` already.

        Runs, not tasks: imported history never runs and holds nothing. Live runs are few (ix_runs_live).
        """
        stmt = (
            select(func.count())
            .select_from(runs)
            .join(tasks, tasks.c.num == runs.c.task_num)
            .join(scopes, scopes.c.id == tasks.c.scope_id)
            .where(runs.c.live.is_(True), runs.c.status.in_(ACTIVE_STATUSES), scopes.c.uin == uin)
        )
        if int(conn.execute(stmt).scalar_one()) >= max_active:
            raise QuotaExceeded(max_active)

    @staticmethod
    def _patch_doc(conn: Connection, task_num: int, patch: dict[str, Any]) -> None:
        raw = conn.execute(select(tasks.c.doc).where(tasks.c.num == task_num)).scalar()
        if raw is None:
            return
        doc = _decode(raw)
        doc.update(patch)
        conn.execute(update(tasks).where(tasks.c.num == task_num).values(doc=_encode(doc).decode()))

    def _task_in_scope(self, conn: Connection, scope: Scope, task_id: str) -> Task | None:
        sid = self._scope_id(conn, scope, create=False)
        if sid is None:
            return None
        row = conn.execute(select(*tasks.c).where(tasks.c.id == task_id, tasks.c.scope_id == sid)).first()
        return None if row is None else self._task(row, scope)

    @staticmethod
    def _load_pods(conn: Connection, run_nums: Sequence[int]) -> dict[int, list[Pod]]:
        found: dict[int, list[Pod]] = {n: [] for n in run_nums}
        if run_nums:
            rows = conn.execute(
                select(*pods.c).where(pods.c.run_num.in_(run_nums)).order_by(pods.c.run_num, pods.c.position)
            )
            for r in rows:
                found[r._mapping["run_num"]].append(_pod(r))
        return found

    def _runs_where(self, conn: Connection, *conds: Any) -> list[Run]:
        stmt = select(*_RUN_COLUMNS).join(tasks, tasks.c.num == runs.c.task_num).where(*conds).order_by(runs.c.num)
        found = [_run(r, r._mapping["task_id"]) for r in conn.execute(stmt)]
        pods_of = self._load_pods(conn, [r.num for r in found])
        for r in found:
            r.pods = pods_of[r.num]
        return found

    # -- lifecycle requests -----------------------------------------------------------------------

    def create_task(self, task: Task, run: Run, max_active: int) -> None:
        """Store a new task and its first run in one transaction.

        Raises NameTaken when the scope already has a task of that name, QuotaExceeded when the account holds
        `max_active` active tasks, IdTaken on a number clash.
        """
        with self._tx() as conn:
            self._lock_account(conn, task.scope.uin)
            row = self._task_row(conn, task)
            try:  # the first write: on SQLite it takes the write lock, so what is read below is current
                conn.execute(insert(tasks).values(**row))
            except IntegrityError as err:
                raise IdTaken(task.id) from err
            try:  # issue 7 E12: the database refuses a second created task of the name
                conn.execute(insert(task_names).values(scope_id=row["scope_id"], name=task.name, num=task.num))
            except IntegrityError:
                raise NameTaken(task.name) from None
            # Tasks of the name without a task_names row: imported ones, and ones created before the table.
            clash = conn.execute(
                select(tasks.c.num)
                .where(tasks.c.scope_id == row["scope_id"], tasks.c.name == task.name, tasks.c.num != task.num)
                .limit(1)
            ).first()
            if clash is not None:
                raise NameTaken(task.name)
            self._check_quota(conn, task.scope.uin, max_active)
            if task.tags:
                conn.execute(
                    insert(task_tags),
                    [
                        {"num": task.num, "tag_key": k, "tag_value": v, "position": i}
                        for i, (k, v) in enumerate(task.tags)
                    ],
                )
            try:
                conn.execute(insert(runs).values(**run_row(run)))
            except IntegrityError as err:
                raise IdTaken(run.id) from err

    def start_task(
        self, scope: Scope, task_id: str, run: Run, now: int, patch: dict[str, Any], max_active: int
    ) -> Outcome:
        """Begin a new run of a terminal task (spec §4.4): SUBMITTING, times reset, UpdateTime now.

        Raises QuotaExceeded when the account holds `max_active` active tasks already (issue 7 B4).
        """
        with self._tx() as conn:
            self._lock_account(conn, scope.uin)
            task = self._task_in_scope(conn, scope, task_id)
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
            self._check_quota(conn, scope.uin, max_active)  # after the write: see create_task
            conn.execute(insert(runs).values(**run_row(run)))
            self._patch_doc(conn, task.num, patch)
        return Outcome(ok=True, task=task)

    def request_stop(self, scope: Scope, task_id: str, now: float, patch: dict[str, Any]) -> Outcome:
        """Mark the latest run STOPPING if it is PENDING, STARTING or RUNNING (spec §4.5)."""
        with self._tx() as conn:
            task = self._task_in_scope(conn, scope, task_id)
            if task is None:
                return Outcome(ok=False)
            latest = conn.execute(select(func.max(runs.c.num)).where(runs.c.task_num == task.num)).scalar()
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
            self._patch_doc(conn, task.num, patch | {"Message": ""})
        return Outcome(ok=True, task=task)

    def touch_stop(self, scope: Scope, task_id: str, now: int, patch: dict[str, Any]) -> None:
        """A repeated Stop of a STOPPING task: a user operation, so UpdateTime and operator move (spec §6.4)."""
        with self._tx() as conn:
            task = self._task_in_scope(conn, scope, task_id)
            if task is not None:
                conn.execute(update(tasks).where(tasks.c.num == task.num).values(update_time=now))
                self._patch_doc(conn, task.num, patch)

    def delete_task(self, scope: Scope, task_id: str) -> Outcome:
        """Remove a terminal task with its runs, pods and metrics; the runs are returned for file cleanup."""
        with self._tx() as conn:
            task = self._task_in_scope(conn, scope, task_id)
            if task is None:
                return Outcome(ok=False)
            found = self._runs_where(conn, runs.c.task_num == task.num)
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

    # -- reads ------------------------------------------------------------------------------------

    def runs_of(self, task_num: int) -> list[Run]:
        """Every run of a task, oldest first, with pods."""
        with self.engine.connect() as conn:
            return self._runs_where(conn, runs.c.task_num == task_num)

    def get_run(self, run_id: str) -> Run | None:
        """One run by instance id, with pods."""
        with self.engine.connect() as conn:
            found = self._runs_where(conn, runs.c.id == run_id)
        return found[0] if found else None

    def latest_run(self, task_num: int) -> Run | None:
        """The task's current run, with pods."""
        with self.engine.connect() as conn:
            latest = conn.execute(select(func.max(runs.c.num)).where(runs.c.task_num == task_num)).scalar()
            if latest is None:
                return None
            found = self._runs_where(conn, runs.c.num == latest)
        return found[0] if found else None

    def live_runs(self) -> list[tuple[Run, Task]]:
        """Runs the runner still has work on, in submission order, each with its task."""
        with self.engine.connect() as conn:
            found = self._runs_where(conn, runs.c.live.is_(True))
            if not found:
                return []
            nums = sorted({r.task_num for r in found})
            rows = conn.execute(
                select(*tasks.c, scopes.c.uin, scopes.c.region, scopes.c.project)
                .join(scopes, scopes.c.id == tasks.c.scope_id)
                .where(tasks.c.num.in_(nums))
            )
            by_num: dict[int, Task] = {}
            for r in rows:
                m = r._mapping
                by_num[m["num"]] = self._task_of(r, Scope(uin=m["uin"], region=m["region"], project=m["project"]))
        return [(r, by_num[r.task_num]) for r in found if r.task_num in by_num]

    def held_by_node(self) -> dict[str, tuple[int, int, int]]:
        """(cpu, memory, gpu) held on each prepaid node by runs in STARTING/RUNNING/STOPPING (spec §4.10)."""
        stmt = (
            select(pods.c.node, func.sum(pods.c.cpu), func.sum(pods.c.memory), func.sum(pods.c.gpu))
            .join(runs, runs.c.num == pods.c.run_num)
            .where(runs.c.status.in_(HOLDING_STATUSES), pods.c.node != "")
            .group_by(pods.c.node)
        )
        with self.engine.connect() as conn:
            return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in conn.execute(stmt)}

    def run_in_scope(self, scope: Scope, run_id: str) -> Run | None:
        """A run of one of the scope's tasks, with pods; None otherwise."""
        with self.engine.connect() as conn:
            sid = self._scope_id(conn, scope, create=False)
            if sid is None:
                return None
            found = self._runs_where(conn, runs.c.id == run_id, tasks.c.scope_id == sid)
        return found[0] if found else None

    def pods_named(self, scope: Scope, name: str, *, prefix: bool) -> list[tuple[str, Pod]]:
        """(run id, pod) of the scope's pods named `name`, or whose name starts with it."""
        with self.engine.connect() as conn:
            sid = self._scope_id(conn, scope, create=False)
            if sid is None:
                return []
            cond = func.substr(pods.c.name, 1, len(name)) == name if prefix else pods.c.name == name
            stmt = (
                select(*pods.c, runs.c.id.label("run_id"))
                .join(runs, runs.c.num == pods.c.run_num)
                .join(tasks, tasks.c.num == runs.c.task_num)
                .where(cond, tasks.c.scope_id == sid)
                .order_by(pods.c.run_num, pods.c.position)
            )
            return [(r._mapping["run_id"], _pod(r)) for r in conn.execute(stmt)]

    def task_num_in_scope(self, scope: Scope, task_id: str) -> int | None:
        """The number of the scope's task with this id."""
        with self.engine.connect() as conn:
            task = self._task_in_scope(conn, scope, task_id)
        return None if task is None else task.num

    # -- runner writes ----------------------------------------------------------------------------

    def transition(
        self,
        run: Run,
        expected: Sequence[str],
        *,
        task_doc: dict[str, Any] | None = None,
        pods_insert: Sequence[Pod] = (),
        **fields: Any,
    ) -> bool:
        """Compare-and-set a run from one of `expected` states; mirror it onto its task when it is the latest.

        `fields` are `runs` columns (status, charge_status, start_time, ...); the same status, charge status
        and times go to the task row, and `task_doc` is merged into the task's doc. False when the run was not
        in an expected state any more (a concurrent Stop, a Delete): nothing is written then.
        """
        values = {k: (_time(v) if k in ("start_time", "end_time") else v) for k, v in fields.items()}
        with self._tx() as conn:
            res = conn.execute(update(runs).where(runs.c.num == run.num, runs.c.status.in_(expected)).values(values))
            if res.rowcount != 1:
                return False
            if pods_insert:
                conn.execute(insert(pods), [pod_row(run.num, p) for p in pods_insert])
            latest = conn.execute(select(func.max(runs.c.num)).where(runs.c.task_num == run.task_num)).scalar()
            if latest == run.num:
                mirrored = {k: values[k] for k in ("status", "charge_status", "start_time", "end_time") if k in values}
                if mirrored:
                    conn.execute(update(tasks).where(tasks.c.num == run.task_num).values(mirrored))
                if task_doc:
                    self._patch_doc(conn, run.task_num, task_doc)
        for k, v in fields.items():
            setattr(run, k, v)
        return True

    def update_run(self, run: Run, **fields: Any) -> None:
        """Bookkeeping columns that are not a state change (term_sent_at, kill_sent, callback, live, message)."""
        with self._tx() as conn:
            conn.execute(update(runs).where(runs.c.num == run.num).values(fields))
            if "message" in fields:
                latest = conn.execute(select(func.max(runs.c.num)).where(runs.c.task_num == run.task_num)).scalar()
                if latest == run.num:
                    self._patch_doc(conn, run.task_num, {"Message": fields["message"]})
        for k, v in fields.items():
            if hasattr(run, k):
                setattr(run, k, v)

    def save_pods(self, run: Run, changed: Sequence[Pod]) -> None:
        """Write the given pods of a run back (handle, status, times, exit code)."""
        if not changed:
            return
        rows = [{f"_{k}": v for k, v in pod_row(run.num, p).items()} for p in changed]
        with self._tx() as conn:
            # One statement for all pods (executemany): building one per pod cost ~2 ms each (issue 7 B4).
            conn.execute(_SAVE_PODS, rows)

    # -- the runner lease ------------------------------------------------------------------------

    def hold_lease(self, name: str, owner: str, now: float, ttl: float) -> bool:
        """Take or renew the lease `name` for `owner` until now + ttl; False while another owner holds it.

        A compare-and-set on the `meta` row, so runners of several server processes agree on one leader.
        """
        value = f"{owner} {now + ttl:.3f}"
        try:
            with self._tx() as conn:
                current = conn.execute(select(meta.c.value).where(meta.c.key == name)).scalar()
                if current is None:
                    conn.execute(insert(meta).values(key=name, value=value))
                    return True
                holder, _, expiry = current.partition(" ")
                if holder != owner and float(expiry or 0) > now:
                    return False
                res = conn.execute(update(meta).where(meta.c.key == name, meta.c.value == current).values(value=value))
                return res.rowcount == 1
        except IntegrityError:  # another runner inserted it first
            return False

    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up (on shutdown), so another runner takes over at once."""
        with self._tx() as conn:
            conn.execute(delete(meta).where(meta.c.key == name, meta.c.value.like(f"{owner} %")))

    # -- metrics ----------------------------------------------------------------------------------

    def add_metrics(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert PushTrainingMetrics data points (`metrics` rows)."""
        if rows:
            with self._tx() as conn:
                conn.execute(insert(metrics), list(rows))

    def metrics_of(self, task_num: int) -> Iterator[dict[str, Any]]:
        """A task's metric rows in time order (for tests and future readers)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*metrics.c).where(metrics.c.task_num == task_num).order_by(metrics.c.timestamp, metrics.c.id)
            ).all()
        for r in rows:
            m = dict(r._mapping)
            m["points"] = msgspec.json.decode(m["points"])
            yield m
