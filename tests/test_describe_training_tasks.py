"""DescribeTrainingTasks, rule by rule (spec §5 and the issue "DescribeTrainingTasks, exactly").

One live server per backend serves the whole module; every test works in a workspace (TiProjectId)
or account of its own, filled through the project's import path, and asks through the official SDK
(or CommonClient for requests the SDK's model would not send). Expected answers are written out by
hand from the rules, never taken from the code under test.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.tione.v20211111 import models

from tests.conftest import BACKENDS, make_database
from tests.live import REGION, Key, Server, running_server
from tione_server.config import Settings
from tione_server.importer import import_file
from tione_server.store import Store

ROOT_UIN = "100000000001"
"""The account of the key `running_server` creates."""

API_JSON = Path(models.__file__).resolve().parents[3] / "tccli" / "services" / "tione" / "v20211111" / "api.json"
TIME_SHAPE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08$")
BEIJING = timezone(timedelta(hours=8))
T0 = datetime(2025, 5, 28, 18, 18, 33, tzinfo=BEIJING)


def at(seconds: int) -> str:
    """T0 + seconds in the wire shape."""
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S+08")


def item(
    task_id: str,
    name: str = "task",
    *,
    status: str = "SUCCEED",
    charge_type: str = "POSTPAID_BY_HOUR",
    charge_status: str = "NOT_BILLING",
    group: str = "",
    sub_uin: str | None = None,
    create: int = 0,
    update: int | None = None,
    start: int | None = None,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A TrainingTaskSetItem as the real service returns it, with the fields the list filters on."""
    doc: dict[str, Any] = {
        "Id": task_id,
        "Name": name,
        "Status": status,
        "ChargeType": charge_type,
        "ChargeStatus": charge_status,
        "ResourceGroupId": group,
        "CreateTime": at(create),
        "UpdateTime": at(create if update is None else update),
        "StartTime": "" if start is None else at(start),
        "EndTime": "",
        "Tags": [{"TagKey": k, "TagValue": v} for k, v in (tags or {}).items()],
    }
    if sub_uin is not None:
        doc["SubUin"] = sub_uin
    return doc


@dataclass
class Env:
    """One live server and database per backend, shared by the module's tests."""

    server: Server
    store: Store
    settings: Settings
    workdir: Path
    serial: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def case(self, *, uin: str = ROOT_UIN, key: Key | None = None, project: str | None = None) -> Case:
        """A fresh workspace (or the given one) for one test."""
        n = next(self.serial)
        return Case(self, n, uin, key or self.server.key, f"ws-{n}" if project is None else project)

    def account(self) -> tuple[str, Key]:
        """A new account (UIN) and a root key for it."""
        uin = str(300000000000 + next(self.serial))
        return uin, self.key(uin)

    def key(self, uin: str, sub_uin: str | None = None) -> Key:
        """A new key for the account, created the way `tione-server keys create` does."""
        k = self.store.keys.create(uin=uin, app_id=uin, sub_uin=sub_uin or uin)
        return Key(k.secret_id, k.secret_key, k.uin, k.app_id, k.sub_uin)


