"""Billing actions (spec §4.10-§4.12): specs, prices and prepaid resource groups, read from the operator catalogue.

`BillingActions` is a mixin of TioneService. Resource-group usage by node is the store's sums of what live runs
hold, read through the scheduler (scheduling.py, the one place that does resource arithmetic); this module renders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tione_server.api._generated import (
    DescribeBillingResourceGroupsRequest,
    DescribeBillingResourceGroupsResponse,
    DescribeBillingSpecsPriceRequest,
    DescribeBillingSpecsPriceResponse,
    DescribeBillingSpecsRequest,
    DescribeBillingSpecsResponse,
    Filter,
    SpecPrice,
    TagFilter,
)
from tione_server.api._generated import (
    ResourceGroup as WireResourceGroup,
)
from tione_server.api.complete import complete
from tione_server.catalogue import (
    DEFAULT_FEATURES,
    POSTPAID,
    PREPAID,
    Capacity,
    InstanceType,
    Node,
    ResourceGroup,
    billing_spec_id,
    display_alias,
)
from tione_server.context import RequestContext
from tione_server.errors import (
    InvalidFilter,
    InvalidParameter,
    InvalidParameterValue,
    MissingParameter,
)
from tione_server.scheduling import NodeUsage, total
from tione_server.service.filters import check_counts, tag_condition

if TYPE_CHECKING:
    from tione_server.catalogue import Catalogue
    from tione_server.config import Settings
    from tione_server.scheduling import Scheduler
    from tione_server.store import Store

CHARGE_TYPES = (POSTPAID, PREPAID)
TASK_TYPES = ("", "TRAIN", "NOTEBOOK", "INFERENCE", "EMS")
RESOURCE_TYPES = ("", "CALC", "CPU", "GPU", "GPU-SW")
GROUP_FILTERS = ("ResourceGroupId", "ResourceGroupName", "AvailableNodeCount")
MAX_GROUP_FILTERS = 5
DEFAULT_GROUP_LIMIT = 20
COST_CEILING = 4_200_000_000
"""Spec §4.12: costs above about 4.2 billion fen come back as 0 (a documented quirk we reproduce)."""


class BillingActions:
    """DescribeBillingSpecs, DescribeBillingSpecsPrice and DescribeBillingResourceGroups."""

    settings: Settings
    catalogue: Catalogue
    scheduler: Scheduler
    store: Store

    # --- DescribeBillingSpecs (spec §4.11) ---------------------------------------------------------------

    def describe_billing_specs(
        self, ctx: RequestContext, req: DescribeBillingSpecsRequest
    ) -> DescribeBillingSpecsResponse:
        """The compute specs of one charge type, narrowed by task and resource type, in catalogue order."""
        charge_type = req.ChargeType or ""
        if charge_type not in CHARGE_TYPES:
            raise InvalidParameterValue.for_param("ChargeType", "Use POSTPAID_BY_HOUR or PREPAID.")
        task_type = req.TaskType or ""
        if task_type not in TASK_TYPES:
            raise InvalidParameterValue.for_param("TaskType", 'Use TRAIN, NOTEBOOK, INFERENCE, EMS or "".')
        resource_type = req.ResourceType or ""
        if resource_type not in RESOURCE_TYPES:
            raise InvalidParameterValue.for_param("ResourceType", 'Use CALC, CPU, GPU, GPU-SW or "".')
        types = self.catalogue.instance_types if charge_type == POSTPAID else self.catalogue.prepaid_types
        specs = [
            self._spec(ctx, t)
            for t in types.values()
            if _listed_for(t, resource_type) and (not task_type or not t.task_types or task_type in t.task_types)
        ]
        return complete(DescribeBillingSpecsResponse, {"Specs": specs})

    def _spec(self, ctx: RequestContext, t: InstanceType) -> dict[str, Any]:
        # Spec §4.11: Available is about the requested region; when it is false, AvailableRegion still says where
        # the spec can be bought. A spec sold out everywhere has no such region.
        regions = list(t.available_regions or self.settings.regions) if t.available else []
        return {
            "SpecId": t.spec_id,
            "SpecName": t.name,
            "SpecAlias": t.spec_alias,
            "Available": t.available and ctx.region in regions,
            "AvailableRegion": regions,
            "SpecFeatures": list(t.features),
            "SpecType": t.spec_type,
            "GpuType": t.gpu_type,
            "CategoryId": t.category_id,
        }

    # --- DescribeBillingSpecsPrice (spec §4.12) ----------------------------------------------------------

    def describe_billing_specs_price(
        self, ctx: RequestContext, req: DescribeBillingSpecsPriceRequest
    ) -> DescribeBillingSpecsPriceResponse:
        """Hourly pay-as-you-go prices, one entry per requested unit, in request order."""
        units = req.SpecsParam or []
        if not units:
            raise MissingParameter("SpecsParam")
        prices: list[SpecPrice] = []
        for i, unit in enumerate(units):
            name, count = unit.SpecName or "", unit.SpecCount or 0
            spec = self.catalogue.instance_types.get(name)
            if spec is None:
                # Unknown names and PREPAID specs alike: only pay-as-you-go specs have an hourly price.
                raise InvalidParameterValue.for_param(f"SpecsParam.{i}.SpecName", "Use a POSTPAID_BY_HOUR spec.")
            if count == 0:
                raise InvalidParameterValue.for_param(f"SpecsParam.{i}.SpecCount", "Use at least 1.")
            total = spec.price * count
            real = self.catalogue.real_price(spec, count)
            prices.append(
                SpecPrice(SpecName=name, TotalCost=_capped(total), RealTotalCost=_capped(real), SpecCount=count)
            )
        return DescribeBillingSpecsPriceResponse(SpecsPrice=prices)

    # --- DescribeBillingResourceGroups (spec §4.10) ------------------------------------------------------

    def describe_billing_resource_groups(
        self, ctx: RequestContext, req: DescribeBillingResourceGroupsRequest
    ) -> DescribeBillingResourceGroupsResponse:
        """The catalogue's prepaid groups with their live usage, filtered, newest first, one page."""
        offset = req.Offset or 0
        if offset < 0:
            raise InvalidParameter("Parameter `Offset` must not be negative.")
        limit = req.Limit or DEFAULT_GROUP_LIMIT  # spec §4.10: 0 means the default; no maximum
        if limit < 0:
            raise InvalidParameter("Parameter `Limit` must not be negative.")
        tests = [_group_filter(i, f) for i, f in enumerate(req.Filters or [])]
        tests += [_tag_filter(i, t) for i, t in enumerate(req.TagFilters or [])]
        check_counts(req.Filters or [], req.TagFilters or [], MAX_GROUP_FILTERS)
        word = _fold(req.SearchWord or "")
        # Newest first; equal times by id, in the same direction (spec §4.10).
        groups = sorted(self.catalogue.resource_groups.values(), key=lambda g: (g.create_time, g.id), reverse=True)
        # Held by prepaid runs in STARTING, RUNNING or STOPPING, by node (spec §4.10).
        held = {node: Capacity(*amounts) for node, amounts in self.store.held_by_node().items()} if groups else {}
        rendered = (_GroupView.of(g, self.scheduler.usage(g.id, held)) for g in groups)
        matches = [
            view
            for view in rendered
            if all(test(view) for test in tests)
            and (not word or word in _fold(view.group.id) or word in _fold(view.group.name))
        ]
        page = matches[offset : offset + limit]
        show_nodes = not req.DontShowInstanceSet
        return complete(
            DescribeBillingResourceGroupsResponse,
            {"TotalCount": len(matches), "ResourceGroupSet": [self._group(ctx, v, show_nodes) for v in page]},
        )

    def _group(self, ctx: RequestContext, view: _GroupView, show_nodes: bool) -> WireResourceGroup:
        group = view.group
        size = total(u.total for u in view.usage.values())
        used = total(u.used for u in view.usage.values())
        return complete(
            WireResourceGroup,
            {
                "ResourceGroupId": group.id,
                "ResourceGroupName": group.name,
                "FreeInstance": view.free,
                "TotalInstance": len(group.nodes),
                "UsedResource": _group_resource(used, _gpu_details(group.nodes, view.usage, lambda u: u.used)),
                "TotalResource": _group_resource(size, _gpu_details(group.nodes, view.usage, lambda u: u.total)),
                "InstanceSet": [self._node(ctx, n, view.usage[n.id]) for n in group.nodes] if show_nodes else [],
                "TagSet": [{"TagKey": k, "TagValue": v} for k, v in group.tags],
            },
        )

    def _node(self, ctx: RequestContext, node: Node, usage: NodeUsage) -> dict[str, Any]:
        spec = self.catalogue.instance_type(node.spec_name) if node.spec_name else None
        return {
            "InstanceId": node.id,
            "UsedResource": _resource_info(node, usage.used),
            "TotalResource": _resource_info(node, usage.total),
            "AvailableResource": _resource_info(node, usage.available),
            "InstanceStatus": node.status,
            "SubUin": ctx.caller.uin,
            "CreateTime": node.create_time,
            "ExpireTime": node.expire_time,
            "AutoRenewFlag": node.auto_renew_flag,
            "SpecId": spec.spec_id
            if spec
            else billing_spec_id(PREPAID, node.cpu, node.memory, node.gpu, node.gpu_type),
            "SpecAlias": spec.spec_alias if spec else display_alias(node.cpu, node.memory, node.gpu, node.gpu_type),
            "SpecFeatures": list(spec.features if spec else DEFAULT_FEATURES),
            "InstanceIP": node.ip,
            "InstanceName": node.name,
            "AutoRenew": node.auto_renew_flag == "NOTIFY_AND_AUTO_RENEW",
            "Isolated": node.status == "DEBT_OR_EXPIRED",
            "ZoneName": node.zone,
        }


