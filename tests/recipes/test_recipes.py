"""Recipes: every YAML parses; the smoke recipe runs in-process end to end (fit, evaluate, push, load back)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import zoo
from zoo._core.errors import ZooError
from zoo._core.runner import ZOO_KEYS, read_recipe, run_recipe
from zoo.hub import LocalHub

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(ROOT.glob("recipes/**/*.yaml")) + sorted(ROOT.glob("tests/smoke/*.yaml"))
SMOKE = ROOT / "tests" / "smoke" / "smoke_tiny.yaml"


@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(ROOT)) for p in RECIPES])
def test_recipe_parses(path):
    block, config = read_recipe(path)
    assert set(block) <= ZOO_KEYS and "zoo" not in config
    assert {"trainer", "data"} <= set(config), f"{path} needs trainer and data sections"
    if block.get("preset"):
        if config.get("model", {}).get("class_path"):
            __import__(config["model"]["class_path"].rpartition(".")[0])
        assert block["preset"] in zoo.list_models()
    if path.stem.endswith("_tiny"):
        assert path.stem.removesuffix("_tiny")  # a tiny twin of a named task
    if block.get("repo_id"):
        from zoo.hub import validate_repo_id

        validate_repo_id(block["repo_id"].removeprefix("hf://"))


def test_smoke_recipe_runs_end_to_end(tmp_path):
    result = run_recipe(SMOKE, ["--trainer.default_root_dir", str(tmp_path), "--zoo.tag", "v1"])
    assert result.is_global_zero and result.loaded_back_equal is True
    assert result.metrics["test_mse"] < 1e-2  # y = Xw + 0.01 noise: a trained linear model fits it
    hub = LocalHub()
    assert hub.resolve("smoke/regressor-tiny", "v1") == result.commit_id
    card = (hub.snapshot("smoke/regressor-tiny") / "README.md").read_text()
    assert f"| test_mse | {result.metrics['test_mse']:.6g} |" in card
    assert "zoo run " in card and "| seed | `0` |" in card
    loaded = zoo.from_pretrained("smoke/regressor-tiny", revision="v1")
    assert torch.equal(loaded.net.weight, result.module.net.weight)


def test_cli_overrides_reach_lightning_and_the_model(tmp_path):
    result = run_recipe(SMOKE, [
        "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "1",
        "--model.init_args.config.hidden", "5", "--zoo.repo_id", "acme/other", "--zoo.evaluation", "validate",
    ])
    assert result.module.config.hidden == 5 and result.module.trainer.current_epoch == 1
    assert set(result.metrics) == {"val_mse"}
    assert zoo.from_pretrained("acme/other").config.hidden == 5


def evaluate_twice(model, datamodule, trainer):
    """A custom recipe evaluation: returns a dict of measured numbers."""
    x, y = datamodule.x, datamodule.y
    with torch.no_grad():
        return {"rows": len(y), "full_mse": torch.nn.functional.mse_loss(model(x), y)}


def test_custom_evaluation_function(tmp_path):
    result = run_recipe(SMOKE, ["--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "1",
                                "--zoo.evaluation", "tests.recipes.test_recipes:evaluate_twice", "--zoo.repo_id", "null"])
    assert result.metrics["rows"] == 256.0 and result.commit_id is None


def test_bad_recipe_keys_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("zoo:\n  presett: x\ntrainer: {}\n")
    with pytest.raises(ZooError, match=r"unknown key\(s\) \['zoo.presett'\]"):
        run_recipe(bad)
    with pytest.raises(ZooError, match="unknown recipe key zoo.repo"):
        run_recipe(SMOKE, ["--zoo.repo", "a/b"])
    with pytest.raises(ZooError, match="does not exist"):
        run_recipe(tmp_path / "missing.yaml")
