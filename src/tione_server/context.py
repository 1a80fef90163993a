"""Who is calling and where: the per-request context every action handler receives.

Built by the gateway after the signature is verified; handlers never look at HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """The account a verified key belongs to (spec tione-training §1.1)."""

    uin: str
    app_id: str
    sub_uin: str


@dataclass(frozen=True, slots=True)
class RequestContext:
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
