"""DescribeTrainingTasks against the plain-Python model of tests/reference.py, on random tasks and queries.

Tasks are imported through the project's importer into one live server per backend; each example gets a
workspace (TiProjectId) and task ids of its own, so examples never see each other's tasks. Names mix
LIKE wildcards, ASCII case, 'É'/'é' and CJK; times come with many ties, unset StartTimes, and in every
shape the importer accepts. Queries mix fuzzy/negative filters, aliases, enum case variants, tag filters,
ordering and paging, with a sprinkle of invalid ones (the model also knows the validation order).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.conftest import BACKENDS, make_database
from tests.live import REGION, Server, running_server
from tests.reference import FIELDS, RefError, RefTask, describe
from tione_server.config import Settings
from tione_server.importer import import_file
from tione_server.store import Store

UIN = "100000000001"
T0 = int(datetime(2025, 5, 28, 18, 18, 33, tzinfo=timezone(timedelta(hours=8))).timestamp())
NAME_CHARS = ("É", "é", "a", "A", "%", "_", "\\", "中")  # tricky first: Hypothesis favours early choices
STATUSES = ("SUBMITTING", "PENDING", "STARTING", "RUNNING", "STOPPING", "STOPPED", "FAILED", "SUCCEED", "SUBMIT_FAILED")
CHARGE_TYPES = ("PREPAID", "POSTPAID_BY_HOUR")
CHARGE_STATUSES = ("NOT_BILLING", "BILLING", "ARREARS_STOP")
GROUPS = ("", "ersg-aaaaaaaa", "ersg-AAAAAAAA", "ersg-b_%\\")
SUB_UINS = (None, "200000000001", "200000000002", UIN)
TWINS = str.maketrans("Éé", "éÉ")
TAG_KEYS = ("k1", "K1", "k2", "é")
TAG_VALUES = ("v", "V", "", "v%")
TIMES = (0, 1, 2, 3600)
SHAPES = ("+08", "space", "Z", "+08:00", "fraction", "-05:00")


def render(ts: int, shape: str) -> str:
    """Unix seconds in one of the time shapes real responses and exports use."""
    beijing = datetime.fromtimestamp(ts, timezone(timedelta(hours=8)))
    if shape == "+08":
        return beijing.strftime("%Y-%m-%dT%H:%M:%S+08")
    if shape == "space":
        return beijing.strftime("%Y-%m-%d %H:%M:%S")
    if shape == "Z":
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if shape == "+08:00":
        return beijing.strftime("%Y-%m-%dT%H:%M:%S+08:00")
    if shape == "fraction":
        return beijing.strftime("%Y-%m-%dT%H:%M:%S.750+08")
    return datetime.fromtimestamp(ts, timezone(timedelta(hours=-5))).strftime("%Y-%m-%dT%H:%M:%S-05:00")


@dataclass
class Env:
    """One live server per backend, and the store the examples import into."""

    server: Server
    store: Store
    settings: Settings
    workdir: Path
    serial: Iterator[int]


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp(f"prop-{request.param}")
    with (
        contextmanager(make_database)(request.param, workdir) as url,
        running_server(url, workdir, uin=UIN) as server,
        closing(Store(url)) as store,
    ):
        yield Env(server, store, Settings(database_url=url), workdir, itertools.count(1))


@st.composite
def task_specs(draw: st.DrawFn, serial: int) -> tuple[RefTask, dict[str, Any]]:
    """One task: the model's view of it and the wire item to import."""
    k = draw(st.integers(1, 10**11))
    task_id = f"train-{k * 10**7 + serial}"
    status = draw(st.sampled_from(STATUSES))
    sub_uin = draw(st.sampled_from(SUB_UINS))
    create, update = draw(st.sampled_from(TIMES)), draw(st.sampled_from(TIMES))
    start = draw(st.one_of(st.none(), st.sampled_from(TIMES)))
    tags = draw(st.dictionaries(st.sampled_from(TAG_KEYS), st.sampled_from(TAG_VALUES), max_size=3))
    ref = RefTask(
        id=task_id,
        name=draw(st.text(st.sampled_from(NAME_CHARS), min_size=1, max_size=4)),
        status=status,
        charge_type=draw(st.sampled_from(CHARGE_TYPES)),
        charge_status=draw(st.sampled_from(CHARGE_STATUSES)),
        resource_group_id=draw(st.sampled_from(GROUPS)),
        creator=sub_uin or UIN,
        create_time=T0 + create,
        update_time=T0 + update,
        start_time=None if start is None else T0 + start,
        tags=tuple(tags.items()),
    )
    wire: dict[str, Any] = {
        "Id": ref.id,
        "Name": ref.name,
        "Status": draw(st.sampled_from([status, status.lower(), status.capitalize()])),
        "ChargeType": ref.charge_type,
        "ChargeStatus": ref.charge_status,
        "ResourceGroupId": ref.resource_group_id,
        "CreateTime": render(ref.create_time, draw(st.sampled_from(SHAPES))),
        "UpdateTime": render(ref.update_time, draw(st.sampled_from(SHAPES))),
        "StartTime": "" if ref.start_time is None else render(ref.start_time, draw(st.sampled_from(SHAPES))),
        "Tags": [{"TagKey": key, "TagValue": value} for key, value in ref.tags],
    }
    if sub_uin is not None:
        wire["SubUin"] = sub_uin
    return ref, wire


