"""The operator catalogue: instance types and prices, prepaid resource groups, frameworks and the postpaid capacity.

It is configuration, not state (spec §9): a built-in default (`Catalogue.default()`) so the server runs with no file,
or a TOML file given by `tione-server serve --catalogue PATH` (`Catalogue.load`). Runtime usage lives elsewhere.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

POSTPAID = "POSTPAID_BY_HOUR"
PREPAID = "PREPAID"

_NODE_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
NODE_STATUSES = frozenset(
    {"DEPLOYING", "RUNNING", "DEPLOY_FAILED", "RELEASING", "RELEASED", "EXCEPTION", "DEBT_OR_EXPIRED"}
)
"""Resource-group node `InstanceStatus` values (spec §2)."""
AUTO_RENEW_FLAGS = frozenset({"NOTIFY_AND_MANUAL_RENEW", "NOTIFY_AND_AUTO_RENEW", "DISABLE_NOTIFY_AND_MANUAL_RENEW"})
"""Node `AutoRenewFlag` values (spec §2)."""
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


@dataclass(frozen=True)
class InstanceType:
    """One billing spec (`InstanceType` / `SpecName`, spec §9.1); units as on the wire (spec §1.5)."""

    name: str
    cpu: int
    """Milli-cores."""
    memory: int
    """MB."""
    gpu: int
    """1/100 card."""
    gpu_type: str
    alias: str
    """Compact form for task objects, e.g. `2C2G`, `8C40G V100*1`."""
    price: int
    """List price in fen per node-hour."""
    available: bool
    """Sold at all; false answers `Available: false` (sold out) in every region."""
    rdma: bool
    charge_type: str = POSTPAID
    """`POSTPAID_BY_HOUR` (task `InstanceType`) or `PREPAID` (resource-group node spec)."""
    spec_id: str = ""
    """Billing item id; derived from the sizes when not given (see `billing_spec_id`)."""
    spec_alias: str = ""
    """Chinese display name, e.g. `8核40GB V100*1`; derived when not given (see `display_alias`)."""
    features: tuple[str, ...] = DEFAULT_FEATURES
    available_regions: tuple[str, ...] = ()
    """Regions where the spec can be bought; empty means every region the server serves."""
    category_id: str = ""
    task_types: tuple[str, ...] = ()
    """DescribeBillingSpecs `TaskType` values it is listed for; empty means all."""
    self_supplied: bool = False
    """A spec for self-supplied (CVM) nodes: listed only for ResourceType `GPU-SW` (spec §4.11)."""

    def __post_init__(self) -> None:
        # Derived display fields are filled once here so every reader sees them set (spec §4.11).
        if not self.spec_id:
            spec_id = billing_spec_id(self.charge_type, self.cpu, self.memory, self.gpu, self.gpu_type)
            object.__setattr__(self, "spec_id", spec_id)
        if not self.spec_alias:
            object.__setattr__(self, "spec_alias", display_alias(self.cpu, self.memory, self.gpu, self.gpu_type))

    @property
    def spec_type(self) -> str:
        """`SpecType`: `GPU` when the spec carries cards, else `CPU`."""
        return "GPU" if self.gpu else "CPU"


@dataclass(frozen=True)
class Node:
    """One node of a prepaid resource group (`eins-…`, spec §1.4); sizes in wire units."""

    id: str
    cpu: int
    memory: int
    gpu: int
    gpu_type: str
    name: str = ""
    spec_name: str = ""
    """The PREPAID instance type the node was bought as; gives `SpecId`/`SpecAlias` in responses."""
    status: str = "RUNNING"
    create_time: str = ""
    """`YYYY-MM-DD HH:MM:SS` Beijing time, or "" (spec §1.3)."""
    expire_time: str = ""
    auto_renew_flag: str = "NOTIFY_AND_MANUAL_RENEW"
    ip: str = ""
    zone: str = ""
    rdma: bool = False
    root_disk: int = 50
    """GB."""
    data_disk: int = 0
    """GB."""


@dataclass(frozen=True)
class ResourceGroup:
    """A prepaid resource group (`ersg-…`): a named set of nodes that PREPAID tasks run on."""

    id: str
    name: str
    nodes: tuple[Node, ...]
    tags: tuple[tuple[str, str], ...] = ()
    """(TagKey, TagValue) pairs, in order."""
    create_time: str = ""
    """`YYYY-MM-DD HH:MM:SS`; default listing order is newest first (spec §4.10)."""


@dataclass(frozen=True)
class Framework:
    """One framework environment tasks may name instead of an image (spec §9.3)."""

    name: str
    version: str
    environment: str
    modes: tuple[str, ...]
    image_url: str


@dataclass(frozen=True)
class Limits:
    """Per-request and per-account quotas (issue 7 B4): bounds on what one caller may make the runner do."""

    max_pods_per_task: int = 32
    """Pods one task may ask for: `InstanceNum` summed over its `ResourceConfigInfos`."""
    max_active_tasks: int = 100
    """Tasks one account (UIN, every region and workspace) may hold in SUBMITTING, PENDING, STARTING, RUNNING
    or STOPPING at once, through CreateTrainingTask and StartTrainingTask."""


@dataclass(frozen=True)
class Capacity:
    """An amount of resources in wire units: milli-cores, MB, 1/100 cards."""

    cpu: int
    memory: int
    gpu: int


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


def _sized(name: str, cpu: int, mem_gb: int, gpu: int, gpu_type: str, price: int, charge_type: str) -> InstanceType:
    cpu_m, mem_mb = cpu * 1000, mem_gb * 1024
    return InstanceType(
        name=name, cpu=cpu_m, memory=mem_mb, gpu=gpu, gpu_type=gpu_type,
        alias=compact_alias(cpu_m, mem_mb, gpu, gpu_type), price=price, available=True, rdma=False,
        charge_type=charge_type,
    )  # fmt: skip


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
    limits: Limits = Limits()
    """Quotas on tasks and pods (`[limits]`)."""

    @classmethod
    def default(cls) -> Catalogue:
        """The built-in catalogue: spec §9.1 types and placeholder prices, §9.3 frameworks, two sample groups."""
        post = [_sized(n, c, m, g, t, p, POSTPAID) for n, c, m, g, t, p in _POSTPAID_TABLE]
        pre = [_sized(n, c, m, g, t, 0, PREPAID) for n, c, m, g, t in _PREPAID_TABLE]
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
        except _Invalid as err:
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


class _Invalid(Exception):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


_TOP_KEYS = frozenset(
    {
        "capacity",
        "instance_types",
        "prepaid_types",
        "prices",
        "discount",
        "resource_groups",
        "frameworks",
        "images",
        "limits",
    }
)


def _table(value: object, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(key, "must be a table")
    return value


def _tables(value: object, key: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _Invalid(key, "must be an array of tables ([[...]])")
    return [_table(v, f"{key}[{i}]") for i, v in enumerate(value)]


def _reject_unknown(table: dict[str, Any], allowed: frozenset[str] | set[str], key: str) -> None:
    for name in table:
        if name not in allowed:
            raise _Invalid(_join(key, name), f"unknown key; expected one of {', '.join(sorted(allowed))}")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _int(table: dict[str, Any], name: str, key: str, *, default: int | None = None, minimum: int = 0) -> int:
    value = table.get(name, default)
    if value is None:
        raise _Invalid(_join(key, name), "is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(_join(key, name), "must be an integer")
    if value < minimum:
        raise _Invalid(_join(key, name), f"must be at least {minimum}")
    return value


def _str(table: dict[str, Any], name: str, key: str, *, default: str | None = None) -> str:
    value = table.get(name, default)
    if value is None:
        raise _Invalid(f"{key}.{name}", "is required")
    if not isinstance(value, str):
        raise _Invalid(f"{key}.{name}", "must be a string")
    return value


def _bool(table: dict[str, Any], name: str, key: str, *, default: bool) -> bool:
    value = table.get(name, default)
    if not isinstance(value, bool):
        raise _Invalid(f"{key}.{name}", "must be true or false")
    return value


def _strs(table: dict[str, Any], name: str, key: str, *, default: tuple[str, ...]) -> tuple[str, ...]:
    value = table.get(name, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid(f"{key}.{name}", "must be an array of strings")
    return tuple(value)


def _time(table: dict[str, Any], name: str, key: str) -> str:
    value = _str(table, name, key, default="")
    if value and not _NODE_TIME.match(value):
        raise _Invalid(f"{key}.{name}", "must look like 2025-01-06 10:00:00 (Beijing time) or be empty")
    return value


_TYPE_KEYS = frozenset(
    {"name", "cpu", "memory", "gpu", "gpu_type", "alias", "price", "available", "rdma", "spec_id", "spec_alias",
     "features", "available_regions", "category_id", "task_types", "self_supplied"}
)  # fmt: skip


def _instance_type(t: dict[str, Any], key: str, charge_type: str) -> InstanceType:
    _reject_unknown(t, _TYPE_KEYS, key)
    name = _str(t, "name", key)
    if not name:
        raise _Invalid(f"{key}.name", "must not be empty")
    cpu = _int(t, "cpu", key, minimum=1)
    memory = _int(t, "memory", key, minimum=1)
    gpu = _int(t, "gpu", key, default=0)
    gpu_type = _str(t, "gpu_type", key, default="")
    if gpu and not gpu_type:
        raise _Invalid(f"{key}.gpu_type", "is required when gpu > 0")
    rdma = _bool(t, "rdma", key, default=False)
    features = _strs(t, "features", key, default=DEFAULT_FEATURES + (("RDMA",) if rdma else ()))
    return InstanceType(
        name=name, cpu=cpu, memory=memory, gpu=gpu, gpu_type=gpu_type,
        alias=_str(t, "alias", key, default=compact_alias(cpu, memory, gpu, gpu_type)),
        price=_int(t, "price", key, default=None if charge_type == POSTPAID else 0),
        available=_bool(t, "available", key, default=True), rdma=rdma, charge_type=charge_type,
        spec_id=_str(t, "spec_id", key, default=""), spec_alias=_str(t, "spec_alias", key, default=""),
        features=features, available_regions=_strs(t, "available_regions", key, default=()),
        category_id=_str(t, "category_id", key, default=""), task_types=_strs(t, "task_types", key, default=()),
        self_supplied=_bool(t, "self_supplied", key, default=False),
    )  # fmt: skip


def _types(value: object, key: str, charge_type: str) -> dict[str, InstanceType]:
    out: dict[str, InstanceType] = {}
    for i, t in enumerate(_tables(value, key)):
        item = _instance_type(t, f"{key}[{i}]", charge_type)
        if item.name in out:
            raise _Invalid(f"{key}[{i}].name", f"duplicate name {item.name}")
        out[item.name] = item
    return out


_NODE_KEYS = frozenset(
    {"id", "cpu", "memory", "gpu", "gpu_type", "name", "spec_name", "status", "create_time", "expire_time",
     "auto_renew_flag", "ip", "zone", "rdma", "root_disk", "data_disk"}
)  # fmt: skip


def _node(t: dict[str, Any], key: str, prepaid: Mapping[str, InstanceType]) -> Node:
    _reject_unknown(t, _NODE_KEYS, key)
    spec_name = _str(t, "spec_name", key, default="")
    spec = prepaid.get(spec_name) if spec_name else None
    if spec_name and spec is None:
        raise _Invalid(f"{key}.spec_name", f"no prepaid_types entry named {spec_name}")
    # A node bought as a spec takes its sizes unless the file says otherwise.
    cpu = _int(t, "cpu", key, default=spec.cpu if spec else None, minimum=1)
    memory = _int(t, "memory", key, default=spec.memory if spec else None, minimum=1)
    gpu = _int(t, "gpu", key, default=spec.gpu if spec else 0)
    gpu_type = _str(t, "gpu_type", key, default=spec.gpu_type if spec else "")
    if gpu and not gpu_type:
        raise _Invalid(f"{key}.gpu_type", "is required when gpu > 0")
    status = _str(t, "status", key, default="RUNNING")
    if status not in NODE_STATUSES:
        raise _Invalid(f"{key}.status", f"must be one of {', '.join(sorted(NODE_STATUSES))}")
    renew = _str(t, "auto_renew_flag", key, default="NOTIFY_AND_MANUAL_RENEW")
    if renew not in AUTO_RENEW_FLAGS:
        raise _Invalid(f"{key}.auto_renew_flag", f"must be one of {', '.join(sorted(AUTO_RENEW_FLAGS))}")
    node_id = _str(t, "id", key)
    if not node_id:
        raise _Invalid(f"{key}.id", "must not be empty")
    return Node(
        id=node_id, cpu=cpu, memory=memory, gpu=gpu, gpu_type=gpu_type, name=_str(t, "name", key, default=node_id),
        spec_name=spec_name, status=status, create_time=_time(t, "create_time", key),
        expire_time=_time(t, "expire_time", key), auto_renew_flag=renew, ip=_str(t, "ip", key, default=""),
        zone=_str(t, "zone", key, default=""), rdma=_bool(t, "rdma", key, default=spec.rdma if spec else False),
        root_disk=_int(t, "root_disk", key, default=50), data_disk=_int(t, "data_disk", key, default=0),
    )  # fmt: skip


_GROUP_KEYS = frozenset({"id", "name", "nodes", "tags", "create_time"})


def _groups(value: object, key: str, prepaid: Mapping[str, InstanceType]) -> dict[str, ResourceGroup]:
    out: dict[str, ResourceGroup] = {}
    node_ids: set[str] = set()
    for i, g in enumerate(_tables(value, key)):
        where = f"{key}[{i}]"
        _reject_unknown(g, _GROUP_KEYS, where)
        group_id = _str(g, "id", where)
        if not group_id:
            raise _Invalid(f"{where}.id", "must not be empty")
        if group_id in out:
            raise _Invalid(f"{where}.id", f"duplicate id {group_id}")
        nodes = tuple(
            _node(n, f"{where}.nodes[{j}]", prepaid)
            for j, n in enumerate(_tables(g.get("nodes", []), f"{where}.nodes"))
        )
        for j, n in enumerate(nodes):
            if n.id in node_ids:
                raise _Invalid(f"{where}.nodes[{j}].id", f"duplicate node id {n.id}")
            node_ids.add(n.id)
        tags = _table(g.get("tags", {}), f"{where}.tags")
        for tag_key, tag_value in tags.items():
            if not isinstance(tag_value, str):
                raise _Invalid(f"{where}.tags.{tag_key}", "must be a string")
        out[group_id] = ResourceGroup(
            id=group_id, name=_str(g, "name", where, default=group_id), nodes=nodes,
            tags=tuple(tags.items()), create_time=_time(g, "create_time", where),
        )  # fmt: skip
    return out


_FRAMEWORK_KEYS = frozenset({"name", "version", "environment", "modes", "image_url"})


def _frameworks(value: object, key: str) -> tuple[Framework, ...]:
    out: list[Framework] = []
    seen: set[str] = set()
    for i, f in enumerate(_tables(value, key)):
        where = f"{key}[{i}]"
        _reject_unknown(f, _FRAMEWORK_KEYS, where)
        env = _str(f, "environment", where)
        if env in seen:
            raise _Invalid(f"{where}.environment", f"duplicate environment {env}")
        seen.add(env)
        modes = _strs(f, "modes", where, default=())
        if not modes:
            raise _Invalid(f"{where}.modes", "must list at least one training mode")
        fw = Framework(
            _str(f, "name", where),
            _str(f, "version", where),
            env,
            modes,
            _str(f, "image_url", where, default=""),
        )
        out.append(fw)
    return tuple(out)


def _from_toml(data: dict[str, Any]) -> Catalogue:
    base = Catalogue.default()
    _reject_unknown(data, _TOP_KEYS, "")
    capacity = base.capacity
    if "capacity" in data:
        c = _table(data["capacity"], "capacity")
        _reject_unknown(c, {"cpu", "memory", "gpu"}, "capacity")
        capacity = Capacity(
            cpu=_int(c, "cpu", "capacity", default=capacity.cpu),
            memory=_int(c, "memory", "capacity", default=capacity.memory),
            gpu=_int(c, "gpu", "capacity", default=0),
        )
    post = dict(base.instance_types)
    if "instance_types" in data:
        post = _types(data["instance_types"], "instance_types", POSTPAID)
    if "prices" in data:
        # A price list alone keeps the built-in types: the common case is re-pricing, not re-sizing.
        prices = _table(data["prices"], "prices")
        for name in prices:
            if name not in post:
                raise _Invalid(f"prices.{name}", "no such instance type")
            post[name] = replace(post[name], price=_int(prices, name, "prices"))
    pre = dict(base.prepaid_types)
    if "prepaid_types" in data:
        pre = _types(data["prepaid_types"], "prepaid_types", PREPAID)
    groups = dict(base.resource_groups)
    if "resource_groups" in data:
        groups = _groups(data["resource_groups"], "resource_groups", pre)
    elif "prepaid_types" in data:
        # The sample groups name built-in prepaid specs; keep them only if those still exist.
        groups = {g.id: g for g in groups.values() if all(n.spec_name in pre for n in g.nodes)}
    frameworks = base.frameworks
    if "frameworks" in data:
        frameworks = _frameworks(data["frameworks"], "frameworks")
    if "images" in data:
        images = _table(data["images"], "images")
        known = {f.environment for f in frameworks}
        for env in images:
            if env not in known:
                raise _Invalid(f"images.{env}", "no framework has this environment")
            _str(images, env, "images")
        frameworks = tuple(replace(f, image_url=images.get(f.environment, f.image_url)) for f in frameworks)
    discount = _int(data, "discount", "", default=100)
    if discount > 100:
        raise _Invalid("discount", "must be a percentage from 0 to 100")
    limits = base.limits
    if "limits" in data:
        lim = _table(data["limits"], "limits")
        _reject_unknown(lim, {"max_pods_per_task", "max_active_tasks"}, "limits")
        limits = Limits(
            max_pods_per_task=_int(lim, "max_pods_per_task", "limits", default=limits.max_pods_per_task, minimum=1),
            max_active_tasks=_int(lim, "max_active_tasks", "limits", default=limits.max_active_tasks, minimum=1),
        )
    return Catalogue(
        instance_types=MappingProxyType(post),
        resource_groups=MappingProxyType(groups),
        frameworks=frameworks,
        capacity=capacity,
        prepaid_types=MappingProxyType(pre),
        discount=discount,
        limits=limits,
    )
