"""CreateTrainingTask validation (spec §4.1) and the stored definition it yields.

Checks run in the order of spec §4.1 (after the codec's type/unknown/required checks); the first failure
answers, with its code and a message naming the field, and nothing is stored. The output is the task's
definition in wire shape, normalised as responses show it (spec §3.1, §3.3), plus what the runner needs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec

from tione_server.api._generated import CosPathInfo, CreateTrainingTaskRequest
from tione_server.catalogue import Catalogue
from tione_server.errors import (
    BadName,
    BillingStatusResourceInsufficient,
    ClsConfigRequired,
    DataConfigNumLimitExceeded,
    FrameworkVersionNotSupport,
    InvalidParameterValue,
    LimitExceeded,
    MissingParameter,
    ParamLengthExceedLimit,
    RDMAConfigIllegal,
    ResourceConfigIllegal,
    ResourceGroupInsufficient,
    ResourceGroupNotFound,
)
from tione_server.models import ChargeType
from tione_server.netpolicy import AddressPolicy
from tione_server.paths import refusal
from tione_server.scheduling import Scheduler, config_demand, task_demand

NAME = re.compile(r"[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9\u4e00-\u9fff_-]{0,59}")
"""Spec §4.1 rule 2: 1-60 code points; CJK, ASCII letters, digits, `_`, `-`; not starting with `_`/`-`."""
ROLES = ("PS", "WORKER", "DRIVER", "EXECUTOR")
MODES = ("PS_WORKER", "DDP", "MPI", "HOROVOD", "SPARK")
IMAGE_TYPES = {"TCR": "TCR", "CCR": "CCR", "PRESET": "PRE_SET", "PRE_SET": "PRE_SET", "CUSTOM": "CUSTOM"}
"""Accepted ImageType spellings, case-insensitively, and what is stored (spec §10 #23)."""
MAX_INSTANCES = 1000
MAX_DATA_CONFIGS = 10
MAX_TUNING = 2048
MAX_REMARK = 1024
START_CMD_KEYS = ("StartCmd", "PsStartCmd", "WorkerStartCmd")


@dataclass
class Definition:
    """A validated CreateTrainingTask: the stored definition (wire names) and its resource demand."""

    name: str
    charge_type: str
    resource_group_id: str
    tags: list[tuple[str, str]]
    doc: dict[str, Any]
    cpu: int = 0
    memory: int = 0
    gpu: int = 0
    private: dict[str, Any] = field(default_factory=dict)


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value) if value is not None else None


def check_name(name: str) -> None:
    """Rule 2: `InvalidParameterValue.BadName`."""
    if not NAME.fullmatch(name):
        raise BadName(
            "`Name` must be 1-60 characters of Chinese, letters, digits, `_` or `-`, "
            "starting with Chinese, a letter or a digit."
        )


def _configs(req: CreateTrainingTaskRequest, catalogue: Catalogue, charge_type: str) -> list[dict[str, Any]]:
    """Rule 4 and the pod quota, and the normalised ResourceConfigInfos (postpaid sizes from the catalogue,
    spec §3.1)."""
    infos = req.ResourceConfigInfos or []
    if not infos:
        raise ResourceConfigIllegal("`ResourceConfigInfos` must have at least one entry.")
    out: list[dict[str, Any]] = []
    total, most = 0, catalogue.limits.max_pods_per_task
    for i, info in enumerate(infos):
        where = f"ResourceConfigInfos.{i}"
        role = (info.Role or "").upper()
        if role not in ROLES:
            raise ResourceConfigIllegal(f"`{where}.Role` must be one of {', '.join(ROLES)}.")
        num = info.InstanceNum or 1  # omitted or 0 means 1 (spec §3.1)
        if num > MAX_INSTANCES:
            raise ResourceConfigIllegal(f"`{where}.InstanceNum` must be at most {MAX_INSTANCES}.")
        total += num
        if total > most:
            # Issue 7 B4: refused while reading the entries, so a huge request costs no more than the quota.
            raise LimitExceeded(
                f"`ResourceConfigInfos` asks for more than {most} pods (`InstanceNum` summed over the entries); "
                "this server allows at most that many per task."
            )
        rdma = {"Enable": bool(info.RDMAConfig and info.RDMAConfig.Enable)}
        if charge_type == ChargeType.POSTPAID_BY_HOUR:
            spec = catalogue.instance_types.get(info.InstanceType or "")
            if spec is None:
                raise ResourceConfigIllegal(
                    f"`{where}.InstanceType` must be a POSTPAID_BY_HOUR spec (see DescribeBillingSpecs)."
                )
            out.append(
                {"Role": role, "Cpu": spec.cpu, "Memory": spec.memory, "GpuType": spec.gpu_type, "Gpu": spec.gpu,
                 "InstanceType": spec.name, "InstanceNum": num, "InstanceTypeAlias": spec.alias, "RDMAConfig": rdma}
            )  # fmt: skip
        else:
            if not info.Cpu or not info.Memory:
                raise ResourceConfigIllegal(
                    f"`{where}.Cpu` (1/1000 cores) and `{where}.Memory` (MB) are required for PREPAID tasks."
                )
            if info.Gpu and not info.GpuType:
                raise ResourceConfigIllegal(f"`{where}.GpuType` is required when `{where}.Gpu` (1/100 cards) is set.")
            out.append(
                {"Role": role, "Cpu": info.Cpu, "Memory": info.Memory, "GpuType": info.GpuType or "",
                 "Gpu": info.Gpu or 0, "InstanceType": "", "InstanceNum": num, "InstanceTypeAlias": "",
                 "RDMAConfig": rdma}
            )  # fmt: skip
    return out


