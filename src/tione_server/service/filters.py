"""The rules of `Filters` and `TagFilters` that DescribeTrainingTasks (spec §5.3-§5.4) and
DescribeBillingResourceGroups (spec §4.10) share: how many a request may carry, and what a TagFilter must name.

What each filter name means stays with its action (listing.py, billing.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from tione_server.api._generated import Filter, TagFilter
from tione_server.errors import FilterLimitExceeded, InvalidParameter
from tione_server.models import TagCondition

MAX_TAG_FILTERS = 10
MAX_VALUES = 100
"""Values in one Filter or TagFilter."""


def check_counts(filters: Sequence[Filter], tags: Sequence[TagFilter], max_filters: int) -> None:
    """FilterLimitExceeded for more than `max_filters` Filters, more than 10 TagFilters, or more than 100 values
    in any one of them (issue 8 item 7: one rule for both actions)."""
    if len(filters) > max_filters:
        raise FilterLimitExceeded(f"At most {max_filters} `Filters` are allowed; got {len(filters)}.")
    if len(tags) > MAX_TAG_FILTERS:
        raise FilterLimitExceeded(f"At most {MAX_TAG_FILTERS} `TagFilters` are allowed; got {len(tags)}.")
    for i, f in enumerate(filters):
        if len(f.Values or ()) > MAX_VALUES:
            raise FilterLimitExceeded(f"At most {MAX_VALUES} values are allowed in `Filters.{i}.Values`.")
    for i, t in enumerate(tags):
        if len(t.TagValues or ()) > MAX_VALUES:
            raise FilterLimitExceeded(f"At most {MAX_VALUES} values are allowed in `TagFilters.{i}.TagValues`.")


def tag_condition(index: int, t: TagFilter) -> TagCondition:
    """The TagFilter at `index` (spec §5.4): its key must be given; empty TagValues means "has the key"."""
    if not t.TagKey:
        raise InvalidParameter(f"Parameter `TagFilters.{index}.TagKey` must be a non-empty tag key.")
    return TagCondition(key=t.TagKey, values=tuple(t.TagValues or ()))
