"""Fill every unset member of a wire object with its empty value, so responses never carry `null`.

Spec §1.6: strings become "", numbers 0, booleans false, lists [], objects their own completed shape.
Works from the generated types, so it covers every nested object the spec defines.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

import msgspec
from msgspec import inspect

S = TypeVar("S", bound=msgspec.Struct)


def _empty(t: inspect.Type) -> Any:
    if isinstance(t, inspect.UnionType):
        t = next(x for x in t.types if not isinstance(x, inspect.NoneType))
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
        return complete(t.cls, {})
    raise TypeError(f"no empty value for {t}")


def _inner(t: inspect.Type) -> inspect.Type:
    if isinstance(t, inspect.UnionType):
        return next(x for x in t.types if not isinstance(x, inspect.NoneType))
    return t


@cache
def _fields(cls: type[msgspec.Struct]) -> tuple[tuple[str, inspect.Type], ...]:
    info = inspect.type_info(cls)
    assert isinstance(info, inspect.StructType)
    return tuple((f.name, _inner(f.type)) for f in info.fields)


def complete(cls: type[S], data: dict[str, Any]) -> S:
    """Build `cls` from a plain dict (wire names), recursively filling unset members."""
    values: dict[str, Any] = {}
    for name, t in _fields(cls):
        value = data.get(name)
        if value is None:
            values[name] = _empty(t)
        elif isinstance(t, inspect.StructType):
            values[name] = complete(t.cls, value if isinstance(value, dict) else msgspec.to_builtins(value))
        elif isinstance(t, inspect.ListType) and isinstance(_inner(t.item_type), inspect.StructType):
            item_cls = _inner(t.item_type).cls  # type: ignore[attr-defined]
            values[name] = [
                complete(item_cls, v if isinstance(v, dict) else msgspec.to_builtins(v)) for v in value
            ]
        else:
            values[name] = value
    return cls(**values)