@dataclass
class Case:
    """One test's own workspace: ids that no other test uses, import, and queries."""

    env: Env
    n: int
    uin: str
    key: Key
    project: str

    def id(self, k: int) -> str:
        """Task id number k of this case; ids of different k differ in length (integer != text order)."""
        return f"train-{k}{self.n:05d}"

    def load(self, *items: dict[str, Any], project: str | None = None, uin: str | None = None) -> None:
        """Import the items through the project's importer, into this case's (or the given) workspace."""
        path = self.env.workdir / f"case-{self.n}-{next(self.env.serial)}.json"
        path.write_text(json.dumps(list(items)))
        import_file(
            self.env.store,
            path,
            uin=uin or self.uin,
            app_id=uin or self.uin,
            region=REGION,
            project=self.project if project is None else project,
            settings=self.env.settings,
        )

    def params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"TiProjectId": self.project, **params} if self.project else params

    def sdk(self, key: Key | None = None, region: str = REGION, **params: Any) -> tuple[list[str], int]:
        """(ids in order, TotalCount) through the official SDK's typed client."""
        req = models.DescribeTrainingTasksRequest()
        req.from_json_string(json.dumps(self.params(params)))
        resp = self.env.server.client(key or self.key, region=region).DescribeTrainingTasks(req)
        return [t.Id for t in resp.TrainingTaskSet], resp.TotalCount

    def match(self, **params: Any) -> set[str]:
        """The set of matching ids (one page of 50 holds them all; TotalCount must agree)."""
        ids, total = self.sdk(Limit=50, **params)
        assert total == len(ids)
        return set(ids)

    def raw(self, **params: Any) -> dict[str, Any]:
        """The raw `Response` object, through CommonClient."""
        return self.env.server.call("DescribeTrainingTasks", self.params(params), key=self.key)

    def error(self, **params: Any) -> str:
        """The error code of a request that must fail (sent as is, through CommonClient)."""
        with pytest.raises(TencentCloudSDKException) as info:
            self.raw(**params)
        return str(info.value.code)


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A live server on each backend, for the whole module."""
    workdir = tmp_path_factory.mktemp(f"list-{request.param}")
    with (
        contextmanager(make_database)(request.param, workdir) as url,
        running_server(url, workdir, uin=ROOT_UIN) as server,
        closing(Store(url)) as store,
    ):
        yield Env(server, store, Settings(database_url=url), workdir)


def flt(name: str, *values: str, fuzzy: bool | None = None, negative: bool | None = None) -> dict[str, Any]:
    """A Filter object."""
    f: dict[str, Any] = {"Name": name, "Values": list(values)}
    if fuzzy is not None:
        f["Fuzzy"] = fuzzy
    if negative is not None:
        f["Negative"] = negative
    return f


# -- filters: one per name ------------------------------------------------------------------------


def test_describe_training_tasks_filter_name_is_exact_and_case_sensitive(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), "abc"), item(c.id(2), "ABC"), item(c.id(3), "abcd"), item(c.id(4), "xabc"))
    assert c.match(Filters=[flt("Name", "abc")]) == {c.id(1)}
    assert c.match(Filters=[flt("Name", "ABC")]) == {c.id(2)}
    assert c.match(Filters=[flt("Name", "ab")]) == set()


def test_describe_training_tasks_filter_id(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1)), item(c.id(2)), item(c.id(3)))
    assert c.match(Filters=[flt("Id", c.id(2))]) == {c.id(2)}
    assert c.match(Filters=[flt("Id", c.id(2).upper())]) == set()  # not an enum: case counts
    assert c.match(Filters=[flt("Id", "train-404")]) == set()


def test_describe_training_tasks_filter_status_and_alias_task_status(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), status="RUNNING"), item(c.id(2), status="FAILED"), item(c.id(3), status="SUCCEED"))
    assert c.match(Filters=[flt("Status", "RUNNING")]) == {c.id(1)}
    assert c.match(Filters=[flt("TaskStatus", "FAILED")]) == {c.id(2)}


def test_describe_training_tasks_filter_enums_ignore_ascii_case(env: Env) -> None:
    c = env.case()
    c.load(
        item(c.id(1), status="RUNNING", charge_type="PREPAID", group="ersg-aaaaaaaa"),
        item(c.id(2), status="SUCCEED", charge_status="BILLING"),
        item(c.id(3), status="PENDING", charge_status="ARREARS_STOP"),
    )
    assert c.match(Filters=[flt("TaskStatus", "Running")]) == {c.id(1)}  # the seed page's own example
    assert c.match(Filters=[flt("Status", "rUnNiNg", "succeed")]) == {c.id(1), c.id(2)}
    assert c.match(Filters=[flt("ChargeType", "prepaid")]) == {c.id(1)}
    assert c.match(Filters=[flt("CHARGE_STATUS", "Billing")]) == {c.id(2)}
    assert c.match(Filters=[flt("ChargeStatus", "arrears_stop")]) == {c.id(3)}


def test_describe_training_tasks_filter_enum_case_folding_is_ascii_only(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), status="RUNNING"), item(c.id(2), status="SUCCEED"))
    # Python's str.upper() maps dotless ı to I and long ſ to S; ASCII folding must not.
    assert c.match(Filters=[flt("Status", "runnıng")]) == set()
    assert c.match(Filters=[flt("Status", "ſucceed")]) == set()
    assert c.match(Filters=[flt("Status", "ſucceed", negative=True)]) == {c.id(1), c.id(2)}


def test_describe_training_tasks_filter_unknown_enum_value_matches_nothing(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), status="RUNNING"))
    assert c.match(Filters=[flt("Status", "BOGUS")]) == set()
    assert c.match(Filters=[flt("ChargeType", "PAID")]) == set()


def test_describe_training_tasks_filter_resource_group_id(env: Env) -> None:
    c = env.case()
    c.load(
        item(c.id(1), charge_type="PREPAID", group="ersg-9hw7jfk6"),
        item(c.id(2), charge_type="PREPAID", group="ersg-aaaaaaaa"),
        item(c.id(3)),
    )
    assert c.match(Filters=[flt("ResourceGroupId", "ersg-9hw7jfk6")]) == {c.id(1)}
    assert c.match(Filters=[flt("ResourceGroupId", "ERSG-9HW7JFK6")]) == set()
    assert c.match(Filters=[flt("ResourceGroupId", "")]) == {c.id(3)}


def test_describe_training_tasks_filter_creator_is_the_sub_uin(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), sub_uin="200000000001"), item(c.id(2), sub_uin="200000000002"), item(c.id(3)))
    assert c.match(Filters=[flt("Creator", "200000000001")]) == {c.id(1)}
    assert c.match(Filters=[flt("Creator", ROOT_UIN)]) == {c.id(3)}  # no SubUin: the account created it


def test_describe_training_tasks_filter_charge_type(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), charge_type="PREPAID", group="ersg-aaaaaaaa"), item(c.id(2)))
    assert c.match(Filters=[flt("ChargeType", "PREPAID")]) == {c.id(1)}
    assert c.match(Filters=[flt("ChargeType", "POSTPAID_BY_HOUR")]) == {c.id(2)}


def test_describe_training_tasks_filter_charge_status_and_alias(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), status="RUNNING", charge_status="BILLING"), item(c.id(2)))
    assert c.match(Filters=[flt("CHARGE_STATUS", "BILLING")]) == {c.id(1)}
    assert c.match(Filters=[flt("ChargeStatus", "NOT_BILLING")]) == {c.id(2)}


# -- filter algebra -------------------------------------------------------------------------------


def test_describe_training_tasks_filter_values_or(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), "a"), item(c.id(2), "b"), item(c.id(3), "c"))
    assert c.match(Filters=[flt("Name", "a", "c", "zzz")]) == {c.id(1), c.id(3)}


def test_describe_training_tasks_filters_and(env: Env) -> None:
    c = env.case()
    c.load(
        item(c.id(1), "a", status="RUNNING", charge_status="BILLING"),
        item(c.id(2), "a", status="FAILED"),
        item(c.id(3), "b", status="RUNNING", charge_status="BILLING"),
    )
    assert c.match(Filters=[flt("Name", "a"), flt("Status", "RUNNING")]) == {c.id(1)}
    # Status with CHARGE_STATUS is allowed and ANDed (spec §5.4).
    assert c.match(Filters=[flt("Status", "RUNNING"), flt("CHARGE_STATUS", "BILLING")]) == {c.id(1), c.id(3)}


def test_describe_training_tasks_same_filter_twice_intersects(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), "a"), item(c.id(2), "b"), item(c.id(3), "c"))
    assert c.match(Filters=[flt("Name", "a", "b"), flt("Name", "b", "c")]) == {c.id(2)}
    assert c.match(Filters=[flt("Status", "SUCCEED"), flt("TaskStatus", "FAILED")]) == set()


def test_describe_training_tasks_fuzzy_is_substring_ignoring_ascii_case(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), "my-ABC-run"), item(c.id(2), "abc"), item(c.id(3), "a-b-c"))
    assert c.match(Filters=[flt("Name", "aBc", fuzzy=True)]) == {c.id(1), c.id(2)}
    assert c.match(Filters=[flt("Name", "", fuzzy=True)]) == {c.id(1), c.id(2), c.id(3)}
    assert c.match(Filters=[flt("Id", c.id(3)[-8:], fuzzy=True)]) == {c.id(3)}


def test_describe_training_tasks_fuzzy_non_ascii_compares_exactly(env: Env) -> None:
    c = env.case()
    c.load(
        item(c.id(1), "Éclair"),
        item(c.id(2), "éclair"),
        item(c.id(3), "训练任务-ÉTÉ"),
        item(c.id(4), "ÄÖÜ-straße"),
    )
    assert c.match(Filters=[flt("Name", "É", fuzzy=True)]) == {c.id(1), c.id(3)}
    assert c.match(Filters=[flt("Name", "é", fuzzy=True)]) == {c.id(2)}
    assert c.match(Filters=[flt("Name", "ÉCLAIR", fuzzy=True)]) == {c.id(1)}  # only the ASCII part folds
    assert c.match(Filters=[flt("Name", "训练", fuzzy=True)]) == {c.id(3)}
    assert c.match(Filters=[flt("Name", "训练任务-été", fuzzy=True)]) == set()
    assert c.match(Filters=[flt("Name", "äöü", fuzzy=True)]) == set()
    assert c.match(Filters=[flt("Name", "STRASSE", fuzzy=True)]) == set()
    assert c.match(Filters=[flt("Name", "STRAßE", fuzzy=True)]) == {c.id(4)}


def test_describe_training_tasks_fuzzy_any_number_of_values(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), "alpha"), item(c.id(2), "beta"), item(c.id(3), "gamma"), item(c.id(4), "delta"))
    assert c.match(Filters=[flt("Name", "ALP", "gam", "zzz", fuzzy=True)]) == {c.id(1), c.id(3)}
    many = [f"nothing-{i}" for i in range(99)] + ["ELT"]
    assert c.match(Filters=[flt("Name", *many, fuzzy=True)]) == {c.id(4)}


def test_describe_training_tasks_fuzzy_wildcards_are_literal(env: Env) -> None:
    c = env.case()
    c.load(
        item(c.id(1), "100%"),
        item(c.id(2), "1000"),
        item(c.id(3), "a_b"),
        item(c.id(4), "axb"),
        item(c.id(5), "c:\\d"),
        item(c.id(6), "c:d"),
    )
    assert c.match(Filters=[flt("Name", "%", fuzzy=True)]) == {c.id(1)}
    assert c.match(Filters=[flt("Name", "0%", fuzzy=True)]) == {c.id(1)}
    assert c.match(Filters=[flt("Name", "_", fuzzy=True)]) == {c.id(3)}
    assert c.match(Filters=[flt("Name", "A_B", fuzzy=True)]) == {c.id(3)}
    assert c.match(Filters=[flt("Name", "\\", fuzzy=True)]) == {c.id(5)}
    assert c.match(Filters=[flt("Name", ":\\d", fuzzy=True)]) == {c.id(5)}
    assert c.match(Filters=[flt("Name", "\\%", fuzzy=True)]) == set()
    assert c.match(Filters=[flt("Name", "%", fuzzy=True, negative=True)]) == {c.id(i) for i in (2, 3, 4, 5, 6)}


def test_describe_training_tasks_exact_wildcards_are_literal(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), "a%"), item(c.id(2), "ab"), item(c.id(3), "a_"))
    assert c.match(Filters=[flt("Name", "a%")]) == {c.id(1)}
    assert c.match(Filters=[flt("Name", "a_")]) == {c.id(3)}


def test_describe_training_tasks_negative_inverts_exact(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), "a"), item(c.id(2), "b"), item(c.id(3), "c"))
    assert c.match(Filters=[flt("Name", "a", "b", negative=True)]) == {c.id(3)}
    assert c.match(Filters=[flt("Status", "succeed", negative=True)]) == set()


def test_describe_training_tasks_negative_inverts_fuzzy(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), "Alpha"), item(c.id(2), "beta"), item(c.id(3), "gamma"))
    assert c.match(Filters=[flt("Name", "AL", "ET", fuzzy=True, negative=True)]) == {c.id(3)}


def test_describe_training_tasks_negative_passes_empty_fields(env: Env) -> None:
    c = env.case()
    c.load(
        item(c.id(1), charge_type="PREPAID", group="ersg-aaaaaaaa"),
        item(c.id(2)),
        item(c.id(3), charge_type="PREPAID", group="ersg-bbbbbbbb"),
    )
    assert c.match(Filters=[flt("ResourceGroupId", "ersg-aaaaaaaa", negative=True)]) == {c.id(2), c.id(3)}
    assert c.match(Filters=[flt("ResourceGroupId", "ersg", fuzzy=True, negative=True)]) == {c.id(2)}


def test_describe_training_tasks_empty_values_are_ignored(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), "a"), item(c.id(2), "b"))
    everything = {c.id(1), c.id(2)}
    assert c.match(Filters=[flt("Name")]) == everything
    assert c.match(Filters=[flt("Name", negative=True)]) == everything
    assert c.match(Filters=[flt("Name", fuzzy=True, negative=True)]) == everything
    assert c.match(Filters=[{"Name": "Status"}, flt("Name", "b")]) == {c.id(2)}


def test_describe_training_tasks_nul_in_a_value_is_refused(env: Env) -> None:
    """PostgreSQL text cannot hold NUL and SQLite's LIKE stops at it; both backends must refuse it alike."""
    c = env.case()
    c.load(item(c.id(1), "a"), item(c.id(2), "b"))
    assert c.error(Filters=[flt("Name", "a\x00", "b")]) == "InvalidParameterValue"
    assert c.error(Filters=[flt("Name", "\x00", fuzzy=True, negative=True)]) == "InvalidParameterValue"
    assert c.error(TagFilters=[{"TagKey": "k\x00"}]) == "InvalidParameterValue"
    assert c.error(TagFilters=[{"TagKey": "k", "TagValues": ["\x00"]}]) == "InvalidParameterValue"


