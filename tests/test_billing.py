"""DescribeBillingSpecs, DescribeBillingSpecsPrice and DescribeBillingResourceGroups through the official SDK
(spec §4.10-§4.12), on the built-in catalogue and on a catalogue file given with `serve --catalogue`."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.tione.v20211111 import models

from tests.live import BIN, Server, free_port, running_server

SPEC_ID = re.compile(r"^sv_tio_platform_cloud_(post|pre)_(cpu|gpu)_\d+c\d+g(_[0-9_]+[a-z0-9]+)?$")
CPU_GROUP, GPU_GROUP = "ersg-c7kq2m9x", "ersg-v5r8b1ht"

# Spec §9.1, in table order: name -> (SpecType, GpuType, SpecAlias, placeholder price).
BUILT_IN = {
    "TI.S6.MEDIUM2.POST": ("CPU", "", "2核2GB", 60),
    "TI.S.MEDIUM.POST": ("CPU", "", "2核4GB", 70),
    "TI.S.LARGE.POST": ("CPU", "", "4核8GB", 140),
    "TI.S.2XLARGE16.POST": ("CPU", "", "8核16GB", 280),
    "TI.S.2XLARGE32.POST": ("CPU", "", "8核32GB", 350),
    "TI.S.4XLARGE32.POST": ("CPU", "", "16核32GB", 560),
    "TI.S.4XLARGE64.POST": ("CPU", "", "16核64GB", 700),
    "TI.S.6XLARGE48.POST": ("CPU", "", "24核48GB", 840),
    "TI.S.6XLARGE96.POST": ("CPU", "", "24核96GB", 1050),
    "TI.S.8XLARGE64.POST": ("CPU", "", "32核64GB", 1120),
    "TI.S.8XLARGE128.POST": ("CPU", "", "32核128GB", 1400),
    "TI.GN7.LARGE20.POST": ("GPU", "T4", "4核20GB T4*1/4", 300),
    "TI.GN7.2XLARGE40.POST": ("GPU", "T4", "10核40GB T4*1/2", 600),
    "TI.GN7.2XLARGE32.POST": ("GPU", "T4", "8核32GB T4*1", 1000),
    "TI.GN7.5XLARGE80.POST": ("GPU", "T4", "20核80GB T4*1", 1200),
    "TI.GN7.8XLARGE128.POST": ("GPU", "T4", "32核128GB T4*1", 1500),
    "TI.GN7.10XLARGE160.POST": ("GPU", "T4", "40核160GB T4*2", 2800),
    "TI.GN7.20XLARGE320.POST": ("GPU", "T4", "80核320GB T4*4", 5600),
    "TI.GN10.2XLARGE40.POST": ("GPU", "V100", "8核40GB V100*1", 2000),
    "TI.GN10.5XLARGE80.POST": ("GPU", "V100", "18核80GB V100*2", 4000),
    "TI.GN10.10XLARGE160.POST": ("GPU", "V100", "32核160GB V100*4", 8000),
    "TI.GN10.20XLARGE320.POST": ("GPU", "V100", "72核320GB V100*8", 16000),
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server on the built-in catalogue for the read-only tests of this module."""
    tmp = tmp_path_factory.mktemp("billing")
    with running_server(f"sqlite:///{tmp / 'tione.db'}", tmp) as server:
        yield server


def _code(server: Server, action: str, params: dict[str, Any]) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        server.call(action, params)
    return str(info.value.get_code())