def _value(draw: Callable[[st.SearchStrategy[Any]], Any], name: str, tasks: list[RefTask]) -> str:
    """A filter value likely to hit: a task's field, a piece of it, its case swapped, or noise."""
    seen = [str(getattr(t, FIELDS[name])) for t in tasks] if name in FIELDS and tasks else []
    kinds = ["field", "piece", "piece", "swapped", "twin", "twin", "noise"]
    kind: str = draw(st.sampled_from(kinds if seen else ["noise"]))
    if kind == "noise":
        noise: str = draw(st.text(st.sampled_from(NAME_CHARS), max_size=3))
        return noise
    value: str = draw(st.sampled_from(seen))
    if kind != "field" and value:
        i = draw(st.integers(0, len(value) - 1))
        value = value[i : draw(st.integers(i + 1, len(value)))]
    if kind == "swapped":
        return value.swapcase()  # Unicode swapcase: É <-> é must still not match each other
    if kind == "twin":
        return value.translate(TWINS)  # only the non-ASCII case changes: must never match
    return value


@st.composite
def filters(draw: st.DrawFn, tasks: list[RefTask]) -> dict[str, Any]:
    name = draw(st.sampled_from(["Name", "Name", "Name", *FIELDS]))  # names hold the tricky characters
    f: dict[str, Any] = {"Name": name}
    count = draw(st.one_of(st.none(), st.integers(0, 2)))
    if count is not None:
        f["Values"] = [_value(draw, name, tasks) for _ in range(count)]
    for flag, choices in (("Fuzzy", [None, False, True, True]), ("Negative", [None, False, True])):
        choice = draw(st.sampled_from(choices))
        if choice is not None:
            f[flag] = choice
    return f


@st.composite
def tag_filters(draw: st.DrawFn) -> dict[str, Any]:
    g: dict[str, Any] = {"TagKey": draw(st.sampled_from(TAG_KEYS))}
    values = draw(st.one_of(st.none(), st.lists(st.sampled_from([*TAG_VALUES, "x"]), max_size=2)))
    if values is not None:
        g["TagValues"] = values
    return g


@st.composite
def queries(draw: st.DrawFn, tasks: list[RefTask]) -> dict[str, Any]:
    q: dict[str, Any] = {}
    if fs := draw(st.lists(filters(tasks), max_size=2)):
        q["Filters"] = fs
    if gs := draw(st.lists(tag_filters(), max_size=1)):
        q["TagFilters"] = gs
    choices: dict[str, st.SearchStrategy[Any]] = {
        "Order": st.sampled_from(["", "ASC", "asc", "DESC", "Desc", "dESC"]),
        "OrderField": st.sampled_from(["", "CreateTime", "UpdateTime", "StartTime", "StartTime"]),
        "Offset": st.integers(0, len(tasks) + 2),
        "Limit": st.sampled_from([0, 1, 2, 3, 5, 10, 50]),
    }
    for key, strategy in choices.items():
        if draw(st.booleans()):
            q[key] = draw(strategy)
    if draw(st.integers(0, 5)) == 0:  # now and then one or two invalid parts: codes and their order
        for corrupt in draw(st.lists(st.sampled_from(CORRUPTIONS), min_size=1, max_size=2)):
            corrupt(q)
    return q