# --- resource-group helpers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GroupView:
    """A group with its usage settled once, so filters and rendering agree."""

    group: ResourceGroup
    usage: Mapping[str, NodeUsage]
    """Every node by id."""
    free: int

    @classmethod
    def of(cls, group: ResourceGroup, usage: Mapping[str, NodeUsage]) -> _GroupView:
        # FreeInstance = nodes usable now: running and holding no task at all (spec §4.10).
        return cls(group=group, usage=usage, free=sum(1 for u in usage.values() if u.idle))


GroupTest = Callable[[_GroupView], bool]


def _fold(text: str) -> str:
    """ASCII-only lower case, as Fuzzy matching uses everywhere (spec §5.3 rule 2)."""
    return text.translate(_LOWER)


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _group_filter(index: int, f: Filter) -> GroupTest:
    if f.Name is None:
        raise MissingParameter(f"Filters.{index}.Name")
    if f.Name not in GROUP_FILTERS:
        raise InvalidFilter(
            f"`Filters.{index}.Name` `{f.Name}` is not a filter of this action; "
            f"valid names: {', '.join(GROUP_FILTERS)}."
        )
    values = list(f.Values or [])
    if not values:
        return lambda view: True  # like §5.3 rule 1: a filter with no values constrains nothing
    if f.Name == "AvailableNodeCount":
        counts = [_count(index, i, v) for i, v in enumerate(values)]
        least = min(counts)
        match: GroupTest = lambda view: view.free >= least  # noqa: E731 (one-line predicate)
    else:
        field: Callable[[_GroupView], str] = (
            (lambda view: view.group.id) if f.Name == "ResourceGroupId" else (lambda view: view.group.name)
        )
        if f.Fuzzy and len(values) == 1:
            # Spec §4.10: exactly one value with Fuzzy is a substring match (ASCII case ignored, as in §5.3);
            # with more values Fuzzy does not apply.
            needle = _fold(values[0])
            match = lambda view: needle in _fold(field(view))  # noqa: E731
        else:
            wanted = set(values)
            match = lambda view: field(view) in wanted  # noqa: E731
    if f.Negative:
        return lambda view: not match(view)
    return match


