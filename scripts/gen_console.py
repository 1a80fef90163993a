"""Generate src/tione_server/console/web/actions.json: the API Explorer's list of actions (issue 11 item 6).

One entry per action this server implements (TI-ONE's and the extensions of api/extensions.py), with the example
request of the API spec that tccli ships; where the spec's example holds only placeholders ("string") or is
empty, a valid example of ours replaces it (EXAMPLES). Run with --check to fail when the committed file is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import tccli

from tione_server.api.extensions import EXTENSION_ACTIONS, SERVED_ACTIONS, implemented
from tione_server.service import TioneService

TARGET = Path(__file__).resolve().parent.parent / "src" / "tione_server" / "console" / "web" / "actions.json"
SPEC_EXAMPLES = Path(tccli.__file__).parent / "services" / "tione" / "v20211111" / "examples.json"

EXAMPLES: dict[str, dict[str, Any]] = {
    "DescribeTrainingTasks": {
        "Filters": [{"Name": "Status", "Values": ["RUNNING", "SUCCEED"]}],
        "Limit": 10,
        "Offset": 0,
        "OrderField": "CreateTime",
        "Order": "DESC",
    },
    "PushTrainingMetrics": {
        "Data": [{"TaskId": "train-1329791605108055040", "Step": 1, "Points": [{"Name": "loss", "Value": 0.5}]}]
    },
    "DescribeBillingSpecsPrice": {"SpecsParam": [{"SpecName": "TI.S.MEDIUM.POST", "SpecCount": 1}]},
    "DescribeCallerIdentity": {},
    "DescribeTrainingMetrics": {"TaskId": "train-1329791605108055040"},
    "DescribeTrainingTaskRuns": {"Id": "train-1329791605108055040"},
    "DescribeTrainingPodUsage": {"Id": "train-1329791605108055040"},
}
"""Our examples where the spec has none usable."""


def spec_example(examples: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The first example request body of the spec without placeholder values, or None."""
    for example in examples.get(name, []):
        _, _, body = example["input"].partition("\n\n")
        if '"string"' in body:
            continue
        try:
            params = json.loads(body or "{}")
        except json.JSONDecodeError:
            continue
        if isinstance(params, dict) and params:
            return params
    return None


def render() -> str:
    """The whole file as text."""
    examples = json.loads(SPEC_EXAMPLES.read_text(encoding="utf-8"))["actions"]
    entries = []
    for name in sorted(SERVED_ACTIONS):
        if not implemented(TioneService, SERVED_ACTIONS[name]):
            continue
        example = EXAMPLES.get(name) or spec_example(examples, name) or {}
        entries.append({"Name": name, "Extension": name in EXTENSION_ACTIONS, "Example": example})
    return json.dumps({"Actions": entries}, ensure_ascii=False, indent=1) + "\n"


def main() -> int:
    """Write (or with --check, compare) actions.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is stale: run `python scripts/gen_console.py`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