def check_capacity(
    catalogue: Catalogue, scheduler: Scheduler, charge_type: str, group_id: str, configs: list[dict[str, Any]]
) -> None:
    """Rules 5-6, also applied by StartTrainingTask (spec §4.4): one pod of each role must fit, in total, a running
    node of the group (scheduling.py answers); a postpaid spec must be on sale."""
    if charge_type == ChargeType.PREPAID:
        if group_id not in catalogue.resource_groups:
            raise ResourceGroupNotFound(f"The resource group `{group_id}` named in `ResourceGroupId` does not exist.")
        for i, cfg in enumerate(configs):
            if not scheduler.fits_a_node(group_id, config_demand(cfg)):
                raise ResourceGroupInsufficient(
                    f"`ResourceConfigInfos.{i}` asks for more than any node of `{group_id}` has in total."
                )
        return
    for i, cfg in enumerate(configs):
        spec = catalogue.instance_types.get(cfg["InstanceType"])
        if spec is None or not spec.available:
            raise BillingStatusResourceInsufficient(
                f"The spec `{cfg['InstanceType']}` in `ResourceConfigInfos.{i}.InstanceType` is sold out."
            )


def _image(req: CreateTrainingTaskRequest, catalogue: Catalogue) -> dict[str, Any]:
    """Rule 7: a custom image, or a framework the catalogue knows, whose modes include TrainingMode."""
    mode = req.TrainingMode or ""
    if req.ImageInfo is not None:
        image: dict[str, Any] = _builtins(req.ImageInfo)
        kind = IMAGE_TYPES.get((req.ImageInfo.ImageType or "").upper())
        if kind is None:
            raise InvalidParameterValue.for_param("ImageInfo.ImageType", "Use TCR, CCR, PRESET or CUSTOM.")
        if kind == "PRE_SET":
            image["ImageType"] = kind
        if isinstance(image.get("ImageSecret"), dict):
            image["ImageSecret"]["Password"] = ""  # never shown in clear (spec §3.3)
        return image
    name, version, env = req.FrameworkName or "", req.FrameworkVersion or "", req.FrameworkEnvironment or ""
    fw = catalogue.framework(name, version, env) if name and (version or env) else None
    if fw is None:
        raise FrameworkVersionNotSupport(
            "Give `ImageInfo`, or `FrameworkName` with `FrameworkEnvironment` (and `FrameworkVersion`) "
            "of a supported framework."
        )
    if mode and mode not in fw.modes:
        raise FrameworkVersionNotSupport(
            f"`TrainingMode` {mode} is not supported by `{fw.environment}`; use {', '.join(fw.modes)}."
        )
    return {"ImageType": "PRE_SET", "ImageUrl": fw.image_url, "ImageName": fw.environment,
            "RegistryRegion": "", "RegistryId": ""}  # fmt: skip


