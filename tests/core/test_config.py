from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum

import pytest

from zoo._core.config import config_from_dict, config_to_dict
from zoo._core.errors import ConfigError


class Mode(Enum):
    FAST = "fast"
    EXACT = "exact"


@dataclass
class Inner:
    sizes: tuple[int, ...] = (4, 8)
    scale: float = 1.0


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    maybe: Inner | None = None
    pair: tuple[int, str] = (1, "a")
    mode: Mode = Mode.FAST
    values: list[float] = field(default_factory=lambda: [0.5])


def test_round_trip_through_json_is_equal():
    config = Outer(name="y", inner=Inner((1, 2, 3), 2.0), maybe=Inner((5,), 0.25), pair=(2, "b"), mode=Mode.EXACT)
    data = json.loads(json.dumps(config_to_dict(config)))
    assert data["inner"]["sizes"] == [1, 2, 3] and data["mode"] == "exact"
    assert config_from_dict(Outer, data) == config


def test_int_for_float_and_missing_keys_take_defaults():
    config = config_from_dict(Outer, {"inner": {"scale": 3}})
    assert config.inner.scale == 3.0 and isinstance(config.inner.scale, float)
    assert config.name == "x"


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"Outer has no field\(s\) \['nmae'\]"):
        config_from_dict(Outer, {"nmae": "z"})
    with pytest.raises(ConfigError, match=r"Inner has no field\(s\) \['bogus'\]"):
        config_from_dict(Outer, {"inner": {"bogus": 1}})


def test_non_json_value_is_rejected():
    @dataclass
    class Bad:
        thing: object = field(default_factory=object)

    with pytest.raises(ConfigError, match="not JSON-serialisable"):
        config_to_dict(Bad())
