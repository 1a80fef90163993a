"""Deterministic benchmark datasets: JSON lines of TrainingTaskSetItem, as saved from the real service.

One file of `size` tasks for the measured account and region, plus noise files (other accounts, and the
same account in another region) adding NOISE_SHARE of `size`. The skew is meant to look like a real
account: most tasks finished, a few running (mostly the recent ones), tags on half, a handful of
creators and resource groups, names drawn from a vocabulary. Files are cached by size and seed.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


@dataclass(frozen=True)
class Tenant:
    """An (account, region) whose tasks one file holds; all in the default workspace."""

    uin: str
    app_id: str
    region: str


MAIN = Tenant("100000000001", "1250000001", "ap-guangzhou")
"""The account and region every query shape addresses."""

NOISE = (
    Tenant("100000000002", "1250000002", "ap-guangzhou"),
    Tenant("100000000003", "1250000003", "ap-guangzhou"),
    Tenant("100000000004", "1250000004", "ap-beijing"),
    Tenant(MAIN.uin, MAIN.app_id, "ap-shanghai"),
)
"""Other scopes sharing the tables: other accounts, and the measured account in another region."""

NOISE_SHARE = 0.2
"""Noise tasks, as a share of the measured account's; split evenly over NOISE."""

T0 = 1_685_577_600
"""2023-06-01T00:00:00Z: the oldest task's creation."""
SPAN = 2 * 365 * 86_400
"""Creation times spread evenly over two years; ids grow with creation time (spec §1.4)."""
ID_BASE = 1_300_000_000_000_000_000

CREATORS = (
    ("100000000001", "root"),
    ("100000010001", "alice"),
    ("100000010002", "bob"),
    ("100000010003", "carol"),
    ("100000010004", "dave"),
    ("100000010005", "erin"),
    ("100000010006", "frank"),
    ("100000010007", "grace"),
)
CREATOR_WEIGHTS = (0.06, 0.32, 0.18, 0.15, 0.12, 0.09, 0.05, 0.03)

RESOURCE_GROUPS = (
    ("ersg-9hw7jfk6", "gpu-a100-pool"),
    ("ersg-2kd8sm1q", "gpu-t4-pool"),
    ("ersg-x7bn3c0p", "cpu-pool"),
    ("ersg-m4t6zr8e", "research-shared"),
)
PREPAID_SHARE = 0.35

MODELS = ("bert", "resnet50", "llama2-7b", "yolov8", "gpt2", "vit-base", "t5-small", "whisper", "unet", "lstm")
MODEL_WEIGHTS = (0.16, 0.12, 0.14, 0.10, 0.10, 0.08, 0.09, 0.07, 0.08, 0.06)
KINDS = ("finetune", "pretrain", "eval", "sweep", "distill", "train")
DATASETS = ("imagenet", "coco", "squad", "wiki", "cifar10", "librispeech", "custom")

TAG_TEAMS = ("vision", "nlp", "speech", "recsys", "infra")
TAG_PROJECTS = tuple(f"proj-{p}" for p in ("atlas", "borealis", "cosmos", "delta", "ember", "fjord", "gala"))
TAG_ENVS = ("dev", "staging", "prod")

TERMINAL = ("SUCCEED", "FAILED", "STOPPED", "SUBMIT_FAILED")
TERMINAL_WEIGHTS = (0.68, 0.15, 0.14, 0.03)
ACTIVE = ("RUNNING", "PENDING", "STARTING", "SUBMITTING", "STOPPING")
ACTIVE_WEIGHTS = (0.55, 0.25, 0.08, 0.06, 0.06)
RECENT = 0.97
"""Tasks created after this share of the timeline are mostly still active; older ones rarely are."""

INSTANCE_TYPES = (
    ("TI.GN7.2XLARGE32.POST", "GN7.2XLARGE32", 8000, 32768, "T4", 100, 8.68),
    ("TI.GN10Xp.2XLARGE40.POST", "GN10Xp.2XLARGE40", 10000, 40960, "V100", 100, 21.50),
    ("TI.GT4.20XLARGE950.POST", "GT4.20XLARGE950", 80000, 972800, "A100", 800, 225.00),
    ("TI.S.LARGE.POST", "S.LARGE", 2000, 8192, "", 0, 0.75),
)
FRAMEWORKS = (("PYTORCH", "1.9.1", "PYTORCH 1.9.1 py3.8 cuda11.1"), ("TENSORFLOW", "2.4", "TF 2.4 py3.7 cuda11.0"))


