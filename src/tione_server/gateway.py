"""The one endpoint: every request goes classify -> verify -> rate-limit -> decode -> dispatch -> envelope.

The order of checks follows api3-protocol §4 and stops at the first failure. Every ApiError becomes
the error envelope here and only here; anything else is logged with its RequestId and answered as
InternalError. Replies are always HTTP 200 with `Content-Type: application/json` (§5.1).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from tione_server import signing
from tione_server.api import codec
from tione_server.api._generated import ACTIONS, SERVICE, VERSION, Action, TioneApi
from tione_server.config import KNOWN_REGIONS, Settings
from tione_server.context import Caller, RequestContext
from tione_server.errors import (
    ApiError,
    InternalError,
    InvalidAction,
    InvalidAuthorization,
    InvalidParameter,
    InvalidParameterValue,
    InvalidSecretId,
    MissingParameter,
    NoSuchVersion,
    RequestLimitExceeded,
    RequestSizeLimitExceeded,
    SecretIdNotFound,
    SignatureExpire,
    SignatureFailure,
    TokenFailure,
    UnsupportedOperation,
    UnsupportedProtocol,
    UnsupportedRegion,
)
from tione_server.models import ApiKey
from tione_server.ratelimit import RateLimiter
from tione_server.store import Store

log = logging.getLogger("tione_server.gateway")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

V1_MAX_BODY = 1024 * 1024
GET_MAX_QUERY = 32 * 1024
_HEADERS = [(b"content-type", b"application/json")]


class Request(msgspec.Struct):
    """The raw parts of one HTTP request that signatures are computed over."""

    method: str
    raw_query: str
    headers: dict[str, str]
    body: bytes


class Gateway:
    """Turns raw requests into verified, decoded action calls and their replies."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        service: TioneApi,
        limiter: RateLimiter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.service = service
        self.limiter = limiter
        self.clock = clock

    # -- ASGI -------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point for HTTP requests."""
        # Header bytes are read as latin-1, which is how Python clients put a str on the wire, so the
        # text signs the same here as there. The query is ASCII: the HTTP server refuses raw bytes in it.
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        limit = self._body_limit(method, headers)
        body, too_big = await _read_body(receive, limit)
        request = Request(method, scope["query_string"].decode("latin-1"), headers, body)
        reply = self.handle(request, too_big=too_big)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_HEADERS, (b"content-length", str(len(reply)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    def _body_limit(self, method: str, headers: dict[str, str]) -> int:
        if method == "GET":
            return GET_MAX_QUERY  # a GET's body carries nothing, but counts towards its 32 KB (§1)
        if method != "POST":
            return 0
        if headers.get("authorization", "").startswith("TC3-HMAC-SHA256"):
            return self.settings.max_body_bytes
        if _media_type(headers) == "application/x-www-form-urlencoded":
            return V1_MAX_BODY
        return self.settings.max_body_bytes

    # -- pipeline ---------------------------------------------------------------------------------

    def handle(self, request: Request, *, too_big: bool = False) -> bytes:
        """One request in, one JSON reply out; never raises."""
        request_id = str(uuid.uuid4())
        language = request.headers.get("x-tc-language", "")
        # One INFO line per request (issue 7 F16); the clock is read only when that line will be written.
        started = time.perf_counter() if log.isEnabledFor(logging.INFO) else None
        ctx: RequestContext | None = None
        action_name = request.headers.get("x-tc-action", "")
        code = "OK"
        try:
            if request.method not in ("GET", "POST"):
                raise UnsupportedProtocol(f"The HTTP method `{request.method}` is not supported; use GET or POST.")
            if too_big or (request.method == "GET" and len(request.raw_query) > GET_MAX_QUERY):
                raise RequestSizeLimitExceeded("The request size exceeds the limit.")
            auth = request.headers.get("authorization")
            # Parameters are decoded once the caller is known, so a bad parameter is logged with its account.
            if auth is not None and auth.startswith(signing.TC3_ALGORITHM + " "):
                ctx, action = self._tc3(request, auth, request_id, language)
                req = self._tc3_params(request, action)
            elif auth is not None:
                raise InvalidAuthorization("the algorithm must be `TC3-HMAC-SHA256`")
            elif request.method == "GET" or _media_type(request.headers) == "application/x-www-form-urlencoded":
                params = _parse_pairs(request.raw_query if request.method == "GET" else _text(request.body))
                language = _first(params, "Language") or language
                action_name = _first(params, "Action") or ""
                ctx, action = self._v1(request, params, request_id, language)
                req = codec.decode_flat(action, params)
            elif _media_type(request.headers) in ("application/json", "multipart/form-data"):
                raise InvalidParameter("The request `Authorization` header is missing.")
            else:
                raise MissingParameter("Action")
            action_name = action.name
            resp = getattr(self.service, action.method)(ctx, req)
            reply = codec.encode_response(resp, request_id)
        except ApiError as err:
            code = err.code
            reply = codec.encode_error(err.code, err.localized(language), request_id)
        except Exception:
            log.exception("unexpected error, RequestId %s", request_id)
            internal = InternalError()
            code = internal.code
            reply = codec.encode_error(internal.code, internal.localized(language), request_id)
        if started is not None:
            log.info(
                "request RequestId=%s uin=%s action=%s code=%s ms=%.1f",
                request_id, ctx.caller.uin if ctx else "-", action_name or "-", code,
                (time.perf_counter() - started) * 1000,
            )  # fmt: skip
        return reply

    def _tc3(self, request: Request, auth_header: str, request_id: str, language: str) -> tuple[RequestContext, Action]:
        h = request.headers
        action_name = _required(h.get("x-tc-action"), "Action")
        version = _required(h.get("x-tc-version"), "Version")
        timestamp = _required(h.get("x-tc-timestamp"), "Timestamp")
        now = self._check_timestamp(timestamp)
        try:
            auth = signing.parse_tc3_authorization(auth_header)
        except signing.MalformedAuthorization as err:
            raise InvalidAuthorization(str(err)) from None
        if not signing.tc3_service_accepted(auth.service, h.get("host", ""), SERVICE):
            raise InvalidAuthorization("`Service` in Credential not valid")
        if auth.date != datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d"):
            raise SignatureFailure("The date in `Credential` is not the UTC date of `X-TC-Timestamp`.")
        key = self._key(auth.secret_id)
        try:
            ok = signing.verify_tc3(
                auth,
                key.secret_key,
                method=request.method,
                raw_query=request.raw_query,
                headers=h,
                body=request.body,
                timestamp=timestamp,
            )
        except KeyError as missing:
            raise SignatureFailure(f"The signed header {missing} is absent from the request.") from None
        if not ok:
            raise SignatureFailure()
        if h.get("x-tc-token"):
            raise TokenFailure()
        action = self._action(version, action_name)
        region = self._region(h.get("x-tc-region"), "X-TC-Region")
        return self._context(key, region, request_id, language, now, action), action

    @staticmethod
    def _tc3_params(request: Request, action: Action) -> msgspec.Struct:
        if request.method == "GET":
            return codec.decode_flat(action, _parse_pairs(request.raw_query))
        media = _media_type(request.headers)
        if media != "application/json":
            raise InvalidParameter(f"The content type `{media}` is not supported for TC3-HMAC-SHA256 POST requests.")
        return codec.decode_json(action, request.body)

    def _v1(
        self, request: Request, params: list[tuple[str, str]], request_id: str, language: str
    ) -> tuple[RequestContext, Action]:
        for name in ("Action", "Version", "Timestamp", "Nonce", "SecretId", "Signature"):
            _required(_first(params, name), name)
        timestamp = _first(params, "Timestamp") or ""
        nonce = _first(params, "Nonce") or ""
        if not _is_ascii_integer(nonce):  # any size (SDK: 1..2^63-1); never converted (§8 #6)
            raise InvalidParameter.type_error("Nonce")
        now = self._check_timestamp(timestamp)
        key = self._key(_first(params, "SecretId") or "")
        host = request.headers.get("host", "")
        if not signing.verify_v1(key.secret_key, method=request.method, host=host, params=params):
            raise SignatureFailure()
        if _first(params, "Token"):
            raise TokenFailure()
        action = self._action(_first(params, "Version") or "", _first(params, "Action") or "")
        region = self._region(_first(params, "Region"), "Region")
        return self._context(key, region, request_id, language, now, action), action

    # -- steps shared by both signature versions --------------------------------------------------

    def _check_timestamp(self, timestamp: str) -> float:
        # ASCII digits only (str.isdigit() also admits `²`, which int() refuses), and short enough
        # for int(): Python refuses to convert more than 4300 digits.
        if not _is_ascii_integer(timestamp) or len(timestamp) > 20:
            raise InvalidParameter.type_error("Timestamp")
        now = self.clock()
        if abs(now - int(timestamp)) > self.settings.timestamp_window:
            stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S")
            raise SignatureExpire(
                "Signature expired. Please use local time and enable NTP service for time synchronization "
                f"to avoid a deviation between `Timestamp` and the server time {stamp}."
            )
        return now

    def _key(self, secret_id: str) -> ApiKey:
        # Keys are printable ASCII without spaces; anything else (a NUL from a v1 form, say, which
        # PostgreSQL cannot even compare) is not a key and never reaches the store.
        if not secret_id or not (secret_id.isascii() and secret_id.isprintable()) or " " in secret_id:
            raise InvalidSecretId("The SecretId is not a valid cloud API key.")
        key = self.store.get_key(secret_id)
        if key is None or key.revoked:
            raise SecretIdNotFound()
        return key

    @staticmethod
    def _action(version: str, name: str) -> Action:
        if version != VERSION:
            raise NoSuchVersion(f"The specified api version=`{version}` does not exist in service=`{SERVICE}`.")
        action = ACTIONS.get(name)
        if action is None:
            raise InvalidAction("The request `Action` is invalid or not found.")
        return action

    def _region(self, region: str | None, name: str) -> str:
        if region is None:
            raise MissingParameter("Region")
        if region not in KNOWN_REGIONS:
            raise InvalidParameterValue(
                f"A value specified in `{name}` is not valid, is unsupported, or cannot be used."
            )
        if region not in self.settings.regions:
            raise UnsupportedRegion("The action not support this region.")
        return region

    def _context(
        self, key: ApiKey, region: str, request_id: str, language: str, now: float, action: Action
    ) -> RequestContext:
        over = self.limiter.hit(key.uin, action.name, now)
        if over is not None:
            raise RequestLimitExceeded(over, self.limiter.limit)
        if getattr(type(self.service), action.method) is getattr(TioneApi, action.method):
            # Not implemented here: say so before judging parameters it would never use (api3-protocol §4,
            # between steps 13 and 14), so `{}` gets UnsupportedOperation rather than MissingParameter.
            raise UnsupportedOperation(action.name)
        caller = Caller(uin=key.uin, app_id=key.app_id, sub_uin=key.sub_uin or key.uin)
        return RequestContext(caller=caller, region=region, request_id=request_id, language=language, now=now)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole body, or (b"", True) once it passes `limit` (the rest is drained, not kept)."""
    chunks: list[bytes] = []
    size = 0
    too_big = False
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            too_big = True
            chunks.clear()
        elif chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), too_big


def _is_ascii_integer(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _media_type(headers: dict[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter("The request body is not valid UTF-8.") from None


def _parse_pairs(text: str) -> list[tuple[str, str]]:
    """Form-decode `a=b&c=d` (`+` is a space); a component without `=` is InvalidParameter."""
    if not text:
        return []
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise InvalidParameter("Url key and value should be splited by `=`.") from None


def _first(params: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in params if k == name), None)


def _required(value: str | None, name: str) -> str:
    if value is None or value == "":
        raise MissingParameter(name)
    return value
