"""The one endpoint: every request goes classify -> verify -> rate-limit -> decode -> dispatch -> envelope.

The order of checks follows api3-protocol §4 and stops at the first failure; both signature versions go
through one verification sequence. Every ApiError becomes the error envelope here and only here; anything
else is logged with its RequestId and answered as InternalError. Replies are always HTTP 200 with
`Content-Type: application/json` (§5.1). Once the body is in, the rest runs on a handler thread (offload.py),
off the event loop (issue 8 item 2); only the list, which only reads, stays on it (INLINE_ACTIONS).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from tione_server import ids, signing
from tione_server.api import codec
from tione_server.api._generated import (
    SERVICE,
    VERSION,
    Action,
    DescribeTrainingTasksRequest,
    DescribeTrainingTasksResponse,
)
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
from tione_server.offload import Offload
from tione_server.ratelimit import RateLimiter
from tione_server.replay import NonceStore
from tione_server.requestlog import RequestLog
from tione_server.serving import body_arrived
from tione_server.store import Store
from tione_server.store.keys import KeyWithdrawn

log = logging.getLogger("tione_server.gateway")

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

V1_MAX_BODY = 1024 * 1024
GET_MAX_QUERY = 32 * 1024
_HEADERS = [(b"content-type", b"application/json")]
INLINE_ACTIONS = frozenset({"DescribeTrainingTasks"})
"""Actions answered on the event loop (see _inline); every other action runs on a handler thread."""
KEY_CHECKING_ACTIONS = INLINE_ACTIONS | {"CreateTrainingTask"}
"""Actions whose own statements check a cached key (RequestContext.cached_key); the others read it once more."""
ListAsync = Callable[[RequestContext, DescribeTrainingTasksRequest], Awaitable[DescribeTrainingTasksResponse]]


class Request(msgspec.Struct):
    """The raw parts of one HTTP request that signatures are computed over."""

    method: str
    raw_query: str
    headers: dict[str, str]
    body: bytes


class Claims(msgspec.Struct):
    """The common parameters a request carries (api3-protocol §2.2), read from a TC3 request's X-TC-* headers
    or a v1 request's parameters; the verification sequence judges them the same way for both."""

    action: str
    version: str
    timestamp: str
    region: str | None
    region_name: str
    """The name the request gives its region, for error messages: `X-TC-Region` or `Region`."""
    token: str
    nonce: str | None = None
    """v1 only: spent once the signature is good (issue 7 C7)."""


class Signed(msgspec.Struct):
    """A request past §4 steps 4-7: its claims, a timestamp inside the window and a key that exists."""

    claims: Claims
    key: ApiKey
    now: float
    proof: signing.Tc3Authorization | list[tuple[str, str]]
    """What the signature is checked against: a TC3 request's parsed Authorization header, or a v1 request's
    parameters (its Signature among them)."""
    cached: bool = False
    """The key came from the store's key cache (TC3 requests): no database read on the event loop. The
    statements of a KEY_CHECKING_ACTIONS action check that it is still valid; any other action reads it again
    on its handler thread (`Gateway._verify`); and any refusal first re-reads it (`Gateway._recheck`), so the
    answer is the one a fresh read would give."""


class Trace(msgspec.Struct):
    """What the request's INFO line says (issue 7 F16), filled in as the pipeline learns it."""

    action: str
    uin: str = "-"
    code: str = "OK"
    language: str = ""
    """A v1 request's `Language` parameter, once read: its error reply is in that language."""

    def see(self, ctx: RequestContext, action: Action) -> None:
        """The caller and action are known: a later refusal (a bad parameter, say) is logged with them."""
        self.uin = ctx.caller.uin
        self.action = action.name


class Head(msgspec.Struct):
    """What the request line and headers decided: the largest body allowed, and for TC3 the checked parts."""

    limit: int
    tc3: Signed | None = None