def test_describe_training_tasks_unknown_filter_name_is_invalid_parameter_value(env: Env) -> None:
    c = env.case()
    for name in ("status", "Tags", "NAME", "", "Charge_Status", "SubUin"):
        assert c.error(Filters=[flt("Name", "a"), flt(name, "x")]) == "InvalidParameterValue"


def test_describe_training_tasks_filter_without_name_is_missing_parameter(env: Env) -> None:
    c = env.case()
    assert c.error(Filters=[{"Values": ["a"]}]) == "MissingParameter"
    assert c.error(Filters=[flt("Name", "a"), {"Values": [], "Fuzzy": True}]) == "MissingParameter"


# -- tag filters ----------------------------------------------------------------------------------


def test_describe_training_tasks_tag_filter_key_and_values(env: Env) -> None:
    c = env.case()
    c.load(
        item(c.id(1), tags={"team": "ml", "env": "prod"}),
        item(c.id(2), tags={"team": "cv"}),
        item(c.id(3), tags={"Team": "ml"}),
        item(c.id(4)),
    )
    assert c.match(TagFilters=[{"TagKey": "team", "TagValues": ["ml"]}]) == {c.id(1)}
    assert c.match(TagFilters=[{"TagKey": "team", "TagValues": ["ml", "cv"]}]) == {c.id(1), c.id(2)}
    assert c.match(TagFilters=[{"TagKey": "team", "TagValues": ["ML"]}]) == set()  # case-sensitive
    assert c.match(TagFilters=[{"TagKey": "team"}]) == {c.id(1), c.id(2)}  # no values: has the key
    assert c.match(TagFilters=[{"TagKey": "team", "TagValues": []}]) == {c.id(1), c.id(2)}
    assert c.match(TagFilters=[{"TagKey": "env", "TagValues": ["ml"]}]) == set()  # value of another key


