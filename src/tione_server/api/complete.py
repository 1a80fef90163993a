"""Fill every unset member of a wire object with its empty value, so responses never carry `null`.

Spec §1.6: strings become "", numbers 0, booleans false, lists [], objects their own completed shape.
Works from the generated types, so it covers every nested object the spec defines. The work is done on
plain dicts against a per-type template and handed to msgspec once, since the list renders many items.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

import msgspec
from msgspec import inspect

S = TypeVar("S", bound=msgspec.Struct)

# What a member holds: a nested object type, a list of one, or (None) anything else.
_Kind = tuple[type[msgspec.Struct] | None, bool]


def _inner(t: inspect.Type) -> inspect.Type:
    if isinstance(t, inspect.UnionType):
        return next(x for x in t.types if not isinstance(x, inspect.NoneType))
    return t


def _empty(t: inspect.Type) -> Any:
    if isinstance(t, inspect.StrType):
        return ""
    if isinstance(t, inspect.BoolType):
        return False
    if isinstance(t, inspect.IntType):
        return 0
    if isinstance(t, inspect.FloatType):
        return 0.0
    if isinstance(t, inspect.ListType):
        return []
    if isinstance(t, inspect.StructType):
        return _template(t.cls)
    raise TypeError(f"no empty value for {t}")


@cache
def _kinds(cls: type[msgspec.Struct]) -> dict[str, _Kind]:
    info = inspect.type_info(cls)
    assert isinstance(info, inspect.StructType)
    kinds: dict[str, _Kind] = {}
    for f in info.fields:
        t = _inner(f.type)
        if isinstance(t, inspect.StructType):
            kinds[f.name] = (t.cls, False)
        elif isinstance(t, inspect.ListType) and isinstance(item := _inner(t.item_type), inspect.StructType):
            kinds[f.name] = (item.cls, True)
        else:
            kinds[f.name] = (None, False)
    return kinds


@cache
def _template(cls: type[msgspec.Struct]) -> dict[str, Any]:
    """Every member of `cls` at its empty value (nested objects completed); shared, never mutated."""
    info = inspect.type_info(cls)
    assert isinstance(info, inspect.StructType)
    return {f.name: _empty(_inner(f.type)) for f in info.fields}


def _fill(cls: type[msgspec.Struct], data: dict[str, Any]) -> dict[str, Any]:
    kinds = _kinds(cls)
    out = dict(_template(cls))
    for name, value in data.items():
        kind = kinds.get(name)
        if value is None or kind is None:
            continue  # unset, or not a member of this object
        sub, many = kind
        if sub is None:
            out[name] = value
        elif many:
            out[name] = [_fill(sub, _plain(v)) for v in value]
        else:
            out[name] = _fill(sub, _plain(value))
    return out


def _plain(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else msgspec.to_builtins(value)


def complete(cls: type[S], data: dict[str, Any]) -> S:
    """Build `cls` from a plain dict (wire names), recursively filling unset members."""
    return msgspec.convert(_fill(cls, data), cls)


def complete_member(cls: type[msgspec.Struct], name: str, value: Any) -> Any:
    """One member's value as `cls` holds it: nested objects built and completed, anything else as is."""
    sub, many = _kinds(cls)[name]
    if sub is None:
        return value
    if many:
        return [msgspec.convert(_fill(sub, _plain(v)), sub) for v in value]
    return msgspec.convert(_fill(sub, _plain(value)), sub)