class Gateway:
    """Turns raw requests into verified, decoded action calls and their replies."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        service: ServedApi,
        limiter: RateLimiter,
        nonces: NonceStore,
        offload: Offload,
        clock: Callable[[], float] = time.time,
        list_async: ListAsync | None = None,
    ) -> None:
        """`list_async`: the list answered without blocking the loop on the database (PostgreSQL); without it,
        the list runs its blocking reads on the loop, which on SQLite is faster than any hop."""
        self.settings = settings
        self.store = store
        self.service = service
        self.limiter = limiter
        self.nonces = nonces
        self.offload = offload
        self.clock = clock
        self.list_async = list_async
        self.budget = BodyBudget(settings.body_bytes_in_flight)
        self.request_log = RequestLog(log.name)
        """The INFO line of every request; the app flushes it when it stops."""

    # -- ASGI -------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point for HTTP requests: headers are judged before the body is read (issue 7 B5)."""
        # Header bytes are read as latin-1, which is how Python clients put a str on the wire, so the
        # text signs the same here as there. The query is ASCII: the HTTP server refuses raw bytes in it.
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        query = scope["query_string"].decode("latin-1")
        request_id = ids.request_id()
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
            _log_request(self.request_log, trace, request_id, started)
            return
        arrived = body_arrived(receive)
        body = await read_body(receive, limit=head.limit, budget=self.budget, timeout=timeout, arrived=arrived)
        try:
            if body.stop == "gone":
                return
            if body.stop is not None:
                refusal = _stopped(body.stop, self.settings)
                await _send(send, _error_reply(refusal, request_id, language, trace), close=True)
            else:
                request = Request(method, query, headers, body.data)
                if _inline(head) and self.list_async is not None:
                    reply = await self.handle_list(request, head, request_id, language, trace)
                elif _inline(head):
                    reply = self.handle(request, head, request_id, language, trace)
                else:
                    reply = await self.offload(lambda: self.handle(request, head, request_id, language, trace))
                await _send(send, reply, close=False)
            _log_request(self.request_log, trace, request_id, started)
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
        """The rest of the pipeline once the body is in: one JSON reply out; never raises. Blocking (the store,
        the executor): called on a handler thread, or on the loop for the list (`_inline`).

        Parameters are decoded once the caller is known, so a bad parameter is logged with its account.
        """
        try:
            ctx, action, req = self._accept(request, head, request_id, language, trace)
            resp = getattr(self.service, action.method)(ctx, req)
            return codec.encode_response(resp, request_id)
        except Exception as exc:
            return self._refuse(exc, head, request_id, language, trace)

    async def handle_list(self, request: Request, head: Head, request_id: str, language: str, trace: Trace) -> bytes:
        """`handle` for an inline list when the store reads without blocking (PostgreSQL): the loop serves other
        requests while the database answers this one."""
        assert self.list_async is not None
        try:
            ctx, action, req = self._accept(request, head, request_id, language, trace)
            assert action.name in INLINE_ACTIONS, "only the list is inline"
            resp = await self.list_async(ctx, req)  # type: ignore[arg-type]
            return codec.encode_response(resp, request_id)
        except Exception as exc:
            return self._refuse(exc, head, request_id, language, trace)

    def _accept(
        self, request: Request, head: Head, request_id: str, language: str, trace: Trace
    ) -> tuple[RequestContext, Action, msgspec.Struct]:
        """Everything before the action runs: a v1 request's credentials, the verification sequence, the
        parameters decoded."""
        signed = head.tc3
        params: list[tuple[str, str]] | None = None
        if signed is None:  # v1: the credentials are parameters, in the body (POST) or the query (GET)
            params = pairs = _parse_pairs(request.raw_query if request.method == "GET" else _text(request.body))
            language = trace.language = _first(params, "Language") or language
            trace.action = _first(params, "Action") or ""
            signed = self._authenticate(_v1_claims(params), lambda: (_first(pairs, "SecretId") or "", pairs))
        ctx, action = self._verify(request, signed, request_id, language)
        trace.see(ctx, action)
        req = _tc3_params(request, action) if params is None else codec.decode_flat(action, params)
        return ctx, action, req

    def _refuse(self, exc: Exception, head: Head, request_id: str, language: str, trace: Trace) -> bytes:
        """The error reply; for a request signed with a cached key (only a TC3 list's), after `_recheck`."""
        if head.tc3 is not None and head.tc3.cached:
            exc = self._recheck(head.tc3.key.secret_id, exc)
        return _error_reply(exc, request_id, trace.language or language, trace)

    def _recheck(self, secret_id: str, exc: Exception) -> Exception:
        """A request signed with a cached key was refused: had its key been read now, a withdrawn key would
        have been refused first, as SecretIdNotFound (§4 step 7). So read it, and answer that if so."""
        if isinstance(exc, KeyWithdrawn):
            self.store.keys.forget(secret_id)
            return SecretIdNotFound()
        try:
            key = self.store.keys.get(secret_id)
        except Exception:
            return exc
        return SecretIdNotFound() if key is None or key.revoked else exc

    def _tc3_head(self, h: dict[str, str], auth_header: str) -> Signed:
        """The TC3 checks that need no body (§4 steps 4-7), made before the body is read (issue 7 B5)."""
        claims = Claims(
            action=_required(h.get("x-tc-action"), "Action"),
            version=_required(h.get("x-tc-version"), "Version"),
            timestamp=_required(h.get("x-tc-timestamp"), "Timestamp"),
            region=h.get("x-tc-region"),
            region_name="X-TC-Region",
            token=h.get("x-tc-token") or "",
        )
        # From the key cache: a read here would block the event loop (Signed.cached says who checks it).
        return self._authenticate(claims, lambda: _tc3_authorization(h, auth_header, claims.timestamp), cached=True)

    # -- the verification sequence, shared by both signature versions (api3-protocol §4) ------------

    def _authenticate(
        self,
        claims: Claims,
        credential: Callable[[], tuple[str, signing.Tc3Authorization | list[tuple[str, str]]]],
        cached: bool = False,
    ) -> Signed:
        """Steps 5-7: the timestamp window, then the credential (a TC3 Authorization's grammar, service and
        date are judged here; v1 names its SecretId plainly), then the key it names: from the key cache when
        `cached` and the key is there."""
        now = self._check_timestamp(claims.timestamp)
        secret_id, proof = credential()
        key, hit = self._key(secret_id, cached)
        return Signed(claims, key, now, proof, cached=hit)

    def _verify(
        self, request: Request, signed: Signed, request_id: str, language: str
    ) -> tuple[RequestContext, Action]:
        """Steps 8-13 once the body is in: signature, token, nonce (v1), version and action, region, rate
        limit; then whether this server implements the action. The caller's context comes out."""
        claims, key = signed.claims, signed.key
        cached = signed.cached and claims.action in KEY_CHECKING_ACTIONS
        if signed.cached and not cached:  # step 7 again, off the event loop: this action's statements don't check it
            key, _ = self._key(key.secret_id, cached=False)
        _check_signature(request, signed)
        if claims.token:
            raise TokenFailure()
        if claims.nonce is not None:
            self._spend_nonce(key, claims.nonce, claims.timestamp, signed.now)
        action = self._action(claims.version, claims.action)
        region = self._region(claims.region, claims.region_name)
        self._rate_limit(key, action, signed.now)
        if not implemented(type(self.service), action):
            # Not implemented here: say so before judging parameters it would never use (api3-protocol §4,
            # between steps 13 and 14), so `{}` gets UnsupportedOperation rather than MissingParameter.
            raise UnsupportedOperation(action.name)
        caller = Caller(uin=key.uin, app_id=key.app_id, sub_uin=key.sub_uin or key.uin)
        ctx = RequestContext(
            caller=caller,
            region=region,
            request_id=request_id,
            language=language,
            now=signed.now,
            cached_key=key.secret_id if cached else None,
        )
        return ctx, action

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

    def _key(self, secret_id: str, cached: bool) -> tuple[ApiKey, bool]:
        """The key named, and whether it came from the cache (only when `cached` allows)."""
        # Keys are printable ASCII without spaces; anything else (a NUL from a v1 form, say, which
        # PostgreSQL cannot even compare) is not a key and never reaches the store.
        if not secret_id or not (secret_id.isascii() and secret_id.isprintable()) or " " in secret_id:
            raise InvalidSecretId("The SecretId is not a valid cloud API key.")
        key, hit = self.store.keys.cached(secret_id) if cached else (self.store.keys.get(secret_id), False)
        if key is None or key.revoked:
            raise SecretIdNotFound()
        return key, hit

    def _spend_nonce(self, key: ApiKey, nonce: str, timestamp: str, now: float) -> None:
        """The signature is good: its Nonce is spent for as long as its Timestamp is (issue 7 C7)."""
        if not self.nonces.accept(key.secret_id, nonce, int(timestamp) + self.settings.timestamp_window, now):
            raise NonceReused(nonce, self.settings.timestamp_window)

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

    def _rate_limit(self, key: ApiKey, action: Action, now: float) -> None:
        """Step 13: the account's requests of this action in this second (spec §1.1, ratelimit.py)."""
        over = self.limiter.hit(key.uin, action.name, now)
        if over is not None:
            raise RequestLimitExceeded(over, self.limiter.limit)


