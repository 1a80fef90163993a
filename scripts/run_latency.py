"""Measure create-to-RUNNING latency of training tasks on live servers, one executor after another in one run.

    .venv/bin/python scripts/run_latency.py [--runs 20] [--executor local|simulate|ray ...] [--ray-address HOST:PORT]
                                            [--sandbox on|off|both]

For each `--executor` (repeat it to compare: `--executor local --executor ray`; default `local`) starts
`tione-server serve` on a free port with a fresh SQLite database and data directory in a temporary directory,
creates tasks one after another through the official SDK (each runs `sleep 30` on one TI.S.MEDIUM.POST pod),
polls DescribeTrainingTask every 5 ms until the task is RUNNING, stops it and waits for it to end (so the next one
finds the room free), and prints min/p50/p90/max of the time from sending CreateTrainingTask to first seeing
RUNNING (an upper bound: it includes one poll interval), one row per executor.

`ray` runs on the cluster at `--ray-address` (or `RAY_ADDRESS`); without one, the script starts a throwaway
two-node cluster on this machine (tests/raycluster.py: a head and a worker, 2 logical cores and 8 GiB each) and
stops it afterwards. For `local`, `--sandbox both` (the default) measures pods in the sandbox and without it
(issue 9), one server after the other, as two rows side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

BIN = Path(sys.executable).parent / "tione-server"
REPO = Path(__file__).resolve().parent.parent
CATALOGUE = "[capacity]\ncpu = 64000\nmemory = 262144\ngpu = 0\n"
ENDED = ("FAILED", "SUBMIT_FAILED", "STOPPED", "SUCCEED")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--executor", choices=("local", "simulate", "ray"), action="append")
    parser.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS", ""))
    parser.add_argument("--sandbox", choices=("on", "off", "both"), default="both")
    args = parser.parse_args()
    executors: list[str] = args.executor or ["local"]
    rows = []
    with _ray(args.ray_address, wanted="ray" in executors) as address:
        runs: list[tuple[str, str, list[str]]] = []
        for executor in executors:
            if executor == "ray":
                runs.append((executor, executor, ["--ray-address", address]))
            elif executor == "local":
                modes = ("on", "off") if args.sandbox == "both" else (args.sandbox,)
                runs += [(f"local, sandbox {m}", executor, ["--sandbox", m]) for m in modes]
            else:
                runs.append((executor, executor, []))
        for label, executor, extra in runs:
            samples = sorted(_measure(executor, extra, args.runs))
            p90 = samples[min(len(samples) - 1, int(len(samples) * 0.9))]
            rows.append(
                f"| {label} | {len(samples)} | {samples[0] * 1000:.0f} | {statistics.median(samples) * 1000:.0f} "
                f"| {p90 * 1000:.0f} | {samples[-1] * 1000:.0f} |"
            )
            print(f"{label}: done", file=sys.stderr)
    print(f"create-to-RUNNING, ms ({os.cpu_count()} cores)\n")
    print("| executor | tasks | min | p50 | p90 | max |\n|---|---|---|---|---|---|")
    print("\n".join(rows))


@contextmanager
def _ray(address: str, *, wanted: bool) -> Iterator[str]:
    """The Ray cluster to use: `address` as given, or a two-node cluster started here when it is empty."""
    if address or not wanted:
        yield address
        return
    sys.path.insert(0, str(REPO))
    from tests import raycluster

    cluster = raycluster.start(workers=1)
    try:
        yield cluster.address
    finally:
        cluster.stop()


def _measure(executor: str, extra: list[str], runs: int) -> list[float]:
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
        command += ["--executor", executor, "--data-dir", str(work / "data"), *extra]
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
            return [_one(client, i) for i in range(runs)]
        finally:
            server.terminate()
            server.wait(30)


def _status(client: CommonClient, task_id: str) -> str:
    return str(client.call_json("DescribeTrainingTask", {"Id": task_id})["Response"]["TrainingTaskDetail"]["Status"])


def _one(client: CommonClient, i: int) -> float:
    params = {
        "Name": f"latency-{i}",
        "ChargeType": "POSTPAID_BY_HOUR",
        "ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 1}],
        "ImageInfo": {"ImageType": "CUSTOM", "ImageUrl": "host"},
        "StartCmdInfo": {"StartCmd": "sleep 30"},
    }
    start = time.perf_counter()
    task_id = client.call_json("CreateTrainingTask", params)["Response"]["Id"]
    while True:
        status = _status(client, task_id)
        if status == "RUNNING":
            elapsed = time.perf_counter() - start
            break
        if status in ENDED:
            raise SystemExit(f"task {task_id} ended {status}")
        time.sleep(0.005)
    client.call_json("StopTrainingTask", {"Id": task_id})
    while _status(client, task_id) not in ENDED:  # not measured: the next task finds the room free
        time.sleep(0.05)
    return elapsed


if __name__ == "__main__":
    main()
