"""Runs, pods and metrics of executed tasks: what the runner reads and writes, and the run reads of the actions.

Every state change is a compare-and-set that writes first (`UPDATE ... WHERE status IN`), so API handlers and the
runner never overwrite each other, and a SQLite transaction takes its write lock at its first statement. The task
row mirrors the latest run (status, charge status, times and, in `doc`, FailureReason/Message/RuntimeInSeconds):
the list filters and sorts on those columns (spec §5). The requests that create, start, stop and delete a task
are in store/lifecycle.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Connection, Select, Update, bindparam, func, insert, select, update

from tione_server.models import HOLDING_STATUSES, Pod, Run, Scope, Task
from tione_server.store import batch, feed
from tione_server.store.batch import Prepared, Values
from tione_server.store.database import Database
from tione_server.store.schema import UNSET_TIME, metrics, pods, runs, scopes, tasks
from tione_server.store.scopes import Scopes
from tione_server.store.tasks import SET_DOC, patched, task_of


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
        "live": run.live,
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


def _pod(m: Mapping[Any, Any]) -> Pod:
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


def _run(m: Mapping[Any, Any], task_id: str) -> Run:
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
        live=bool(m["live"]),
        seq=m["seq"],
    )


_RUN_COLUMNS = (*runs.c, tasks.c.id.label("task_id"))
_CHANGED = (
    select(runs.c.num, runs.c.seq)
    .where(runs.c.seq >= bindparam("cursor"), runs.c.live.is_(True))
    .order_by(runs.c.seq)
    .limit(bindparam("limit"))
)
"""The change feed's (num, seq) pairs from a cursor on (store/feed.py)."""


def _selected(stmt: Select[Any]) -> tuple[Select[Any], tuple[str, ...]]:
    """A statement with the names of its columns, for reading its rows from batch.run."""
    return stmt, tuple(stmt.selected_columns.keys())


@functools.cache
def _reads_by_nums(dialect: str) -> tuple[tuple[Select[Any], tuple[str, ...]], ...]:
    """Runs, their pods and their tasks (with scopes), by the numbers bound as `nums` (`_by_nums`): the runner
    reads a few runs a tick, many times a second, so one SQL text for any count of runs (batch.among), compiled
    once and sent together; built per call through SQLAlchemy, this read was 2-3 ms a tick (issue 12)."""
    return (
        _selected(
            select(*_RUN_COLUMNS).join(tasks, tasks.c.num == runs.c.task_num).where(batch.among(runs.c.num, dialect))
        ),
        _selected(select(*pods.c).where(batch.among(pods.c.run_num, dialect))),
        _selected(
            select(*tasks.c, scopes.c.uin, scopes.c.region, scopes.c.project)
            .join(scopes, scopes.c.id == tasks.c.scope_id)
            .where(tasks.c.num.in_(select(runs.c.task_num).where(batch.among(runs.c.num, dialect))))
        ),
    )


_SAVE_PODS = (
    update(pods)
    .where(pods.c.run_num == bindparam("_run_num"), pods.c.name == bindparam("_name"))
    .values({c.name: bindparam(f"_{c.name}") for c in pods.c if c.name not in ("run_num", "name")})
)
"""UPDATE of one pod's row by (run, name), bound per pod; parameters are prefixed so they never clash with columns."""


def _saved_rows(run_num: int, saved: Sequence[Pod]) -> list[dict[str, Any]]:
    """`_SAVE_PODS` parameters for these pods."""
    return [{f"_{k}": v for k, v in pod_row(run_num, p).items()} for p in saved]


def latest_num(conn: Connection, task_num: int) -> int | None:
    """The number of the task's latest run; None when it has none (imported history)."""
    found = conn.execute(select(func.max(runs.c.num)).where(runs.c.task_num == task_num)).scalar()
    return None if found is None else int(found)


