"""Whole-store numbers for /metrics (issue 10 item 10): tasks by status, live pods by status, the oldest run
waiting for the runner. Read at scrape time, never on the request path; each is one indexed or small query
(task totals come from the folded counts of store/counts.py, not from a scan of `tasks`)."""

from __future__ import annotations

from sqlalchemy import Engine, func, select, union_all

from tione_server.models import TaskStatus
from tione_server.store.schema import count_deltas, pods, runs, task_counts


def tasks_by_status(engine: Engine) -> dict[str, int]:
    """Tasks of every account, region and workspace, by status (imported history included)."""
    parts = union_all(
        select(task_counts.c.status, task_counts.c.n.label("n")),
        select(count_deltas.c.status, count_deltas.c.d.label("n")),
    ).subquery()
    stmt = select(parts.c.status, func.sum(parts.c.n)).group_by(parts.c.status)
    with engine.connect() as conn:
        return {status: int(n) for status, n in conn.execute(stmt) if n}


def live_pods_by_status(engine: Engine) -> dict[str, int]:
    """Pods of runs the runner still works on, by pod status."""
    stmt = (
        select(pods.c.status, func.count())
        .select_from(pods.join(runs, pods.c.run_num == runs.c.num))
        .where(runs.c.live.is_(True))
        .group_by(pods.c.status)
    )
    with engine.connect() as conn:
        return {status: int(n) for status, n in conn.execute(stmt)}


def oldest_submitting(engine: Engine) -> float | None:
    """When the oldest run still SUBMITTING was requested: the runner prepares a run on its next pass, so its
    age is how far the runner lags (None: no run waits)."""
    stmt = select(func.min(runs.c.requested_at)).where(
        runs.c.live.is_(True), runs.c.status == TaskStatus.SUBMITTING.value
    )
    with engine.connect() as conn:
        value = conn.execute(stmt).scalar()
    return None if value is None else float(value)
