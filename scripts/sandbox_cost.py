"""What a sandbox adds to starting a pod's process (issue 9, for the create-to-RUNNING comparison of `make bench`).

`python scripts/sandbox_cost.py [N]` (as root): the median milliseconds of N (default 50) starts of `true`, run
directly, inside bwrap, and as a pod is (control group made, entered, bwrap as the pod's uid), with the removal of
the group (after the pod has ended) shown apart.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tione_server.executors import sandbox
from tione_server.executors.cgroups import Limits, detect
from tione_server.executors.sandbox import SandboxSpec


def median_ms(n: int, once: Callable[[int], object]) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        once(i)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(n: int) -> None:
    hierarchy = detect(parent="tione-bench")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)
        spec = SandboxSpec(
            name="bench-0",
            image_root=None,
            code=(Path(tmp), "/opt/ml/code"),
            output=None,
            workdir="/opt/ml/code",
            uid=200_999,
            gid=200_999,
            limits=Limits(cpu_millicores=1000, memory_bytes=256 << 20, pids=64),
        )
        plain = [sandbox.bwrap_path(), *sandbox.bwrap_args(spec), "--", "true"]

        removals: list[float] = []

        def pod(i: int) -> None:
            launch = sandbox.prepare(spec, ["true"], hierarchy)
            launch.cgroup.create()
            subprocess.run(launch.argv, env=launch.env, check=True)
            t0 = time.perf_counter()  # not part of a start: the group goes when the pod has ended
            launch.cgroup.remove()
            removals.append((time.perf_counter() - t0) * 1000)

        rows = [
            ("direct", median_ms(n, lambda _: subprocess.run(["true"], check=True))),
            ("bwrap (as root, no cgroup)", median_ms(n, lambda _: subprocess.run(plain, check=True))),
            ("pod: cgroup + setpriv + bwrap, and removing the group", median_ms(n, pod)),
            ("of which removing the group", statistics.median(removals)),
        ]
    for mount in dict.fromkeys(hierarchy.mounts.values()):
        (mount / hierarchy.parent).rmdir()
    print(f"| start of `true` ({n} each) | median ms |\n|---|---|")
    for label, ms in rows:
        print(f"| {label} | {ms:.1f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