def test_describe_training_tasks_tag_filters_and(env: Env) -> None:
    c = env.case()
    c.load(
        item(c.id(1), "x", tags={"team": "ml", "env": "prod"}),
        item(c.id(2), "y", tags={"team": "ml", "env": "dev"}),
        item(c.id(3), "x", tags={"env": "prod"}),
    )
    both = [{"TagKey": "team", "TagValues": ["ml"]}, {"TagKey": "env", "TagValues": ["prod"]}]
    assert c.match(TagFilters=both) == {c.id(1)}
    assert c.match(TagFilters=[{"TagKey": "env"}], Filters=[flt("Name", "x")]) == {c.id(1), c.id(3)}
    assert (
        c.match(TagFilters=[{"TagKey": "env", "TagValues": ["prod"]}, {"TagKey": "env", "TagValues": ["dev"]}]) == set()
    )


def test_describe_training_tasks_tag_filter_without_key_is_invalid_parameter(env: Env) -> None:
    c = env.case()
    assert c.error(TagFilters=[{"TagValues": ["a"]}]) == "InvalidParameter"
    assert c.error(TagFilters=[{"TagKey": "team"}, {"TagKey": "", "TagValues": ["a"]}]) == "InvalidParameter"
    assert c.error(TagFilters=[{"TagKey": "team", "TagValue": "ml"}]) == "UnknownParameter"