def _walk_no_nulls(value: Any, path: str = "Response") -> None:
    assert value is not None, f"null at {path}"
    if isinstance(value, dict):
        for k, v in value.items():
            _walk_no_nulls(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk_no_nulls(v, f"{path}[{i}]")


def _specs(server: Server, **params: Any) -> list[models.Spec]:
    req = models.DescribeBillingSpecsRequest()
    req.from_json_string(json.dumps({"ChargeType": "POSTPAID_BY_HOUR", **params}))
    return list(server.client().DescribeBillingSpecs(req).Specs)


def _prices(server: Server, units: list[tuple[str, int]]) -> list[models.SpecPrice]:
    req = models.DescribeBillingSpecsPriceRequest()
    req.from_json_string(json.dumps({"SpecsParam": [{"SpecName": n, "SpecCount": c} for n, c in units]}))
    return list(server.client().DescribeBillingSpecsPrice(req).SpecsPrice)


def _groups(server: Server, **params: Any) -> models.DescribeBillingResourceGroupsResponse:
    req = models.DescribeBillingResourceGroupsRequest()
    req.from_json_string(json.dumps(params))
    return server.client().DescribeBillingResourceGroups(req)


def _group_ids(server: Server, **params: Any) -> list[str]:
    return [g.ResourceGroupId for g in _groups(server, **params).ResourceGroupSet]


# --- DescribeBillingSpecs ---------------------------------------------------------------------------------------


def test_describe_billing_specs_postpaid_lists_the_catalogue_in_order(srv: Server) -> None:
    specs = _specs(srv)
    assert [s.SpecName for s in specs] == list(BUILT_IN)
    for s in specs:
        spec_type, gpu_type, alias, _ = BUILT_IN[s.SpecName]
        assert (s.SpecType, s.GpuType, s.SpecAlias) == (spec_type, gpu_type, alias)
        assert SPEC_ID.match(s.SpecId), s.SpecId
        assert s.Available is True
        assert "ap-guangzhou" in s.AvailableRegion
        assert "COS" in s.SpecFeatures


def test_describe_billing_specs_spec_id_follows_the_billing_item_pattern(srv: Server) -> None:
    by_name = {s.SpecName: s for s in _specs(srv)}
    assert by_name["TI.GN10.2XLARGE40.POST"].SpecId == "sv_tio_platform_cloud_post_gpu_8c40g_1v100"
    assert by_name["TI.S.MEDIUM.POST"].SpecId == "sv_tio_platform_cloud_post_cpu_2c4g"


@pytest.mark.parametrize(
    ("resource_type", "expected"),
    [
        ("CPU", [n for n, v in BUILT_IN.items() if v[0] == "CPU"]),
        ("GPU", [n for n, v in BUILT_IN.items() if v[0] == "GPU"]),
        ("CALC", list(BUILT_IN)),
        ("", list(BUILT_IN)),
        ("GPU-SW", []),
    ],
)
def test_describe_billing_specs_resource_type_filters(srv: Server, resource_type: str, expected: list[str]) -> None:
    assert [s.SpecName for s in _specs(srv, ResourceType=resource_type)] == expected


@pytest.mark.parametrize("task_type", ["", "TRAIN", "NOTEBOOK", "INFERENCE", "EMS"])
def test_describe_billing_specs_task_types_accepted(srv: Server, task_type: str) -> None:
    assert len(_specs(srv, TaskType=task_type)) == len(BUILT_IN)


def test_describe_billing_specs_prepaid_lists_node_specs(srv: Server) -> None:
    specs = _specs(srv, ChargeType="PREPAID")
    assert specs
    assert all(s.SpecId.startswith("sv_tio_platform_cloud_pre_") for s in specs)
    assert not {s.SpecName for s in specs} & set(BUILT_IN)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "MissingParameter"),
        ({"ChargeType": "POSTPAID"}, "InvalidParameterValue"),
        ({"ChargeType": ""}, "InvalidParameterValue"),
        ({"ChargeType": "postpaid_by_hour"}, "InvalidParameterValue"),
        ({"ChargeType": "PREPAID", "TaskType": "TRAINING"}, "InvalidParameterValue"),
        ({"ChargeType": "PREPAID", "ResourceType": "TPU"}, "InvalidParameterValue"),
        ({"ChargeType": 1}, "InvalidParameter"),
        ({"ChargeType": "PREPAID", "Bogus": 1}, "UnknownParameter"),
    ],
)
def test_describe_billing_specs_validation(srv: Server, params: dict[str, Any], code: str) -> None:
    assert _code(srv, "DescribeBillingSpecs", params) == code


