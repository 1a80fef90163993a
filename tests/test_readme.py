"""The README's SDK snippet runs as written (with a real key and port) against a live server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.live import Server

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_python_snippet() -> str:
    """The first ```python block of the README."""
    match = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, "README has no python snippet"
    return match.group(1)


def test_readme_sdk_snippet_lists_running_tasks(server: Server, tmp_path: Path) -> None:
    server.import_tasks(
        [
            {"Id": "train-1000000000000000001", "Name": "resnet-a", "Status": "RUNNING",
             "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-28T18:18:33+08"},
            {"Id": "train-1000000000000000002", "Name": "resnet-b", "Status": "SUCCEED",
             "ChargeType": "POSTPAID_BY_HOUR", "CreateTime": "2025-05-28T18:18:34+08"},
        ],
        tmp_path,
    )  # fmt: skip
    code = (
        readme_python_snippet()
        .replace('"AKID..."', repr(server.key.secret_id))
        .replace('"your-secret-key"', repr(server.key.secret_key))
        .replace("127.0.0.1:8080", server.endpoint)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "1 ['resnet-a']"
