from __future__ import annotations

from dataclasses import dataclass

import pytest

import zoo
from zoo._core.errors import ConfigError, UnknownModelError
from tests.smoke.model import SmokeConfig, SmokeRegressor


def test_list_and_pattern():
    names = zoo.list_models()
    assert "smoke_regressor_tiny" in names and names == sorted(names)
    assert zoo.list_models("smoke_mlp*") == ["smoke_mlp_tiny"]
    assert zoo.list_models("no_such_*") == []


def test_create_with_overrides_builds_the_right_class():
    model = zoo.create("smoke_mlp_tiny", hidden=16)
    assert isinstance(model, SmokeRegressor)
    assert model.config == SmokeConfig(in_features=4, hidden=16, lr=0.05)
    assert model.net[0].weight.shape == (16, 4)


def test_unknown_preset_suggests_close_names():
    with pytest.raises(UnknownModelError, match="did you mean smoke_mlp_tiny"):
        zoo.create("smoke_mlp_tin")


def test_bad_override_names_the_field():
    with pytest.raises(ConfigError, match=r"no field\(s\) \['widht'\]"):
        zoo.create("smoke_mlp_tiny", widht=3)
    with pytest.raises(ValueError, match="lr must be > 0, got -1"):
        zoo.create("smoke_mlp_tiny", lr=-1.0)


def test_duplicate_preset_name_is_an_error():
    @zoo.register_model("dup_test_tiny")
    def first():
        return SmokeConfig()

    with pytest.raises(ValueError, match="registered twice"):
        @zoo.register_model("dup_test_tiny")
        def second():
            return SmokeConfig()


def test_module_needs_config_class_and_right_config_type():
    with pytest.raises(TypeError, match="expects a SmokeConfig"):
        SmokeRegressor(config=3)

    @dataclass
    class Other:
        a: int = 1

    with pytest.raises(TypeError, match="SmokeConfig"):
        SmokeRegressor(Other())
    assert SmokeRegressor({"hidden": 3}).config.hidden == 3  # dicts (from hparams) are accepted


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_preset_round_trips_through_strictly_typed_json(name):
    import json

    from zoo._core.config import config_from_dict, config_to_dict
    from zoo._core.registry import preset_config

    config = preset_config(name)
    assert config_from_dict(type(config), json.loads(json.dumps(config_to_dict(config)))) == config
