"""Specs as dataclasses: the JSON Schema the server checks submitted specs
against is derived from the dataclass, and a submitted spec is read back into
it, so the two never disagree.

Supported field types: ``str``, ``int``, ``float``, ``bool``, ``list[T]``,
``dict[str, T]``, ``T | None`` (``Optional[T]``), ``Literal[...]``, an
``Enum`` of strings or numbers, ``typing.Any``, and nested dataclasses. A
field without a default is required. A field's ``metadata`` adds to its
schema: ``description`` and any JSON Schema keyword (``minimum``,
``maxLength``, ``pattern``, ...)::

    @dataclass
    class Spec:
        text: str = field(metadata={"description": "The text.", "maxLength": 100_000})
        top: int = field(default=10, metadata={"minimum": 1, "maximum": 1000})

Unknown fields are refused (``additionalProperties: false``), as the Rust
SDK's ``deny_unknown_fields`` does.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

from ._errors import FieldError, InvalidInput

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_of(spec_type: type) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a dataclass spec."""
    schema = _object_schema(spec_type)
    return {"$schema": JSON_SCHEMA_DIALECT, "title": spec_type.__name__, **schema}


_HINTS: dict[type, tuple[dict[str, Any], tuple[dataclasses.Field, ...]]] = {}


def _fields(spec_type: type) -> tuple[dict[str, Any], tuple[dataclasses.Field, ...]]:
    """A dataclass's resolved type hints and fields, worked out once per class
    (resolving string annotations is the slow part of reading a spec)."""
    known = _HINTS.get(spec_type)
    if known is None:
        known = (typing.get_type_hints(spec_type), dataclasses.fields(spec_type))
        _HINTS[spec_type] = known
    return known


def _object_schema(spec_type: type) -> dict[str, Any]:
    if not dataclasses.is_dataclass(spec_type):
        raise TypeError(f"{spec_type!r} is not a dataclass")
    hints, _ = _fields(spec_type)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(spec_type):
        schema = _type_schema(hints[f.name])
        meta = dict(f.metadata)
        schema.update(meta)
        if f.default is not dataclasses.MISSING and _json_able(f.default):
            schema.setdefault("default", _to_json(f.default))
        properties[f.name] = schema
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    doc = (spec_type.__doc__ or "").strip()
    if doc and not doc.startswith(spec_type.__name__ + "("):
        schema["description"] = doc
    return schema


def _optional_inner(hint: Any) -> Any | None:
    """``T`` when ``hint`` is ``T | None``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0]
    return None


def _type_schema(hint: Any) -> dict[str, Any]:
    inner = _optional_inner(hint)
    if inner is not None:
        schema = _type_schema(inner)
        if "type" in schema and isinstance(schema["type"], str):
            schema["type"] = [schema["type"], "null"]
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
            return schema
        return {"anyOf": [schema, {"type": "null"}]}
    if hint is Any:
        return {}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str:
        return {"type": "string"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [member.value for member in hint]
        return {"enum": values}
    if dataclasses.is_dataclass(hint):
        return _object_schema(hint)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, typing.List):
        return {"type": "array", "items": _type_schema(args[0]) if args else {}}
    if origin in (dict, typing.Dict):
        if args and args[0] is not str:
            raise TypeError(f"{hint!r}: JSON object keys are strings; use dict[str, ...]")
        return {"type": "object", "additionalProperties": _type_schema(args[1]) if args else {}}
    raise TypeError(f"{hint!r} has no JSON Schema here; use str, int, float, bool, list, dict, a Literal, an Enum or a dataclass")


def _json_able(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), enum.Enum))


def _to_json(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def from_json(spec_type: type, value: Any) -> Any:
    """Reads a spec (parsed JSON) into ``spec_type``.

    The server has checked the spec against the schema already; this check
    is for the paths of what a plugin's own tests or a stale schema let
    through. Raises :class:`InvalidInput` naming the field.
    """
    errors: list[FieldError] = []
    result = _read(spec_type, value, "", errors)
    if errors:
        raise InvalidInput(*errors)
    return result


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _read(hint: Any, value: Any, path: str, errors: list[FieldError]) -> Any:
    inner = _optional_inner(hint)
    if inner is not None:
        return None if value is None else _read(inner, value, path, errors)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        errors.append(FieldError(path, f"must be a boolean, not {_kind(value)}"))
        return None
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        errors.append(FieldError(path, f"must be an integer, not {_kind(value)}"))
        return None
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        errors.append(FieldError(path, f"must be a number, not {_kind(value)}"))
        return None
    if hint is str:
        if isinstance(value, str):
            return value
        errors.append(FieldError(path, f"must be a string, not {_kind(value)}"))
        return None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in hint)
            errors.append(FieldError(path, f"must be one of {allowed}"))
            return None
    if dataclasses.is_dataclass(hint):
        return _read_object(hint, value, path, errors)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        if value in args:
            return value
        errors.append(FieldError(path, "must be one of " + ", ".join(repr(a) for a in args)))
        return None
    if origin in (list, typing.List):
        if not isinstance(value, list):
            errors.append(FieldError(path, f"must be an array, not {_kind(value)}"))
            return None
        item = args[0] if args else Any
        return [_read(item, v, _join(path, i), errors) for i, v in enumerate(value)]
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            errors.append(FieldError(path, f"must be an object, not {_kind(value)}"))
            return None
        item = args[1] if args else Any
        return {k: _read(item, v, _join(path, k), errors) for k, v in value.items()}
    raise TypeError(f"{hint!r} cannot be read from JSON here")


def _read_object(spec_type: type, value: Any, path: str, errors: list[FieldError]) -> Any:
    if not isinstance(value, dict):
        errors.append(FieldError(path, f"must be an object, not {_kind(value)}"))
        return None
    hints, declared = _fields(spec_type)
    fields = {f.name: f for f in declared}
    for key in value:
        if key not in fields:
            known = ", ".join(fields) or "none"
            errors.append(FieldError(_join(path, key), f"is not a field of this spec (fields: {known})"))
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _read(hints[name], value[name], _join(path, name), errors)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            errors.append(FieldError(_join(path, name), "is required"))
    if errors:
        return None
    return spec_type(**kwargs)


def to_json(value: Any) -> Any:
    """Turns an output (dataclasses, enums, lists, dicts, scalars) into
    JSON-able data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value
