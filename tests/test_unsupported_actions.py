"""Every TI-ONE action the server does not implement answers UnsupportedOperation; unknown names InvalidAction.

The action list comes from tccli's own spec, and "implemented" means TioneService overrides the generated method,
so this test follows along as actions are added.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import tccli
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.live import Server, running_server
from tione_server.api._generated import ACTIONS, TioneApi
from tione_server.service import TioneService

SPEC = Path(tccli.__file__).parent / "services" / "tione" / "v20211111" / "api.json"
SPEC_ACTIONS = sorted(json.loads(SPEC.read_text(encoding="utf-8"))["actions"])


def _implemented(action: str) -> bool:
    method = ACTIONS[action].method
    return getattr(TioneService, method) is not getattr(TioneApi, method)


UNSUPPORTED = [a for a in SPEC_ACTIONS if a in ACTIONS and not _implemented(a)]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("unsupported")
    with running_server(f"sqlite:///{tmp / 'tione.db'}", tmp) as server:
        yield server


def _code(server: Server, action: str) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        server.common().call_json(action, {})
    return str(info.value.get_code())


def test_unsupported_actions_spec_and_generated_table_agree() -> None:
    assert SPEC_ACTIONS
    assert set(SPEC_ACTIONS) == set(ACTIONS)
    assert UNSUPPORTED, "every action is implemented: this test has nothing left to check"


@pytest.mark.parametrize("action", UNSUPPORTED)
def test_unsupported_action_answers_unsupported_operation(srv: Server, action: str) -> None:
    assert _code(srv, action) == "UnsupportedOperation"


@pytest.mark.parametrize(
    "action", ["NoSuchAction", "DESCRIBETRAININGTASKS", "Describetrainingtasks", "DescribeTrainingTask2"]
)
def test_unknown_action_answers_invalid_action(srv: Server, action: str) -> None:
    assert _code(srv, action) == "InvalidAction"