def test_describe_billing_specs_never_null(srv: Server) -> None:
    for charge_type in ("POSTPAID_BY_HOUR", "PREPAID"):
        _walk_no_nulls(srv.call("DescribeBillingSpecs", {"ChargeType": charge_type}))


# --- DescribeBillingSpecsPrice ----------------------------------------------------------------------------------


def test_describe_billing_specs_price_worked_example(srv: Server) -> None:
    (price,) = _prices(srv, [("TI.S.MEDIUM.POST", 1)])
    assert (price.SpecName, price.TotalCost, price.RealTotalCost, price.SpecCount) == ("TI.S.MEDIUM.POST", 70, 70, 1)


def test_describe_billing_specs_price_is_unit_price_times_count_in_input_order(srv: Server) -> None:
    units = [("TI.GN10.2XLARGE40.POST", 2), ("TI.S.LARGE.POST", 1), ("TI.S.MEDIUM.POST", 3), ("TI.S.LARGE.POST", 1)]
    prices = _prices(srv, units)
    assert [(p.SpecName, p.SpecCount) for p in prices] == units
    assert [p.TotalCost for p in prices] == [4000, 140, 210, 140]
    assert [p.RealTotalCost for p in prices] == [4000, 140, 210, 140]


def test_describe_billing_specs_price_every_built_in_spec(srv: Server) -> None:
    prices = _prices(srv, [(name, 1) for name in BUILT_IN])
    assert [p.TotalCost for p in prices] == [v[3] for v in BUILT_IN.values()]


def test_describe_billing_specs_price_above_4_2_billion_is_zero(srv: Server) -> None:
    at, above = _prices(srv, [("TI.GN10.20XLARGE320.POST", 262_500), ("TI.GN10.20XLARGE320.POST", 262_501)])
    assert (at.TotalCost, at.RealTotalCost) == (4_200_000_000, 4_200_000_000)
    assert (above.TotalCost, above.RealTotalCost, above.SpecCount) == (0, 0, 262_501)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "MissingParameter"),
        ({"SpecsParam": []}, "MissingParameter"),
        ({"SpecsParam": [{"SpecName": "TI.S.MEDIUM.POST"}]}, "MissingParameter"),
        ({"SpecsParam": [{"SpecCount": 1}]}, "MissingParameter"),
        ({"SpecsParam": [{"SpecName": "TI.NOPE.POST", "SpecCount": 1}]}, "InvalidParameterValue"),
        ({"SpecsParam": [{"SpecName": "TI.S.4XLARGE64.PRE", "SpecCount": 1}]}, "InvalidParameterValue"),
        ({"SpecsParam": [{"SpecName": "ti.s.medium.post", "SpecCount": 1}]}, "InvalidParameterValue"),
        ({"SpecsParam": [{"SpecName": "TI.S.MEDIUM.POST", "SpecCount": 0}]}, "InvalidParameterValue"),
        ({"SpecsParam": [{"SpecName": "TI.S.MEDIUM.POST", "SpecCount": -1}]}, "InvalidParameter"),
        (
            {"SpecsParam": [{"SpecName": "TI.S.MEDIUM.POST", "SpecCount": 1}, {"SpecName": "X", "SpecCount": 1}]},
            "InvalidParameterValue",
        ),
    ],
)
def test_describe_billing_specs_price_validation(srv: Server, params: dict[str, Any], code: str) -> None:
    assert _code(srv, "DescribeBillingSpecsPrice", params) == code


def test_describe_billing_specs_price_never_null(srv: Server) -> None:
    resp = srv.call("DescribeBillingSpecsPrice", {"SpecsParam": [{"SpecName": "TI.S.MEDIUM.POST", "SpecCount": 1}]})
    _walk_no_nulls(resp)


