"""Space-decoupling ZooModules: every tiny recipe fits, evaluates, pushes a card with its measured numbers and plots,
and loads back bit-identical; configs validate; the low-rank layer stays on M_h while it trains."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo._core.registry import preset_config
from zoo._core.runner import run_recipe
from zoo.hub import LocalHub
from zoo.space_decoupling.config import (GraphSimilarityConfig, LowRankClassifierConfig, MaxCutConfig, SolverFields,
                                         SphericalFittingConfig)

RECIPES = {
    "spherical": ("paperzoo/space-decoupling-spherical-tiny", "test_error", 1e-8, "convergence.png"),
    "graph_similarity": ("paperzoo/space-decoupling-graph-similarity-tiny", "relative_gap", 1e-10, "convergence.png"),
    "maxcut": ("paperzoo/space-decoupling-maxcut-tiny", "relative_gap", 1e-6, None),
    "digits": ("paperzoo/space-decoupling-digits-tiny", "row_norm_max_deviation", 1e-12, "training_loss.png"),
}


@pytest.mark.parametrize("task", sorted(RECIPES))
def test_tiny_recipe_pushes_a_measured_card_and_loads_back(task, tmp_path):
    if task == "maxcut":
        pytest.importorskip("cvxpy")
    repo_id, metric, bound, plot = RECIPES[task]
    result = run_recipe(f"recipes/space_decoupling/{task}_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    assert result.loaded_back_equal is True
    assert result.metrics[metric] < bound, result.metrics
    snapshot = LocalHub().snapshot(repo_id)
    card = (snapshot / "README.md").read_text()
    assert f"| {metric} | {result.metrics[metric]:.6g} |" in card and "arxiv:2501.13830" in card
    if plot is not None:
        assert (snapshot / plot).is_file() and f"![{plot}]({plot})" in card
    if task == "digits":  # both twins learn (10 classes: chance is 0.1); the constrained one stays on M_h
        metrics = result.metrics
        assert metrics["test_accuracy"] > 0.85 and metrics["unconstrained_twin_test_accuracy"] > 0.85
        assert metrics["weight_rank"] <= result.module.config.rank and metrics["feasibility"] < 1e-12
    loaded = zoo.from_pretrained(repo_id)
    assert type(loaded) is type(result.module) and loaded.config == result.module.config
    for name, tensor in result.module.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


def test_loaded_fit_rebuilds_its_instance(tmp_path):
    result = run_recipe("recipes/space_decoupling/spherical_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    loaded = zoo.from_pretrained("paperzoo/space-decoupling-spherical-tiny")
    assert loaded.problem.test_error(*loaded.point()) == pytest.approx(result.metrics["test_error"], rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("make, match", [
    (lambda: SolverFields(omega=-1.0), "omega must be finite and > 0"),
    (lambda: SolverFields(optimizer="adam"), "optimizer must be one of"),
    (lambda: SolverFields(retraction="exp"), "retraction must be"),
    (lambda: SphericalFittingConfig(rows=10, columns=8, rank=9), r"rank must be <= min\(rows, columns\) = 8"),
    (lambda: SphericalFittingConfig(sample_rate=1.2), "sample_rate must be in"),
    (lambda: SphericalFittingConfig(sample_rate=0.6, test_rate=0.5), "sample_rate \\+ test_rate"),
    (lambda: SphericalFittingConfig(init="svd"), "init must be"),
    (lambda: GraphSimilarityConfig(nodes_a=5, nodes_b=4, rank=5), "rank must be <= min"),
    (lambda: MaxCutConfig(nodes=10, rank=11), "rank must be an int in"),
    (lambda: MaxCutConfig(edge_probability=0.0), "edge_probability"),
    (lambda: LowRankClassifierConfig(layer="dense"), "layer must be"),
    (lambda: LowRankClassifierConfig(hidden=4, rank=5), "rank must be <="),
    (lambda: LowRankClassifierConfig(optimizer="trust_region"), "optimizer must be 'rgd' or 'rcg'"),
])
def test_config_validation_names_the_field(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_presets_are_the_official_experiments():
    official = preset_config("space_decoupling_spherical")
    assert (official.rows, official.columns, official.rank, official.true_rank, official.sample_rate) == (5000, 6000, 6, 6, 0.01)
    assert official.init == "continuation"  # not the oracle planted_columns start
    over = preset_config("space_decoupling_spherical_r10")
    assert (over.rank, over.sample_rate, over.init) == (10, 0.1, "continuation")


@pytest.mark.gpu
def test_tiny_spherical_recipe_on_cuda(tmp_path):
    result = run_recipe("recipes/space_decoupling/spherical_tiny.yaml",
                        ["--trainer.default_root_dir", str(tmp_path), "--trainer.accelerator", "gpu", "--zoo.repo_id", "null"])
    assert result.module.H.is_cuda and result.metrics["test_error"] < 1e-8


def test_from_pretrained_skips_the_data_driven_start(tmp_path, monkeypatch):
    """Loading overwrites H and V, so the rank-continuation start (about 9 CPU s at the official size) is not computed;
    the loaded weights are the saved ones, bit for bit."""
    from zoo.space_decoupling.module import SphericalFittingModule
    from zoo.space_decoupling.problems import SphericalFitting

    config = SphericalFittingConfig(rows=60, columns=70, rank=3, true_rank=2, sample_rate=0.3, test_rate=0.1,
                                    init="continuation", max_iterations=5)
    module = SphericalFittingModule(config)
    module.save_pretrained(tmp_path / "fit")
    calls = []
    original = SphericalFitting.initial_point
    monkeypatch.setattr(SphericalFitting, "initial_point", lambda self, *a, **k: calls.append(k) or original(self, *a, **k))
    loaded = zoo.from_pretrained(tmp_path / "fit")
    assert calls == []
    assert torch.equal(loaded.H, module.H) and torch.equal(loaded.V, module.V)
    SphericalFittingModule(config)  # built directly, the configured start runs
    assert calls and calls[0]["init"] == "continuation"