def _load_pods(conn: Connection, run_nums: Sequence[int]) -> dict[int, list[Pod]]:
    found: dict[int, list[Pod]] = {n: [] for n in run_nums}
    if run_nums:
        rows = conn.execute(
            select(*pods.c).where(pods.c.run_num.in_(run_nums)).order_by(pods.c.run_num, pods.c.position)
        )
        for r in rows:
            found[r._mapping["run_num"]].append(_pod(r._mapping))
    return found


def runs_where(conn: Connection, *conds: ColumnElement[bool]) -> list[Run]:
    """The runs matching `conds` (over `runs` joined to `tasks`), oldest first, each with its pods."""
    stmt = select(*_RUN_COLUMNS).join(tasks, tasks.c.num == runs.c.task_num).where(*conds).order_by(runs.c.num)
    found = [_run(r._mapping, r._mapping["task_id"]) for r in conn.execute(stmt)]
    pods_of = _load_pods(conn, [r.num for r in found])
    for r in found:
        r.pods = pods_of[r.num]
    return found


def _with_tasks(conn: Connection, found: list[Run]) -> list[tuple[Run, Task]]:
    """Each run with its task (one query for all of them)."""
    if not found:
        return []
    nums = sorted({r.task_num for r in found})
    rows = conn.execute(
        select(*tasks.c, scopes.c.uin, scopes.c.region, scopes.c.project)
        .join(scopes, scopes.c.id == tasks.c.scope_id)
        .where(tasks.c.num.in_(nums))
    )
    by_num = {r._mapping["num"]: _scoped_task(r._mapping) for r in rows}
    return [(r, by_num[r.task_num]) for r in found if r.task_num in by_num]


def _scoped_task(m: Mapping[Any, Any]) -> Task:
    """The Task of a row of `tasks` joined to its scope."""
    return task_of(m, Scope(uin=m["uin"], region=m["region"], project=m["project"]))


def _by_nums(db: Database, conn: Connection, nums: Sequence[int]) -> list[tuple[Run, Task]]:
    """The runs numbered `nums`, oldest first, each with its pods and its task: three statements compiled once
    (`_reads_by_nums`) sent together."""
    if not nums:
        return []
    p = db.prepared
    reads = _reads_by_nums(db.dialect)
    bound = {"nums": batch.numbers(nums, db.dialect)}
    done = batch.run(conn, [(p(stmt), bound) for stmt, _ in reads])
    found_runs, found_pods, found_tasks = (
        [dict(zip(keys, r, strict=True)) for r in result.rows] for (_, keys), result in zip(reads, done, strict=True)
    )
    pods_of: dict[int, list[Pod]] = {}
    for m in sorted(found_pods, key=lambda m: (m["run_num"], m["position"])):
        pods_of.setdefault(m["run_num"], []).append(_pod(m))
    by_num = {m["num"]: _scoped_task(m) for m in found_tasks}
    out: list[tuple[Run, Task]] = []
    for m in sorted(found_runs, key=lambda m: m["num"]):
        run = _run(m, m["task_id"])
        run.pods = pods_of.get(run.num, [])
        if run.task_num in by_num:
            out.append((run, by_num[run.task_num]))
    return out


@functools.cache
def _set_run(columns: tuple[str, ...], expected: tuple[str, ...] | None) -> Update:
    """UPDATE runs SET those columns for one run (and, given `expected`, only from those states): built once per
    column set, with bound parameters, since building a statement per write was most of a write's cost."""
    where = [runs.c.num == bindparam("w_num")]
    if expected is not None:
        where.append(runs.c.status.in_(expected))
    return update(runs).where(*where).values({c: bindparam(f"v_{c}") for c in columns})


@functools.cache
def _mirror(columns: tuple[str, ...]) -> Update:
    """UPDATE the task of a run SET those columns, only while the run is its latest, returning its doc: the task row
    mirrors its latest run (spec §5), and the doc is patched next in the same transaction."""
    latest = select(func.max(runs.c.num)).where(runs.c.task_num == bindparam("w_num")).scalar_subquery()
    # No columns: SET doc = doc, which locks the row and reads its doc all the same.
    values: dict[str, Any] = {c: bindparam(f"v_{c}") for c in columns} or {"doc": tasks.c.doc}
    return (
        update(tasks)
        .where(tasks.c.num == bindparam("w_num"), latest == bindparam("w_run"))
        .values(values)
        .returning(tasks.c.doc)
    )


