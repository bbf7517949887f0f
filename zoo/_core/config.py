"""Config dataclasses <-> JSON-ready dictionaries, strictly.

A model is built from one config dataclass. ``config_to_dict`` gives plain JSON types (tuples become lists,
nested dataclasses become dicts); ``config_from_dict`` rebuilds the dataclass from the field types, so that a
round trip through ``config.json`` gives an equal config. Unknown keys are an error naming them (a config
written by a newer zoo is never half-read); missing keys take the field default; every value is checked against
its field's annotation (``int``, ``float``, ``bool``, ``str``, ``Optional``, tuples and lists, nested dataclasses,
``dict``, ``Literal``, ``Enum``), so an edited ``config.json`` is a ``ConfigError`` naming the field, never a
wrong type deep inside a model.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import numbers
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


def config_from_dict(cls: type, data: Mapping[str, Any], *, _path: str = "") -> Any:
    """Build the dataclass ``cls`` from ``data``, checking every value against the field's annotation.

    Unknown keys, ill-typed values and the dataclass's own validation raise ``ConfigError`` naming the field
    (``'inner.sizes[2]'`` for nested values). See ``_from_json`` for the type rules.
    """
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(f"{cls!r} is not a dataclass")
    where = f"field {_path!r}: " if _path else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}{cls.__name__} must be built from an object, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}{cls.__name__} has no field(s) {unknown}; known fields: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _from_json(hints.get(name, Any), value, f"{_path}.{name}" if _path else name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as error:  # the dataclass's own validation (__post_init__)
        raise ConfigError(f"{where}{cls.__name__}: {error}") from None


_EXPECTED_ARTICLE = {int: "an int", float: "a float", bool: "a bool", str: "a str"}


def _describe(value: Any) -> str:
    """``null``, ``str 'x'``, ``int 3``, ``list``: how an offending JSON value is named in an error."""
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "..."
        return f"str {shown!r}"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _expected(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp in _EXPECTED_ARTICLE:
        return _EXPECTED_ARTICLE[tp]
    if tp is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if dataclasses.is_dataclass(tp):
        return f"an object ({tp.__name__})"
    if origin in (tuple, list, collections.abc.Sequence) or tp in (tuple, list):
        return "a list"
    if origin in (dict, collections.abc.Mapping) or tp is dict:
        return "an object"
    return getattr(tp, "__name__", repr(tp))


class _Mismatch(Exception):
    """Internal: a value does not fit an annotation (caught by unions, turned into ConfigError otherwise)."""


def _from_json(tp: Any, value: Any, where: str) -> Any:
    """``value`` (parsed JSON, or Python values) converted to the annotation ``tp``, or ``ConfigError``.

    Rules: ``bool`` is not an ``int`` and an ``int`` is not a ``bool``; an ``int`` is fine for a ``float`` (and
    becomes one); no float is an ``int`` (``100.0`` neither); ``None`` only where the annotation allows it
    (``Optional``); lists for ``tuple``/``list``/``Sequence`` (tuples keep their length); objects for nested
    dataclasses and ``dict``; ``Literal`` and ``Enum`` by value. ``Any``, ``object`` and other classes take the
    value as it is.
    """
    try:
        return _convert(tp, value, where)
    except _Mismatch as mismatch:
        raise ConfigError(str(mismatch)) from None


def _fail(tp: Any, value: Any, where: str) -> None:
    raise _Mismatch(f"field {where!r} must be {_expected(tp)}, got {_describe(value)}")


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return value
    if tp is type(None):
        if value is not None:
            _fail(tp, value, where)
        return None
    if origin in (typing.Union, types.UnionType):
        deeper = None
        for arg in typing.get_args(tp):
            try:
                return _convert(arg, value, where)
            except _Mismatch as mismatch:  # a member whose shape fitted but failed inside is the one to report
                if not mismatch.args[0].startswith(f"field {where!r} must be ") and deeper is None:
                    deeper = mismatch
        if deeper is not None:
            raise deeper
        _fail(tp, value, where)
    if value is None:
        _fail(tp, value, where)
    if origin is typing.Literal:
        if not any(value == a and type(value) is type(a) for a in typing.get_args(tp)):
            _fail(tp, value, where)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            _fail(tp, value, where)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            _fail(tp, value, where)
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            _fail(tp, value, where)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(tp, value, where)
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            _fail(tp, value, where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            _fail(tp, value, where)
        try:
            return config_from_dict(tp, value, _path=where)
        except ConfigError as error:
            raise _Mismatch(str(error)) from None
    if origin in (tuple, list, collections.abc.Sequence) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            _fail(tp, value, where)
        args = typing.get_args(tp)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise _Mismatch(f"field {where!r} must hold {len(args)} items, got {len(value)}")
            items = [_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            item = args[0] if args else Any
            items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return list(items) if origin is list or tp is list else tuple(items)
    if origin in (dict, collections.abc.Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            _fail(tp, value, where)
        args = typing.get_args(tp)
        item = args[1] if len(args) == 2 else Any
        return {k: _convert(item, v, f"{where}[{k}]") for k, v in value.items()}
    return value  # a class the rules above do not cover: taken as it is
