"""Tables, for SQLite and PostgreSQL alike (SQLAlchemy Core), and the schema version they make.

Text columns use the "C" collation on PostgreSQL so comparisons and ordering are bytewise, as on SQLite.
Times are Unix seconds; an unset StartTime/EndTime is -1 so that it sorts lowest (spec §5.6) in an index.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeEngine

SCHEMA_VERSION = 1
"""Bump with every change below; Store refuses a database of a newer version than it knows."""

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
)
Index("ix_tasks_update", tasks.c.scope_id, tasks.c.update_time, tasks.c.num)
Index("ix_tasks_create", tasks.c.scope_id, tasks.c.create_time, tasks.c.num)
Index("ix_tasks_start", tasks.c.scope_id, tasks.c.start_time, tasks.c.num)
Index("ix_tasks_name", tasks.c.scope_id, tasks.c.name)

task_tags = Table(
    "task_tags",
    metadata,
    Column("num", BigInteger, ForeignKey("tasks.num", ondelete="CASCADE"), primary_key=True),
    Column("tag_key", _text(), primary_key=True),
    Column("tag_value", _text(), nullable=False),
    Column("position", Integer, nullable=False),
)
Index("ix_task_tags_kv", task_tags.c.tag_key, task_tags.c.tag_value, task_tags.c.num)
