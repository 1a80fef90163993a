"""Action parameters in and responses out: one msgspec pass per request, mapped to API 3.0 error codes.

JSON bodies (TC3 POST) are decoded strictly; flattened `A.0.B=v` parameters (TC3 GET, v1) are rebuilt
into objects and coerced by the action's types (api3-protocol §2.5). Unknown members at any depth are
UnknownParameter, wrong types InvalidParameter, absent required members MissingParameter, each naming
the parameter by its flattened path (e.g. `Filters.0.Values.1`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from tione_server.api._generated import REQUIRED, Action, DataPoint, MetricData
from tione_server.errors import InvalidParameter, InvalidParameterValue, MissingParameter, UnknownParameter

COMMON_PARAMETERS = frozenset(
    {
        "Action", "Version", "Region", "Timestamp", "Nonce", "SecretId", "Signature",
        "SignatureMethod", "Token", "Language", "RequestClient",
    }
)  # fmt: skip
"""Public parameters of API 3.0: never an action's own, never `UnknownParameter`."""

MAX_DEPTH = 64
"""Most segments in a flattened parameter name (TI-ONE's deepest path has about 6): a deeper name is
InvalidParameter before anything recurses over it (issue 7 B6)."""

_INDEX = re.compile(r"[0-9]+")  # fullmatch, ASCII only: str.isdigit() also admits `²`
_AT = " - at `$"
REQUIRED_BUT_INVALID: frozenset[tuple[type[msgspec.Struct], str]] = frozenset(
    {(MetricData, "TaskId"), (DataPoint, "Name"), (DataPoint, "Value")}
)
"""Required members whose absence answers InvalidParameter: PushTrainingMetrics declares no MissingParameter
(spec §4.9)."""

