"""DescribeTrainingTasks filters, tag filters and ordering as SQL conditions (spec §5.3-§5.6).

One translation serves SQLite and PostgreSQL: fuzzy matching is LIKE on SQLite (ASCII case-insensitive
by default) and ILIKE over "C"-collated columns on PostgreSQL (ASCII-only case folding), so both
backends give the same answers.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, Table, and_, exists, false, func, not_, or_, select, union_all
from sqlalchemy.sql.elements import UnaryExpression

from tione_server.models import FieldFilter, TagCondition, TaskQuery
from tione_server.store.schema import COUNTED, count_deltas, task_counts, task_tags, tasks

MAX_OFFSET = 2**62
"""Offsets beyond this match nothing anyway; clamp so both databases can bind the value."""


def like_pattern(value: str) -> str:
    """A LIKE pattern for "contains `value`", with `%`, `_` and `\\` taken literally."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def storable(values: tuple[str, ...]) -> list[str]:
    """The values a stored field could equal or contain: no stored text holds NUL (PostgreSQL text cannot,
    and writes refuse it), while SQLite's LIKE would stop reading a pattern at NUL and PostgreSQL would
    reject the parameter. Dropping them keeps both backends answering "no match" for such a value."""
    return [v for v in values if "\x00" not in v]


def _field_condition(f: FieldFilter, dialect: str, table: Table = tasks) -> ColumnElement[bool]:
    column = table.c[f.column]
    values = storable(f.values)
    cond: ColumnElement[bool]
    if not values:
        cond = false()
    elif f.fuzzy:
        if dialect == "postgresql":
            terms = [column.ilike(like_pattern(v), escape="\\") for v in values]
        else:
            terms = [column.like(like_pattern(v), escape="\\") for v in values]
        cond = or_(*terms)
    else:
        cond = column.in_(values)
    return not_(cond) if f.negative else cond


def _tag_condition(t: TagCondition) -> ColumnElement[bool]:
    values = storable(t.values)
    if not storable((t.key,)) or (t.values and not values):
        return false()
    conds = [task_tags.c.num == tasks.c.num, task_tags.c.tag_key == t.key]
    if values:
        conds.append(task_tags.c.tag_value.in_(values))
    return exists().where(*conds)


def where(scope_id: int, query: TaskQuery, dialect: str) -> ColumnElement[bool]:
    """Every condition of the query, ANDed, inside one scope."""
    conds = [tasks.c.scope_id == scope_id]
    conds += [_field_condition(f, dialect) for f in query.filters]
    conds += [_tag_condition(t) for t in query.tags]
    return and_(*conds)


def order(query: TaskQuery) -> tuple[UnaryExpression[int], UnaryExpression[int]]:
    """Sort key then integer id, both in the requested direction."""
    key, num = tasks.c[query.order_by], tasks.c.num
    if query.descending:
        return key.desc(), num.desc()
    return key.asc(), num.asc()


def page(scope_id: int, query: TaskQuery, dialect: str) -> Select[tuple[str, ...]]:
    """The SELECT for one page of matches."""
    return (
        select(*tasks.c)
        .where(where(scope_id, query, dialect))
        .order_by(*order(query))
        .limit(query.limit)
        .offset(min(query.offset, MAX_OFFSET))
    )


def countable(query: TaskQuery) -> bool:
    """Whether task_counts can answer the query's TotalCount: it filters only on counted columns."""
    return not query.tags and all(f.column in COUNTED for f in query.filters)


def count_from_counts(scope_id: int, query: TaskQuery, dialect: str) -> Select[int]:
    """TotalCount of a countable query: the same conditions over the kept counts and the unfolded deltas."""
    parts = [
        select(table.c[value].label("n")).where(
            table.c.scope_id == scope_id, *(_field_condition(f, dialect, table) for f in query.filters)
        )
        for table, value in ((task_counts, "n"), (count_deltas, "d"))
    ]
    both = union_all(*parts).subquery()
    return select(func.coalesce(func.sum(both.c.n), 0))


def count_by_scan(scope_id: int, query: TaskQuery, dialect: str) -> Select[int]:
    """TotalCount by counting the matching task rows."""
    return select(func.count()).select_from(tasks).where(where(scope_id, query, dialect))
