"""From a stored task to what runs: pod names and sizes (spec §4.7), commands and environment per pod.

Shared by every executor, so pod names, ranks and variables are the same whichever runs the pods.
The variables follow what `torchrun` sets for one process per node (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT, ...) plus TI-ONE's TI_TASK_ID (spec §4.9); the task's own Envs win over them.
"""

from __future__ import annotations

from typing import Any

from tione_server.executors.base import Mount, PodSpec, RunSpec
from tione_server.models import Pod, Run, Task

IDLE = "exec sleep 2147483647"
"""What MPI/HOROVOD worker pods run: the launcher drives the job (spec §6.5)."""


def _nodes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per node: the role's ResourceConfigInfo, repeated InstanceNum times."""
    out: list[dict[str, Any]] = []
    for info in doc.get("ResourceConfigInfos") or []:
        out += [info] * max(1, int(info.get("InstanceNum") or 1))
    return out


def plan_pods(run_id: str, doc: dict[str, Any]) -> list[Pod]:
    """The pods of a run, named per spec §4.7, with the resources each one holds."""
    mode = doc.get("TrainingMode") or ""
    nodes = _nodes(doc)
    named: list[tuple[str, str, dict[str, Any] | None]] = []  # (suffix, role, config)
    if mode == "DDP":
        named = [("master-0" if i == 0 else f"worker-{i - 1}", n["Role"], n) for i, n in enumerate(nodes)]
    elif mode in ("MPI", "HOROVOD"):
        named = [("launcher", "LAUNCHER", None)]
        named += [(f"worker-{i}", n["Role"], n) for i, n in enumerate(nodes)]
    else:
        seen: dict[str, int] = {}
        for n in nodes:
            role = str(n["Role"])
            i = seen.get(role, 0)
            seen[role] = i + 1
            named.append((f"{role.lower()}-{i}", role, n))
    return [
        Pod(
            name=f"{run_id}-{suffix}",
            role=role,
            index=position,
            cpu=int(cfg.get("Cpu") or 0) if cfg else 0,
            memory=int(cfg.get("Memory") or 0) if cfg else 0,
            gpu=int(cfg.get("Gpu") or 0) if cfg else 0,
        )
        for position, (suffix, role, cfg) in enumerate(named)
    ]


def pod_config(doc: dict[str, Any], pod: Pod) -> dict[str, Any]:
    """The ResourceConfigInfo a pod shows (its role's, with InstanceNum 1; spec §4.7)."""
    infos = doc.get("ResourceConfigInfos") or [{}]
    cfg = next((i for i in infos if i.get("Role") == pod.role), infos[0])
    return {**cfg, "InstanceNum": 1}


def task_envs(task: Task) -> dict[str, str]:
    """The task's Envs with their real values (responses mask private ones, spec §3.6)."""
    private = task.doc.get("_private") or {}
    envs = private.get("Envs") if isinstance(private, dict) else None
    return {str(e.get("Name") or ""): str(e.get("Value") or "") for e in envs or [] if e.get("Name")}


def _command(doc: dict[str, Any], mode: str, pod: Pod) -> str:
    cmds = doc.get("StartCmdInfo") or {}
    start = str(cmds.get("StartCmd") or "")
    if mode in ("MPI", "HOROVOD"):
        return start if pod.role == "LAUNCHER" else IDLE
    if mode == "PS_WORKER":
        if pod.role == "PS":
            return str(cmds.get("PsStartCmd") or "") or start
        return str(cmds.get("WorkerStartCmd") or "") or start
    return start


def _cos(obj: Any) -> str | None:
    """`Bucket/path` of a CosPathInfo, or None when unset."""
    if not isinstance(obj, dict) or not obj.get("Bucket") or not obj.get("Paths"):
        return None
    return f"{obj['Bucket']}/{str(obj['Paths'][0]).lstrip('/')}"


def _mounts(doc: dict[str, Any]) -> tuple[tuple[Mount, ...], str]:
    """COS data sources as mounts, or why the run cannot have its data here."""
    mounts: list[Mount] = []
    for i, dc in enumerate(doc.get("DataConfigs") or []):
        kind = str(dc.get("DataSourceType") or "")
        target = str(dc.get("MappingPath") or f"data-{i}")
        if kind == "COS" and (src := _cos(dc.get("COSSource"))):
            mounts.append(Mount(target=target, source=src, kind="COS"))
        elif dc.get("HostPathSource") or dc.get("LocalDiskSource"):
            # Issue 7 A2: nothing a request names may reach outside its account; a host path would.
            return (), f"DataConfigs.{i}: host paths (HostPathSource, LocalDiskSource) are not available; use COSSource"
        else:
            return (), f"DataConfigs.{i}: data source type {kind or '(none)'} is not available on this executor"
    return tuple(mounts), ""


def run_spec(run: Run, task: Task) -> RunSpec:
    """The RunSpec of `run` of `task`: pods in order, with their commands and environment."""
    doc = task.doc
    mode = str(doc.get("TrainingMode") or "")
    pods = run.pods or plan_pods(run.id, doc)
    workers = [p for p in pods if p.role != "LAUNCHER"]
    user_env = task_envs(task)
    role_counts: dict[str, int] = {}
    for p in workers:
        role_counts[p.role] = role_counts.get(p.role, 0) + 1
    role_seen: dict[str, int] = {}
    rank_of = {p.name: rank for rank, p in enumerate(workers)}  # not workers.index: O(pods) per run (issue 7 B4)
    specs: list[PodSpec] = []
    for p in pods:
        env = {
            "TI_TASK_ID": task.id,
            "TI_INSTANCE_ID": run.id,
            "TI_POD_NAME": p.name,
            "TI_ROLE": p.role,
            "MASTER_ADDR": "127.0.0.1",
            "WORLD_SIZE": str(len(workers)),
            "LOCAL_RANK": "0",
            "LOCAL_WORLD_SIZE": "1",
        }
        if p.role != "LAUNCHER":
            rank = rank_of[p.name]
            role_rank = role_seen.get(p.role, 0)
            role_seen[p.role] = role_rank + 1
            env |= {
                "RANK": str(rank),
                "GROUP_RANK": str(rank),
                "NODE_RANK": str(rank),
                "ROLE_RANK": str(role_rank),
                "ROLE_WORLD_SIZE": str(role_counts[p.role]),
                "ROLE_NAME": p.role.lower(),
            }
        specs.append(
            PodSpec(name=p.name, role=p.role, index=p.index, command=_command(doc, mode, p), env=env | user_env)
        )
    mounts, unsupported = _mounts(doc)
    code = _cos(doc.get("CodePackagePath"))
    output = _cos(doc.get("Output"))
    image = doc.get("ImageInfo") or {}
    return RunSpec(
        run_id=run.id,
        task_id=task.id,
        mode=mode,
        pods=tuple(specs),
        code=Mount(target="code", source=code, kind="COS") if code else None,
        mounts=mounts,
        output=Mount(target="output", source=output, kind="COS") if output else None,
        requested_at=run.requested_at,
        unsupported=unsupported,
        env=user_env,
        account=task.scope.uin,
        image=str(image.get("ImageUrl") or ""),
        image_preset=image.get("ImageType") == "PRE_SET",
    )