def _count(index: int, value_index: int, value: str) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise InvalidParameterValue.for_param(
            f"Filters.{index}.Values.{value_index}", "AvailableNodeCount takes a whole number of nodes."
        )
    return int(text)


def _tag_filter(index: int, t: TagFilter) -> GroupTest:
    # The task list's rules (spec §5.4, service/filters.py).
    cond = tag_condition(index, t)
    return lambda view: any(k == cond.key and (not cond.values or v in cond.values) for k, v in view.group.tags)


def _gpu_details(
    nodes: Sequence[Node], usage: Mapping[str, NodeUsage], amount: Callable[[NodeUsage], Capacity]
) -> list[dict[str, Any]]:
    """GpuDetailSet: cards per card model, in 1/100 card (spec §9.4), models in order of first appearance."""
    by_type: dict[str, int] = {}
    for n in nodes:
        if n.gpu_type:
            by_type[n.gpu_type] = by_type.get(n.gpu_type, 0) + amount(usage[n.id]).gpu
    return [{"Name": name, "Value": value} for name, value in by_type.items()]


def _group_resource(c: Capacity, gpu_details: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Cpu": c.cpu, "Memory": c.memory, "Gpu": c.gpu, "GpuDetailSet": gpu_details}


def _resource_info(node: Node, amount: Capacity) -> dict[str, Any]:
    details = [{"Name": node.gpu_type, "Value": amount.gpu}] if node.gpu_type and amount.gpu else []
    return {
        "Cpu": amount.cpu,
        "Memory": amount.memory,
        "Gpu": amount.gpu,
        "GpuType": node.gpu_type,
        "RealGpu": amount.gpu,
        "RealGpuDetailSet": details,
        "EnableRDMA": node.rdma,
        "RdmaNumber": 0,
        "RootDisk": node.root_disk,
        "DataDisk": node.data_disk,
        "Rdma": 0,
    }


def _listed_for(t: InstanceType, resource_type: str) -> bool:
    """Spec §4.11: CPU/GPU by SpecType, CALC or "" every compute spec, GPU-SW only self-supplied (CVM) specs."""
    if resource_type == "GPU-SW":
        return t.self_supplied
    if t.self_supplied:
        return False
    return resource_type in ("", "CALC") or t.spec_type == resource_type


def _capped(cost: int) -> int:
    """Spec §4.12: a cost above ~4.2 billion fen is reported as 0; applied to both costs so that, with no
    discount configured, RealTotalCost always equals TotalCost."""
    return 0 if cost > COST_CEILING else cost
