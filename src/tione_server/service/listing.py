"""DescribeTrainingTasks: the request validated into a TaskQuery, in the order of spec §5.7."""

from __future__ import annotations

from tione_server.api._generated import DescribeTrainingTasksRequest, Filter
from tione_server.errors import InvalidParameterValue, MissingParameter, PageLimitExceeded
from tione_server.models import FieldFilter, TaskQuery
from tione_server.service.filters import check_counts, tag_condition

MAX_LIMIT = 50
DEFAULT_LIMIT = 10
MAX_FILTERS = 10

FILTER_COLUMNS: dict[str, tuple[str, bool]] = {
    "Name": ("name", False),
    "Id": ("id", False),
    "Status": ("status", True),
    "TaskStatus": ("status", True),
    "ResourceGroupId": ("resource_group_id", False),
    "Creator": ("creator", False),
    "ChargeType": ("charge_type", True),
    "CHARGE_STATUS": ("charge_status", True),
    "ChargeStatus": ("charge_status", True),
}
"""Filter name -> (task column, whether exact matching ignores ASCII case: the enum-valued ones)."""

ORDER_FIELDS = {"CreateTime": "create_time", "UpdateTime": "update_time", "StartTime": "start_time"}


def ascii_upper(value: str) -> str:
    """Upper-case ASCII letters only, as both databases' case folding does (spec §5.3)."""
    return value.translate(_UPPER)


_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def build_query(req: DescribeTrainingTasksRequest) -> TaskQuery:
    """Validate paging, order and filters; raise the first failing check's error."""
    limit = req.Limit or DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        raise PageLimitExceeded(f"`Limit` must be at most {MAX_LIMIT}; got {limit}.")
    # ASCII folding only: str.upper() would turn "aſc" into "ASC" (spec §5.6 is about ASCII case).
    order = ascii_upper(req.Order or "DESC")
    if order not in ("ASC", "DESC"):
        raise InvalidParameterValue.for_param("Order", "Use ASC or DESC.")
    order_field = req.OrderField or "UpdateTime"
    if order_field not in ORDER_FIELDS:
        raise InvalidParameterValue.for_param("OrderField", "Use CreateTime, UpdateTime or StartTime.")
    filters = [_filter(i, f) for i, f in enumerate(req.Filters or [])]
    tags = [tag_condition(i, t) for i, t in enumerate(req.TagFilters or [])]
    check_counts(req.Filters or [], req.TagFilters or [], MAX_FILTERS)
    return TaskQuery(
        filters=tuple(f for f in filters if f is not None),
        tags=tuple(tags),
        order_by=ORDER_FIELDS[order_field],
        descending=order == "DESC",
        offset=req.Offset or 0,
        limit=limit,
    )


def _filter(index: int, f: Filter) -> FieldFilter | None:
    if f.Name is None:
        raise MissingParameter(f"Filters.{index}.Name")
    if f.Name not in FILTER_COLUMNS:
        raise InvalidParameterValue.for_param(
            f"Filters.{index}.Name", f"Valid filter names: {', '.join(FILTER_COLUMNS)}."
        )
    if not f.Values:
        return None  # spec §5.3 rule 1: no values constrain nothing
    column, fold = FILTER_COLUMNS[f.Name]
    values = tuple(ascii_upper(v) for v in f.Values) if fold and not f.Fuzzy else tuple(f.Values)
    return FieldFilter(column=column, values=values, fuzzy=bool(f.Fuzzy), negative=bool(f.Negative))
