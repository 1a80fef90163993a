"""The host's NVIDIA GPUs (issue 9 item 5): what the driver reports, and which device nodes a pod needs.

Discovery reads the driver's `/proc/driver/nvidia/gpus/<PCI bus id>/information` files rather than running
`nvidia-smi`: they also give each GPU's device minor (its `/dev/nvidia<minor>`), which `nvidia-smi -L` does not.
Tests hand `discover` a directory laid out the same way and fake device files: the parsing is the one a GPU host
runs. Indices follow PCI bus order, as `nvidia-smi` numbers GPUs.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

PROC_GPUS = Path("/proc/driver/nvidia/gpus")
CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")
"""Device nodes every CUDA process opens besides its GPUs' own (bound into a GPU pod where the host has them)."""


@dataclass(frozen=True)
class Gpu:
    """One GPU: its index (PCI bus order), UUID (what CUDA_VISIBLE_DEVICES names), model and device node."""

    index: int
    uuid: str
    model: str
    node: Path


@dataclass(frozen=True)
class Inventory:
    """The GPUs of this host and the control nodes that go with any of them."""

    gpus: tuple[Gpu, ...]
    control: tuple[Path, ...]


def _fields(text: str) -> dict[str, str]:
    """`Key: value` lines of a driver information file."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def discover(proc_dir: Path = PROC_GPUS, dev_dir: Path = Path("/dev")) -> Inventory:
    """The GPUs the driver reports under `proc_dir` whose device node exists in `dev_dir`; none without a driver.

    A GPU the driver excludes, or one without a device node (nothing could open it), is left out.
    """
    try:
        buses = sorted(p for p in proc_dir.iterdir() if (p / "information").is_file())
    except OSError:  # no NVIDIA driver loaded
        return Inventory((), ())
    found: list[Gpu] = []
    for bus in buses:
        try:
            info = _fields((bus / "information").read_text())
            minor = int(info["Device Minor"])
        except (OSError, KeyError, ValueError):
            continue  # unreadable or a layout this parser does not know: not a GPU we can hand out
        node = dev_dir / f"nvidia{minor}"
        if info.get("GPU Excluded", "No").lower() == "yes" or not node.exists():
            continue
        found.append(Gpu(index=len(found), uuid=info.get("GPU UUID", ""), model=info.get("Model", ""), node=node))
    control = tuple(dev_dir / n for n in CONTROL_NODES if (dev_dir / n).exists()) if found else ()
    return Inventory(tuple(found), control)


def assign(inventory: Inventory, busy: Collection[int], count: int) -> tuple[Gpu, ...] | None:
    """`count` GPUs not in `busy` (indices), lowest indices first; None when fewer are free (the pod waits)."""
    free = [g for g in inventory.gpus if g.index not in busy]
    return tuple(free[:count]) if len(free) >= count else None


def visible_devices(gpus: Collection[Gpu]) -> dict[str, str]:
    """The variables that tell CUDA which GPUs are the pod's.

    CUDA_VISIBLE_DEVICES names them by UUID: inside the sandbox only their device nodes exist, so CUDA may number
    them from 0, and a host index could then name the wrong GPU or none; a UUID is the same GPU either way.
    NVIDIA_VISIBLE_DEVICES carries the host indices assigned (what the NVIDIA container runtime expects).
    """
    if not gpus:
        return {}
    ordered = sorted(gpus, key=lambda g: g.index)
    ids = [g.uuid or str(g.index) for g in ordered]
    return {
        "CUDA_VISIBLE_DEVICES": ",".join(ids),
        "NVIDIA_VISIBLE_DEVICES": ",".join(str(g.index) for g in ordered),
    }