# --- DescribeBillingResourceGroups ------------------------------------------------------------------------------


def test_describe_billing_resource_groups_default_catalogue(srv: Server) -> None:
    resp = _groups(srv)
    assert resp.TotalCount == 2
    # Newest first: the GPU group was created later.
    gpu, cpu = resp.ResourceGroupSet
    assert (gpu.ResourceGroupId, cpu.ResourceGroupId) == (GPU_GROUP, CPU_GROUP)
    assert re.fullmatch(r"ersg-[a-z0-9]{8}", gpu.ResourceGroupId)
    assert (gpu.TotalInstance, gpu.FreeInstance) == (2, 2)
    assert (gpu.TotalResource.Cpu, gpu.TotalResource.Memory, gpu.TotalResource.Gpu) == (40000, 204800, 500)
    assert [(d.Name, d.Value) for d in gpu.TotalResource.GpuDetailSet] == [("V100", 500)]
    assert (gpu.UsedResource.Cpu, gpu.UsedResource.Memory, gpu.UsedResource.Gpu) == (0, 0, 0)
    assert [(t.TagKey, t.TagValue) for t in gpu.TagSet] == [("team", "vision")]
    big = gpu.InstanceSet[0]
    assert re.fullmatch(r"eins-[a-z0-9]+", big.InstanceId)
    assert big.InstanceStatus == "RUNNING"
    assert (big.TotalResource.Cpu, big.TotalResource.Memory, big.TotalResource.Gpu) == (32000, 163840, 400)
    assert big.TotalResource.GpuType == "V100"
    assert (big.AvailableResource.Cpu, big.AvailableResource.Gpu) == (32000, 400)
    assert big.UsedResource.Cpu == 0
    assert big.SpecAlias == "32核160GB V100*4"
    assert SPEC_ID.match(big.SpecId)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", big.CreateTime)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", big.ExpireTime)
    assert (cpu.TotalResource.Gpu, cpu.TotalResource.GpuDetailSet) == (0, [])


def test_describe_billing_resource_groups_never_null(srv: Server) -> None:
    _walk_no_nulls(srv.call("DescribeBillingResourceGroups", {}))


@pytest.mark.parametrize(
    ("params", "expected", "total"),
    [
        ({"Limit": 0}, [GPU_GROUP, CPU_GROUP], 2),
        ({"Limit": 1}, [GPU_GROUP], 2),
        ({"Offset": 1, "Limit": 1}, [CPU_GROUP], 2),
        ({"Offset": 1}, [CPU_GROUP], 2),
        ({"Offset": 5}, [], 2),
        ({"Limit": 1000}, [GPU_GROUP, CPU_GROUP], 2),
    ],
)
def test_describe_billing_resource_groups_paging_total_count_is_all_matches(
    srv: Server, params: dict[str, Any], expected: list[str], total: int
) -> None:
    resp = _groups(srv, **params)
    assert [g.ResourceGroupId for g in resp.ResourceGroupSet] == expected
    assert resp.TotalCount == total


