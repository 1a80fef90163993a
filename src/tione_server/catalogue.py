"""The operator catalogue: instance types and prices, prepaid resource groups, frameworks and the postpaid capacity.

It is configuration, not state (spec §9): a built-in default (`Catalogue.default()`) so the server runs with no file,
or a TOML file given by `tione-server serve --catalogue PATH` (`Catalogue.load`). Runtime usage lives elsewhere.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct
from msgspec.structs import force_setattr

from tione_server.tomldecode import Invalid, decode

POSTPAID = "POSTPAID_BY_HOUR"
PREPAID = "PREPAID"

DEFAULT_FEATURES = ("COS", "CFS", "TurboCFS")
"""Storage features every built-in spec supports (spec §4.11 `SpecFeatures`); `RDMA` is added when the type has it."""


def gpu_fraction(gpu: int) -> str:
    """1/100 cards -> the card count as aliases write it: 100 -> "1", 400 -> "4", 25 -> "1/4", 50 -> "1/2"."""
    if gpu % 100 == 0:
        return str(gpu // 100)
    if 100 % gpu == 0:
        return f"1/{100 // gpu}"
    return f"{gpu / 100:g}"


def _gib(memory_mb: int) -> str:
    return f"{memory_mb / 1024:g}"


def compact_alias(cpu: int, memory: int, gpu: int, gpu_type: str) -> str:
    """`InstanceTypeAlias` form used in task objects (spec §3.1, [OBS] `2C2G`): `8C40G V100*1`."""
    text = f"{cpu // 1000}C{_gib(memory)}G"
    return f"{text} {gpu_type}*{gpu_fraction(gpu)}" if gpu else text


def display_alias(cpu: int, memory: int, gpu: int, gpu_type: str) -> str:
    """`SpecAlias` display form of DescribeBillingSpecs (spec §9.1 [DOC]): `8核40GB V100*1`."""
    text = f"{cpu // 1000}核{_gib(memory)}GB"
    return f"{text} {gpu_type}*{gpu_fraction(gpu)}" if gpu else text


def billing_spec_id(charge_type: str, cpu: int, memory: int, gpu: int, gpu_type: str) -> str:
    """The billing item id (spec §4.11): `sv_tio_platform_cloud_<post|pre>_<cpu|gpu>_<c>c<m>g[_<n><gpu>]`.

    A fractional card count is written `1_4` for a quarter card, since the pattern has no room for a slash.
    """
    kind = "gpu" if gpu else "cpu"
    pay = "pre" if charge_type == PREPAID else "post"
    text = f"sv_tio_platform_cloud_{pay}_{kind}_{cpu // 1000}c{_gib(memory)}g"
    if gpu:
        text += f"_{gpu_fraction(gpu).replace('/', '_')}{gpu_type.lower()}"
    return text


Positive = Annotated[int, Meta(ge=1)]
NonNegative = Annotated[int, Meta(ge=0)]
NonEmpty = Annotated[str, Meta(min_length=1)]
Time = Annotated[
    str,
    Meta(
        pattern=r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)?$",
        description="a time like 2025-01-06 10:00:00 (Beijing time), or empty",
    ),
]
"""`YYYY-MM-DD HH:MM:SS` Beijing time, or "" (spec §1.3)."""
NodeStatus = Literal["DEPLOYING", "RUNNING", "DEPLOY_FAILED", "RELEASING", "RELEASED", "EXCEPTION", "DEBT_OR_EXPIRED"]
"""Resource-group node `InstanceStatus` values (spec §2)."""
AutoRenewFlag = Literal["NOTIFY_AND_MANUAL_RENEW", "NOTIFY_AND_AUTO_RENEW", "DISABLE_NOTIFY_AND_MANUAL_RENEW"]
"""Node `AutoRenewFlag` values (spec §2)."""

# The records below are msgspec Structs so that a catalogue file decodes straight into them (issue 8 item 6): each
# field, its type, constraint and default is written once, and the file's keys are exactly the field names.


class InstanceType(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One pay-as-you-go billing spec (`InstanceType` / `SpecName`, spec §9.1); units as on the wire (spec §1.5)."""

    charge_type: ClassVar[str] = POSTPAID
    """`POSTPAID_BY_HOUR`: usable as a task's `InstanceType`. Not a file key: the table it is listed in says it."""
    name: NonEmpty
    cpu: Positive
    """Milli-cores."""
    memory: Positive
    """MB."""
    price: NonNegative
    """List price in fen per node-hour."""
    gpu: NonNegative = 0
    """1/100 card."""
    gpu_type: str = ""
    alias: str = ""
    """Compact form for task objects, e.g. `2C2G`, `8C40G V100*1`; derived from the sizes when not given."""
    available: bool = True
    """Sold at all; false answers `Available: false` (sold out) in every region."""
    rdma: bool = False
    spec_id: str = ""
    """Billing item id; derived from the sizes when not given (see `billing_spec_id`)."""
    spec_alias: str = ""
    """Chinese display name, e.g. `8核40GB V100*1`; derived when not given (see `display_alias`)."""
    features: tuple[str, ...] = DEFAULT_FEATURES
    """Storage features; a file that leaves them out gets `RDMA` added when `rdma` is true (`_fill_defaults`)."""
    available_regions: tuple[str, ...] = ()
    """Regions where the spec can be bought; empty means every region the server serves."""
    category_id: str = ""
    task_types: tuple[str, ...] = ()
    """DescribeBillingSpecs `TaskType` values it is listed for; empty means all."""
    self_supplied: bool = False
    """A spec for self-supplied (CVM) nodes: listed only for ResourceType `GPU-SW` (spec §4.11)."""

    def __post_init__(self) -> None:
        # Derived display fields are filled once here so every reader sees them set (spec §4.11).
        if not self.alias:
            force_setattr(self, "alias", compact_alias(self.cpu, self.memory, self.gpu, self.gpu_type))
        if not self.spec_id:
            spec_id = billing_spec_id(self.charge_type, self.cpu, self.memory, self.gpu, self.gpu_type)
            force_setattr(self, "spec_id", spec_id)
        if not self.spec_alias:
            force_setattr(self, "spec_alias", display_alias(self.cpu, self.memory, self.gpu, self.gpu_type))

    @property
    def spec_type(self) -> str:
        """`SpecType`: `GPU` when the spec carries cards, else `CPU`."""
        return "GPU" if self.gpu else "CPU"


