"""v1 Nonce replay protection (issue 7 C7, api3-protocol §8 #6): a (SecretId, Nonce) is accepted once while
its Timestamp is inside the window.

The memory of seen nonces must be shared by every worker and replica, so it lives where they all meet: the
database by default (store/nonces.py). A shared backend (Redis) implements the same protocol.
"""

from __future__ import annotations

from typing import Protocol


class NonceStore(Protocol):
    """Remembers accepted nonces until they expire."""

    def accept(self, secret_id: str, nonce: str, expires_at: int, now: float) -> bool:
        """True, and remember it until `expires_at`, unless (secret_id, nonce) is remembered unexpired at `now`."""
        ...
