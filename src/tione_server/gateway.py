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
from tione_server.api._generated import SERVICE, VERSION, Action
from tione_server.api.extensions import SERVED_ACTIONS, ServedApi, implemented
from tione_server.bodies import SMALL_BODY, BodyBudget, Receive, read_body, skim_body
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
    NonceReused,
    NoSuchVersion,
    RequestLimitExceeded,
    RequestSizeLimitExceeded,
    SecretIdNotFound,
    ServiceUnavailable,
    SignatureExpire,
    SignatureFailure,
    TokenFailure,
    UnsupportedOperation,
    UnsupportedProtocol,
    UnsupportedRegion,
)
from tione_server.metrics import record_request
from tione_server.models import ApiKey
from tione_server.ratelimit import RateLimiter
from tione_server.replay import NonceStore
from tione_server.store import Store

log = logging.getLogger("tione_server.gateway")

Scope = MutableMapping[str, Any]
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


class Tc3Head(msgspec.Struct):
    """The parts of a TC3 request judged from its headers: the parsed Authorization and its key."""

    auth: signing.Tc3Authorization
    key: ApiKey
    timestamp: str
    now: float


class Trace(msgspec.Struct):
    """What the request's INFO line says (issue 7 F16), filled in as the pipeline learns it."""

    action: str
    uin: str = "-"
    code: str = "OK"

    def see(self, ctx: RequestContext, action: Action) -> None:
        """The caller and action are known: a later refusal (a bad parameter, say) is logged with them."""
        self.uin = ctx.caller.uin
        self.action = action.name


class Head(msgspec.Struct):
    """What the request line and headers decided: the largest body allowed, and for TC3 the checked parts."""

    limit: int
    tc3: Tc3Head | None = None


class Gateway:
    """Turns raw requests into verified, decoded action calls and their replies."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        service: ServedApi,
        limiter: RateLimiter,
        nonces: NonceStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.service = service
        self.limiter = limiter
        self.nonces = nonces
        self.clock = clock
        self.budget = BodyBudget(settings.body_bytes_in_flight)

    # -- ASGI -------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point for HTTP requests: headers are judged before the body is read (issue 7 B5)."""
        # Header bytes are read as latin-1, which is how Python clients put a str on the wire, so the
        # text signs the same here as there. The query is ASCII: the HTTP server refuses raw bytes in it.
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        query = scope["query_string"].decode("latin-1")
        request_id = str(uuid.uuid4())
        language = headers.get("x-tc-language", "")
        timeout = self.settings.read_timeout
        # One INFO line per request (issue 7 F16) and its metrics (issue 10 item 10).
        started = time.perf_counter()
        trace = Trace(action=headers.get("x-tc-action", ""))
        try:
            head = self._head(method, query, headers)
        except Exception as exc:
            # Refused on its headers alone: a small body is read (so the connection can serve the next
            # request), a larger one not at all, and its connection is closed after the reply.
            length = _declared_length(headers)
            kept = length is not None and length <= SMALL_BODY and await skim_body(receive, timeout=timeout)
            await _send(send, _error_reply(exc, request_id, language, trace), close=not kept)
            _log_request(trace, request_id, started)
            return
        body = await read_body(receive, limit=head.limit, budget=self.budget, timeout=timeout)
        try:
            if body.stop == "gone":
                return
            if body.stop is not None:
                refusal = _stopped(body.stop, self.settings)
                await _send(send, _error_reply(refusal, request_id, language, trace), close=True)
            else:
                reply = self.handle(Request(method, query, headers, body.data), head, request_id, language, trace)
                await _send(send, reply, close=False)
            _log_request(trace, request_id, started)
        finally:
            self.budget.release(body.held)

    def _head(self, method: str, query: str, headers: dict[str, str]) -> Head:
        """What the request line and headers decide, in api3-protocol §4 order, before any body is read.

        A TC3 request's timestamp, Authorization and SecretId are judged here; a v1 request carries its
        credentials in the body (POST) or query (GET), so only its size is.
        """
        if method not in ("GET", "POST"):
            raise UnsupportedProtocol(f"The HTTP method `{method}` is not supported; use GET or POST.")
        limit = self._body_limit(method, headers)
        length = _declared_length(headers)
        if (method == "GET" and len(query) > GET_MAX_QUERY) or (length is not None and length > limit):
            raise RequestSizeLimitExceeded("The request size exceeds the limit.")
        auth = headers.get("authorization")
        if auth is not None and auth.startswith(signing.TC3_ALGORITHM + " "):
            return Head(limit, self._tc3_head(headers, auth))
        if auth is not None:
            raise InvalidAuthorization("the algorithm must be `TC3-HMAC-SHA256`")
        if method == "GET" or _media_type(headers) == "application/x-www-form-urlencoded":
            return Head(limit)
        if _media_type(headers) in ("application/json", "multipart/form-data"):
            raise InvalidParameter("The request `Authorization` header is missing.")
        raise MissingParameter("Action")

    def _body_limit(self, method: str, headers: dict[str, str]) -> int:
        if method == "GET":
            return GET_MAX_QUERY  # a GET's body carries nothing, but counts towards its 32 KB (§1)
        if headers.get("authorization", "").startswith("TC3-HMAC-SHA256"):
            return self.settings.max_body_bytes
        if _media_type(headers) == "application/x-www-form-urlencoded":
            return V1_MAX_BODY
        return self.settings.max_body_bytes

    # -- pipeline ---------------------------------------------------------------------------------

    def handle(self, request: Request, head: Head, request_id: str, language: str, trace: Trace) -> bytes:
        """The rest of the pipeline once the body is in: one JSON reply out; never raises.

        Parameters are decoded once the caller is known, so a bad parameter is logged with its account.
        """
        try:
            if head.tc3 is not None:
                ctx, action = self._tc3(request, head.tc3, request_id, language)
                trace.see(ctx, action)
                req = _tc3_params(request, action)
            else:
                params = _parse_pairs(request.raw_query if request.method == "GET" else _text(request.body))
                language = _first(params, "Language") or language
                trace.action = _first(params, "Action") or ""
                ctx, action = self._v1(request, params, request_id, language)
                trace.see(ctx, action)
                req = codec.decode_flat(action, params)
            resp = getattr(self.service, action.method)(ctx, req)
            return codec.encode_response(resp, request_id)
        except Exception as exc:
            return _error_reply(exc, request_id, language, trace)

    def _tc3_head(self, h: dict[str, str], auth_header: str) -> Tc3Head:
        """The TC3 checks that need no body: common headers, timestamp, Authorization, SecretId (§4 steps 4-7)."""
        _required(h.get("x-tc-action"), "Action")
        _required(h.get("x-tc-version"), "Version")
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
        return Tc3Head(auth, self._key(auth.secret_id), timestamp, now)

    def _tc3(self, request: Request, head: Tc3Head, request_id: str, language: str) -> tuple[RequestContext, Action]:
        h = request.headers
        try:
            ok = signing.verify_tc3(
                head.auth,
                head.key.secret_key,
                method=request.method,
                raw_query=request.raw_query,
                headers=h,
                body=request.body,
                timestamp=head.timestamp,
            )
        except KeyError as missing:
            raise SignatureFailure(f"The signed header {missing} is absent from the request.") from None
        if not ok:
            raise SignatureFailure()
        if h.get("x-tc-token"):
            raise TokenFailure()
        action = self._action(h["x-tc-version"], h["x-tc-action"])
        region = self._region(h.get("x-tc-region"), "X-TC-Region")
        return self._context(head.key, region, request_id, language, head.now, action), action

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
        # The signature is good: its Nonce is spent for as long as its Timestamp is (issue 7 C7).
        if not self.nonces.accept(key.secret_id, nonce, int(timestamp) + self.settings.timestamp_window, now):
            raise NonceReused(nonce, self.settings.timestamp_window)
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
        key = self.store.keys.get(secret_id)
        if key is None or key.revoked:
            raise SecretIdNotFound()
        return key

    @staticmethod
    def _action(version: str, name: str) -> Action:
        if version != VERSION:
            raise NoSuchVersion(f"The specified api version=`{version}` does not exist in service=`{SERVICE}`.")
        action = SERVED_ACTIONS.get(name)  # TI-ONE's actions and this server's extensions (issue 11)
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
        if not implemented(type(self.service), action):
            # Not implemented here: say so before judging parameters it would never use (api3-protocol §4,
            # between steps 13 and 14), so `{}` gets UnsupportedOperation rather than MissingParameter.
            raise UnsupportedOperation(action.name)
        caller = Caller(uin=key.uin, app_id=key.app_id, sub_uin=key.sub_uin or key.uin)
        return RequestContext(caller=caller, region=region, request_id=request_id, language=language, now=now)


