"""config.json as loading reads it: one-line errors naming the file and the field, and no import of unknown code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo._core.errors import ConfigError, UnknownModelError, ZooError


@pytest.fixture
def folder(tmp_path) -> Path:
    zoo.create("smoke_mlp_tiny").save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _load_error(folder: Path, error=ZooError) -> str:
    with pytest.raises(error) as info:
        zoo.from_pretrained(folder)
    message = str(info.value)
    assert "\n" not in message and str(folder / "config.json") in message, message
    return message


@pytest.mark.parametrize("value", ["8", [8], None, 100.5, True])
def test_ill_typed_int_field(folder, value):
    (folder / "config.json").write_text(json.dumps({**_config(folder), "hidden": value}))
    assert "field 'hidden' must be an int" in _load_error(folder, ConfigError)


def test_ill_typed_float_field_and_post_init_check(folder):
    (folder / "config.json").write_text(json.dumps({**_config(folder), "lr": "fast"}))
    assert "field 'lr' must be a float, got str 'fast'" in _load_error(folder, ConfigError)
    (folder / "config.json").write_text(json.dumps({**_config(folder), "lr": -1}))
    assert "lr must be > 0, got -1" in _load_error(folder, ConfigError)


@pytest.mark.parametrize("value, match", [
    (None, "field 'zoo_class' must be a string 'package.module:ClassName', got null"),
    (3, "field 'zoo_class' must be a string 'package.module:ClassName', got int 3"),
    ("nocolon", "zoo_class 'nocolon' is not of the form"),
])
def test_bad_zoo_class(folder, value, match):
    (folder / "config.json").write_text(json.dumps({**_config(folder), "zoo_class": value}))
    assert match in _load_error(folder)


@pytest.mark.parametrize("content, match", [
    (json.dumps("hello").encode(), "must be a JSON object, got str"),
    (json.dumps([1, 2]).encode(), "must be a JSON object, got list"),
    ('{"zoo_class": "é"}'.encode("latin-1"), "is not UTF-8 text"),
    (b"[" * 100_000 + b"]" * 100_000, "is nested too deeply"),
    (b"{not json", "is not valid JSON"),
])
def test_malformed_config_file(folder, content, match):
    (folder / "config.json").write_bytes(content)
    assert match in _load_error(folder)


_EVIL = """
import pathlib
pathlib.Path(__file__).with_name("ran.txt").write_text("imported")
"""


def test_unknown_module_in_zoo_class_is_never_imported(folder, tmp_path, monkeypatch):
    (tmp_path / "evil_module.py").write_text(_EVIL)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("evil_module", None)
    (folder / "config.json").write_text(json.dumps({**_config(folder), "zoo_class": "evil_module:Model"}))
    message = _load_error(folder, UnknownModelError)
    assert "module 'evil_module' is not one the zoo's registry knows" in message and "trust_remote_code=True" in message
    assert not (tmp_path / "ran.txt").exists() and "evil_module" not in sys.modules
    with pytest.raises(UnknownModelError, match="does not name a ZooModule subclass"):
        zoo.from_pretrained(folder, trust_remote_code=True)  # imported only when the caller opts in
    assert (tmp_path / "ran.txt").exists()


_USER_MODULE = """
from dataclasses import dataclass
import torch
from zoo._core.module import ZooModule

@dataclass
class UserConfig:
    width: int = 3  # features

class UserModel(ZooModule):
    config_class = UserConfig

    def __init__(self, config=None):
        super().__init__(config)
        self.scale = torch.nn.Parameter(torch.arange(float(self.config.width)))
"""


def test_a_users_own_module_loads_when_imported_or_trusted(tmp_path, monkeypatch):
    from zoo._core import registry

    monkeypatch.setattr(registry, "_CLASSES", dict(registry._CLASSES))  # the class registered here goes with the test
    (tmp_path / "user_zoo_module.py").write_text(_USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_zoo_module

    user_zoo_module.UserModel().save_pretrained(tmp_path / "saved")
    assert torch.equal(zoo.from_pretrained(tmp_path / "saved").scale, torch.arange(3.0))  # its class is registered
    monkeypatch.delitem(registry._CLASSES, "user_zoo_module:UserModel")
    monkeypatch.delitem(sys.modules, "user_zoo_module")
    with pytest.raises(UnknownModelError, match="trust_remote_code"):
        zoo.from_pretrained(tmp_path / "saved")
    assert torch.equal(zoo.from_pretrained(tmp_path / "saved", trust_remote_code=True).scale, torch.arange(3.0))
