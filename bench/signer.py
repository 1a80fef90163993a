"""TC3-HMAC-SHA256 request signing for the benchmark's clients, written from the public API 3.0 algorithm.

Independent of tione_server.signing on purpose: the benchmark signs like any client would. Requests are
built once as raw HTTP/1.1 bytes so load and latency loops spend no time on signing or formatting; the
server accepts a signature for `timestamp_window` seconds, so a presigned request is reused within a run.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import msgspec

SERVICE = "tione"
VERSION = "2021-11-11"


@dataclass(frozen=True)
class Credentials:
    """A key made with Store.create_key (or `tione-server keys create`)."""

    secret_id: str
    secret_key: str


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signed_headers(
    creds: Credentials, host: str, action: str, region: str, body: bytes, now: int | None = None
) -> dict[str, str]:
    """The headers of one signed JSON POST to `/` (content-type and host signed)."""
    timestamp = int(time.time()) if now is None else now
    date = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:application/json\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{SERVICE}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _hmac(_hmac(_hmac(f"TC3{creds.secret_key}".encode(), date), SERVICE), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Host": host,
        "Content-Type": "application/json",
        "Authorization": (
            f"TC3-HMAC-SHA256 Credential={creds.secret_id}/{scope}, "
            f"SignedHeaders=content-type;host, Signature={signature}"
        ),
        "X-TC-Action": action,
        "X-TC-Version": VERSION,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Region": region,
        "X-TC-Language": "en-US",
    }


def raw_request(
    creds: Credentials, host: str, action: str, region: str, params: dict[str, object], now: int | None = None
) -> bytes:
    """A complete keep-alive HTTP/1.1 request, ready to write to a socket."""
    body = msgspec.json.encode(params)
    headers = signed_headers(creds, host, action, region, body, now)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"POST / HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