def _tc3_params(request: Request, action: Action) -> msgspec.Struct:
    """A verified TC3 request's parameters: the query of a GET, the JSON body of a POST."""
    if request.method == "GET":
        return codec.decode_flat(action, _parse_pairs(request.raw_query))
    media = _media_type(request.headers)
    if media != "application/json":
        raise InvalidParameter(f"The content type `{media}` is not supported for TC3-HMAC-SHA256 POST requests.")
    return codec.decode_json(action, request.body)


def _log_request(trace: Trace, request_id: str, started: float) -> None:
    seconds = time.perf_counter() - started
    record_request(trace.action, trace.code, seconds)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "request RequestId=%s uin=%s action=%s code=%s ms=%.1f",
            request_id, trace.uin, trace.action or "-", trace.code, seconds * 1000,
        )  # fmt: skip


def _stopped(reason: str, settings: Settings) -> ApiError:
    """The answer to a body whose reading stopped early (bodies.Body.stop); its connection is then closed."""
    if reason == "too_large":
        return RequestSizeLimitExceeded("The request size exceeds the limit.")
    if reason == "busy":
        return ServiceUnavailable("The server is receiving too many large request bodies at once; retry later.")
    return InvalidParameter(f"The request body did not arrive within {settings.read_timeout:g} s.")


async def _send(send: Send, reply: bytes, *, close: bool) -> None:
    headers = [*_HEADERS, (b"content-length", str(len(reply)).encode())]
    if close:
        headers.append((b"connection", b"close"))  # uvicorn closes it once the reply is out
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": reply})


def _error_reply(exc: Exception, request_id: str, language: str, trace: Trace) -> bytes:
    """The envelope of an ApiError; anything else is logged with the RequestId and answered as InternalError."""
    if not isinstance(exc, ApiError):
        log.error("unexpected error, RequestId %s", request_id, exc_info=exc)
        exc = InternalError()
    trace.code = exc.code
    return codec.encode_error(exc.code, exc.localized(language), request_id)


def _declared_length(headers: dict[str, str]) -> int | None:
    """The body size the headers announce (0 without Content-Length); None when unknown (chunked)."""
    if "transfer-encoding" in headers:
        return None
    length = headers.get("content-length", "0")
    # The HTTP server has already refused a Content-Length that is not digits; 18 digits fit any int here.
    return int(length) if _is_ascii_integer(length) and len(length) <= 18 else None


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
