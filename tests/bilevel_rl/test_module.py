"""BilevelRLAgent: config validation, the training step's gradient is the M-SoBiRL estimate, tiny recipes, hub."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import zoo
from zoo._core.runner import run_recipe
from zoo.bilevel_rl import BilevelRLAgent, BilevelRLConfig, InnerState, model_based_hypergradient
from zoo.hub import LocalHub

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "bilevel_rl"


@pytest.mark.parametrize(
    "field, value, message",
    [("gamma", 1.0, r"gamma must be in \[0, 1\), got 1.0"), ("tau", 0.0, "tau must be > 0 and finite, got 0.0"),
     ("task", "atari", "task must be one of .*, got 'atari'"), ("adjoint_solver", "cg", "adjoint_solver must be one of"),
     ("learning_rate", -1.0, "learning_rate must be > 0 and finite, got -1.0"), ("reward_dimension", 0, "reward_dimension must be >= 1, got 0"),
     ("true_gamma", -0.5, r"true_gamma must be in \[0, 1\), got -0.5")],
)
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        BilevelRLConfig(**{field: value})


def test_training_step_gradient_is_the_m_sobirl_estimate():
    """Backward of the surrogate gives df/dx + J^T c, the same vector as the functional M-SoBiRL estimate."""
    agent = zoo.create("bilevel_rl_synthetic_tiny", adjoint_steps=3)
    x = agent.reward.x.detach().clone()
    estimate, _ = model_based_hypergradient(
        agent.mdp, agent.reward, agent.upper_objective, x, InnerState.zeros(agent.mdp), sweeps=agent.config.sweeps,
        sweep_tolerance=agent.config.sweep_tolerance, adjoint_steps=3, adjoint_step_size=agent.config.adjoint_step_size,
    )
    agent.log = lambda *args, **kwargs: None  # outside a Trainer
    agent.training_step(None, 0).backward()
    torch.testing.assert_close(agent.reward.x.grad, estimate.gradient, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(agent.adjoint, estimate.adjoint, rtol=0, atol=0)  # warm state carried in buffers
    assert estimate.gradient.norm() > 1.0


def test_synthetic_tiny_recipe_reaches_the_optimum_and_pushes_a_card(tmp_path):
    result = run_recipe(RECIPES / "synthetic_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    metrics = result.metrics
    assert result.loaded_back_equal is True and metrics["outer_iterations"] == 300
    assert abs(metrics["optimum_gap"]) < 1e-3 and abs(metrics["upper_objective"] - 1.0) < 1e-3
    card = (LocalHub().snapshot("paperzoo/bilevel-rl-synthetic-tiny") / "README.md").read_text()
    assert f"| optimum_gap | {metrics['optimum_gap']:.6g} |" in card
    assert "arxiv:2405.19697" in card and "M-SoBiRL" in card and "F* = 10/(2*5)" in card
    loaded = zoo.from_pretrained("paperzoo/bilevel-rl-synthetic-tiny")
    assert isinstance(loaded, BilevelRLAgent)
    assert torch.equal(loaded.reward.x, result.module.reward.x) and torch.equal(loaded.value, result.module.value)
    assert loaded.exact_objective() == pytest.approx(metrics["upper_objective"], abs=1e-12)


def test_shaping_tiny_recipe_makes_the_sparse_task_learnable(tmp_path):
    pytest.importorskip("gymnasium")
    result = run_recipe(RECIPES / "shaping_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    metrics = result.metrics
    assert metrics["true_return_unshaped"] < 0.05  # the myopic learner barely reaches the goal without shaping
    assert metrics["true_return_shaped"] > 0.9 * metrics["optimal_return"]  # with it, nearly optimal
    card = (LocalHub().snapshot("paperzoo/bilevel-rl-shaping-tiny") / "README.md").read_text()
    assert f"| true_return_shaped | {metrics['true_return_shaped']:.6g} |" in card and "FrozenLake-v1" in card


def test_save_load_round_trip_is_bit_exact(tmp_path):
    agent = zoo.create("bilevel_rl_synthetic_tiny")
    with torch.no_grad():
        agent.reward.x.mul_(0.5)
        agent.value.fill_(0.25)
    agent.save_pretrained(tmp_path / "agent")
    loaded = zoo.from_pretrained(str(tmp_path / "agent"))
    state, other = agent.state_dict(), loaded.state_dict()
    assert state.keys() == other.keys() and all(torch.equal(state[k], other[k]) for k in state)
    torch.testing.assert_close(loaded(), agent(), rtol=0, atol=0)


@pytest.mark.slow
def test_full_synthetic_recipe_reaches_the_optimum(tmp_path):
    """The official configuration (x in R^100, beta 8e-3, 2000 outer steps) driven by the algorithm's estimate."""
    result = run_recipe(RECIPES / "synthetic.yaml", ["--trainer.default_root_dir", str(tmp_path),
                                                     "--trainer.enable_progress_bar", "false"])
    assert abs(result.metrics["upper_objective"] - 1.0) < 1e-3 and result.metrics["outer_iterations"] == 2000


@pytest.mark.slow
def test_full_shaping_recipe(tmp_path):
    pytest.importorskip("gymnasium")
    result = run_recipe(RECIPES / "shaping.yaml", ["--trainer.default_root_dir", str(tmp_path),
                                                   "--trainer.enable_progress_bar", "false"])
    metrics = result.metrics
    assert metrics["true_return_unshaped"] < 0.05 and metrics["true_return_shaped"] > 0.95 * metrics["optimal_return"]
