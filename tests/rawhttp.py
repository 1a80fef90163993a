"""Raw API 3.0 requests for tests: TC3-HMAC-SHA256 and v1 signatures computed here with hashlib/hmac,
independently of the server's own `signing` module, and sent with http.client over a keep-alive connection.

Builders return a `RawRequest` that tests may tamper with before sending; `check_envelope` pins the reply shape.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

SERVICE = "tione"
VERSION = "2021-11-11"
REGION = "ap-guangzhou"
ACTION = "DescribeTrainingTasks"
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Creds:
    """A SecretId/SecretKey pair."""

    secret_id: str
    secret_key: str


@dataclass(frozen=True)
class RawRequest:
    """One HTTP request exactly as it goes on the wire (headers keep their order and spelling)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The value of a header, looked up case-insensitively."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def with_header(self, name: str, value: str | None) -> RawRequest:
        """A copy with `name` replaced (or removed when `value` is None)."""
        kept = tuple((k, v) for k, v in self.headers if k.lower() != name.lower())
        return replace(self, headers=kept if value is None else (*kept, (name, value)))

    def with_body(self, body: bytes) -> RawRequest:
        """A copy with another body (the signature is left as it was)."""
        return replace(self, body=body)


@dataclass
class Reply:
    """A reply as received."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def content_type(self) -> str | None:
        """The Content-Type header, verbatim."""
        return next((v for k, v in self.headers if k.lower() == "content-type"), None)

    def json(self) -> Any:
        """The decoded body."""
        return json.loads(self.body)

    @property
    def response(self) -> dict[str, Any]:
        """The `Response` object."""
        resp: dict[str, Any] = self.json()["Response"]
        return resp

    @property
    def code(self) -> str | None:
        """The error code, or None for a success."""
        err = self.response.get("Error")
        return None if err is None else str(err["Code"])


def utc_date(timestamp: int) -> str:
    """The UTC calendar date of a Unix timestamp, as clients put it in the credential scope."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def _hmac256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_signature(
    secret_key: str,
    *,
    method: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    timestamp: str,
    date: str,
    service: str = SERVICE,
    unsigned_payload: bool = False,
) -> str:
    """Hex TC3 signature over `headers` (lower-case names -> values, all of them signed, values as given)."""
    names = sorted(headers)
    canonical_headers = "".join(f"{n}:{headers[n]}\n" for n in names)
    payload = UNSIGNED_PAYLOAD.encode() if unsigned_payload else body
    canonical = "\n".join(
        [method, "/", raw_query, canonical_headers, ";".join(names), hashlib.sha256(payload).hexdigest()]
    )
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _hmac256(_hmac256(_hmac256(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def flatten(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flattened `A.0.B=v` pairs of a parameter object (api3-protocol §2.5); None and [] vanish."""
    out: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(f"{prefix}.{i}", v)
        else:
            out.append((prefix, str(value)))

    walk("", params)
    return out


def tc3_request(
    creds: Creds,
    host: str,
    params: Mapping[str, Any] | None = None,
    *,
    body: bytes | None = None,
    raw_query: str | None = None,
    method: str = "POST",
    action: str = ACTION,
    version: str | None = VERSION,
    region: str | None = REGION,
    timestamp: int | None = None,
    timestamp_text: str | None = None,
    date: str | None = None,
    service: str = SERVICE,
    content_type: str | None = None,
    path: str = "/",
    language: str | None = None,
    token: str | None = None,
    unsigned_payload: bool = False,
    extra_signed: Mapping[str, str] | None = None,
    extra_headers: Mapping[str, str] | None = None,
    lowercase_values: bool = False,
) -> RawRequest:
    """A TC3-signed request: POST with a JSON body (or `body` verbatim), GET with a flattened query.

    `timestamp_text` overrides the X-TC-Timestamp text (the scope date then follows `timestamp`);
    `lowercase_values` signs header values lower-cased, as the documented rule (not the Python SDK) does.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    ts_text = str(ts) if timestamp_text is None else timestamp_text
    if method == "GET":
        query = urlencode(flatten(params or {})) if raw_query is None else raw_query
        payload = b""
        ctype = content_type or FORM_TYPE
    else:
        query = raw_query or ""
        payload = json.dumps(params or {}).encode() if body is None else body
        ctype = content_type or JSON_TYPE
    signed = {"content-type": ctype, "host": host, **{k.lower(): v for k, v in (extra_signed or {}).items()}}
    scope_date = date or utc_date(ts)
    signature = tc3_signature(
        creds.secret_key,
        method=method,
        raw_query=query if method == "GET" else "",
        headers={k: v.lower() for k, v in signed.items()} if lowercase_values else signed,
        body=payload,
        timestamp=ts_text,
        date=scope_date,
        service=service,
        unsigned_payload=unsigned_payload,
    )
    headers: list[tuple[str, str]] = [("Host", host), ("Content-Type", ctype), ("X-TC-Action", action)]
    headers.append(("X-TC-Timestamp", ts_text))
    if version is not None:
        headers.append(("X-TC-Version", version))
    if region is not None:
        headers.append(("X-TC-Region", region))
    if language is not None:
        headers.append(("X-TC-Language", language))
    if token is not None:
        headers.append(("X-TC-Token", token))
    if unsigned_payload:
        headers.append(("X-TC-Content-SHA256", UNSIGNED_PAYLOAD))
    headers += [(k, v) for k, v in (extra_signed or {}).items() if k.lower() not in ("content-type", "host")]
    headers += list((extra_headers or {}).items())
    auth = (
        f"TC3-HMAC-SHA256 Credential={creds.secret_id}/{scope_date}/{service}/tc3_request, "
        f"SignedHeaders={';'.join(sorted(signed))}, Signature={signature}"
    )
    headers.append(("Authorization", auth))
    target = f"{path}?{query}" if method == "GET" and query else path
    return RawRequest(method, target, tuple(headers), payload)


def v1_signature(secret_key: str, method: str, host: str, pairs: Iterable[tuple[str, str]], algo: str) -> str:
    """Base64 v1 signature: sorted `key=value` pairs (keys read with `_` as `.`), values not encoded."""
    joined = "&".join(f"{k}={v}" for k, v in sorted((k.replace("_", "."), v) for k, v in pairs))
    digest = hashlib.sha256 if algo == "HmacSHA256" else hashlib.sha1
    source = f"{method}{host}/?{joined}"
    return base64.b64encode(hmac.new(secret_key.encode(), source.encode(), digest).digest()).decode()


@dataclass(frozen=True)
class V1:
    """Common parameters of a v1 request; a field set to None is left out."""

    action: str | None = ACTION
    version: str | None = VERSION
    region: str | None = REGION
    timestamp: str | None = None
    nonce: str | None = None
    """None: a fresh random Nonce per request, as the SDK draws (the server refuses a replayed one)."""
    signature_method: str | None = "HmacSHA256"
    language: str | None = None
    token: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())
    omit: tuple[str, ...] = field(default=())
    """Names left out entirely (Timestamp, Nonce, SecretId...), for missing-parameter tests."""

    def pairs(self, secret_id: str | None) -> list[tuple[str, str]]:
        """The common parameters as pairs (Timestamp defaults to now, Nonce to a fresh random one)."""
        ts = str(int(time.time())) if self.timestamp is None else self.timestamp
        nonce = str(secrets.randbelow(2**63 - 1) + 1) if self.nonce is None else self.nonce
        named = [
            ("Action", self.action), ("Version", self.version), ("Region", self.region), ("Timestamp", ts),
            ("Nonce", nonce), ("SecretId", secret_id), ("SignatureMethod", self.signature_method),
            ("Language", self.language), ("Token", self.token),
        ]  # fmt: skip
        return [(k, v) for k, v in named if v is not None and k not in self.omit] + list(self.extra)


def v1_request(
    creds: Creds,
    host: str,
    params: Mapping[str, Any] | None = None,
    *,
    pairs: Iterable[tuple[str, str]] = (),
    method: str = "POST",
    common: V1 = V1(),
    secret_id: str | None = None,
    sign_host: str | None = None,
    sign: bool = True,
    encode: bool = True,
) -> RawRequest:
    """A v1-signed request: form body for POST, query string for GET.

    `pairs` are extra flattened parameters sent after `params`; `sign_host` signs another Host than
    is sent; `encode=False` sends `key=value` joined without URL-encoding (for malformed-query tests).
    """
    all_pairs = flatten(params or {}) + list(pairs) + common.pairs(secret_id or creds.secret_id)
    if sign:
        algo = common.signature_method or "HmacSHA1"
        sig = v1_signature(creds.secret_key, method, sign_host or host, all_pairs, algo)
        all_pairs.append(("Signature", sig))
    text = urlencode(all_pairs) if encode else "&".join(f"{k}={v}" for k, v in all_pairs)
    headers = (("Host", host), ("Content-Type", FORM_TYPE))
    if method == "GET":
        return RawRequest("GET", f"/?{text}", headers)
    return RawRequest(method, "/", headers, text.encode())


class RawClient:
    """A keep-alive HTTP/1.1 connection that sends `RawRequest`s byte for byte (no header rewriting)."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
        self.port = port
        self.address = host
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def send(self, req: RawRequest) -> Reply:
        """Send one request; reconnects once if the kept-alive connection was closed."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.putrequest(req.method, req.target, skip_host=True, skip_accept_encoding=True)
                for name, value in req.headers:
                    conn.putheader(name, value.encode("utf-8"))
                if req.body or req.method not in ("GET", "HEAD"):
                    conn.putheader("Content-Length", str(len(req.body)))
                # The server may answer before reading a body it refuses, and close (issue 7 B5): like urllib3
                # (and so the SDK), read the reply that is already here.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    conn.endheaders(req.body or None)
                resp = conn.getresponse()
                body = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise
                continue
            if resp.will_close:
                self.close()
            return Reply(resp.status, resp.getheaders(), body)
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.address, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_envelope(reply: Reply) -> dict[str, Any]:
    """Assert the API 3.0 reply invariants (api3-protocol §5.1) and return the `Response` object.

    HTTP 200; Content-Type exactly application/json; `{"Response": {...}}` with a UUID4 RequestId;
    an error carries exactly Error{Code, Message} (strings) and RequestId, a success no Error.
    """
    assert reply.status == 200, (reply.status, reply.body[:500])
    assert reply.content_type == JSON_TYPE, reply.content_type
    doc = reply.json()
    assert isinstance(doc, dict), doc
    assert list(doc) == ["Response"], doc
    resp = doc["Response"]
    assert isinstance(resp, dict), doc
    assert isinstance(resp.get("RequestId"), str), doc
    assert UUID4.match(resp["RequestId"]), resp["RequestId"]
    assert list(resp)[-1] == "RequestId", list(resp)
    if "Error" in resp:
        assert set(resp) == {"Error", "RequestId"}, resp
        err = resp["Error"]
        assert isinstance(err, dict), resp
        assert set(err) == {"Code", "Message"}, err
        assert isinstance(err["Code"], str), err
        assert err["Code"], err
        assert isinstance(err["Message"], str), err
        assert err["Message"], err
    return resp