# -- paging ---------------------------------------------------------------------------------------


def test_describe_training_tasks_limit_default_and_zero_mean_ten(env: Env) -> None:
    c = env.case()
    c.load(*(item(c.id(k), update=k) for k in range(1, 13)))
    newest_ten = [c.id(k) for k in range(12, 2, -1)]
    assert c.sdk() == (newest_ten, 12)
    assert c.sdk(Limit=0) == (newest_ten, 12)
    assert c.sdk(Limit=3, Offset=0) == (newest_ten[:3], 12)


def test_describe_training_tasks_limit_above_fifty_is_page_limit_exceeded(env: Env) -> None:
    c = env.case()
    c.load(*(item(c.id(k), update=k) for k in range(1, 56)))
    ids, total = c.sdk(Limit=50)
    assert (len(ids), total) == (50, 55)
    assert c.error(Limit=51) == "InvalidParameterValue.PageLimitExceeded"
    assert c.error(Limit=10**6) == "InvalidParameterValue.PageLimitExceeded"


@pytest.mark.parametrize(
    "params",
    [{"Limit": -1}, {"Offset": -1}, {"Limit": "10"}, {"Offset": 1.5}, {"Limit": True}, {"Offset": [0]}],
    ids=["limit-negative", "offset-negative", "limit-string", "offset-float", "limit-bool", "offset-list"],
)
def test_describe_training_tasks_bad_paging_type_is_invalid_parameter(env: Env, params: dict[str, Any]) -> None:
    assert env.case().error(**params) == "InvalidParameter"


def test_describe_training_tasks_total_count_ignores_paging(env: Env) -> None:
    c = env.case()
    c.load(*(item(c.id(k), update=k) for k in range(1, 8)))
    assert c.sdk(Offset=2, Limit=3) == ([c.id(5), c.id(4), c.id(3)], 7)
    assert c.sdk(Offset=6, Limit=3) == ([c.id(1)], 7)
    assert c.sdk(Offset=2, Limit=3, Filters=[flt("Id", c.id(1), c.id(2), c.id(7))]) == ([c.id(1)], 3)