CORRUPTIONS: list[Any] = [
    lambda q: q.setdefault("Filters", []).append({"Name": "status", "Values": ["RUNNING"]}),
    lambda q: q.setdefault("Filters", []).append({"Values": ["a"]}),
    lambda q: q.setdefault("TagFilters", []).append({"TagKey": ""}),
    lambda q: q.setdefault("TagFilters", []).append({"TagValues": ["v"]}),
    lambda q: q.update(Order="bogus"),
    lambda q: q.update(OrderField="createTime"),
    lambda q: q.update(Limit=51),
    lambda q: q.setdefault("Filters", []).extend([{"Name": "Name", "Values": ["a"]}] * 10),
    lambda q: q.setdefault("Filters", []).append({"Name": "Id", "Values": ["x"] * 101, "Fuzzy": True}),
    lambda q: q.setdefault("TagFilters", []).extend([{"TagKey": "k1"}] * 10),
]
"""Ways to spoil a query; several at once exercise the validation order of spec §5.7."""


def ask(server: Server, request: dict[str, Any]) -> tuple[list[str], int] | str:
    """The server's answer: (ids, TotalCount), or the error code."""
    try:
        resp = server.call("DescribeTrainingTasks", request)
    except TencentCloudSDKException as err:
        return str(err.code)
    return [t["Id"] for t in resp["TrainingTaskSet"]], resp["TotalCount"]


def expected(tasks: list[RefTask], request: dict[str, Any]) -> tuple[list[str], int] | str:
    try:
        return describe(tasks, request)
    except RefError as err:
        return err.code


def load(env: Env, data: st.DataObject) -> tuple[str, list[RefTask]]:
    """Random tasks imported into a fresh workspace: (TiProjectId, the model's tasks)."""
    serial = next(env.serial)
    tasks = st.lists(task_specs(serial), min_size=1, max_size=14, unique_by=lambda s: s[0].id)
    specs = data.draw(tasks, label="tasks")
    project = f"prop-{serial}"
    path = env.workdir / f"{project}.json"
    path.write_text(json.dumps([wire for _, wire in specs]))
    import_file(env.store, path, uin=UIN, app_id=UIN, region=REGION, project=project, settings=env.settings)
    # The same tasks under other ids in a neighbouring scope: the query must never see them.
    decoys = [wire | {"Id": f"train-{int(wire['Id'][6:]) + DECOY_SHIFT}"} for _, wire in specs]
    path.write_text(json.dumps(decoys))
    uin, region, where = data.draw(st.sampled_from(NEIGHBOURS), label="decoy scope")
    import_file(env.store, path, uin=uin, app_id=uin, region=region, project=where or project, settings=env.settings)
    return project, [ref for ref, _ in specs]


DECOY_SHIFT = 5_000_000
"""Added to an id number (k * 10**7 + serial, serial far below this) for the decoy copy."""
NEIGHBOURS = [
    ("100000000002", REGION, ""),  # another account, same workspace name
    (UIN, "ap-shanghai", ""),  # another region
    (UIN, REGION, "prop-neighbour"),  # another workspace
    (UIN, REGION, "0"),  # the default workspace
]
"""(uin, region, project or "" for the example's own project name) of the decoy copies."""


def check(env: Env, project: str, tasks: list[RefTask], query: dict[str, Any]) -> None:
    request = {"TiProjectId": project, **query}
    want = expected(tasks, request)
    event(f"error {want}" if isinstance(want, str) else f"page of {min(len(want[0]), 3)}+, total {min(want[1], 5)}+")
    assert ask(env.server, request) == want, request


SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@SETTINGS
@given(data=st.data())
def test_describe_training_tasks_matches_the_reference(env: Env, data: st.DataObject) -> None:
    project, tasks = load(env, data)
    for _ in range(4):
        check(env, project, tasks, data.draw(queries(tasks), label="query"))


@SETTINGS
@given(data=st.data())
def test_describe_training_tasks_fuzzy_names_match_the_reference(env: Env, data: st.DataObject) -> None:
    """One fuzzy Name filter at a time: the case where wildcards and non-ASCII case matter most."""
    project, tasks = load(env, data)
    for _ in range(4):
        values = [_value(data.draw, "Name", tasks) for _ in range(data.draw(st.integers(1, 2)))]
        negative = data.draw(st.booleans())
        query = {"Filters": [{"Name": "Name", "Values": values, "Fuzzy": True, "Negative": negative}], "Limit": 50}
        check(env, project, tasks, query)