def _tc3_params(request: Request, action: Action) -> msgspec.Struct:
    """A verified TC3 request's parameters: the query of a GET, the JSON body of a POST."""
    if request.method == "GET":
        return codec.decode_flat(action, _parse_pairs(request.raw_query))
    media = _media_type(request.headers)
    if media != "application/json":
        raise InvalidParameter(f"The content type `{media}` is not supported for TC3-HMAC-SHA256 POST requests.")
    return codec.decode_json(action, request.body)


def _inline(head: Head) -> bool:
    """Whether the request runs on the event loop rather than a handler thread (issue 8 item 2): a TC3
    DescribeTrainingTasks only. Its every step reads (the key, then the list: SQLite's WAL and PostgreSQL's
    MVCC never make a read wait for a writer), and it is the hot path, where a thread hop cost 5-50% of the
    e2e p50 in `make bench` (about 0.7 ms at 100k tasks). Everything else, and a v1 request (its Nonce is a
    write), goes to a thread. The action named here is the one verified and then dispatched."""
    return head.tc3 is not None and head.tc3.claims.action in INLINE_ACTIONS


def _tc3_authorization(h: dict[str, str], auth_header: str, timestamp: str) -> tuple[str, signing.Tc3Authorization]:
    """Step 6 of a TC3 request: the Authorization's grammar, its service and date; its SecretId out."""
    try:
        auth = signing.parse_tc3_authorization(auth_header)
    except signing.MalformedAuthorization as err:
        raise InvalidAuthorization(str(err)) from None
    if not signing.tc3_service_accepted(auth.service, h.get("host", ""), SERVICE):
        raise InvalidAuthorization("`Service` in Credential not valid")
    if auth.date != _utc_date(int(timestamp) // 86400):
        raise SignatureFailure("The date in `Credential` is not the UTC date of `X-TC-Timestamp`.")
    return auth.secret_id, auth


@functools.lru_cache(maxsize=8)
def _utc_date(day: int) -> str:
    """`YYYY-MM-DD` of a day number (Unix seconds // 86400): the scope date a timestamp of that day signs."""
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d")


def _check_signature(request: Request, signed: Signed) -> None:
    """Step 8: TC3 over the headers it names and the body (§2.3); v1 over the parameters (§2.4)."""
    secret_key = signed.key.secret_key
    if isinstance(signed.proof, signing.Tc3Authorization):
        try:
            ok = signing.verify_tc3(
                signed.proof,
                secret_key,
                method=request.method,
                raw_query=request.raw_query,
                headers=request.headers,
                body=request.body,
                timestamp=signed.claims.timestamp,
            )
        except KeyError as missing:
            raise SignatureFailure(f"The signed header {missing} is absent from the request.") from None
    else:
        host = request.headers.get("host", "")
        ok = signing.verify_v1(secret_key, method=request.method, host=host, params=signed.proof)
    if not ok:
        raise SignatureFailure()


def _v1_claims(params: list[tuple[str, str]]) -> Claims:
    """Step 4 of a v1 request: its common parameters present, its Nonce an integer of any size (SDK:
    1..2^63-1), never converted (§8 #6)."""
    for name in ("Action", "Version", "Timestamp", "Nonce", "SecretId", "Signature"):
        _required(_first(params, name), name)
    nonce = _first(params, "Nonce") or ""
    if not _is_ascii_integer(nonce):
        raise InvalidParameter.type_error("Nonce")
    return Claims(
        action=_first(params, "Action") or "",
        version=_first(params, "Version") or "",
        timestamp=_first(params, "Timestamp") or "",
        region=_first(params, "Region"),
        region_name="Region",
        token=_first(params, "Token") or "",
        nonce=nonce,
    )


def _log_request(request_log: RequestLog, trace: Trace, request_id: str, started: float) -> None:
    seconds = time.perf_counter() - started
    record_request(trace.action, trace.code, seconds)
    request_log.info(
        f"request RequestId={request_id} uin={trace.uin} action={trace.action or '-'} code={trace.code} "
        f"ms={seconds * 1000:.1f}"
    )


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
