"""Every reply's RequestId is a version-4 UUID (api3-protocol §5.1), made without a UUID object (issue 12)."""

from __future__ import annotations

import uuid

from tione_server.ids import request_id


def test_request_ids_are_distinct_rfc4122_version_4_uuids() -> None:
    made = [request_id() for _ in range(5000)]
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
    assert len(set(made)) == len(made)
    assert {text[19] for text in made} == set("89ab")  # every variant digit occurs: the bits are not fixed