def _f(name: str, *values: str, fuzzy: bool = False, negative: bool = False) -> dict[str, Any]:
    return {"Name": name, "Values": list(values), "Fuzzy": fuzzy, "Negative": negative}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([_f("ResourceGroupId", CPU_GROUP)], [CPU_GROUP]),
        ([_f("ResourceGroupId", CPU_GROUP, GPU_GROUP)], [GPU_GROUP, CPU_GROUP]),
        ([_f("ResourceGroupId", "ersg-c7k")], []),
        ([_f("ResourceGroupId", "ersg-c7k", fuzzy=True)], [CPU_GROUP]),
        ([_f("ResourceGroupName", "gpu-v100")], [GPU_GROUP]),
        ([_f("ResourceGroupName", "GPU", fuzzy=True)], [GPU_GROUP]),
        ([_f("ResourceGroupName", "pool", fuzzy=True)], [CPU_GROUP]),
        # Fuzzy applies to exactly one value; with two, matching is exact.
        ([_f("ResourceGroupName", "gpu", "pool", fuzzy=True)], []),
        ([_f("ResourceGroupName", "gpu-v100", "cpu-pool", fuzzy=True)], [GPU_GROUP, CPU_GROUP]),
        ([_f("ResourceGroupName", "gpu-v100", negative=True)], [CPU_GROUP]),
        ([_f("ResourceGroupName")], [GPU_GROUP, CPU_GROUP]),
        ([_f("AvailableNodeCount", "0")], [GPU_GROUP, CPU_GROUP]),
        ([_f("AvailableNodeCount", "2")], [GPU_GROUP, CPU_GROUP]),
        ([_f("AvailableNodeCount", "3")], []),
        ([_f("ResourceGroupName", "cpu", fuzzy=True), _f("ResourceGroupId", GPU_GROUP)], []),
    ],
)
def test_describe_billing_resource_groups_filters(
    srv: Server, filters: list[dict[str, Any]], expected: list[str]
) -> None:
    resp = _groups(srv, Filters=filters)
    assert [g.ResourceGroupId for g in resp.ResourceGroupSet] == expected
    assert resp.TotalCount == len(expected)


@pytest.mark.parametrize(
    ("word", "expected"),
    [("v100", [GPU_GROUP]), ("ersg-c7k", [CPU_GROUP]), ("ersg", [GPU_GROUP, CPU_GROUP]), ("nothing", []), ("", None)],
)
def test_describe_billing_resource_groups_search_word_matches_id_or_name(
    srv: Server, word: str, expected: list[str] | None
) -> None:
    assert _group_ids(srv, SearchWord=word) == (expected if expected is not None else [GPU_GROUP, CPU_GROUP])


@pytest.mark.parametrize(
    ("tag_filters", "expected"),
    [
        ([{"TagKey": "team", "TagValues": ["vision"]}], [GPU_GROUP]),
        ([{"TagKey": "team", "TagValues": []}], [GPU_GROUP, CPU_GROUP]),
        ([{"TagKey": "team", "TagValues": ["vision", "research"]}], [GPU_GROUP, CPU_GROUP]),
        ([{"TagKey": "owner"}], []),
    ],
)
def test_describe_billing_resource_groups_tag_filters(
    srv: Server, tag_filters: list[dict[str, Any]], expected: list[str]
) -> None:
    assert _group_ids(srv, TagFilters=tag_filters) == expected


def test_describe_billing_resource_groups_dont_show_instance_set(srv: Server) -> None:
    resp = _groups(srv, DontShowInstanceSet=True)
    assert [g.InstanceSet for g in resp.ResourceGroupSet] == [[], []]
    assert [g.TotalInstance for g in resp.ResourceGroupSet] == [2, 2]
    assert all(len(g.InstanceSet) == 2 for g in _groups(srv, DontShowInstanceSet=False).ResourceGroupSet)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Filters": [_f("Status", "RUNNING")]}, "InvalidParameterValue.InvalidFilter"),
        ({"Filters": [_f("resourcegroupid", CPU_GROUP)]}, "InvalidParameterValue.InvalidFilter"),
        ({"Filters": [{"Values": ["x"]}]}, "MissingParameter"),
        ({"Filters": [_f("ResourceGroupName", "a")] * 6}, "InvalidParameterValue.LimitExceeded"),
        ({"Filters": [_f("ResourceGroupName", *[str(i) for i in range(101)])]}, "InvalidParameterValue.LimitExceeded"),
        ({"Filters": [_f("AvailableNodeCount", "two")]}, "InvalidParameterValue"),
        ({"Filters": [_f("AvailableNodeCount", "-1")]}, "InvalidParameterValue"),
        ({"TagFilters": [{"TagKey": "", "TagValues": ["x"]}]}, "InvalidParameter"),
        ({"TagFilters": [{"TagKey": "k"}] * 11}, "InvalidParameterValue.LimitExceeded"),
        ({"Limit": -1}, "InvalidParameter"),
        ({"Offset": -1}, "InvalidParameter"),
        ({"Limit": "5"}, "InvalidParameter"),
        ({"DontShowInstanceSet": "yes"}, "InvalidParameter"),
        ({"Bogus": 1}, "UnknownParameter"),
    ],
)
def test_describe_billing_resource_groups_validation(srv: Server, params: dict[str, Any], code: str) -> None:
    assert _code(srv, "DescribeBillingResourceGroups", params) == code


