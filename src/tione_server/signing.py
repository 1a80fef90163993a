"""Signature checks for API 3.0 requests: TC3-HMAC-SHA256 and the older v1 HmacSHA1/HmacSHA256.

Pure functions over the raw request parts (api3-protocol §3); no I/O, no clock, no error codes.
The gateway decides what each outcome means on the wire.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TC3_ALGORITHM = "TC3-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


class MalformedAuthorization(ValueError):
    """The Authorization header does not follow the TC3 grammar; the text says which part."""


@dataclass(frozen=True, slots=True)
class Tc3Authorization:
    """The parts of a `TC3-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` header."""

    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_tc3_authorization(value: str) -> Tc3Authorization:
    """Split a TC3 Authorization header; raise MalformedAuthorization naming the part that is wrong."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != TC3_ALGORITHM:
        raise MalformedAuthorization("the algorithm must be `TC3-HMAC-SHA256`")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if not sep:
            raise MalformedAuthorization(f"`{part.strip()}` is not of the form key=value")
        fields[key.strip()] = val.strip()
    for key in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(key):
            raise MalformedAuthorization(f"`{key}` is missing")
    scope = fields["Credential"].split("/")
    if len(scope) != 4 or scope[3] != "tc3_request" or not all(scope):
        raise MalformedAuthorization("`Credential` must be SecretId/Date/Service/tc3_request")
    signed = tuple(h.strip() for h in fields["SignedHeaders"].split(";"))
    if "content-type" not in signed or "host" not in signed:
        raise MalformedAuthorization("`SignedHeaders` must include content-type and host")
    return Tc3Authorization(scope[0], scope[1], scope[2], signed, fields["Signature"].lower())


def payload_hash(body: bytes, *, unsigned: bool) -> str:
    """HashedRequestPayload: SHA-256 of the body, or of the literal UNSIGNED-PAYLOAD when opted out."""
    return hashlib.sha256(UNSIGNED_PAYLOAD.encode() if unsigned else body).hexdigest()


@functools.lru_cache(maxsize=1024)
def tc3_signing_key(secret_key: str, date: str, service: str) -> bytes:
    """The derived key chain TC3<key> -> date -> service -> tc3_request; a key signs many requests a day, so
    the chain is kept (three HMACs of the four a request costs)."""
    k_date = hmac.new(f"TC3{secret_key}".encode(), date.encode(), hashlib.sha256).digest()
    k_service = hmac.new(k_date, service.encode(), hashlib.sha256).digest()
    return hmac.new(k_service, b"tc3_request", hashlib.sha256).digest()


def tc3_string_to_sign(
    *,
    method: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    hashed_payload: str,
    timestamp: str,
    date: str,
    service: str,
    lowercase_values: bool,
) -> str:
    """StringToSign over the canonical request; `headers` maps lower-case names to raw values.

    A signed header absent from `headers` raises KeyError.
    """
    names = sorted(signed_headers)
    canonical_headers = "".join(
        f"{n}:{headers[n].strip().lower() if lowercase_values else headers[n].strip()}\n" for n in names
    )
    canonical = "\n".join([method, "/", raw_query, canonical_headers, ";".join(names), hashed_payload])
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{TC3_ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{digest}"


def tc3_signature(signing_key: bytes, string_to_sign: str) -> str:
    """Lower-case hex HMAC-SHA256 of the string to sign."""
    return hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def host_label(host: str) -> str:
    """The first DNS label of a Host header (`127` of `127.0.0.1:8080`), lower-cased, port dropped.

    SDKs that take the TC3 service from their endpoint (Node.js: `endpoint.split(".")[0]`) put this
    label in the credential scope (issue 13). A name without dots keeps its port there (`localhost:8080`)
    and an IPv6 literal its brackets (`[::1]:8080`), so ports are compared dropped; case is dropped because
    such clients lower-case the Host they send but not the scope.
    """
    return _without_port(host.strip().lower().split(".", 1)[0])


def tc3_service_accepted(service: str, host: str, served: str) -> bool:
    """True when the scope's service is the served one or, port and case aside, the Host's first label.

    This only picks which scopes are worth verifying: the signature is always checked with the scope as
    sent, so no request passes here that its key did not sign (issue 13).
    """
    if service == served:
        return True
    label = _without_port(service.lower())
    return label != "" and label == host_label(host)


def _without_port(host: str) -> str:
    """`name:port` -> `name`, `[::1]:port` -> `[::1]`; anything else as it is."""
    if host.startswith("["):
        end = host.find("]")
        return host if end < 0 else host[: end + 1]
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


def verify_tc3(
    auth: Tc3Authorization,
    secret_key: str,
    *,
    method: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    timestamp: str,
) -> bool:
    """True when the signature verifies with lower-cased header values or with raw ones (§3.1 step 5),
    over the Host header as sent or without its port.

    The Node.js SDK sends `Host: 127.0.0.1:8080` but signs `host:127.0.0.1` (the URL's hostname; issue 13).
    """
    unsigned = headers.get("x-tc-content-sha256", "") == UNSIGNED_PAYLOAD
    hashed = payload_hash(body if method == "POST" else b"", unsigned=unsigned)
    key = tc3_signing_key(secret_key, auth.date, auth.service)
    query = raw_query if method == "GET" else ""
    variants = [headers]
    if "host" in headers and _without_port(headers["host"]) != headers["host"]:
        variants.append({**headers, "host": _without_port(headers["host"])})
    for signed, lowercase in ((h, low) for h in variants for low in (True, False)):
        s2s = tc3_string_to_sign(
            method=method,
            raw_query=query,
            headers=signed,
            signed_headers=auth.signed_headers,
            hashed_payload=hashed,
            timestamp=timestamp,
            date=auth.date,
            service=auth.service,
            lowercase_values=lowercase,
        )
        if hmac.compare_digest(tc3_signature(key, s2s), auth.signature):
            return True
    return False


def v1_source(method: str, host: str, params: Sequence[tuple[str, str]]) -> str:
    """The v1 source string: METHOD + Host + `/?` + sorted key=value pairs (keys with `_` read as `.`)."""
    pairs = sorted((k.replace("_", "."), v) for k, v in params if k != "Signature")
    return f"{method}{host}/?" + "&".join(f"{k}={v}" for k, v in pairs)


def v1_signature(secret_key: str, source: str, signature_method: str) -> str:
    """Base64 HMAC of the source; HmacSHA256 when asked for, HmacSHA1 otherwise (api3-protocol §2.4)."""
    algo = hashlib.sha256 if signature_method == "HmacSHA256" else hashlib.sha1
    return base64.b64encode(hmac.new(secret_key.encode(), source.encode(), algo).digest()).decode()


def verify_v1(secret_key: str, *, method: str, host: str, params: Sequence[tuple[str, str]]) -> bool:
    """True when the presented `Signature` parameter matches."""
    presented = next((v for k, v in params if k == "Signature"), "")
    method_name = next((v for k, v in params if k == "SignatureMethod"), "")
    expected = v1_signature(secret_key, v1_source(method, host, params), method_name)
    return hmac.compare_digest(expected.encode(), presented.encode())
