"""Config dataclasses <-> JSON-ready dictionaries, strictly.

A model is built from one config dataclass. ``config_to_dict`` gives plain JSON types (tuples become lists,
nested dataclasses become dicts); ``config_from_dict`` rebuilds the dataclass from the field types, so that a
round trip through ``config.json`` gives an equal config. Unknown keys are an error naming them (a config
written by a newer zoo is never half-read); missing keys take the field default.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, Mapping

from zoo._core.errors import ConfigError

__all__ = ["config_from_dict", "config_to_dict"]


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return the fields of a config dataclass as JSON-ready values (recursively)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ConfigError(f"expected a dataclass instance as config, got {type(config).__name__}")
    return {f.name: _to_json(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"config value {value!r} of type {type(value).__name__} is not JSON-serialisable")


def config_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Build the dataclass ``cls`` from ``data``; unknown keys raise ``ConfigError`` naming them."""
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{cls.__name__} has no field(s) {unknown}; known fields: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _from_json(hints.get(name, Any), value, f"{cls.__name__}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _from_json(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any or value is None:
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        # Prefer a structured member (dataclass / tuple) when the JSON value has that shape.
        for arg in args:
            if dataclasses.is_dataclass(arg) and isinstance(value, Mapping):
                return config_from_dict(arg, value)
        for arg in args:
            if typing.get_origin(arg) is tuple and isinstance(value, list):
                return _from_json(arg, value, where)
        return value
    if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        return config_from_dict(tp, value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], v, where) for v in value)
        if args and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_from_json(a, v, where) for a, v in zip(args, value)) if args else tuple(value)
    if origin is list and isinstance(value, list):
        (arg,) = typing.get_args(tp) or (Any,)
        return [_from_json(arg, v, where) for v in value]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