@dataclass(frozen=True)
class DatasetFile:
    """One JSON-lines file and whose tasks it holds."""

    tenant: Tenant
    path: Path
    count: int


@dataclass(frozen=True)
class Dataset:
    """The measured account's file and the noise files, for one size and seed."""

    size: int
    seed: int
    main: DatasetFile
    noise: tuple[DatasetFile, ...]

    @property
    def files(self) -> tuple[DatasetFile, ...]:
        return (self.main, *self.noise)


def ensure(root: Path, size: int, seed: int, log: Callable[[str], None] = print) -> Dataset:
    """The dataset of `size` tasks for `seed`, generating any file not yet cached under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    noise_each = max(1, round(size * NOISE_SHARE / len(NOISE)))
    plan = [(MAIN, size)] + [(tenant, noise_each) for tenant in NOISE]
    files: list[DatasetFile] = []
    for index, (tenant, count) in enumerate(plan):
        name = "tasks" if index == 0 else f"noise{index}"
        path = root / f"{name}-{size}-s{seed}.jsonl"
        if not path.exists():
            started = time.perf_counter()
            _write(path, generate(tenant, count, seed=seed, file_index=index))
            log(f"generated {path.name}: {count:,} tasks in {time.perf_counter() - started:.1f} s")
        files.append(DatasetFile(tenant, path, count))
    return Dataset(size=size, seed=seed, main=files[0], noise=tuple(files[1:]))


def _write(path: Path, items: Iterator[dict[str, Any]]) -> None:
    """Write atomically, so an interrupted run never leaves a truncated file in the cache."""
    encode = msgspec.json.Encoder().encode
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as fh:
        chunk: list[bytes] = []
        for item in items:
            chunk.append(encode(item))
            if len(chunk) >= 10_000:
                fh.write(b"\n".join(chunk) + b"\n")
                chunk = []
        if chunk:
            fh.write(b"\n".join(chunk) + b"\n")
    tmp.replace(path)


def _pick(rng: random.Random, values: Sequence[T], weights: Sequence[float]) -> T:
    return rng.choices(values, weights)[0]


def _time(ts: int) -> str:
    """The wire shape of task times (spec §1.3): UTC+8 wall clock, `+08`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts + 8 * 3600)) + "+08"


def generate(tenant: Tenant, count: int, *, seed: int, file_index: int) -> Iterator[dict[str, Any]]:
    """`count` wire items for `tenant`, oldest first; the same arguments always give the same items.

    Ids are unique across the files of one dataset: `file_index` is folded into the low digits.
    """
    rng = random.Random(seed * 1_000 + file_index)
    for i in range(count):
        frac = i / count
        create = T0 + int(frac * SPAN)
        num = ID_BASE + int(frac * 2**40) * 16 + file_index
        active_share = 0.7 if frac >= RECENT else 0.012
        active = rng.random() < active_share
        status = _pick(rng, ACTIVE, ACTIVE_WEIGHTS) if active else _pick(rng, TERMINAL, TERMINAL_WEIGHTS)
        yield _item(rng, tenant, f"train-{num}", create, status)