def test_describe_billing_resource_groups_filter_limits_allow_five(srv: Server) -> None:
    assert _group_ids(srv, Filters=[_f("AvailableNodeCount", "0")] * 5) == [GPU_GROUP, CPU_GROUP]
    many = _f("ResourceGroupName", *[f"n{i}" for i in range(99)], "cpu-pool")  # 100 values
    assert _group_ids(srv, Filters=[many]) == [CPU_GROUP]


# --- a catalogue file -------------------------------------------------------------------------------------------

CUSTOM = """
discount = 80

[capacity]
cpu = 4000
memory = 8192

[[instance_types]]
name = "TI.S.MEDIUM.POST"
cpu = 2000
memory = 4096
price = 100

[[instance_types]]
name = "TI.X.SOLDOUT.POST"
cpu = 4000
memory = 8192
price = 500
available = false

[[instance_types]]
name = "TI.X.SHANGHAI.POST"
cpu = 4000
memory = 8192
gpu = 100
gpu_type = "A100"
price = 900
available_regions = ["ap-shanghai"]
rdma = true

[[instance_types]]
name = "TI.X.CVM.POST"
cpu = 8000
memory = 16384
gpu = 100
gpu_type = "T4"
price = 10
self_supplied = true

[[instance_types]]
name = "TI.X.NOTEBOOK.POST"
cpu = 2000
memory = 2048
price = 50
task_types = ["NOTEBOOK"]

[[prepaid_types]]
name = "TI.X.NODE.PRE"
cpu = 8000
memory = 32768
gpu = 200
gpu_type = "T4"

[[resource_groups]]
id = "ersg-aaaa1111"
name = "alpha"
create_time = "2025-01-01 00:00:00"

[[resource_groups.nodes]]
id = "eins-up000001"
spec_name = "TI.X.NODE.PRE"

[[resource_groups.nodes]]
id = "eins-dep00002"
spec_name = "TI.X.NODE.PRE"
status = "DEPLOYING"

[[resource_groups]]
id = "ersg-bbbb2222"
name = "beta"
create_time = "2025-01-01 00:00:00"
"""


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("custom")
    path = tmp / "catalogue.toml"
    path.write_text(CUSTOM, encoding="utf-8")
    with running_server(f"sqlite:///{tmp / 'tione.db'}", tmp, extra_args=("--catalogue", str(path))) as server:
        yield server


def test_catalogue_file_replaces_specs_and_prices(custom: Server) -> None:
    names = [s.SpecName for s in _specs(custom)]
    assert names == ["TI.S.MEDIUM.POST", "TI.X.SOLDOUT.POST", "TI.X.SHANGHAI.POST", "TI.X.NOTEBOOK.POST"]
    (price,) = _prices(custom, [("TI.S.MEDIUM.POST", 3)])
    assert (price.TotalCost, price.RealTotalCost) == (300, 240)  # discount = 80 %


