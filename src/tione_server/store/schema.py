"""Tables, for SQLite and PostgreSQL alike (SQLAlchemy Core), and the schema version they make.

Text columns use the "C" collation on PostgreSQL so comparisons and ordering are bytewise, as on SQLite.
Times are Unix seconds; an unset StartTime/EndTime is -1 so that it sorts lowest (spec §5.6) in an index.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeEngine

SCHEMA_VERSION = 5
"""Bump with every change below; Store refuses a database of a newer version than it knows.

2: runs, pods and metrics (executed tasks); version-1 databases gain them on open.
3: task_counts, count_deltas and scopes.gen, kept current by triggers (store/counts.py);
   older databases are migrated.
4: pods.handle, the executor's opaque text for a pod, replaces pods.pid, pgid and proc_start (issue 8 item 3);
   older databases gain the column, filled for live pods from their pid and start time (store/handles.py), and
   keep the three old columns, unused and NULL from then on (SQLite cannot drop columns on every version).
5: runs.seq, stamped by a trigger on every insert and update of a run: the change feed the runner reads instead of
   every live run each tick (store/feed.py, issue 12 target 5); and runs.scope_id, so the per-account quota of
   active runs is counted from an index; older databases gain both columns (scope_id filled) and their indexes.
"""

UNSET_TIME = -1

metadata = MetaData()


def _text() -> TypeEngine[str]:
    return Text().with_variant(Text(collation="C"), "postgresql")


meta = Table(
    "meta",
    metadata,
    Column("key", _text(), primary_key=True),
    Column("value", _text(), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("secret_id", _text(), primary_key=True),
    Column("secret_key", _text(), nullable=False),
    Column("uin", _text(), nullable=False),
    Column("app_id", _text(), nullable=False),
    Column("sub_uin", _text(), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

scopes = Table(
    "scopes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uin", _text(), nullable=False),
    Column("region", _text(), nullable=False),
    Column("project", _text(), nullable=False),
    Column("gen", BigInteger, nullable=False, server_default="0"),
    # gen: changes folded from count_deltas (store/counts.py); a scope's version is gen + its unfolded rows.
    UniqueConstraint("uin", "region", "project", name="uq_scope"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("num", BigInteger, primary_key=True, autoincrement=False),
    Column("id", _text(), nullable=False, unique=True),
    Column("scope_id", Integer, ForeignKey("scopes.id"), nullable=False),
    Column("app_id", _text(), nullable=False),
    Column("name", _text(), nullable=False),
    Column("creator", _text(), nullable=False),
    Column("charge_type", _text(), nullable=False),
    Column("charge_status", _text(), nullable=False),
    Column("status", _text(), nullable=False),
    Column("resource_group_id", _text(), nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Column("update_time", BigInteger, nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=False),
    Column("doc", _text(), nullable=False),
    Column("rev", BigInteger, nullable=False, server_default="0"),
)
Index("ix_tasks_update", tasks.c.scope_id, tasks.c.update_time, tasks.c.num)
Index("ix_tasks_create", tasks.c.scope_id, tasks.c.create_time, tasks.c.num)
Index("ix_tasks_start", tasks.c.scope_id, tasks.c.start_time, tasks.c.num)
Index("ix_tasks_name", tasks.c.scope_id, tasks.c.name)

task_names = Table(
    "task_names",
    metadata,
    Column("scope_id", Integer, ForeignKey("scopes.id"), primary_key=True),
    Column("name", _text(), primary_key=True),
    Column("num", BigInteger, ForeignKey("tasks.num", ondelete="CASCADE"), nullable=False, unique=True),
)
"""Names of tasks created through the API, one row per (scope, name), written in the create transaction: the
database itself refuses a second task of a name, whichever process creates it (issue 7 E12). Imported history may
repeat names, so this is not a constraint on `tasks`; deleting a task removes its row (cascade)."""

COUNTED = ("status", "charge_type", "charge_status", "creator", "resource_group_id")
"""The low-cardinality task columns whose combinations task_counts keeps counts for."""

task_counts = Table(
    "task_counts",
    metadata,
    Column("scope_id", Integer, primary_key=True),
    *(Column(name, _text(), primary_key=True) for name in COUNTED),
    Column("n", BigInteger, nullable=False),
)

count_deltas = Table(
    "count_deltas",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope_id", Integer, nullable=False),
    *(Column(name, _text(), nullable=False) for name in COUNTED),
    Column("d", BigInteger, nullable=False),
)
# No index on scope_id: every write inserts here, and the table stays small (folded on commit of an import and
# on every runner tick), so a reader's scan of it is cheap.


task_tags = Table(
    "task_tags",
    metadata,
    Column("num", BigInteger, ForeignKey("tasks.num", ondelete="CASCADE"), primary_key=True),
    Column("tag_key", _text(), primary_key=True),
    Column("tag_value", _text(), nullable=False),
    Column("position", Integer, nullable=False),
)
Index("ix_task_tags_kv", task_tags.c.tag_key, task_tags.c.tag_value, task_tags.c.num)

runs = Table(
    "runs",
    metadata,
    Column("num", BigInteger, primary_key=True, autoincrement=False),
    Column("id", _text(), nullable=False, unique=True),
    Column("task_num", BigInteger, ForeignKey("tasks.num", ondelete="CASCADE"), nullable=False),
    Column("status", _text(), nullable=False),
    Column("charge_status", _text(), nullable=False),
    Column("operation", _text(), nullable=False),
    Column("requested_at", Float, nullable=False),
    Column("pool", _text(), nullable=False),
    Column("cpu", BigInteger, nullable=False),
    Column("memory", BigInteger, nullable=False),
    Column("gpu", BigInteger, nullable=False),
    Column("failure_reason", _text(), nullable=False),
    Column("message", _text(), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=False),
    Column("stop_requested_at", Float, nullable=True),
    Column("stop_reason", _text(), nullable=False),
    Column("term_sent_at", Float, nullable=True),
    Column("kill_sent", Boolean, nullable=False),
    Column("callback", _text(), nullable=False),
    Column("live", Boolean, nullable=False),
    # live: the runner still has work on this run (not terminal, pods to clean up, or a callback to send).
    Column("seq", BigInteger, nullable=False, server_default="0"),
    # seq: when the row last changed, stamped by a trigger (store/feed.py; schema version 5).
    Column("scope_id", Integer, nullable=False, server_default="0"),
    # scope_id: its task's, so an account's active runs are counted from an index, not over every live run (v5).
)
Index("ix_runs_task", runs.c.task_num, runs.c.num)
Index("ix_runs_live", runs.c.live, runs.c.num)
Index("ix_runs_seq", runs.c.seq)
Index("ix_runs_scope", runs.c.scope_id, runs.c.live)

pods = Table(
    "pods",
    metadata,
    Column("run_num", BigInteger, ForeignKey("runs.num", ondelete="CASCADE"), primary_key=True),
    Column("name", _text(), primary_key=True),
    Column("role", _text(), nullable=False),
    Column("position", Integer, nullable=False),
    Column("cpu", BigInteger, nullable=False),
    Column("memory", BigInteger, nullable=False),
    Column("gpu", BigInteger, nullable=False),
    Column("status", _text(), nullable=False),
    Column("node", _text(), nullable=False),
    Column("handle", _text(), nullable=False, server_default=""),
    # handle: the executor's own text for the pod (executors/base.py), opaque to the store (schema version 4).
    Column("launched_at", Float, nullable=True),
    Column("start_time", Float, nullable=True),
    Column("end_time", Float, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("ip", _text(), nullable=False),
)
Index("ix_pods_name", pods.c.name)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_num", BigInteger, ForeignKey("tasks.num", ondelete="CASCADE"), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("uin", _text(), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("total_steps", BigInteger, nullable=False),
    Column("points", _text(), nullable=False),
)
Index("ix_metrics_task", metrics.c.task_num, metrics.c.timestamp)

nonces = Table(
    "nonces",
    metadata,
    Column("secret_id", _text(), primary_key=True),
    Column("nonce", _text(), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
    # v1 Nonces accepted and not yet expired (issue 7 C7; replay.py); rows past expires_at are pruned.
)
Index("ix_nonces_expires", nonces.c.expires_at)

FIRST_ACCOUNT_UID = 200_000
"""The uid (and gid) of the first account whose pods run sandboxed; the next accounts get the following ones.
Far above the system's own users (Debian hands out up to 59999) and below 2**31."""

account_uids = Table(
    "account_uids",
    metadata,
    Column("uin", _text(), primary_key=True),
    Column("uid", BigInteger, nullable=False, unique=True),
)
"""The unprivileged uid/gid that an account's pods run as when the server is root (issue 9 item 2): allocated once
per account and kept, so files a pod wrote stay its account's across restarts and on every server of a database."""