def test_describe_training_tasks_offset_beyond_the_end_is_an_empty_page(env: Env) -> None:
    c = env.case()
    c.load(*(item(c.id(k)) for k in range(1, 4)))
    assert c.sdk(Offset=3) == ([], 3)
    assert c.sdk(Offset=10**12, Limit=50) == ([], 3)
    assert c.sdk(Offset=2**63 - 1) == ([], 3)


# -- ordering -------------------------------------------------------------------------------------


def test_describe_training_tasks_order_default_desc_and_case_insensitive(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), update=30), item(c.id(2), update=10), item(c.id(3), update=20))
    desc, asc = [c.id(1), c.id(3), c.id(2)], [c.id(2), c.id(3), c.id(1)]
    assert c.sdk()[0] == desc
    assert c.sdk(Order="")[0] == desc
    for order in ("DESC", "desc", "Desc"):
        assert c.sdk(Order=order)[0] == desc
    for order in ("ASC", "asc", "aSc"):
        assert c.sdk(Order=order)[0] == asc


@pytest.mark.parametrize("order", ["ASCENDING", "up", " ASC", "DESC ", "aſc", "deſc", "0"])
def test_describe_training_tasks_order_other_is_invalid_parameter_value(env: Env, order: str) -> None:
    assert env.case().error(Order=order) == "InvalidParameterValue"


def test_describe_training_tasks_order_field_default_update_time(env: Env) -> None:
    c = env.case()
    c.load(
        item(c.id(1), create=1, update=300, start=20),
        item(c.id(2), create=2, update=100, start=30),
        item(c.id(3), create=3, update=200, start=10),
    )
    assert c.sdk()[0] == [c.id(1), c.id(3), c.id(2)]
    assert c.sdk(OrderField="")[0] == [c.id(1), c.id(3), c.id(2)]
    assert c.sdk(OrderField="UpdateTime", Order="ASC")[0] == [c.id(2), c.id(3), c.id(1)]
    assert c.sdk(OrderField="CreateTime")[0] == [c.id(3), c.id(2), c.id(1)]
    assert c.sdk(OrderField="StartTime")[0] == [c.id(2), c.id(1), c.id(3)]


@pytest.mark.parametrize("field_name", ["createTime", "UPDATETIME", "EndTime", "Id", "Name", "StartTime "])
def test_describe_training_tasks_order_field_other_is_invalid_parameter_value(env: Env, field_name: str) -> None:
    assert env.case().error(OrderField=field_name) == "InvalidParameterValue"


def test_describe_training_tasks_empty_start_time_sorts_lowest(env: Env) -> None:
    c = env.case()
    c.load(
        item(c.id(1), start=None),
        item(c.id(2), start=-(10**6)),  # long ago, but still a time: above "never started"
        item(c.id(3), start=50),
        item(c.id(4), start=None),
    )
    assert c.sdk(OrderField="StartTime", Order="ASC")[0] == [c.id(1), c.id(4), c.id(2), c.id(3)]
    assert c.sdk(OrderField="StartTime", Order="DESC")[0] == [c.id(3), c.id(2), c.id(4), c.id(1)]


def test_describe_training_tasks_ties_broken_by_integer_id(env: Env) -> None:
    c = env.case()
    # Ids 9xxxxx and 10xxxxxx: as text "10..." < "9...", as integers 9... < 10...
    c.load(item(c.id(10)), item(c.id(9)), item(c.id(100)), item(c.id(11), update=-1))
    assert c.sdk()[0] == [c.id(100), c.id(10), c.id(9), c.id(11)]
    assert c.sdk(Order="ASC")[0] == [c.id(11), c.id(9), c.id(10), c.id(100)]
    assert c.sdk(OrderField="StartTime", Order="ASC")[0] == [c.id(9), c.id(10), c.id(11), c.id(100)]
    pages = [c.sdk(Order="ASC", Limit=1, Offset=i)[0] for i in range(4)]
    assert pages == [[c.id(11)], [c.id(9)], [c.id(10)], [c.id(100)]]


# -- limits and validation order ------------------------------------------------------------------


