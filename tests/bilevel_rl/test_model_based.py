"""M-SoBiRL: its estimate converges to the oracle as the inner solves tighten; the synthetic run reaches F* = 1."""

from __future__ import annotations

import pytest
import torch

from zoo.bilevel_rl import InnerState, exact_hypergradient, m_sobirl, model_based_hypergradient, synthetic_problem
from zoo.bilevel_rl.problems import random_problem


def test_estimate_with_exact_inner_solves_equals_oracle(problem):
    mdp, reward_fn, upper_fn, x = problem
    oracle = exact_hypergradient(mdp, reward_fn, upper_fn, x)
    estimate, _ = model_based_hypergradient(mdp, reward_fn, upper_fn, x, sweeps=2000, sweep_tolerance=1e-14,
                                            adjoint_solver="exact")
    torch.testing.assert_close(estimate.gradient, oracle.gradient, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 0.9])
def test_estimate_error_vanishes_as_inner_solves_tighten(gamma):
    """Cold start (V = 0, w = 0) at a fixed x: error after k sweeps and k adjoint steps shrinks to round-off."""
    mdp, reward_fn, upper_fn, x = random_problem(gamma=gamma, seed=11)
    oracle = exact_hypergradient(mdp, reward_fn, upper_fn, x).gradient
    errors = []
    for k in (1, 10, 100, 1000, 10000):  # at gamma = 0.9 the slowest adjoint mode contracts by ~0.5% a step
        estimate, _ = model_based_hypergradient(mdp, reward_fn, upper_fn, x, sweeps=k, sweep_tolerance=0.0,
                                                adjoint_steps=k, adjoint_step_size=0.5)
        errors.append((estimate.gradient - oracle).norm().item())
    # (the first few w-steps may move w away from w* along ill-conditioned modes; the tail must decrease)
    assert errors[2] > errors[3] >= errors[4] and max(errors[:3]) > 10 * errors[3], errors
    assert errors[0] > 1e-2 * oracle.norm().item()  # one step is a poor estimate ...
    assert errors[-1] < 1e-9 * max(1.0, oracle.norm().item())  # ... and the limit is the oracle


def test_warm_started_estimates_track_the_oracle_at_fixed_x():
    """Repeated M-SoBiRL inner updates at the same x (warm starts carried over) converge to the oracle."""
    mdp, reward_fn, upper_fn, x = random_problem(gamma=0.5, seed=12)
    oracle = exact_hypergradient(mdp, reward_fn, upper_fn, x).gradient
    state = InnerState.zeros(mdp)
    for _ in range(300):  # one w-step contracts by at least 1 - 0.5 (1 - gamma)^2 = 0.875 at gamma = 0.5
        estimate, state = model_based_hypergradient(mdp, reward_fn, upper_fn, x, state, sweeps=1, adjoint_steps=1)
    assert (estimate.gradient - oracle).norm().item() < 1e-10


def test_bad_arguments():
    mdp, reward_fn, upper_fn, x = random_problem()
    with pytest.raises(ValueError, match="adjoint_solver must be 'gradient' or 'exact', got 'cg'"):
        model_based_hypergradient(mdp, reward_fn, upper_fn, x, adjoint_solver="cg")
    with pytest.raises(ValueError, match="step_size must be > 0 and finite, got 0.0"):
        m_sobirl(mdp, reward_fn, upper_fn, x, step_size=0.0)


def test_single_loop_converges_on_a_random_problem_at_gamma_half():
    mdp, reward_fn, upper_fn, x = random_problem(gamma=0.5, seed=13)
    result = m_sobirl(mdp, reward_fn, upper_fn, x, iterations=400, step_size=0.1, oracle_every=100)
    exact = exact_hypergradient(mdp, reward_fn, upper_fn, result.x)
    assert exact.gradient.norm().item() < 1e-6  # a stationary point of F
    assert result.history["oracle_error"][-1] < 1e-6 < result.history["oracle_error"][0]
    assert result.objective < result.history["f"][0]


@pytest.mark.parametrize("dimension", [10, 100])
def test_synthetic_problem_reaches_the_optimum(dimension):
    """The official synthetic setup (10 states, 5 actions, gamma 0.5, tau 1, beta 8e-3, 10 sweeps, one w-step),
    started from x ~ N(0, I) and driven by M-SoBiRL's own estimate, reaches F within 1e-3 of F* = 1."""
    problem = synthetic_problem(dimension=dimension, seed=3)
    assert problem.optimum == 1.0
    start = problem.upper_fn(problem.x0, torch.full((10, 5), 0.2, dtype=torch.float64)).item()
    assert start > 3.0  # a real distance to cover (1/2 ||x0||^2 alone)
    result = m_sobirl(problem.mdp, problem.reward_fn, problem.upper_fn, problem.x0, iterations=2000, step_size=8e-3)
    assert abs(result.objective - 1.0) < 1e-3, result.objective
    assert result.history["f"][0] > 3.0 and result.history["hypergradient_norm"][-1] < 1e-2