def _check_rdma(catalogue: Catalogue, charge_type: str, group_id: str, configs: list[dict[str, Any]]) -> None:
    """Rule 8."""
    for i, cfg in enumerate(configs):
        if not cfg["RDMAConfig"]["Enable"]:
            continue
        if charge_type == ChargeType.POSTPAID_BY_HOUR:
            spec = catalogue.instance_types.get(cfg["InstanceType"])
            ok = spec is not None and spec.rdma
        else:
            group = catalogue.resource_groups.get(group_id)
            ok = group is not None and any(n.rdma for n in group.nodes)
        if not ok:
            raise RDMAConfigIllegal(f"`ResourceConfigInfos.{i}.RDMAConfig.Enable`: the resources have no RDMA.")


def decode_start_cmd(encoded: str) -> dict[str, str]:
    """Rule 11: base64 of a JSON object with exactly the three StartCmdInfo keys, all strings."""
    where = "EncodedStartCmdInfo.StartCmdInfo"
    try:
        data = json.loads(base64.b64decode(encoded, validate=True).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidParameterValue.for_param(where, "It must be base64 of a JSON object.") from None
    if not isinstance(data, dict) or any(not isinstance(data.get(k), str) for k in START_CMD_KEYS):
        raise InvalidParameterValue.for_param(
            where, f"The JSON object needs string members {', '.join(START_CMD_KEYS)}."
        )
    return {k: data[k] for k in START_CMD_KEYS}


def _cos(path: CosPathInfo | None, where: str) -> dict[str, Any] | None:
    """Spec §3.2: exactly one path; issue 7 A2: a bucket name and a path confined to the account's storage."""
    if path is None:
        return None
    if len(path.Paths or []) != 1 or not (path.Paths or [""])[0]:
        raise InvalidParameterValue.for_param(f"{where}.Paths", "Give exactly one path.")
    bucket = path.Bucket or ""
    if "/" in bucket:
        raise InvalidParameterValue.for_param(f"{where}.Bucket", "A bucket name has no `/`.")
    check_path(bucket, f"{where}.Bucket")
    check_path((path.Paths or [""])[0], f"{where}.Paths.0")
    return {"Bucket": path.Bucket, "Region": path.Region, "Paths": list(path.Paths or [])}


def check_path(value: str, where: str, *, inside_pod: bool = False) -> None:
    """A path a request names: no `..`, NUL, control character, nor (outside a pod) absolute path (issue 7 A2)."""
    reason = refusal(value, absolute_ok=inside_pod)
    if reason:
        raise InvalidParameterValue.for_param(where, f"The path {reason}.")


def _structure(req: CreateTrainingTaskRequest) -> list[tuple[str, str]]:
    """Value checks without their own rule number: tags, env names, COS paths, TrainingMode."""
    if req.TrainingMode and req.TrainingMode not in MODES:
        raise InvalidParameterValue.for_param("TrainingMode", f"Use {', '.join(MODES)}.")
    tags: list[tuple[str, str]] = []
    for i, tag in enumerate(req.Tags or []):
        if any(k == tag.TagKey for k, _ in tags):
            raise InvalidParameterValue.for_param(f"Tags.{i}.TagKey", "A task holds one value per tag key.")
        tags.append((tag.TagKey or "", tag.TagValue or ""))
    for i, env in enumerate(req.Envs or []):
        if not env.Name:
            raise InvalidParameterValue.for_param(f"Envs.{i}.Name", "Every variable needs a name.")
    return tags


def validate_create(
    req: CreateTrainingTaskRequest, catalogue: Catalogue, scheduler: Scheduler, callbacks: AddressPolicy
) -> Definition:
    """Spec §4.1 rules 2-13 in order; rule 14 (duplicate names) is checked when storing.

    `scheduler` answers whether the request fits the group's nodes; `callbacks` says which addresses a
    CallbackUrl may name (issue 7 D10).
    """
    name = req.Name or ""
    check_name(name)
    charge_type = req.ChargeType or ""
    if charge_type not in (ChargeType.PREPAID, ChargeType.POSTPAID_BY_HOUR):
        raise InvalidParameterValue.for_param("ChargeType", "Use PREPAID or POSTPAID_BY_HOUR.")
    configs = _configs(req, catalogue, charge_type)
    tags = _structure(req)
    group_id = req.ResourceGroupId or ""
    if charge_type == ChargeType.PREPAID and not group_id:
        raise MissingParameter("ResourceGroupId")
    if charge_type == ChargeType.POSTPAID_BY_HOUR and group_id:
        raise InvalidParameterValue.for_param("ResourceGroupId", "Only PREPAID tasks run on a resource group.")
    check_capacity(catalogue, scheduler, charge_type, group_id, configs)
    image = _image(req, catalogue)
    _check_rdma(catalogue, charge_type, group_id, configs)
    if len(req.DataConfigs or []) > MAX_DATA_CONFIGS:
        raise DataConfigNumLimitExceeded(f"At most {MAX_DATA_CONFIGS} `DataConfigs` are allowed.")
    if len(req.TuningParameters or "") > MAX_TUNING:
        raise ParamLengthExceedLimit(f"`TuningParameters` must be at most {MAX_TUNING} characters.")
    if len(req.Remark or "") > MAX_REMARK:
        raise ParamLengthExceedLimit(f"`Remark` must be at most {MAX_REMARK} characters.")
    code = _cos(req.CodePackagePath, "CodePackagePath")
    output = _cos(req.Output, "Output")
    data_configs = []
    for i, dc in enumerate(req.DataConfigs or []):
        check_path(dc.MappingPath or "", f"DataConfigs.{i}.MappingPath", inside_pod=True)
        _cos(dc.COSSource, f"DataConfigs.{i}.COSSource")
        data_configs.append(_builtins(dc))
    if req.EncodedStartCmdInfo is not None and req.EncodedStartCmdInfo.StartCmdInfo is not None:
        start_cmd = decode_start_cmd(req.EncodedStartCmdInfo.StartCmdInfo)  # wins over StartCmdInfo (§4.1)
    else:
        given = req.StartCmdInfo
        start_cmd = {k: (getattr(given, k) or "") if given else "" for k in START_CMD_KEYS}
    url = req.CallbackUrl or ""
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url)):
        raise InvalidParameterValue.for_param("CallbackUrl", "Give an absolute http:// or https:// URL.")
    if url and callbacks.literal_denied(parts.hostname or ""):
        # Issue 7 D10: a literal address callbacks may not reach; a host name is checked at delivery.
        raise InvalidParameterValue.for_param("CallbackUrl", "Callbacks may not be sent to that address.")
    if req.LogEnable and not (req.LogConfig and req.LogConfig.LogsetId and req.LogConfig.TopicId):
        raise ClsConfigRequired("`LogEnable` needs `LogConfig` with `LogsetId` and `TopicId`.")
    envs = [{"Name": e.Name, "Value": e.Value or "", "IsPrivate": bool(e.IsPrivate)} for e in req.Envs or []]
    shown = [e | {"Value": "******"} if e["IsPrivate"] else e for e in envs]  # spec §3.6
    doc: dict[str, Any] = {
        "FrameworkName": req.FrameworkName or "",
        "FrameworkVersion": req.FrameworkVersion or "",
        "FrameworkEnvironment": req.FrameworkEnvironment or "",
        "ResourceConfigInfos": configs,
        "TrainingMode": req.TrainingMode or "",
        "CodePackagePath": code,
        "StartCmdInfo": start_cmd,
        "DataSource": req.DataSource or "",
        "DataConfigs": data_configs,
        "TuningParameters": req.TuningParameters or "",
        "Output": output,
        "LogEnable": bool(req.LogEnable),
        "LogConfig": _builtins(req.LogConfig),
        "VpcId": req.VpcId or "",
        "SubnetId": req.SubnetId or "",
        "ImageInfo": image,
        "Remark": req.Remark or "",
        "CallbackUrl": url,
        "CodeRepos": _builtins(req.CodeRepos) or [],
        "ExposeNetworkConfig": _builtins(req.ExposeNetworkConfig),
        "Envs": shown,
        "TrainToolConfig": _builtins(req.TrainToolConfig),
        "ResourceSupplyAttribute": _builtins(req.ResourceSupplyAttribute),
        "Queues": list(req.Queues or []),
        "_private": {"Envs": envs},
    }
    need = task_demand(configs)
    return Definition(
        name=name, charge_type=charge_type, resource_group_id=group_id, tags=tags, doc=doc,
        cpu=need.cpu, memory=need.memory, gpu=need.gpu,
    )  # fmt: skip


def stored_configs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The normalised ResourceConfigInfos of a stored definition."""
    return [dict(c) for c in doc.get("ResourceConfigInfos") or []]
