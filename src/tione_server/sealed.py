"""Tamper-evident tokens: bytes the server hands out and must get back unchanged (issue 7 C9).

A token is base64url(version || payload || HMAC-SHA256(key, version || payload)). It is signed, not encrypted:
whoever holds it may read it, nobody without the key can make or change one. The key lives in the store
(Store.secrets), so every worker and replica on the same database accepts every other's tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

VERSION = b"\x01"
_MAC_BYTES = hashlib.sha256().digest_size
MAX_TOKEN_CHARS = 8192
"""Longer than any token this server makes; a longer string is refused before it is decoded."""


class BadToken(ValueError):
    """Not a token this server made with this key, or altered since."""


def seal(payload: bytes, key: bytes) -> str:
    """The token carrying `payload`, signed with `key`."""
    body = VERSION + payload
    return base64.urlsafe_b64encode(body + hmac.digest(key, body, "sha256")).decode("ascii")


def unseal(token: str, key: bytes) -> bytes:
    """The payload of `token`, or BadToken when it is malformed, of another version, or its MAC does not match.

    The MAC is checked (in constant time) before anything else looks at the payload.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise BadToken("not a token")
    try:
        raw = base64.b64decode(token, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise BadToken("not base64url") from None
    if len(raw) <= len(VERSION) + _MAC_BYTES or not raw.startswith(VERSION):
        raise BadToken("unknown version or too short")
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.digest(key, body, "sha256")):
        raise BadToken("signature does not match")
    return body[len(VERSION) :]
