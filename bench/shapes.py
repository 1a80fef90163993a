"""The query shapes the benchmark times: DescribeTrainingTasks parameters as sent on the wire.

Every shape asks for a page and gets TotalCount with it (the action always counts). Values come from
the dataset's vocabulary (bench/dataset.py), so each shape matches a realistic share of the tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.dataset import CREATORS


@dataclass(frozen=True)
class Shape:
    """One query: a short key for files, a label for the table, and its request parameters."""

    key: str
    label: str
    params: dict[str, Any]
    flat: bool = True
    """True: p50 at the largest size must stay within 2x of p50 at 1k. False: within 20x of the default
    shape's p50 at the largest size (2-character fuzzy and deep offsets cannot be index-bounded)."""


def _filter(name: str, *values: str, fuzzy: bool = False, negative: bool = False) -> dict[str, Any]:
    return {"Name": name, "Values": list(values), "Fuzzy": fuzzy, "Negative": negative}


SHAPES = (
    Shape("default", "default page", {}),
    Shape("status", "Status = FAILED", {"Filters": [_filter("Status", "FAILED")]}),
    Shape(
        "not_finished_postpaid",
        "Status Negative + ChargeType",
        {
            "Filters": [
                _filter("Status", "SUCCEED", "FAILED", "STOPPED", "SUBMIT_FAILED", negative=True),
                _filter("ChargeType", "POSTPAID_BY_HOUR"),
            ]
        },
    ),
    Shape("fuzzy3", "Name Fuzzy 'resnet'", {"Filters": [_filter("Name", "resnet", fuzzy=True)]}),
    Shape("fuzzy2", "Name Fuzzy 'v8'", {"Filters": [_filter("Name", "v8", fuzzy=True)]}, flat=False),
    Shape("tag", "TagFilter team=nlp", {"TagFilters": [{"TagKey": "team", "TagValues": ["nlp"]}]}),
    Shape(
        "creator_start_asc",
        "Creator + StartTime ASC",
        {"Filters": [_filter("Creator", CREATORS[3][0])], "OrderField": "StartTime", "Order": "ASC"},
    ),
    Shape("offset10k", "Offset=10000", {"Offset": 10_000}, flat=False),
)
"""In table order; `default` first, as the others' deep-shape target refers to it."""

THROUGHPUT_SHAPE = SHAPES[0]
"""Throughput is measured on the default shape, Limit 10 (the default)."""
