"""The README's SDK snippet runs as written (with a real key and port) against a live server."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.live import Server, running_server
from tests.training import TERMINAL, pods, wait_status

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_python_snippet() -> str:
    """The first ```python block of the README."""
    match = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, "README has no python snippet"
    return match.group(1)


SNIPPET_TASKS = [
    {"Id": "train-1000000000000000001", "Name": "resnet-a", "Status": "RUNNING",
     "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-28T18:18:33+08"},
    {"Id": "train-1000000000000000002", "Name": "resnet-b", "Status": "SUCCEED",
     "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-28T18:18:34+08"},
]  # fmt: skip
"""The tasks the README's snippets list (one RUNNING): shared by the Python and Node.js snippet tests."""


def test_readme_sdk_snippet_lists_running_tasks(server: Server, tmp_path: Path) -> None:
    server.import_tasks(SNIPPET_TASKS, tmp_path)
    code = (
        readme_python_snippet()
        .replace('"AKID..."', repr(server.key.secret_id))
        .replace('"your-secret-key"', repr(server.key.secret_key))
        .replace("127.0.0.1:8080", server.endpoint)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "1 ['resnet-a']"


def readme_section_blocks(heading: str) -> list[str]:
    """The ```sh blocks of the README section under `heading`, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return re.findall(r"```sh\n(.*?)```", text[start : end if end != -1 else None], re.S)


def test_readme_tccli_commands_run_from_the_virtualenv() -> None:
    # issue 7 F16: a pasted `tccli ...` fails unless the virtualenv is active; the README says `.venv/bin/tccli`.
    bare = re.findall(r"^\s*tccli\b.*$", README.read_text(encoding="utf-8"), re.M)
    assert bare == []


def test_readme_ddp_example_succeeds(sqlite_url: str, tmp_path: Path) -> None:
    """The two-pod DDP example, run as written (issue 7 F17): the catalogue lines, `serve`, then the script and
    tccli's CreateTrainingTask in a shell; both pods meet at MASTER_ADDR:MASTER_PORT and the task SUCCEEDs."""
    serve_block, task_block = readme_section_blocks("### A two-pod DDP task")
    bin_dir = f"{Path(sys.executable).parent}/"
    serve_args: list[str] = []
    for line in serve_block.splitlines():
        if " serve" in line:
            serve_args = shlex.split(line.split(" serve", 1)[1])
        else:
            subprocess.run(["bash", "-c", line], cwd=tmp_path, check=True, timeout=30)
    with running_server(sqlite_url, tmp_path, extra_args=tuple(serve_args)) as server:
        script = (
            task_block.replace(".venv/bin/", bin_dir)
            .replace("http://127.0.0.1:8080", f"http://{server.endpoint}")
            .replace("AKID...", server.key.secret_id)
            .replace("--secretKey ...", f"--secretKey {server.key.secret_key}")
        )
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("TENCENTCLOUD")}
        out = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
            env=env | {"HOME": str(tmp_path)},
        )  # fmt: skip
        task_id = json.loads(out.stdout)["Id"]
        done = wait_status(server, task_id, *TERMINAL, timeout=60)
        assert done["Status"] == "SUCCEED", done["FailureReason"]
        assert pods(server, task_id)["TotalCount"] == 2
