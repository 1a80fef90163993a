"""Decoding a parsed TOML document into msgspec types, with errors that name the key as the file writes it.

msgspec checks types, constraints (`Meta`) and unknown keys in one pass, and says where with a path such as
`$.instance_types[3].cpu`; `Invalid` carries that key (`instance_types[3].cpu`) and the problem in the file's words
(`must be an integer of at least 1`), read off the type itself rather than msgspec's wording.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, get_args, get_origin

import msgspec


class Invalid(Exception):
    """A file key and what is wrong with it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def decode(value: object, kind: Any, key: str) -> Any:
    """`value` as `kind` (a type or an annotation), or Invalid naming the key under `key` that is wrong."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as err:
        raise _explain(str(err), value, kind, key) from None


_AT = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$")
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]|(\[\.\.\.\])")
_FIELD = re.compile(r"^Object (missing required|contains unknown) field `(\w+)`$")


def _explain(message: str, value: Any, kind: Any, key: str) -> Invalid:
    """Turn msgspec's `<problem> - at `$.a[0].b`` into the file's key and a problem in the file's words."""
    at = _AT.match(message)
    problem, path = (at[1], at[2] or "") if at else (message, "")
    for step in _STEP.finditer(path):
        name, index, some_key = step.groups()
        if name is not None:
            key, value, kind = _join(key, name), value[name], _field_type(kind, name)
        elif index is not None:
            key, value, kind = f"{key}[{index}]", value[int(index)], _item_type(kind, int(index))
        elif some_key:  # a table's value: msgspec does not say whose, so find the first that fails
            kind = _item_type(kind, 0)
            name = next(k for k, v in value.items() if not _fits(v, kind))
            key, value = _join(key, name), value[name]
    field = _FIELD.match(problem)
    if field is None:
        wanted = _describe(msgspec.inspect.type_info(kind))
        return Invalid(key, f"must be {wanted}" if wanted else problem)
    if field[1] == "missing required":
        return Invalid(_join(key, field[2]), "is required")
    keys = ", ".join(sorted(f.encode_name for f in msgspec.structs.fields(_bare(kind))))
    return Invalid(_join(key, field[2]), f"unknown key; expected one of {keys}")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _bare(kind: Any) -> Any:
    """The type under `Annotated[...]` and `... | None`."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
        elif type(None) in get_args(kind):
            kind = next(a for a in get_args(kind) if a is not type(None))
        else:
            return kind


def _field_type(kind: Any, name: str) -> Any:
    return next(f.type for f in msgspec.structs.fields(_bare(kind)) if f.encode_name == name)


def _item_type(kind: Any, index: int) -> Any:
    """The type of an element of a list, a tuple (fixed or `...`) or a dict's values."""
    args = get_args(_bare(kind))
    if get_origin(_bare(kind)) is tuple and args[-1] is not Ellipsis:
        return args[index]
    return args[-1] if get_origin(_bare(kind)) is dict else args[0]


def _fits(value: object, kind: Any) -> bool:
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError:
        return False
    return True


def _describe(info: msgspec.inspect.Type) -> str:
    """What a value of this type is, in the file's words: "an integer of at least 1", "a table"; "" if unsure."""
    inspect = msgspec.inspect
    if isinstance(info, inspect.Metadata):
        described = (info.extra_json_schema or {}).get("description")
        return str(described) if described else _describe(info.type)
    if isinstance(info, inspect.UnionType):
        return " or ".join(_describe(t) for t in info.types if not isinstance(t, inspect.NoneType))
    if isinstance(info, inspect.IntType):
        if info.ge is not None and info.le is not None:
            return f"an integer from {info.ge} to {info.le}"
        return "an integer" if info.ge is None else f"an integer of at least {info.ge}"
    if isinstance(info, inspect.StrType):
        return "a non-empty string" if info.min_length else "a string"
    if isinstance(info, inspect.BoolType):
        return "true or false"
    if isinstance(info, inspect.LiteralType):
        return "one of " + ", ".join(sorted(str(v) for v in info.values))
    if isinstance(info, inspect.ListType | inspect.VarTupleType):
        if isinstance(info.item_type, inspect.StructType):
            return "an array of tables ([[...]])"
        return "an array of strings" if isinstance(info.item_type, inspect.StrType) else "an array"
    return "a table" if isinstance(info, inspect.StructType | inspect.DictType) else ""