def _params(values: dict[str, Any], *, num: int) -> dict[str, Any]:
    """The parameters of `_set_run` / `_mirror` for these values."""
    params = {f"v_{k}": v for k, v in values.items()}
    params["w_num"] = num
    return params


_MIRRORED = ("status", "charge_status", "start_time", "end_time")
"""The run columns its task mirrors."""
_INSERT_POD = insert(pods).values({c.name: bindparam(c.name) for c in pods.c})
_SEQ = select(runs.c.seq).where(runs.c.num == bindparam("w_num"))
"""A run's stamp after a write to it, read in the write's own transaction (Run.seq)."""


@dataclass(frozen=True, slots=True)
class Move:
    """One run's compare-and-set, as `Runs.transition` takes it."""

    run: Run
    expected: tuple[str, ...]
    fields: dict[str, Any]
    task_doc: dict[str, Any] | None = None
    pods_insert: Sequence[Pod] = ()
    pods_save: Sequence[Pod] = ()


class _Unchanged(Exception):
    """The run was not in an expected state: the transition's transaction rolls back."""


class Runs:
    """The `runs`, `pods` and `metrics` tables."""

    def __init__(self, db: Database, scopes: Scopes) -> None:
        self._db = db
        self._scopes = scopes

    # -- reads ------------------------------------------------------------------------------------

    def get(self, run_id: str) -> Run | None:
        """One run by instance id, with pods."""
        with self._db.engine.connect() as conn:
            found = runs_where(conn, runs.c.id == run_id)
        return found[0] if found else None

    def latest(self, task_num: int) -> Run | None:
        """The task's current run, with pods."""
        with self._db.engine.connect() as conn:
            latest = latest_num(conn, task_num)
            if latest is None:
                return None
            found = runs_where(conn, runs.c.num == latest)
        return found[0] if found else None

    def live(self) -> list[tuple[Run, Task]]:
        """Runs the runner still has work on, in submission order, each with its task (a full reload)."""
        with self._db.engine.connect() as conn:
            return _with_tasks(conn, runs_where(conn, runs.c.live.is_(True)))

    def live_page(self, after: int, limit: int) -> list[tuple[Run, Task]]:
        """Up to `limit` live runs numbered above `after`, in submission order, each with its task: the runner's
        safety sweep reads the live set a page per tick."""
        with self._db.engine.connect() as conn:
            stmt = select(runs.c.num).where(runs.c.live.is_(True), runs.c.num > after).order_by(runs.c.num)
            nums = list(conn.execute(stmt.limit(limit)).scalars())
            return _by_nums(self._db, conn, nums)

    def of_nums(self, nums: Sequence[int]) -> list[tuple[Run, Task]]:
        """The live runs among `nums`, each with its task (a run the runner could not write may be gone)."""
        with self._db.engine.connect() as conn:
            return [(run, task) for run, task in _by_nums(self._db, conn, list(nums)) if run.live]

    def cursor(self) -> int:
        """Where the change feed stands now: `changed` from here reports every run written after this call."""
        with self._db.engine.connect() as conn:
            if self._db.dialect == "postgresql":
                return int(conn.execute(feed.HORIZON).scalar_one())
            return int(conn.exec_driver_sql(feed.CURSOR_SQLITE).scalar_one())

    def changed(
        self, cursor: int, limit: int, held: Callable[[int], int | None] = lambda num: None
    ) -> tuple[list[tuple[Run, Task]], int]:
        """Live runs written since `cursor` (at most `limit`, oldest change first), each with its task, and the
        cursor for the next call (store/feed.py: the change feed; start from 0). `held(num)`: the stamp of the
        copy the caller holds; a run still at that stamp is not read again (the caller's own write)."""
        p = self._db.prepared
        pg = self._db.dialect == "postgresql"
        with self._db.engine.connect() as conn:
            # The horizon is read before the rows (store/feed.py), in the same round trip.
            first: list[tuple[Prepared, Values]] = [(p(feed.HORIZON), {})] if pg else []
            done = batch.run(conn, [*first, (p(_CHANGED), {"cursor": cursor, "limit": limit})])
            after = int(done[0].rows[0][0]) if pg else None
            rows = done[-1].rows
            if not rows:
                return [], cursor if after is None else after
            seen = int(rows[-1][1])
            if after is None:  # SQLite: one writer at a time, so every seq is unique and in commit order
                after = seen + 1
            elif len(rows) == limit:  # more to come: carry on from the last change read (read again, not lost)
                after = min(after, seen)
            nums = [int(num) for num, seq in rows if held(int(num)) != seq]
            if not nums:
                return [], after
            return _by_nums(self._db, conn, nums), after

    def held_by_node(self) -> dict[str, tuple[int, int, int]]:
        """(cpu, memory, gpu) held on each prepaid node by runs in STARTING/RUNNING/STOPPING (spec §4.10)."""
        stmt = (
            select(pods.c.node, func.sum(pods.c.cpu), func.sum(pods.c.memory), func.sum(pods.c.gpu))
            .join(runs, runs.c.num == pods.c.run_num)
            .where(runs.c.status.in_(HOLDING_STATUSES), pods.c.node != "")
            .group_by(pods.c.node)
        )
        with self._db.engine.connect() as conn:
            return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in conn.execute(stmt)}

    def in_scope(self, scope: Scope, run_id: str) -> Run | None:
        """A run of one of the scope's tasks, with pods; None otherwise."""
        with self._db.engine.connect() as conn:
            sid = self._scopes.id(conn, scope)
            if sid is None:
                return None
            found = runs_where(conn, runs.c.id == run_id, tasks.c.scope_id == sid)
        return found[0] if found else None

    def pods_named(self, scope: Scope, name: str, *, prefix: bool) -> list[tuple[str, Pod]]:
        """(run id, pod) of the scope's pods named `name`, or whose name starts with it."""
        with self._db.engine.connect() as conn:
            sid = self._scopes.id(conn, scope)
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
            return [(r._mapping["run_id"], _pod(r._mapping)) for r in conn.execute(stmt)]

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
        and times go to the task row, and `task_doc` is merged into the task's doc; `pods_insert` are new pod
        rows. False when the run was not in an expected state any more (a concurrent Stop, a Delete): nothing is
        written then.
        """
        return self.transition_all([Move(run, tuple(expected), fields, task_doc, pods_insert)])

    def transition_all(self, moves: Sequence[Move]) -> bool:
        """`transition` for several runs in one transaction, all or nothing: False, and nothing written, when any
        run was not in its expected state. Its statements go together (store/batch.py): one round trip for every
        compare-and-set, pod and mirror, one more for the doc patches and the commit; one commit for them all."""
        p = self._db.prepared
        steps: list[tuple[Prepared, Values]] = []
        marks: list[tuple[int, int | None, int]] = []  # each move's compare-and-set, mirror and stamp
        for m in moves:
            values = {k: (_time(v) if k in ("start_time", "end_time") else v) for k, v in m.fields.items()}
            mirrored = {k: values[k] for k in _MIRRORED if k in values}
            cas = len(steps)
            steps.append((p(_set_run(tuple(values), m.expected)), _params(values, num=m.run.num)))
            if m.pods_insert:
                steps.append((p(_INSERT_POD), [pod_row(m.run.num, pod) for pod in m.pods_insert]))
            if m.pods_save:
                steps.append((p(_SAVE_PODS), _saved_rows(m.run.num, m.pods_save)))
            mirror = None
            if mirrored or m.task_doc:
                mirror = len(steps)
                steps.append(
                    (p(_mirror(tuple(mirrored))), _params(mirrored, num=m.run.task_num) | {"w_run": m.run.num})
                )
            marks.append((cas, mirror, len(steps)))
            steps.append((p(_SEQ), {"w_num": m.run.num}))
        try:
            with self._db.tx() as conn:
                done = batch.run(conn, steps)
                if any(done[cas].rowcount != 1 for cas, _, _ in marks):
                    raise _Unchanged  # what was written after it is rolled back with it
                docs = [
                    {"w_num": m.run.task_num, "new_doc": patched(done[mirror].rows[0][0], m.task_doc)}
                    for m, (_, mirror, _) in zip(moves, marks, strict=True)
                    if m.task_doc and mirror is not None and done[mirror].rows
                ]
                if docs:
                    batch.run(conn, [(p(SET_DOC), docs)], last=True)
        except _Unchanged:
            return False
        for m, (_, _, stamp) in zip(moves, marks, strict=True):
            for k, v in m.fields.items():
                setattr(m.run, k, v)
            m.run.seq = done[stamp].rows[0][0]
        return True

    def update(self, run: Run, **fields: Any) -> bool:
        """Bookkeeping columns that are not a state change (term_sent_at, kill_sent, callback, live, message);
        False when the run is gone (its task was deleted)."""
        p = self._db.prepared
        steps: list[tuple[Prepared, Values]] = [(p(_set_run(tuple(fields), None)), _params(fields, num=run.num))]
        if "message" in fields:
            steps.append((p(_mirror(())), {"w_num": run.task_num, "w_run": run.num}))
        steps.append((p(_SEQ), {"w_num": run.num}))
        with self._db.tx() as conn:
            done = batch.run(conn, steps, last="message" not in fields)
            found = done[0].rowcount == 1
            if found and "message" in fields and done[1].rows:
                self._patch(conn, run.task_num, done[1].rows[0][0], {"Message": fields["message"]})
        for k, v in fields.items():
            if hasattr(run, k):
                setattr(run, k, v)
        if found:
            run.seq = done[-1].rows[0][0]
        return found

    def _patch(self, conn: Connection, task_num: int, doc: str, patch: dict[str, Any]) -> None:
        """Write the task's doc, as read (and locked) in this transaction, with `patch` merged in; the
        transaction's last write."""
        step = (self._db.prepared(SET_DOC), {"w_num": task_num, "new_doc": patched(doc, patch)})
        batch.run(conn, [step], last=True)

    def save_pods(self, run: Run, changed: Sequence[Pod]) -> None:
        """Write the given pods of a run back (handle, status, times, exit code)."""
        self.save_pods_of([(run, changed)])

    def save_pods_of(self, saves: Sequence[tuple[Run, Sequence[Pod]]]) -> None:
        """`save_pods` for several runs, in one transaction."""
        rows = [row for run, changed in saves for row in _saved_rows(run.num, changed)]
        if not rows:
            return
        with self._db.tx() as conn:
            # One statement for all pods (executemany): building one per pod cost ~2 ms each (issue 7 B4).
            batch.run(conn, [(self._db.prepared(_SAVE_PODS), rows)], last=True)

    def of_task(self, task_num: int) -> list[Run]:
        """Every run of a task, oldest first, with pods (the console's timeline, issue 11)."""
        with self._db.engine.connect() as conn:
            return runs_where(conn, runs.c.task_num == task_num)

    def metrics(self, task_num: int) -> Iterator[dict[str, Any]]:
        """A task's metric rows in time order, points decoded (DescribeTrainingMetrics, issue 11)."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(
                select(*metrics.c).where(metrics.c.task_num == task_num).order_by(metrics.c.timestamp, metrics.c.id)
            ).all()
        for r in rows:
            m = dict(r._mapping)
            m["points"] = msgspec.json.decode(m["points"])
            yield m

    def add_metrics(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert PushTrainingMetrics data points (`metrics` rows)."""
        if rows:
            with self._db.tx() as conn:
                conn.execute(insert(metrics), list(rows))