_UNKNOWN = re.compile(r"Object contains unknown field `(.*)`", re.DOTALL)  # fullmatch: names may hold ` or \n
_MISSING = re.compile(r"Object missing required field `(.*)`", re.DOTALL)
_decoders: dict[type[msgspec.Struct], msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()


def _flat_path(msgspec_path: str) -> str:
    """`$.Filters[0].Values[1]` (without the `$`) -> `Filters.0.Values.1`."""
    return re.sub(r"\[(\d+)\]", r".\1", msgspec_path).lstrip(".")


def _split(err: msgspec.ValidationError) -> tuple[str, str]:
    """(what, where): msgspec's text `<what> - at `$<path>``, the path flattened, "" at the top level.

    The path is found from the end: a member name in `what` may itself contain ` - at `.
    """
    text = str(err)
    at = text.rfind(_AT)
    if at < 0 or not text.endswith("`"):
        return text, ""
    return text[:at], _flat_path(text[at + len(_AT) : -1])


def _raise_for(err: msgspec.ValidationError) -> None:
    head, where = _split(err)
    if um := _UNKNOWN.fullmatch(head):
        raise UnknownParameter(f"{where}.{um.group(1)}" if where else um.group(1))
    if mm := _MISSING.fullmatch(head):
        raise MissingParameter(f"{where}.{mm.group(1)}" if where else mm.group(1))
    if not where:
        raise InvalidParameter("The request body is not a valid JSON object.")
    raise InvalidParameter.type_error(where)


def _check_required(obj: Any, path: str) -> None:
    """MissingParameter for the first required member left unset, walking nested objects and lists.

    A string holding U+0000 is InvalidParameterValue: no parameter means one, and PostgreSQL cannot
    store or even compare such text, so it must not get past the decoder.
    """
    if isinstance(obj, str):
        if "\x00" in obj:
            raise InvalidParameterValue.for_param(path)
        return
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            _check_required(item, f"{path}.{i}" if path else str(i))
        return
    if not isinstance(obj, msgspec.Struct):
        return
    for name in REQUIRED.get(type(obj), ()):
        if getattr(obj, name) is None:
            where = f"{path}.{name}" if path else name
            if (type(obj), name) in REQUIRED_BUT_INVALID:
                raise InvalidParameter(f"Parameter `{where}` is required.")
            raise MissingParameter(where)
    for name in obj.__struct_fields__:
        value = getattr(obj, name)
        if value is not None and isinstance(value, _WALKED):
            _check_required(value, f"{path}.{name}" if path else name)


_WALKED = (msgspec.Struct, list, str)
"""What `_check_required` looks into (a tuple: isinstance with one is faster than with a union)."""


def _decoder(request: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    dec = _decoders.get(request)
    if dec is None:
        dec = _decoders[request] = msgspec.json.Decoder(request)
    return dec


def decode_json(action: Action, body: bytes) -> msgspec.Struct:
    """Decode a TC3 JSON body into the action's request type; an empty body is `{}`.

    The typed decoder does it in one pass; only a body carrying common parameters (legal, and
    ignored) takes the slower route through a plain dict.
    """
    try:
        req: msgspec.Struct = _decoder(action.request).decode(body or b"{}")
    except msgspec.ValidationError as err:
        head, where = _split(err)
        m = _UNKNOWN.fullmatch(head)
        if not (m and m.group(1) in COMMON_PARAMETERS and not where):
            _raise_for(err)
        req = _decode_without_common(action, body)
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec lets invalid UTF-8 in strings through as the latter
        raise InvalidParameter("The request body is not a valid JSON object.") from None
    except RecursionError:
        raise _too_deep() from None
    _check_required(req, "")
    return req


def _too_deep() -> InvalidParameter:
    # Issue 7 B6: msgspec stops at Python's recursion limit (about 1,000 levels) with RecursionError.
    return InvalidParameter("The request body is nested too deeply.")


def _decode_without_common(action: Action, body: bytes) -> msgspec.Struct:
    # The typed pass stops at the first unknown member, before it has read the rest of the body,
    # so the body may still turn out not to be JSON at all.
    try:
        raw = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise InvalidParameter("The request body is not a valid JSON object.") from None
    except RecursionError:
        raise _too_deep() from None
    try:
        return msgspec.convert(
            {k: v for k, v in raw.items() if k not in COMMON_PARAMETERS}, action.request, strict=True
        )
    except msgspec.ValidationError as err:
        _raise_for(err)
        raise


def unflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Rebuild nested parameters from `A.0.B=v` pairs; all-digit segments are list indices, sorted
    numerically with gaps compacted. Common parameters are dropped. Conflicting shapes are InvalidParameter."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.split(".")
        if parts[0] in COMMON_PARAMETERS and len(parts) == 1:
            continue
        if any(p == "" for p in parts):
            raise InvalidParameter(f"Parameter `{key}` is not a valid parameter name.")
        if len(parts) > MAX_DEPTH:  # issue 7 B6: rebuilding and converting nest one call per level
            raise InvalidParameter(f"Parameter `{key[:200]}` is nested deeper than {MAX_DEPTH} levels.")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InvalidParameter.type_error(key)
            node = child
        if parts[-1] in node:
            raise InvalidParameter(f"Parameter `{key}` is given more than once or conflicts with another.")
        node[parts[-1]] = value
    return {k: _lists(v) for k, v in root.items()}


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(_INDEX.fullmatch(k) for k in node):
        return [_lists(node[k]) for k in sorted(node, key=_index_order)]
    return {k: _lists(v) for k, v in node.items()}


def _index_order(index: str) -> tuple[int, str]:
    """Numeric order of an index of any length, without int() (which refuses over 4300 digits)."""
    digits = index.lstrip("0")
    return len(digits), digits


def decode_flat(action: Action, pairs: Iterable[tuple[str, str]]) -> msgspec.Struct:
    """Decode flattened text parameters, coercing text to the action's types."""
    try:
        req = msgspec.convert(unflatten(pairs), action.request, strict=False)
    except msgspec.ValidationError as err:
        _raise_for(err)
        raise
    _check_required(req, "")
    return req


class _Envelope(msgspec.Struct):
    Response: Any


def encode_response(resp: msgspec.Struct, request_id: str) -> bytes:
    """`{"Response": {...fields, "RequestId": id}}`, compact: encoded in one piece, since a list page of 50 is
    70 KB and each concatenation would copy it again."""
    resp.RequestId = request_id  # type: ignore[attr-defined]
    return _encoder.encode(_Envelope(resp))


def encode_error(code: str, message: str, request_id: str) -> bytes:
    """The API 3.0 error envelope."""
    return _encoder.encode({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}})
