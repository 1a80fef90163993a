"""The pod supervisor: one per pod, started by the local executor as `python -I podwrap.py POD_DIR`.

It runs the pod's command with `/bin/sh -c`, stamps every stdout/stderr line with the time it was read,
and records the exit code in `POD_DIR/exit`. It lives in the pod's own session and process group and only
uses the standard library, so a server crash (even SIGKILL) neither kills the pod nor loses its output:
the restarted server finds `POD_DIR/pid` and `POD_DIR/exit` and carries on (issue: crashes lose nothing).

SIGTERM/SIGINT/SIGHUP are caught and ignored here (the executor signals the whole process group, so the
command gets them) so that the supervisor can still write the exit code after the command ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

CHUNK = 64 * 1024
"""Longest log line kept in one piece; longer lines are split."""
DRAIN_SECONDS = 2.0
"""How long to keep reading after the command exits (grandchildren may still hold the pipes)."""


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _pump(src: IO[bytes], dst: Path) -> None:
    with dst.open("ab", buffering=0) as out:
        for chunk in iter(lambda: src.readline(CHUNK), b""):
            out.write(b"%d %s\n" % (time.time_ns(), chunk.rstrip(b"\n")))


def _ignore(_signum: int, _frame: object) -> None:
    """A handler, not SIG_IGN: ignored dispositions would be inherited by the command."""


def main(pod_dir: Path) -> int:
    spec = json.loads((pod_dir / "spec.json").read_text())
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _ignore)
    stdout, stderr = Path(spec["stdout"]), Path(spec["stderr"])
    try:
        child = subprocess.Popen(
            ["/bin/sh", "-c", spec["command"]],
            cwd=spec["cwd"],
            env=spec["env"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as err:
        with stderr.open("ab") as out:
            out.write(b"%d %s\n" % (time.time_ns(), f"cannot start the command: {err}".encode()))
        _write_json(pod_dir / "pid", {"pid": os.getpid(), "child": 0, "time": time.time()})
        _write_json(pod_dir / "exit", {"code": 127, "signal": 0, "time": time.time()})
        return 127
    _write_json(pod_dir / "pid", {"pid": os.getpid(), "child": child.pid, "time": time.time()})
    assert child.stdout is not None
    assert child.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(child.stdout, stdout), daemon=True),
        threading.Thread(target=_pump, args=(child.stderr, stderr), daemon=True),
    ]
    for t in pumps:
        t.start()
    returncode = child.wait()
    deadline = time.monotonic() + DRAIN_SECONDS
    for t in pumps:
        t.join(max(0.0, deadline - time.monotonic()))
    # A command killed by signal N reports 128 + N, as a shell (and Kubernetes) would.
    code = returncode if returncode >= 0 else 128 - returncode
    _write_json(pod_dir / "exit", {"code": code, "signal": max(0, -returncode), "time": time.time()})
    return code


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main(Path(sys.argv[1])))
