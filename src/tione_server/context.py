"""Who is calling and where: the per-request context every action handler receives.

Built by the gateway after the signature is verified; handlers never look at HTTP. Structs, not dataclasses: one
of each per request, and a frozen dataclass costs ten times as much to make.
"""

from __future__ import annotations

import msgspec


class Caller(msgspec.Struct, frozen=True):
    """The account a verified key belongs to (spec tione-training §1.1)."""

    uin: str
    app_id: str
    sub_uin: str


class RequestContext(msgspec.Struct, frozen=True):
    """One verified request: the caller, the region it addressed, and its reply language."""

    caller: Caller
    region: str
    request_id: str
    language: str
    now: float
    """Server time (Unix seconds) when the request arrived; one value per request."""
    cached_key: str | None = None
    """The SecretId when its key came from the gateway's cache: the reads serving the request check that it is
    still valid (store.keys.key_check) and raise KeyWithdrawn if not."""
