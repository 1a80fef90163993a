"""The local executor's side of the sandbox (issue 9): from a run's pod to its SandboxSpec, and the host files
made ready for it (ownership and search bits), GPUs assigned, image resolved. sandbox.py builds the command line.

What a pod sees, by path (docs/executors.md): its code at /opt/ml/code (also its working directory), each data
mount at its MappingPath (an absolute one where it says, a relative one under /opt/ml/input/data), its output at
/opt/ml/output; TI_MOUNT_ROOT is `/`, so `TI_MOUNT_ROOT + MappingPath` is where the data is, as before.

Permissions (issue 9 item 2): when the server is root, bwrap looks up the host paths it binds as the pod's own
uid. The directories above the run's directory and the COS root get the search bit only (o+x: pass through,
never list); the run's code copy and the account's COS tree `<cos_root>/<UIN>` belong to the account's uid with
mode 0700, so another account's pods (another uid) cannot reach them even through a mount mistake, while the
server, root, still reads and writes everything.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

from tione_server.executors import gpus as gpu_mod
from tione_server.executors import images, sandbox
from tione_server.executors.base import Mount, PodSpec, RunSpec
from tione_server.executors.cgroups import Cgroup, Hierarchy, Limits, detect
from tione_server.executors.runfiles import RunFiles
from tione_server.models import Pod

log = logging.getLogger("tione_server.sandbox")

CODE = "/opt/ml/code"
OUTPUT = "/opt/ml/output"
DATA = "/opt/ml/input/data"
"""Where a relative MappingPath (and a DataConfig without one, `data-<i>`) is mounted in the pod."""
PIDS_PER_CORE = 1024
"""Processes (and threads) a pod may have at once, per core of its type (at least one core's worth): room for
data loaders and thread pools, and a stop to a fork bomb."""
NOBODY = 65534
"""The uid pods run as when the executor has no per-account uids (built without a store; never the server)."""
CARD = 100
"""Units of one GPU card (`Gpu` counts 1/100 cards, spec §1.5)."""


def pod_path(mapping: str) -> str:
    """Where a data mount's MappingPath is inside the pod."""
    return mapping if mapping.startswith("/") else str(PurePosixPath(DATA) / mapping)


def searchable(path: Path) -> None:
    """Give `path` and every directory above it the search bit for others (o+x), where it lacks it, so a pod's
    uid can pass through to what is bound for it; listing and reading stay as they were."""
    for d in [path, *path.parents]:
        try:
            mode = d.stat().st_mode
            if not mode & stat.S_IXOTH:
                d.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
                log.info("sandbox: %s gets the search bit (o+x) so pods' users can pass through it", d)
        except OSError:
            continue


def owned(path: Path, uid: int, *, recursive: bool = False) -> None:
    """`path` (and, with `recursive`, everything below it, links themselves) owned by uid:uid, mode 0700 on top."""
    os.chown(path, uid, uid)
    path.chmod(0o700)
    if recursive:
        for top, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                os.chown(Path(top) / name, uid, uid, follow_symlinks=False)


class PodSandbox:
    """What the local executor needs to run pods sandboxed: checked to work when built (SandboxUnavailable or
    CgroupUnavailable otherwise, and the executor refuses to start, issue 9 item 6)."""

    def __init__(
        self,
        files: RunFiles,
        cos_root: Path,
        *,
        account_uid: Callable[[str], int] | None = None,
        image_roots: Mapping[str, Path] | None = None,
        gpu_inventory: gpu_mod.Inventory | None = None,
        hierarchy: Hierarchy | None = None,
    ) -> None:
        sandbox.probe()
        self.hierarchy = hierarchy or detect()
        self.files = files
        self.cos_root = cos_root
        self.account_uid = account_uid
        self.image_roots = dict(image_roots or {})
        self.inventory = gpu_inventory or gpu_mod.Inventory((), ())
        self.root = os.geteuid() == 0

    def uid(self, account: str) -> int | None:
        """The uid the account's pods run as (None: the server's own user, which is not root)."""
        if not self.root:
            return None
        return self.account_uid(account) if self.account_uid is not None else NOBODY

    def image(self, spec: RunSpec) -> Path | None:
        """The run's root filesystem (None: `host`); ImageUnavailable naming the image when there is none.

        A framework task's preset image is the host unless the table maps its URL (issue 9 item 4)."""
        url = spec.image
        if spec.image_preset and url not in self.image_roots:
            url = images.HOST
        root = images.resolve(url, self.image_roots, self.files.data_dir / "images")
        if root is not None and self.root:
            searchable(root)  # bwrap binds the image's entries as the pod's uid
        return root

    def prepare_run(self, spec: RunSpec, output: Path | None) -> None:
        """After the run's files are made: give the pod's uid its code and output, and a way to them."""
        uid = self.uid(spec.account)
        if uid is None:
            return
        searchable(self.files.root(spec.run_id))
        searchable(self.cos_root)
        owned(self.files.code(spec.run_id), uid, recursive=True)
        account_tree = self.cos_root / spec.account
        if account_tree.is_dir():
            owned(account_tree, uid)
        if output is not None:
            os.chown(output, uid, uid)

    def cgroup(self, pod: str) -> Cgroup:
        """The pod's control group (limits are not needed to find or remove it)."""
        return self.hierarchy.cgroup(pod, Limits())

    def gpus_for(self, pod: Pod) -> tuple[gpu_mod.Gpu, ...]:
        """Cards for a GPU pod, none held by a live pod (scheduling.py has counted them; this picks which)."""
        count = -(-pod.gpu // CARD)
        if not count:
            return ()
        picked = gpu_mod.assign(self.inventory, self._busy_gpus(), count)
        if picked is None:
            raise OSError(f"no {count} free GPU(s) of {len(self.inventory.gpus)} on this machine")
        return picked

    def _busy_gpus(self) -> set[int]:
        """Indices held by pods that have not ended (their `gpus` file, no `exit` file yet)."""
        busy: set[int] = set()
        for held in (self.files.data_dir / "runs").glob("*/pods/*/gpus"):
            if not (held.parent / "exit").exists():
                try:
                    busy.update(int(i) for i in json.loads(held.read_text()))
                except (OSError, ValueError, TypeError):
                    continue
        return busy

    def launch(
        self, spec: RunSpec, ps: PodSpec, pod: Pod, env: Mapping[str, str], image: Path | None, pod_dir: Path
    ) -> dict[str, object]:
        """The `spec.json` entries of a sandboxed pod (argv, env, what its supervisor cleans up); its control
        group is made here."""
        run_id = spec.run_id
        data = tuple((m_host, pod_path(m.target)) for m, m_host in self._data(spec))
        output = self.files.root(run_id) / "output"
        chosen = self.gpus_for(pod)
        (pod_dir / "gpus").write_text(json.dumps([g.index for g in chosen]))
        uid = self.uid(spec.account)
        box = sandbox.SandboxSpec(
            name=pod.name,
            image_root=image,
            code=(self.files.code(run_id), CODE),
            output=(output.resolve(), OUTPUT) if spec.output is not None else None,
            workdir=CODE,
            data=data,
            env=dict(env),
            uid=uid,
            gid=uid,
            limits=Limits(
                cpu_millicores=pod.cpu or None,
                memory_bytes=(pod.memory << 20) or None,
                pids=PIDS_PER_CORE * max(1, -(-pod.cpu // 1000)),
            ),
            gpus=chosen,
            gpu_control=self.inventory.control if chosen else (),
        )
        prepared = sandbox.prepare(box, ["/bin/sh", "-c", ps.command], self.hierarchy)
        prepared.cgroup.create()
        memory = prepared.cgroup.paths["memory"]
        oom = memory / ("memory.events" if prepared.cgroup.version == 2 else "memory.oom_control")
        dirs = list(dict.fromkeys(str(p) for p in prepared.cgroup.paths.values()))
        return {"argv": prepared.argv, "env": prepared.env, "sandbox": {"oom": str(oom), "cgroups": dirs}}

    def _data(self, spec: RunSpec) -> list[tuple[Mount, Path]]:
        """Each data mount with the host path it was linked to at submit (runs/<id>/mnt/<MappingPath>)."""
        mnt = self.files.mounts(spec.run_id)
        return [(m, (mnt / m.target.lstrip("/")).resolve()) for m in spec.mounts]
