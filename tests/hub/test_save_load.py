"""save_pretrained / from_pretrained: bit-exact, strict, pickle-free, readable without zoo."""

from __future__ import annotations

import json
from dataclasses import dataclass

import geoopt
import lightning as L
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

import zoo
from zoo._core.errors import PickleRefusedError, StrictLoadError, ZooError
from zoo._core.module import ZooModule
from tests.smoke.model import SmokeConfig, SmokeData, SmokeRegressor


@dataclass
class GeoConfig:
    n: int = 5  # ambient size
    p: int = 2  # frame columns
    tied: bool = True  # tie the decoder weight to the encoder weight


class GeoModule(ZooModule):
    """Test-only: Stiefel and sphere ManifoldParameters, a buffer, and tied weights."""

    config_class = GeoConfig

    def __init__(self, config: GeoConfig | None = None) -> None:
        super().__init__(config)
        n, p = self.config.n, self.config.p
        self.frame = geoopt.ManifoldParameter(torch.linalg.qr(torch.randn(n, p, dtype=torch.float64))[0], manifold=geoopt.Stiefel())
        self.direction = geoopt.ManifoldParameter(torch.nn.functional.normalize(torch.randn(n), dim=0), manifold=geoopt.Sphere())
        self.encoder = torch.nn.Linear(n, n, bias=False)
        self.decoder = torch.nn.Linear(n, n, bias=False)
        if self.config.tied:
            self.decoder.weight = self.encoder.weight
        self.register_buffer("counts", torch.arange(n))


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype for k in sa)


def test_round_trip_is_bit_exact_and_eval_mode(tmp_path):
    model = zoo.create("smoke_mlp_tiny")
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config == {"zoo_class": "tests.smoke.model:SmokeRegressor", "zoo_version": zoo.__version__, "in_features": 4, "hidden": 8, "lr": 0.05, "aux_outputs": 0}
    loaded = zoo.from_pretrained(str(tmp_path / "m"))
    assert type(loaded) is SmokeRegressor and not loaded.training
    assert _same(model, loaded)
    assert _same(model, SmokeRegressor.from_pretrained(tmp_path / "m"))


def test_folder_is_readable_without_zoo(tmp_path):
    model = zoo.create("smoke_regressor_tiny")
    model.save_pretrained(tmp_path, metrics={"test_mse": 0.25})
    weights = load_file(str(tmp_path / "model.safetensors"))
    assert torch.equal(weights["net.weight"], model.net.weight.detach())
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "paperzoo"


def test_class_check_of_subclass_from_pretrained(tmp_path):
    GeoModule().save_pretrained(tmp_path)
    with pytest.raises(ZooError, match="holds a GeoModule, not a SmokeRegressor"):
        SmokeRegressor.from_pretrained(tmp_path)


def test_strict_load_names_missing_and_unexpected_keys(tmp_path):
    zoo.create("smoke_regressor_tiny").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["hidden"] = 8  # the folder's weights are for hidden=0: keys differ
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(StrictLoadError) as info:
        zoo.from_pretrained(str(tmp_path))
    message = str(info.value)
    assert "missing keys ['net.0.bias', 'net.0.weight', 'net.2.bias', 'net.2.weight']" in message
    assert "unexpected keys ['net.bias', 'net.weight']" in message


def test_strict_load_rejects_shape_and_dtype_changes(tmp_path):
    model = zoo.create("smoke_regressor_tiny")
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "in_features": 5}))
    with pytest.raises(StrictLoadError, match=r"net.weight: file \(1, 4\) torch.float32, model \(1, 5\)"):
        zoo.from_pretrained(str(tmp_path))
    model.double().save_pretrained(tmp_path)
    with pytest.raises(StrictLoadError, match="torch.float64, model .* torch.float32"):
        zoo.from_pretrained(str(tmp_path))


def test_manifold_parameters_and_tied_weights_survive(tmp_path):
    model = GeoModule()
    model.save_pretrained(tmp_path)
    loaded = GeoModule.from_pretrained(tmp_path)
    assert _same(model, loaded)
    assert isinstance(loaded.frame, geoopt.ManifoldParameter) and isinstance(loaded.frame.manifold, geoopt.Stiefel)
    assert isinstance(loaded.direction.manifold, geoopt.Sphere)
    assert loaded.frame.dtype == torch.float64
    loaded.frame.manifold.assert_check_point_on_manifold(loaded.frame)
    assert loaded.decoder.weight is loaded.encoder.weight  # still tied
    assert len(load_file(str(tmp_path / "model.safetensors"))) == 4  # tied tensor stored once


def test_manifold_mismatch_is_an_error(tmp_path):
    GeoModule().save_pretrained(tmp_path)
    original = GeoModule.__init__

    def plain(self, config=None):
        original(self, config)
        self.direction = torch.nn.Parameter(self.direction.detach().clone())  # no manifold any more

    GeoModule.__init__ = plain
    try:
        with pytest.raises(StrictLoadError, match="manifold parameters differ"):
            GeoModule.from_pretrained(tmp_path)
    finally:
        GeoModule.__init__ = original


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.ckpt", "weights.pt"])
def test_pickle_only_folder_is_refused_with_conversion_hint(tmp_path, name):
    model = zoo.create("smoke_regressor_tiny")
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / name)
    with pytest.raises(PickleRefusedError, match=rf"only pickle weights \['{name}'\].*zoo convert"):
        zoo.from_pretrained(str(tmp_path))


def test_lightning_checkpoint_round_trip_and_convert(tmp_path):
    data = SmokeData(n_rows=64, batch_size=16)
    model = zoo.create("smoke_regressor_tiny")
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=data)
    ckpt = tmp_path / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    reloaded = SmokeRegressor.load_from_checkpoint(ckpt, weights_only=False)
    assert reloaded.config == model.config and _same(model, reloaded)
    from zoo.cli import main

    assert main(["convert", str(ckpt), str(tmp_path / "converted")]) == 0
    assert _same(model, zoo.from_pretrained(str(tmp_path / "converted")))