class PrepaidType(InstanceType, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A resource-group node spec (`PREPAID`, DescribeBillingSpecs ChargeType=PREPAID): bought per node, so the
    hourly price is optional."""

    charge_type: ClassVar[str] = PREPAID
    price: NonNegative = 0


class Node(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One node of a prepaid resource group (`eins-…`, spec §1.4); sizes in wire units.

    In a file, a node with `spec_name` takes the spec's sizes unless it states them (`_fill_defaults`)."""

    id: NonEmpty
    cpu: Positive
    memory: Positive
    gpu: NonNegative = 0
    gpu_type: str = ""
    name: str = ""
    """Default in a file: the id."""
    spec_name: str = ""
    """The PREPAID instance type the node was bought as; gives `SpecId`/`SpecAlias` in responses."""
    status: NodeStatus = "RUNNING"
    create_time: Time = ""
    expire_time: Time = ""
    auto_renew_flag: AutoRenewFlag = "NOTIFY_AND_MANUAL_RENEW"
    ip: str = ""
    zone: str = ""
    rdma: bool = False
    root_disk: NonNegative = 50
    """GB."""
    data_disk: NonNegative = 0
    """GB."""


class ResourceGroup(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A prepaid resource group (`ersg-…`): a named set of nodes that PREPAID tasks run on."""

    id: NonEmpty
    name: str = ""
    """Default in a file: the id."""
    nodes: tuple[Node, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    """(TagKey, TagValue) pairs, in order; a file writes them as a table (`tags = { team = "a" }`)."""
    create_time: Time = ""
    """Default listing order is newest first (spec §4.10)."""


class Framework(Struct, frozen=True, forbid_unknown_fields=True):
    """One framework environment tasks may name instead of an image (spec §9.3)."""

    name: str
    version: str
    environment: str
    modes: Annotated[tuple[str, ...], Meta(min_length=1, description="a non-empty array of training modes")]
    image_url: str = ""


class Limits(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-request and per-account quotas (issue 7 B4): bounds on what one caller may make the runner do."""

    max_pods_per_task: Positive = 32
    """Pods one task may ask for: `InstanceNum` summed over its `ResourceConfigInfos`."""
    max_active_tasks: Positive = 100
    """Tasks one account (UIN, every region and workspace) may hold in SUBMITTING, PENDING, STARTING, RUNNING
    or STOPPING at once, through CreateTrainingTask and StartTrainingTask."""


class Capacity(Struct, frozen=True, forbid_unknown_fields=True):
    """An amount of resources in wire units: milli-cores, MB, 1/100 cards."""

    cpu: NonNegative
    memory: NonNegative
    gpu: NonNegative


def _machine_capacity() -> Capacity:
    """This machine: the postpaid pool that pay-as-you-go tasks draw from."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (AttributeError, ValueError, OSError):
        memory = 8192
    return Capacity(cpu=(os.cpu_count() or 1) * 1000, memory=int(memory), gpu=0)


# spec §9.1: name, vCPU, memory GB, GPU (1/100 cards), card type, placeholder price (fen/h; only
# TI.S.MEDIUM.POST = 70 is published, the rest are configuration).
_POSTPAID_TABLE: tuple[tuple[str, int, int, int, str, int], ...] = (
    ("TI.S6.MEDIUM2.POST", 2, 2, 0, "", 60),
    ("TI.S.MEDIUM.POST", 2, 4, 0, "", 70),
    ("TI.S.LARGE.POST", 4, 8, 0, "", 140),
    ("TI.S.2XLARGE16.POST", 8, 16, 0, "", 280),
    ("TI.S.2XLARGE32.POST", 8, 32, 0, "", 350),
    ("TI.S.4XLARGE32.POST", 16, 32, 0, "", 560),
    ("TI.S.4XLARGE64.POST", 16, 64, 0, "", 700),
    ("TI.S.6XLARGE48.POST", 24, 48, 0, "", 840),
    ("TI.S.6XLARGE96.POST", 24, 96, 0, "", 1050),
    ("TI.S.8XLARGE64.POST", 32, 64, 0, "", 1120),
    ("TI.S.8XLARGE128.POST", 32, 128, 0, "", 1400),
    ("TI.GN7.LARGE20.POST", 4, 20, 25, "T4", 300),
    ("TI.GN7.2XLARGE40.POST", 10, 40, 50, "T4", 600),
    ("TI.GN7.2XLARGE32.POST", 8, 32, 100, "T4", 1000),
    ("TI.GN7.5XLARGE80.POST", 20, 80, 100, "T4", 1200),
    ("TI.GN7.8XLARGE128.POST", 32, 128, 100, "T4", 1500),
    ("TI.GN7.10XLARGE160.POST", 40, 160, 200, "T4", 2800),
    ("TI.GN7.20XLARGE320.POST", 80, 320, 400, "T4", 5600),
    ("TI.GN10.2XLARGE40.POST", 8, 40, 100, "V100", 2000),
    ("TI.GN10.5XLARGE80.POST", 18, 80, 200, "V100", 4000),
    ("TI.GN10.10XLARGE160.POST", 32, 160, 400, "V100", 8000),
    ("TI.GN10.20XLARGE320.POST", 72, 320, 800, "V100", 16000),
)

# Node specs of the sample resource groups (PREPAID is bought per node, so no hourly price applies).
_PREPAID_TABLE: tuple[tuple[str, int, int, int, str], ...] = (
    ("TI.S.4XLARGE64.PRE", 16, 64, 0, ""),
    ("TI.S.8XLARGE128.PRE", 32, 128, 0, ""),
    ("TI.GN10.2XLARGE40.PRE", 8, 40, 100, "V100"),
    ("TI.GN10.10XLARGE160.PRE", 32, 160, 400, "V100"),
)

# spec §9.3. Image URLs are public images of the same versions, so a container executor can pull them;
# operators replace them with their registry through `[images]`.
_FRAMEWORK_TABLE: tuple[tuple[str, str, str, tuple[str, ...], str], ...] = (
    ("TENSORFLOW", "1.15", "tf1.15-py3.7-cpu", ("PS_WORKER", "MPI", "HOROVOD"), "tensorflow/tensorflow:1.15.5-py3"),
    ("TENSORFLOW", "1.15", "tf1.15-py3.7-cuda10.0-gpu", ("PS_WORKER", "MPI", "HOROVOD"),
     "tensorflow/tensorflow:1.15.5-gpu-py3"),
    ("TENSORFLOW", "2.4", "tf2.4-py3.8-cpu", ("PS_WORKER", "MPI", "HOROVOD"), "tensorflow/tensorflow:2.4.1"),
    ("TENSORFLOW", "2.4", "tf2.4-py3.8-cuda11.1-gpu", ("PS_WORKER", "MPI", "HOROVOD"),
     "tensorflow/tensorflow:2.4.1-gpu"),
    ("PYTORCH", "1.9", "torch1.9-py3.8-cuda11.1-gpu", ("DDP", "MPI", "HOROVOD"),
     "pytorch/pytorch:1.9.0-cuda11.1-cudnn8-runtime"),
    ("SPARK", "2.4.5", "spark2.4.5-cpu", ("SPARK",), "bitnami/spark:2.4.5"),
    ("PYSPARK", "2.4.5", "spark2.4.5-py3.6-cpu", ("SPARK",), "bitnami/spark:2.4.5"),
)  # fmt: skip


_Type = TypeVar("_Type", bound=InstanceType)


def _sized(kind: type[_Type], name: str, cpu: int, mem_gb: int, gpu: int, gpu_type: str, price: int) -> _Type:
    return kind(name=name, cpu=cpu * 1000, memory=mem_gb * 1024, gpu=gpu, gpu_type=gpu_type, price=price)


def _default_resource_groups() -> tuple[ResourceGroup, ...]:
    """Two sample groups with realistic node sizes, so DescribeBillingResourceGroups and PREPAID tasks work."""

    def node(node_id: str, spec: str, cpu: int, mem_gb: int, gpu: int, gpu_type: str, ip: str) -> Node:
        return Node(
            id=node_id, cpu=cpu * 1000, memory=mem_gb * 1024, gpu=gpu, gpu_type=gpu_type, name=node_id,
            spec_name=spec, create_time="2025-01-06 10:00:00", expire_time="2027-01-06 10:00:00", ip=ip,
            zone="ap-guangzhou-3",
        )  # fmt: skip

    cpu_group = ResourceGroup(
        id="ersg-c7kq2m9x",
        name="cpu-pool",
        nodes=(
            node("eins-4fh8d2kq", "TI.S.4XLARGE64.PRE", 16, 64, 0, "", "10.0.1.11"),
            node("eins-9wz3p6tn", "TI.S.4XLARGE64.PRE", 16, 64, 0, "", "10.0.1.12"),
        ),
        tags=(("team", "research"),),
        create_time="2025-01-06 10:00:00",
    )
    gpu_group = ResourceGroup(
        id="ersg-v5r8b1ht",
        name="gpu-v100",
        nodes=(
            node("eins-2mx7c4vj", "TI.GN10.10XLARGE160.PRE", 32, 160, 400, "V100", "10.0.2.21"),
            node("eins-6ty1k8ar", "TI.GN10.2XLARGE40.PRE", 8, 40, 100, "V100", "10.0.2.22"),
        ),
        tags=(("team", "vision"),),
        create_time="2025-03-18 15:30:00",
    )
    return (cpu_group, gpu_group)


@dataclass(frozen=True)
class Catalogue:
    """Everything the operator configures about what can be run, where, and at what price."""

    instance_types: Mapping[str, InstanceType]
    """POSTPAID_BY_HOUR specs by name: what a task's `InstanceType` may be."""
    resource_groups: Mapping[str, ResourceGroup]
    frameworks: tuple[Framework, ...]
    capacity: Capacity
    """The postpaid pool: this machine unless configured."""
    prepaid_types: Mapping[str, InstanceType] = field(default_factory=lambda: MappingProxyType({}))
    """PREPAID specs by name (resource-group node specs, DescribeBillingSpecs ChargeType=PREPAID)."""
    discount: int = 100
    """Percent of the list price actually charged: `RealTotalCost` (spec §4.12)."""
    limits: Limits = field(default_factory=Limits)
    """Quotas on tasks and pods (`[limits]`)."""
    image_roots: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    """Image URL -> root filesystem on this machine, a directory or a tarball (`[image_roots]`): what a sandboxed
    pod of a task with that ImageInfo.ImageUrl sees (issue 9 item 4; `host` is built in)."""

    @classmethod
    def default(cls) -> Catalogue:
        """The built-in catalogue: spec §9.1 types and placeholder prices, §9.3 frameworks, two sample groups."""
        post = [_sized(InstanceType, n, c, m, g, t, p) for n, c, m, g, t, p in _POSTPAID_TABLE]
        pre = [_sized(PrepaidType, n, c, m, g, t, 0) for n, c, m, g, t in _PREPAID_TABLE]
        frameworks = tuple(Framework(n, v, e, modes, url) for n, v, e, modes, url in _FRAMEWORK_TABLE)
        return cls(
            instance_types=MappingProxyType({t.name: t for t in post}),
            resource_groups=MappingProxyType({g.id: g for g in _default_resource_groups()}),
            frameworks=frameworks,
            capacity=_machine_capacity(),
            prepaid_types=MappingProxyType({t.name: t for t in pre}),
        )

    @classmethod
    def load(cls, path: Path) -> Catalogue:
        """Read a catalogue file; each section it has replaces the built-in one, the rest stay default.

        Raises ValueError naming the file and the offending key when the file is unreadable or invalid.
        """
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ValueError(f"catalogue {path}: cannot read: {err.strerror or err}") from err
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"catalogue {path}: not valid TOML: {err}") from err
        try:
            return _from_toml(data)
        except Invalid as err:
            raise ValueError(f"catalogue {path}: `{err.key}`: {err.problem}") from None

    def framework(self, name: str, version: str, environment: str) -> Framework | None:
        """The framework a task names, or None (spec §9.3).

        `version` "" matches when `environment` identifies the framework; `environment` "" picks the first
        environment listed for that name and version.
        """
        for fw in self.frameworks:
            if fw.name != name:
                continue
            if environment and fw.environment != environment:
                continue
            if version and fw.version != version:
                continue
            if not environment and not version:
                return None
            return fw
        return None

    def real_price(self, instance_type: InstanceType, count: int = 1) -> int:
        """Fen per hour actually charged for `count` nodes: list price less the configured discount
        (`RealTotalCost`, spec §4.12; task `BillingInfo` uses it too, spec §6.7)."""
        return instance_type.price * count * self.discount // 100

    def instance_type(self, name: str) -> InstanceType | None:
        """A spec of either charge type by name (resource-group nodes name PREPAID specs)."""
        return self.instance_types.get(name) or self.prepaid_types.get(name)


# --- TOML reading -------------------------------------------------------------------------------------------
# One msgspec pass decodes the file into the records above (types, constraints, unknown keys); before it,
# `_fill_defaults` writes the defaults that depend on other keys, and after it `_from_toml` checks what refers
# across tables (names, ids, environments). Errors name the key as the file writes it: `instance_types[3].cpu`.


class _File(Struct, kw_only=True, forbid_unknown_fields=True):
    """A catalogue file: every table is optional; one that is present replaces the built-in one."""

    capacity: Capacity | None = None
    instance_types: list[InstanceType] | None = None
    prepaid_types: list[PrepaidType] | None = None
    prices: dict[str, NonNegative] | None = None
    discount: Annotated[int, Meta(ge=0, le=100)] = 100
    """Percent of the list price charged (`RealTotalCost`, spec §4.12)."""
    resource_groups: list[ResourceGroup] | None = None
    frameworks: list[Framework] | None = None
    images: dict[str, str] | None = None
    image_roots: dict[str, str] | None = None
    limits: Limits = Limits()


def _fill_defaults(data: dict[str, Any], base: Catalogue, prepaid: Mapping[str, InstanceType]) -> dict[str, Any]:
    """The file with the defaults that depend on other keys written in, ready for one decoding pass (`prepaid`:
    the node specs in force, already decoded).

    `[capacity]` keys left out stay this machine's; a type with `rdma = true` and no `features` gets `RDMA` too;
    a group or node without `name` takes its id; a node with `spec_name` takes that spec's sizes unless it states
    them; a group's `tags` table becomes its ordered (key, value) pairs.
    """
    out = dict(data)
    if isinstance(out.get("capacity"), dict):
        out["capacity"] = {"cpu": base.capacity.cpu, "memory": base.capacity.memory, "gpu": 0} | out["capacity"]
    for table in ("instance_types", "prepaid_types"):
        if table in out:
            out[table] = _with_rdma_features(out[table])
    if isinstance(out.get("resource_groups"), list):
        out["resource_groups"] = [
            _group_defaults(g, f"resource_groups[{i}]", prepaid) if isinstance(g, dict) else g
            for i, g in enumerate(out["resource_groups"])
        ]
    return out


def _with_rdma_features(types: object) -> object:
    if not isinstance(types, list):
        return types
    rdma = {"features": [*DEFAULT_FEATURES, "RDMA"]}
    return [rdma | t if isinstance(t, dict) and t.get("rdma") is True else t for t in types]


def _named_by_id(entry: dict[str, Any]) -> dict[str, Any]:
    return {"name": entry["id"]} | entry if isinstance(entry.get("id"), str) else entry


def _group_defaults(group: dict[str, Any], key: str, prepaid: Mapping[str, InstanceType]) -> dict[str, Any]:
    out = _named_by_id(group)
    if "tags" in out:
        out["tags"] = list(decode(out["tags"], dict[str, str], f"{key}.tags").items())
    if isinstance(out.get("nodes"), list):
        out["nodes"] = [
            _node_defaults(n, f"{key}.nodes[{j}]", prepaid) if isinstance(n, dict) else n
            for j, n in enumerate(out["nodes"])
        ]
    return out


def _node_defaults(node: dict[str, Any], key: str, prepaid: Mapping[str, InstanceType]) -> dict[str, Any]:
    spec_name = node.get("spec_name")
    if not isinstance(spec_name, str) or not spec_name:
        return _named_by_id(node)
    spec = prepaid.get(spec_name)
    if spec is None:
        raise Invalid(f"{key}.spec_name", f"no prepaid_types entry named {spec_name}")
    sizes = {"cpu": spec.cpu, "memory": spec.memory, "gpu": spec.gpu, "gpu_type": spec.gpu_type, "rdma": spec.rdma}
    return sizes | _named_by_id(node)


def _by_name(types: list[InstanceType], key: str) -> dict[str, InstanceType]:
    """Types by name, refusing a name given twice."""
    out: dict[str, InstanceType] = {}
    for i, t in enumerate(types):
        if t.name in out:
            raise Invalid(f"{key}[{i}].name", f"duplicate name {t.name}")
        _check_gpu_type(t, f"{key}[{i}]")
        out[t.name] = t
    return out


def _check_gpu_type(item: InstanceType | Node, key: str) -> None:
    if item.gpu and not item.gpu_type:
        raise Invalid(f"{key}.gpu_type", "is required when gpu > 0")


def _by_id(groups: list[ResourceGroup]) -> dict[str, ResourceGroup]:
    """Groups by id, refusing an id given twice and a node id given twice across all groups."""
    out: dict[str, ResourceGroup] = {}
    node_ids: set[str] = set()
    for i, g in enumerate(groups):
        if g.id in out:
            raise Invalid(f"resource_groups[{i}].id", f"duplicate id {g.id}")
        for j, n in enumerate(g.nodes):
            if n.id in node_ids:
                raise Invalid(f"resource_groups[{i}].nodes[{j}].id", f"duplicate node id {n.id}")
            _check_gpu_type(n, f"resource_groups[{i}].nodes[{j}]")
            node_ids.add(n.id)
        out[g.id] = g
    return out


def _frameworks(frameworks: list[Framework], images: Mapping[str, str]) -> tuple[Framework, ...]:
    """Frameworks with the images of `[images]`; an environment is listed once and every image names one."""
    seen: set[str] = set()
    for i, f in enumerate(frameworks):
        if f.environment in seen:
            raise Invalid(f"frameworks[{i}].environment", f"duplicate environment {f.environment}")
        seen.add(f.environment)
    for env in images:
        if env not in seen:
            raise Invalid(f"images.{env}", "no framework has this environment")
    return tuple(msgspec.structs.replace(f, image_url=images.get(f.environment, f.image_url)) for f in frameworks)


def _from_toml(data: dict[str, Any]) -> Catalogue:
    base = Catalogue.default()
    pre = dict(base.prepaid_types)
    if "prepaid_types" in data:  # first: nodes take their sizes from these
        prepaid = decode(_with_rdma_features(data["prepaid_types"]), list[PrepaidType], "prepaid_types")
        pre = _by_name(prepaid, "prepaid_types")
    file: _File = decode(_fill_defaults(data, base, pre), _File, "")
    post = dict(base.instance_types)
    if file.instance_types is not None:
        post = _by_name(file.instance_types, "instance_types")
    # A price list alone keeps the built-in types: the common case is re-pricing, not re-sizing.
    for name, price in (file.prices or {}).items():
        if name not in post:
            raise Invalid(f"prices.{name}", "no such instance type")
        post[name] = msgspec.structs.replace(post[name], price=price)
    if file.resource_groups is not None:
        groups = _by_id(file.resource_groups)
    else:
        # The sample groups name built-in prepaid specs; keep them only if those still exist.
        groups = {g.id: g for g in base.resource_groups.values() if all(n.spec_name in pre for n in g.nodes)}
    frameworks = list(base.frameworks) if file.frameworks is None else file.frameworks
    return Catalogue(
        instance_types=MappingProxyType(post),
        resource_groups=MappingProxyType(groups),
        frameworks=_frameworks(frameworks, file.images or {}),
        capacity=base.capacity if file.capacity is None else file.capacity,
        prepaid_types=MappingProxyType(pre),
        discount=file.discount,
        limits=file.limits,
        image_roots=MappingProxyType(_image_roots(file.image_roots or {})),
    )


def _image_roots(table: Mapping[str, str]) -> dict[str, Path]:
    """`[image_roots]` as paths: absolute ones (the server may run from any directory), `host` not redefined."""
    out: dict[str, Path] = {}
    for url, root in table.items():
        if url == "host":
            raise Invalid(f"image_roots.{url}", "`host` is the built-in image of the host's own files")
        if not Path(root).is_absolute():
            raise Invalid(f"image_roots.{url}", "give an absolute path to a directory or a tarball")
        out[url] = Path(root)
    return out
