"""Model-free SoBiRL estimators against the exact oracle: unbiased at gamma = 0, official bias at gamma > 0 measured,
corrected estimator unbiased; SoBiRL and Stoc-SoBiRL outer loops decrease the exact objective."""

from __future__ import annotations

import pytest
import torch

from zoo.bilevel_rl import (
    TabularMDP,
    exact_hypergradient,
    fragment_loss,
    fragment_objective,
    m_sobirl,
    model_free_hypergradient,
    sample_fragments,
    sobirl,
    stoc_sobirl,
)

HORIZON = 4


def fragment_problem(gamma, seed=0, penalty=0.0):
    """6 states, 3 actions, tau 0.7; reward Phi x; per-step upper utility tanh(U x); f = E[sum_t u] + penalty ||x||^2."""
    generator = torch.Generator().manual_seed(seed)
    mdp = TabularMDP.random(6, 3, gamma=gamma, tau=0.7, generator=generator)
    features = torch.randn(6, 3, 4, generator=generator, dtype=torch.float64)
    utility_weights = torch.randn(6, 3, 4, generator=generator, dtype=torch.float64)
    x = torch.randn(4, generator=generator, dtype=torch.float64)

    def reward_fn(x):
        return features @ x

    def utility_fn(x):
        return torch.tanh(utility_weights @ x)

    exact_upper = fragment_objective(mdp, utility_fn, HORIZON)
    sampled = fragment_loss(utility_fn)

    def upper_fn(x, pi):
        return exact_upper(x, pi) + penalty * (x * x).sum()

    def loss_fn(x, states, actions):
        return sampled(x, states, actions) + penalty * (x * x).sum()

    return mdp, reward_fn, upper_fn, loss_fn, x


def repeated_estimates(gamma, estimator, repeats, fragments, seed=1):
    mdp, reward_fn, upper_fn, loss_fn, x = fragment_problem(gamma)
    oracle = exact_hypergradient(mdp, reward_fn, upper_fn, x)
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    for _ in range(repeats):
        states, actions = sample_fragments(mdp, oracle.policy, fragments, HORIZON, generator=generator)
        estimates.append(model_free_hypergradient(mdp, reward_fn, loss_fn, x, oracle.policy, states, actions,
                                                  estimator=estimator, generator=generator))
    estimates = torch.stack(estimates)
    mean, standard_error = estimates.mean(0), estimates.std(0) / repeats ** 0.5
    return oracle.gradient, mean, standard_error


def test_fragment_objective_matches_monte_carlo():
    mdp, reward_fn, upper_fn, loss_fn, x = fragment_problem(0.5)
    policy = exact_hypergradient(mdp, reward_fn, upper_fn, x).policy
    states, actions = sample_fragments(mdp, policy, 200_000, HORIZON, generator=torch.Generator().manual_seed(0))
    losses = loss_fn(x, states, actions)
    exact = upper_fn(x, policy).item()
    assert abs(losses.mean().item() - exact) < 4 * losses.std().item() / len(losses) ** 0.5


@pytest.mark.parametrize("estimator", ["official", "corrected"])
def test_unbiased_at_gamma_zero(estimator):
    """|z| < 3 per component over 400 independent estimates, and a standard error under 5% of the oracle's norm."""
    oracle, mean, standard_error = repeated_estimates(0.0, estimator, repeats=400, fragments=100)
    z = (mean - oracle) / standard_error
    assert z.abs().max() < 3, z
    assert standard_error.max() < 0.05 * oracle.norm(), (standard_error, oracle.norm())


def test_official_estimator_is_biased_at_gamma_half_and_corrected_is_not():
    oracle, official, official_se = repeated_estimates(0.5, "official", repeats=300, fragments=100)
    z_official = (official - oracle) / official_se
    relative_bias = ((official - oracle).norm() / oracle.norm()).item()
    assert z_official.abs().max() > 6 and relative_bias > 0.05, (z_official, relative_bias)  # measured: about 0.17
    oracle, corrected, corrected_se = repeated_estimates(0.5, "corrected", repeats=300, fragments=100)
    z_corrected = (corrected - oracle) / corrected_se
    assert z_corrected.abs().max() < 3.5, z_corrected
    assert corrected_se.max() < 0.05 * oracle.norm()


def test_bad_arguments():
    mdp, reward_fn, upper_fn, loss_fn, x = fragment_problem(0.5)
    policy = torch.full((6, 3), 1 / 3, dtype=torch.float64)
    states, actions = sample_fragments(mdp, policy, 1, HORIZON)
    with pytest.raises(ValueError, match="baseline=True needs at least 2 fragments, got 1"):
        model_free_hypergradient(mdp, reward_fn, loss_fn, x, policy, states, actions)
    states, actions = sample_fragments(mdp, policy, 3, HORIZON)
    with pytest.raises(ValueError, match="estimator must be one of .*, got 'reinforce'"):
        model_free_hypergradient(mdp, reward_fn, loss_fn, x, policy, states, actions, estimator="reinforce")
    with pytest.raises(ValueError, match="lower_level must be 'model' or 'samples', got 'sac'"):
        sobirl(mdp, reward_fn, loss_fn, x, lower_level="sac")
    with pytest.raises(ValueError, match="num_fragments and horizon must be >= 1, got 0, 4"):
        sample_fragments(mdp, policy, 0, HORIZON)


def test_sobirl_and_stoc_sobirl_decrease_the_exact_objective():
    mdp, reward_fn, upper_fn, loss_fn, x = fragment_problem(0.5, penalty=0.1)
    x0 = torch.zeros_like(x)
    reference = m_sobirl(mdp, reward_fn, upper_fn, x0, iterations=300, step_size=0.2, adjoint_solver="exact", sweeps=30)
    start = upper_fn(x0, torch.full((6, 3), 1 / 3, dtype=torch.float64)).item()
    full = sobirl(mdp, reward_fn, loss_fn, x0, iterations=100, step_size=0.2, fragments=128, horizon=HORIZON,
                  upper_fn=upper_fn, seed=0)
    stochastic = stoc_sobirl(mdp, reward_fn, loss_fn, x0, iterations=150, step_size=0.2, batch_size=16,
                             horizon=HORIZON, upper_fn=upper_fn, seed=0)
    gap_start = start - reference.objective  # about 2.5
    assert gap_start > 1.0
    assert full.objective - reference.objective < 0.05 * gap_start, (full.objective, reference.objective)
    assert stochastic.objective - reference.objective < 0.2 * gap_start, (stochastic.objective, reference.objective)