def _item(rng: random.Random, tenant: Tenant, task_id: str, create: int, status: str) -> dict[str, Any]:
    model = _pick(rng, MODELS, MODEL_WEIGHTS)
    name = f"{model}-{rng.choice(KINDS)}-{rng.choice(DATASETS)}-{rng.randrange(10_000):04d}"
    sub_uin, sub_name = _pick(rng, CREATORS, CREATOR_WEIGHTS)
    if tenant.uin != MAIN.uin:  # other accounts have their own sub-users
        sub_uin = tenant.uin[:-4] + sub_uin[-4:]
    prepaid = rng.random() < PREPAID_SHARE
    group_id, group_name = rng.choice(RESOURCE_GROUPS) if prepaid else ("", "")
    itype, alias, cpu, memory, gpu_type, gpu, price = rng.choice(INSTANCE_TYPES)
    nodes = rng.choice((1, 1, 1, 2, 4))

    restarted = rng.random() < 0.1
    update = create + (rng.randrange(3600, 30 * 86_400) if restarted else 0)
    reached_running = status in ("RUNNING", "STOPPING", "SUCCEED") or (
        status in ("FAILED", "STOPPED") and rng.random() < 0.75
    )
    start = update + rng.randrange(30, 900) if reached_running else None
    end: int | None = None
    if status in ("SUCCEED", "FAILED", "STOPPED"):
        base = start if start is not None else update
        end = base + min(int(rng.expovariate(1 / 7200)) + 60, 14 * 86_400)
    elif status == "SUBMIT_FAILED":
        end = update + rng.randrange(2, 30)

    billing = not prepaid and status in ("STARTING", "RUNNING", "STOPPING")
    arrears = not prepaid and status == "STOPPED" and rng.random() < 0.03
    charge_status = "BILLING" if billing else "ARREARS_STOP" if arrears else "NOT_BILLING"
    failure = ""
    if status == "FAILED":
        failure = rng.choice(("worker-0 exited with code 1", "worker-0 OOMKilled", "node lost"))
    elif status == "STOPPED":
        failure = "Arrears Stop" if arrears else "User Stop"
    elif status == "SUBMIT_FAILED":
        failure = "image not found"

    custom_image = rng.random() < 0.2
    if custom_image:
        framework = ("", "", "")
        image = {
            "ImageType": "CCR",
            "ImageUrl": f"ccr.ccs.tencentyun.com/team-{sub_name}/{model}:v{rng.randrange(1, 30)}",
            "RegistryRegion": tenant.region,
            "RegistryId": "",
        }
    else:
        framework = rng.choice(FRAMEWORKS)
        image = {
            "ImageType": "PRE_SET",
            "ImageUrl": f"ccr.ccs.tencentyun.com/tione-public-images/ti-{framework[0].lower()}:{framework[1]}",
            "RegistryRegion": "",
            "RegistryId": "",
            "ImageName": framework[2],
        }
    tags: list[dict[str, str]] = []
    if rng.random() < 0.5:
        tags.append({"TagKey": "team", "TagValue": rng.choice(TAG_TEAMS)})
        if rng.random() < 0.5:
            tags.append({"TagKey": "project", "TagValue": rng.choice(TAG_PROJECTS)})
        if rng.random() < 0.3:
            tags.append({"TagKey": "env", "TagValue": rng.choice(TAG_ENVS)})
    operation = "STOP" if status in ("STOPPED", "STOPPING") else "START" if restarted else "CREATE"
    return {
        "Id": task_id,
        "Name": name,
        "FrameworkName": framework[0],
        "FrameworkVersion": framework[1],
        "FrameworkEnvironment": framework[2],
        "ChargeType": "PREPAID" if prepaid else "POSTPAID_BY_HOUR",
        "ChargeStatus": charge_status,
        "ResourceGroupId": group_id,
        "ResourceGroupName": group_name,
        "ResourceConfigInfos": [
            {
                "Role": "WORKER",
                "Cpu": cpu,
                "Memory": memory,
                "GpuType": gpu_type,
                "Gpu": gpu,
                "InstanceType": itype if not prepaid else "",
                "InstanceNum": nodes,
                "InstanceTypeAlias": alias if not prepaid else "",
            }
        ],
        "TrainingMode": "DDP" if nodes > 1 else "",
        "Status": status,
        "RuntimeInSeconds": (end - start) if (start is not None and end is not None) else 0,
        "CreateTime": _time(create),
        "UpdateTime": _time(update),
        "StartTime": _time(start) if start is not None else "",
        "EndTime": _time(end) if end is not None else "",
        "Output": {"Bucket": f"tione-output-{tenant.app_id}", "Region": tenant.region, "Paths": [f"/output/{name}/"]},
        "FailureReason": failure,
        "BillingInfo": f"{price * nodes:.2f}元/小时" if billing else "",
        "ImageInfo": image,
        "Message": "Waiting for resources: insufficient free capacity" if status == "PENDING" else "",
        "Tags": tags,
        "CallbackUrl": "",
        "SubUin": sub_uin,
        "SubUinName": sub_name,
        "AppId": tenant.app_id,
        "Envs": [{"Name": "EPOCHS", "Value": str(rng.randrange(1, 100)), "IsPrivate": False}],
        "LatestOperatorInfo": {
            "SubUin": sub_uin,
            "SubUinName": sub_name,
            "IsPlatformOperator": False,
            "OperationType": operation,
        },
    }