def test_describe_training_tasks_filter_count_limits(env: Env) -> None:
    c = env.case()
    c.load(item(c.id(1), "a"))
    ten = [flt("Name", *(f"v{i}" for i in range(99)), "a") for _ in range(10)]
    assert c.match(Filters=ten) == {c.id(1)}
    ten_fuzzy = [flt("Name", *(f"%{i}_" for i in range(99)), "A", fuzzy=True) for _ in range(10)]
    assert c.match(Filters=ten_fuzzy) == {c.id(1)}  # 1,000 LIKE terms: within both databases' limits
    assert c.match(Filters=[flt("Name", *(f"v{i}" for i in range(100)), negative=True)] * 10) == {c.id(1)}
    assert c.error(Filters=[*ten, flt("Name", "a")]) == "InvalidParameterValue.LimitExceeded"
    assert c.error(Filters=[flt("Name", *(f"v{i}" for i in range(101)))]) == "InvalidParameterValue.LimitExceeded"
    tags = [{"TagKey": f"k{i}"} for i in range(11)]
    assert c.error(TagFilters=tags) == "InvalidParameterValue.LimitExceeded"
    values = [{"TagKey": "k", "TagValues": [f"v{i}" for i in range(101)]}]
    assert c.error(TagFilters=values) == "InvalidParameterValue.LimitExceeded"
    assert c.match(TagFilters=[{"TagKey": f"k{i}"} for i in range(10)]) == set()
    assert c.match(TagFilters=[{"TagKey": "k", "TagValues": [f"v{i}" for i in range(100)]}] * 10) == set()


def test_describe_training_tasks_validation_order(env: Env) -> None:
    c = env.case()
    too_many = [flt("Name", "a")] * 11
    # 1. types beat everything
    assert c.error(Limit=51, Order="x", Offset="1") == "InvalidParameter"
    # 2. Limit > 50 beats Order, OrderField, filters and counts
    assert c.error(Limit=51, Order="x", Filters=[flt("bogus", "a")]) == "InvalidParameterValue.PageLimitExceeded"
    assert c.error(Limit=51, Filters=too_many) == "InvalidParameterValue.PageLimitExceeded"
    # 3. Order/OrderField beat filter names and structure
    assert c.error(Order="x", Filters=[{"Values": ["a"]}]) == "InvalidParameterValue"
    assert c.error(OrderField="x", TagFilters=[{"TagKey": ""}]) == "InvalidParameterValue"
    # 4. names and structure beat counts
    assert c.error(Filters=[*too_many, {"Values": ["a"]}]) == "MissingParameter"
    assert c.error(TagFilters=[{"TagKey": f"k{i}"} for i in range(11)] + [{"TagKey": ""}]) == "InvalidParameter"
    assert c.error(Filters=[*too_many, flt("bogus", "a")]) == "InvalidParameterValue"


# -- the items ------------------------------------------------------------------------------------


def _api_objects() -> dict[str, Any]:
    objects: dict[str, Any] = json.loads(API_JSON.read_text())["objects"]
    return objects


def _check_object(objects: dict[str, Any], type_name: str, value: Any, where: str) -> None:
    """Every member of `type_name` is present, not null, of the right JSON type; nothing else is."""
    assert isinstance(value, dict), f"{where}: {value!r} is not an object"
    members = {m["name"]: m for m in objects[type_name]["members"]}
    assert set(value) == set(members), f"{where}: {sorted(set(value) ^ set(members))}"
    for name, m in members.items():
        path = f"{where}.{name}"
        assert value[name] is not None, f"{path} is null"
        if m["type"] == "list":
            assert isinstance(value[name], list), path
            for i, element in enumerate(value[name]):
                _check_value(objects, m["member"], element, f"{path}.{i}")
        else:
            _check_value(objects, m["member"], value[name], path)


def _check_value(objects: dict[str, Any], member: str, value: Any, where: str) -> None:
    assert value is not None, f"{where} is null"
    if member in objects:
        _check_object(objects, member, value, where)
    elif member == "string":
        assert isinstance(value, str), where
    elif member == "bool":
        assert isinstance(value, bool), where
    elif member.startswith(("int", "uint")):
        assert isinstance(value, int), where
        assert not isinstance(value, bool), where
    else:
        assert isinstance(value, int | float), where


def test_describe_training_tasks_items_have_every_field_never_null(env: Env) -> None:
    c = env.case()
    minimal = {"Id": c.id(1), "Name": "bare", "Status": "SUBMITTING", "CreateTime": at(0)}
    rich = item(c.id(2), "rich", status="RUNNING", charge_status="BILLING", start=5, tags={"a": "b"}, update=9)
    rich |= {
        "ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.S6.MEDIUM2.POST", "InstanceNum": 1}],
        "ImageInfo": {"ImageType": "PRE_SET", "ImageUrl": "ccr.ccs.tencentyun.com/tione/pytorch:2.1"},
        "Envs": [{"Name": "A", "Value": "1"}],
        "Output": {"Bucket": "b-1250000000", "Region": "ap-guangzhou", "Paths": ["/out/"]},
        "LatestOperatorInfo": {"SubUin": ROOT_UIN, "OperationType": "CREATE"},
    }
    c.load(minimal, rich)
    resp = c.raw(Limit=50)
    assert resp["TotalCount"] == 2
    objects = _api_objects()
    assert {t["Id"] for t in resp["TrainingTaskSet"]} == {c.id(1), c.id(2)}
    for i, task in enumerate(resp["TrainingTaskSet"]):
        _check_object(objects, "TrainingTaskSetItem", task, f"TrainingTaskSet.{i}")
        for name in ("CreateTime", "UpdateTime"):
            assert TIME_SHAPE.match(task[name]), (name, task[name])
        for name in ("StartTime", "EndTime"):
            assert task[name] == "" or TIME_SHAPE.match(task[name]), (name, task[name])
    bare = next(t for t in resp["TrainingTaskSet"] if t["Id"] == c.id(1))
    assert (bare["StartTime"], bare["EndTime"], bare["Tags"], bare["Envs"]) == ("", "", [], [])
    assert bare["Output"] == {"Bucket": "", "Region": "", "Paths": []}
    assert bare["UpdateTime"] == bare["CreateTime"] == at(0)


