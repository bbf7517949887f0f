from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

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


# -- values are checked against the field annotations ------------------------------------------------------
@dataclass
class Typed:
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    label: str = "a"
    limit: int | None = None
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[int, str] = (1, "a")
    weights: list[float] = field(default_factory=list)
    kind: Literal["fast", "exact"] = "fast"
    mode: Mode = Mode.FAST
    inner: Inner = field(default_factory=Inner)
    table: dict[str, int] = field(default_factory=dict)


@pytest.mark.parametrize("name, value, match", [
    ("count", "8", "field 'count' must be an int, got str '8'"),
    ("count", [8], "field 'count' must be an int, got list"),
    ("count", None, "field 'count' must be an int, got null"),
    ("count", 100.5, "field 'count' must be an int, got float 100.5"),
    ("count", True, "field 'count' must be an int, got bool True"),
    ("rate", "x", "field 'rate' must be a float, got str 'x'"),
    ("rate", False, "field 'rate' must be a float, got bool False"),
    ("flag", 1, "field 'flag' must be a bool, got int 1"),
    ("label", 3, "field 'label' must be a str, got int 3"),
    ("limit", "3", "field 'limit' must be an int or null, got str '3'"),
    ("sizes", [1, "a"], r"field 'sizes\[1\]' must be an int, got str 'a'"),
    ("sizes", 3, "field 'sizes' must be a list, got int 3"),
    ("pair", [1], "field 'pair' must hold 2 items, got 1"),
    ("weights", [0.5, None], r"field 'weights\[1\]' must be a float, got null"),
    ("kind", "slow", "field 'kind' must be one of 'fast', 'exact', got str 'slow'"),
    ("mode", "medium", "field 'mode' must be one of 'fast', 'exact', got str 'medium'"),
    ("inner", "x", "field 'inner' must be an object .Inner., got str 'x'"),
    ("inner", {"scale": "big"}, "field 'inner.scale' must be a float, got str 'big'"),
    ("table", {"a": "b"}, r"field 'table\[a\]' must be an int, got str 'b'"),
    ("table", [1], "field 'table' must be an object, got list"),
])
def test_ill_typed_values_name_the_field(name, value, match):
    with pytest.raises(ConfigError, match=match) as info:
        config_from_dict(Typed, {name: value})
    assert "\n" not in str(info.value)


def test_well_typed_values_pass():
    config = config_from_dict(Typed, {"count": 3, "rate": 2, "flag": True, "label": "b", "limit": None, "sizes": [3],
                                      "pair": [2, "b"], "weights": [1, 0.5], "kind": "exact", "mode": "exact",
                                      "inner": {"sizes": [1], "scale": 1}, "table": {"x": 1}})
    assert config.rate == 2.0 and isinstance(config.rate, float)  # an int is fine for a float field
    assert config.sizes == (3,) and config.pair == (2, "b") and config.weights == [1.0, 0.5]
    assert config.mode is Mode.EXACT and config.inner == Inner((1,), 1.0)
    assert config_from_dict(Typed, {"limit": 4}).limit == 4
    assert config_from_dict(Typed, {"inner": Inner((9,), 2.0)}).inner == Inner((9,), 2.0)  # a built instance


def test_validation_in_post_init_is_a_config_error():
    @dataclass
    class Checked:
        width: int = 1

        def __post_init__(self):
            if self.width < 1:
                raise ValueError(f"width must be >= 1, got {self.width}")

    with pytest.raises(ConfigError, match="width must be >= 1, got 0"):
        config_from_dict(Checked, {"width": 0})
