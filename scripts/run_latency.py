"""Measure create-to-RUNNING latency of training tasks on a live server (local executor by default).

    .venv/bin/python scripts/run_latency.py [--runs 20] [--executor local|simulate] [--sandbox on|off|both]

Starts `tione-server serve` on a free port with a fresh SQLite database and data directory in a temporary
directory, creates tasks one after another through the official SDK (each runs `sleep 30`), polls
DescribeTrainingTask every 5 ms until the task is RUNNING, stops it, and prints min/median/p90/max of the time
from sending CreateTrainingTask to first seeing RUNNING (an upper bound: it includes one poll interval).
With the local executor, `--sandbox both` (the default) measures pods in the sandbox and without it (issue 9),
one server after the other, and prints the two lines side by side.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

BIN = Path(sys.executable).parent / "tione-server"
CATALOGUE = "[capacity]\ncpu = 64000\nmemory = 262144\ngpu = 0\n"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--executor", choices=("local", "simulate"), default="local")
    parser.add_argument("--sandbox", choices=("on", "off", "both"), default="both")
    args = parser.parse_args()
    modes = ["on", "off"] if args.sandbox == "both" else [args.sandbox]
    lines = [_measure(args.executor, mode, args.runs) for mode in (modes if args.executor == "local" else ["off"])]
    print("\n".join(lines))


def _measure(executor: str, sandbox: str, runs: int) -> str:
    """One server, `runs` tasks: the summary line."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = f"sqlite:///{work / 'tione.db'}"
        (work / "catalogue.toml").write_text(CATALOGUE)
        key = json.loads(
            subprocess.run(
                [str(BIN), "keys", "create", "--uin", "100000000001", "--json", "--database", db],
                capture_output=True, text=True, check=True,
            ).stdout
        )  # fmt: skip
        port = _port()
        command = [str(BIN), "serve", "--port", str(port), "--database", db, "--rate-limit", "0"]
        command += ["--executor", executor, "--data-dir", str(work / "data"), "--sandbox", sandbox]
        command += ["--catalogue", str(work / "catalogue.toml")]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            profile = ClientProfile(httpProfile=HttpProfile(endpoint=f"127.0.0.1:{port}", protocol="http"))
            cred = credential.Credential(key["SecretId"], key["SecretKey"])
            client = CommonClient("tione", "2021-11-11", cred, "ap-guangzhou", profile)
            samples = [_one(client, i) for i in range(runs)]
        finally:
            server.terminate()
            server.wait(10)
    samples.sort()
    p90 = samples[min(len(samples) - 1, int(len(samples) * 0.9))]
    where = f"{executor} executor" + (f", sandbox {sandbox}" if executor == "local" else "")
    return (
        f"create-to-RUNNING over {len(samples)} tasks ({where}): "
        f"min {samples[0] * 1000:.0f} ms, median {statistics.median(samples) * 1000:.0f} ms, "
        f"p90 {p90 * 1000:.0f} ms, max {samples[-1] * 1000:.0f} ms"
    )


def _one(client: CommonClient, i: int) -> float:
    params = {
        "Name": f"latency-{i}",
        "ChargeType": "POSTPAID_BY_HOUR",
        "ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 1}],
        "ImageInfo": {"ImageType": "CUSTOM", "ImageUrl": "host"},  # the built-in image (issue 9)
        "StartCmdInfo": {"StartCmd": "sleep 30"},
    }
    start = time.perf_counter()
    task_id = client.call_json("CreateTrainingTask", params)["Response"]["Id"]
    while True:
        status = client.call_json("DescribeTrainingTask", {"Id": task_id})["Response"]["TrainingTaskDetail"]["Status"]
        if status == "RUNNING":
            elapsed = time.perf_counter() - start
            break
        if status in ("FAILED", "SUBMIT_FAILED", "STOPPED", "SUCCEED"):
            raise SystemExit(f"task {task_id} ended {status}")
        time.sleep(0.005)
    client.call_json("StopTrainingTask", {"Id": task_id})
    return elapsed


if __name__ == "__main__":
    main()