def test_catalogue_file_availability_by_region(custom: Server) -> None:
    by_name = {s.SpecName: s for s in _specs(custom)}
    sold_out, elsewhere = by_name["TI.X.SOLDOUT.POST"], by_name["TI.X.SHANGHAI.POST"]
    assert (sold_out.Available, sold_out.AvailableRegion) == (False, [])
    assert (elsewhere.Available, elsewhere.AvailableRegion) == (False, ["ap-shanghai"])
    assert "RDMA" in elsewhere.SpecFeatures
    assert elsewhere.SpecAlias == "4核8GB A100*1"
    shanghai = custom.client(region="ap-shanghai")
    req = models.DescribeBillingSpecsRequest()
    req.ChargeType = "POSTPAID_BY_HOUR"
    in_shanghai = {s.SpecName: s for s in shanghai.DescribeBillingSpecs(req).Specs}
    assert in_shanghai["TI.X.SHANGHAI.POST"].Available is True


def test_catalogue_file_gpu_sw_and_task_types(custom: Server) -> None:
    assert [s.SpecName for s in _specs(custom, ResourceType="GPU-SW")] == ["TI.X.CVM.POST"]
    assert [s.SpecName for s in _specs(custom, ResourceType="GPU")] == ["TI.X.SHANGHAI.POST"]
    assert "TI.X.NOTEBOOK.POST" not in [s.SpecName for s in _specs(custom, TaskType="TRAIN")]
    assert "TI.X.NOTEBOOK.POST" in [s.SpecName for s in _specs(custom, TaskType="NOTEBOOK")]


def test_catalogue_file_groups_and_free_instances(custom: Server) -> None:
    resp = _groups(custom)
    # Equal creation times: ties by id, newest-first direction.
    assert [g.ResourceGroupId for g in resp.ResourceGroupSet] == ["ersg-bbbb2222", "ersg-aaaa1111"]
    beta, alpha = resp.ResourceGroupSet
    assert (beta.TotalInstance, beta.FreeInstance, beta.InstanceSet) == (0, 0, [])
    # Only the running node is free; a deploying node offers nothing.
    assert (alpha.TotalInstance, alpha.FreeInstance) == (2, 1)
    up, deploying = alpha.InstanceSet
    assert (up.InstanceStatus, deploying.InstanceStatus) == ("RUNNING", "DEPLOYING")
    assert (up.AvailableResource.Cpu, up.AvailableResource.Gpu) == (8000, 200)
    assert (deploying.AvailableResource.Cpu, deploying.AvailableResource.Gpu) == (0, 0)
    assert up.SpecId == "sv_tio_platform_cloud_pre_gpu_8c32g_2t4"
    assert _group_ids(custom, Filters=[_f("AvailableNodeCount", "1")]) == ["ersg-aaaa1111"]


def test_catalogue_prices_only_file_keeps_built_in_types(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[prices]\n"TI.S.MEDIUM.POST" = 75\n', encoding="utf-8")
    env = {"TIONE_CATALOGUE": str(path)}
    with running_server(f"sqlite:///{tmp_path / 'tione.db'}", tmp_path, env=env) as server:
        assert len(_specs(server)) == len(BUILT_IN)
        (price,) = _prices(server, [("TI.S.MEDIUM.POST", 2)])
        assert price.TotalCost == 150


def _serve_expecting_failure(tmp_path: Path, catalogue: Path) -> subprocess.CompletedProcess[str]:
    """`serve --catalogue FILE`, which must exit by itself (a good file would keep serving until the timeout)."""
    args = [str(BIN), "serve", "--port", str(free_port()), "--database", f"sqlite:///{tmp_path / 'x.db'}"]
    return subprocess.run(
        [*args, "--catalogue", str(catalogue)], check=False, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[[instance_types]]\nname = 'A'\ncpu = 'two'\nmemory = 1\nprice = 1\n", "instance_types[0].cpu"),
        ("[[instance_types]]\nname = 'A'\ncpu = 1000\nmemory = 1\n", "instance_types[0].price"),
        ("[capacity]\ncpus = 4\n", "capacity.cpus"),
        ("colour = 'blue'\n", "colour"),
        ("[prices]\n'TI.NOPE.POST' = 1\n", "prices.TI.NOPE.POST"),
        ("[[resource_groups]]\nid = 'ersg-x'\n[[resource_groups.nodes]]\nid = 'n'\nspec_name = 'NOPE'\n",
         "resource_groups[0].nodes[0].spec_name"),
        ("[[resource_groups]]\nid = 'ersg-x'\ncreate_time = 'yesterday'\n", "resource_groups[0].create_time"),
        ("this is [not toml", "TOML"),
    ],
)  # fmt: skip
def test_catalogue_bad_file_fails_serve_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    result = _serve_expecting_failure(tmp_path, path)
    assert result.returncode == 2
    assert key in result.stderr
    assert "Traceback" not in result.stderr


