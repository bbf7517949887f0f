"""RLHF task on CartPole: config checks, fragment masking, the score term, tiny recipe with a card."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import zoo
from zoo.bilevel_rl.rlhf import PreferenceRLAgent, PreferenceRLConfig, true_preference_reward
from zoo._core.runner import run_recipe
from zoo.hub import LocalHub

pytest.importorskip("gymnasium")
RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "bilevel_rl"


@pytest.mark.parametrize("field, value, message", [
    ("tau", 0.0, "tau must be > 0 and finite, got 0.0"), ("gamma", 1.0, r"gamma must be in \[0, 1\), got 1.0"),
    ("fragment_length", 500, r"fragment_length \(500\) must be <= rollout_length \(128\)"),
    ("hypergradient_weight", -1.0, "hypergradient_weight must be >= 0 and finite, got -1.0"), ("task", "atari", "task must be 'rlhf'"),
])
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        PreferenceRLConfig(**{field: value})


def test_fragments_stop_at_the_end_of_their_episode():
    agent = zoo.create("bilevel_rl_cartpole_rlhf_tiny", fragment_length=4, rollout_length=4, pairs_per_iteration=3)
    observations = torch.randn(4, 2, agent.observation_size)
    actions = torch.zeros(4, 2, dtype=torch.long)
    dones = torch.zeros(4, 2, dtype=torch.bool)
    dones[1, 0] = True  # env 0's episode ends after step 1
    obs, act, alive = agent._fragments(observations, actions, dones)
    assert obs.shape == (2, 3, 4, agent.observation_size) and alive.shape == (2, 3, 4)
    for pair in range(3):
        for side in range(2):
            first = obs[side, pair, 0]
            env = 0 if torch.equal(first, observations[0, 0]) else 1
            expected = [True, True, False, False] if env == 0 else [True] * 4
            assert alive[side, pair].tolist() == expected


def test_true_preference_reward_prefers_upright_centred_states():
    upright = torch.tensor([0.0, 0.0, 0.0, 0.0])
    tilted = torch.tensor([1.0, 0.0, 0.15, 0.0])
    assert true_preference_reward(upright) == 1.0 and true_preference_reward(tilted) < 0.3


def test_score_term_gradient_matches_per_sample_autograd():
    """The reward-loss hypergradient term equals (1/(N tau)) sum_i w_i sum_t [grad r(s_t,a_t) - E_pi grad r(s_t,.)]."""
    agent = zoo.create("bilevel_rl_cartpole_rlhf_tiny", pairs_per_iteration=4, fragment_length=5, reward_batch_size=1,
                       queue_size=1)
    agent.log_dict = lambda *args, **kwargs: None
    torch.manual_seed(0)
    obs = torch.randn(2, 4, 5, agent.observation_size)
    act = torch.randint(0, 2, (2, 4, 5))
    alive = torch.ones(2, 4, 5, dtype=torch.bool)
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0])
    with torch.no_grad():
        fresh = agent._cross_entropy(obs, act, alive, labels)
        pi = agent(obs)
    weights = fresh - (fresh.sum() - fresh) / 3
    params = list(agent.reward_model.parameters())
    expected = [torch.zeros_like(p) for p in params]
    for i in range(4):
        for side in range(2):
            for t in range(5):
                r = agent.reward(obs[side, i, t])
                term = r[act[side, i, t]] - (pi[side, i, t] * r).sum()
                grads = torch.autograd.grad(term, params)
                for e, g in zip(expected, grads):
                    e += weights[i] * g / (4 * agent.config.tau)
    got = torch.autograd.grad(agent.score_term(obs, act, alive, weights), params)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)


def test_score_term_refuses_out_of_range_actions():
    agent = zoo.create("bilevel_rl_cartpole_rlhf_tiny")
    obs = torch.zeros(2, 3, 4, agent.observation_size)
    act = torch.zeros(2, 3, 4, dtype=torch.long)
    act[1, 2, 0] = -1
    alive = torch.ones(2, 3, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"act must lie in \[0, 2\), got -1 at index \(1, 2, 0\)"):
        agent.score_term(obs, act, alive, torch.zeros(3))
    with pytest.raises(ValueError, match=r"weights must be finite, got nan at index 1"):
        agent.score_term(obs, act.clamp(min=0), alive, torch.tensor([0.0, float("nan"), 0.0]))


def test_tiny_recipe_runs_and_pushes_a_card(tmp_path):
    result = run_recipe(RECIPES / "cartpole_rlhf_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    metrics = result.metrics
    assert result.loaded_back_equal is True and metrics["outer_iterations"] == 3
    assert 8 <= metrics["mean_return"] <= 500 and 0 <= metrics["preference_accuracy"] <= 1
    card = (LocalHub().snapshot("paperzoo/bilevel-rl-cartpole-rlhf-tiny") / "README.md").read_text()
    assert f"| mean_return | {metrics['mean_return']:.6g} |" in card and "SoBiRL" in card and "CartPole-v1" in card
    loaded = zoo.from_pretrained("paperzoo/bilevel-rl-cartpole-rlhf-tiny")
    assert isinstance(loaded, PreferenceRLAgent)
    observation = torch.zeros(4)
    torch.testing.assert_close(loaded(observation), result.module(observation), rtol=0, atol=0)