def test_describe_training_tasks_private_env_values_are_masked(env: Env) -> None:
    c = env.case()
    envs = [{"Name": "TOKEN", "Value": "s3cret", "IsPrivate": True}, {"Name": "EPOCHS", "Value": "3"}]
    c.load(item(c.id(1)) | {"Envs": envs})
    shown = c.raw()["TrainingTaskSet"][0]["Envs"]
    assert shown == [
        {"Name": "TOKEN", "Value": "******", "IsPrivate": True},
        {"Name": "EPOCHS", "Value": "3", "IsPrivate": False},
    ]


def test_describe_training_tasks_times_are_beijing_wall_clock(env: Env) -> None:
    c = env.case()
    c.load(
        item(c.id(1)) | {"CreateTime": "2025-05-28T10:18:33Z", "UpdateTime": "2025-05-28 18:18:34"},
        item(c.id(2)) | {"CreateTime": "2025-05-28T12:18:33.999-06:00", "StartTime": "2025-05-29T02:18:40+08:00"},
    )
    got = {t["Id"]: t for t in c.raw()["TrainingTaskSet"]}
    assert got[c.id(1)]["CreateTime"] == "2025-05-28T18:18:33+08"
    assert got[c.id(1)]["UpdateTime"] == "2025-05-28T18:18:34+08"
    assert got[c.id(2)]["CreateTime"] == "2025-05-29T02:18:33+08"
    assert got[c.id(2)]["StartTime"] == "2025-05-29T02:18:40+08"


# -- accounts, regions, workspaces ----------------------------------------------------------------


def test_describe_training_tasks_other_account_sees_nothing(env: Env) -> None:
    uin, key = env.account()
    other_uin, other_key = env.account()
    c = env.case(uin=uin, key=key, project="")
    c.load(item(c.id(1)), item(c.id(2)))
    c.load(item(c.id(3)), project="shared-name")
    assert c.match() == {c.id(1), c.id(2)}
    assert c.sdk(key=other_key) == ([], 0)
    assert c.sdk(key=other_key, TiProjectId="shared-name") == ([], 0)
    assert c.sdk(key=other_key, Filters=[flt("Id", c.id(1))]) == ([], 0)
    mine = [flt("Id", c.id(1), c.id(2), c.id(3))]
    assert c.sdk(key=env.server.key, Filters=mine) == ([], 0)  # the module's main account, too
    assert c.sdk(key=env.server.key, TiProjectId="shared-name", Filters=mine) == ([], 0)
    assert other_uin != uin


def test_describe_training_tasks_sub_user_sees_the_whole_account(env: Env) -> None:
    uin, key = env.account()
    c = env.case(uin=uin, key=key, project="")
    c.load(item(c.id(1), sub_uin="200000000009"), item(c.id(2)))
    sub_key = env.key(uin, sub_uin="200000000008")
    assert set(c.sdk(key=sub_key)[0]) == {c.id(1), c.id(2)}


def test_describe_training_tasks_other_region_sees_nothing(env: Env) -> None:
    uin, key = env.account()
    c = env.case(uin=uin, key=key, project="")
    c.load(item(c.id(1)))
    assert c.sdk() == ([c.id(1)], 1)
    assert c.sdk(region="ap-shanghai") == ([], 0)


def test_describe_training_tasks_default_workspace_spellings(env: Env) -> None:
    uin, key = env.account()
    c = env.case(uin=uin, key=key, project="")
    c.load(item(c.id(1)))
    c.load(item(c.id(2)), project="0")
    c.load(item(c.id(3)), project="ws-a")
    default = {c.id(1), c.id(2)}
    assert c.match() == default
    assert c.match(TiProjectId="") == default
    assert c.match(TiProjectId="0") == default
    assert c.match(TiProjectId="ws-a") == {c.id(3)}
    assert c.match(TiProjectId="ws-b") == set()
    assert c.match(TiProjectId="00") == set()