def test_catalogue_missing_file_fails_serve(tmp_path: Path) -> None:
    result = _serve_expecting_failure(tmp_path, tmp_path / "absent.toml")
    assert result.returncode == 2
    assert "absent.toml" in result.stderr


def test_catalogue_example_file_loads() -> None:
    from tione_server.catalogue import Catalogue

    example = Catalogue.load(Path(__file__).resolve().parent.parent / "docs" / "catalogue.example.toml")
    assert example.instance_types
    assert example.resource_groups


# --- usage (in process: what tasks hold on group nodes is the runner's business; billing reads the store's sums) ---


def test_describe_billing_resource_groups_reflects_held_resources() -> None:
    from types import SimpleNamespace

    from tione_server.api._generated import DescribeBillingResourceGroupsRequest, Filter
    from tione_server.catalogue import Catalogue
    from tione_server.config import Settings
    from tione_server.context import Caller, RequestContext
    from tione_server.scheduling import Scheduler, inventory_of
    from tione_server.service.billing import BillingActions

    class Held:
        """The one store read billing makes (store.runs.held_by_node): sums held by live runs, by node."""

        def held_by_node(self) -> dict[str, tuple[int, int, int]]:
            # One prepaid task holds 8 cores, 32 GB and 2 cards on the big V100 node.
            return {"eins-2mx7c4vj": (8000, 32768, 200)}

    class Busy(BillingActions):
        def __init__(self) -> None:
            self.settings = Settings()
            self.catalogue = Catalogue.default()
            self.scheduler = Scheduler(inventory_of(self.catalogue))
            self.store = SimpleNamespace(runs=Held())  # type: ignore[assignment]

    ctx = RequestContext(Caller("1", "1", "1"), "ap-guangzhou", "r", "en-US", 0.0)
    resp = Busy().describe_billing_resource_groups(ctx, DescribeBillingResourceGroupsRequest())
    gpu, cpu = resp.ResourceGroupSet or []
    assert (gpu.FreeInstance, cpu.FreeInstance) == (1, 2)
    assert gpu.UsedResource is not None
    assert (gpu.UsedResource.Cpu, gpu.UsedResource.Memory, gpu.UsedResource.Gpu) == (8000, 32768, 200)
    assert [(d.Name, d.Value) for d in gpu.UsedResource.GpuDetailSet or []] == [("V100", 200)]
    big = (gpu.InstanceSet or [])[0]
    assert big.UsedResource is not None
    assert big.AvailableResource is not None
    assert (big.UsedResource.Cpu, big.UsedResource.Gpu) == (8000, 200)
    assert (big.AvailableResource.Cpu, big.AvailableResource.Memory, big.AvailableResource.Gpu) == (
        24000,
        163840 - 32768,
        200,
    )
    only_free_two = DescribeBillingResourceGroupsRequest(Filters=[Filter(Name="AvailableNodeCount", Values=["2"])])
    assert [
        g.ResourceGroupId for g in Busy().describe_billing_resource_groups(ctx, only_free_two).ResourceGroupSet or []
    ] == [CPU_GROUP]
