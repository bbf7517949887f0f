"""The exact hypergradient oracle against independent computations (float64)."""

from __future__ import annotations

import pytest
import torch

from zoo.bilevel_rl import (
    TabularMDP,
    exact_hypergradient,
    finite_difference_hypergradient,
    shaping_problem,
    unrolled_hypergradient,
    upper_level_objective,
)
from zoo.bilevel_rl.problems import random_problem

CASES = [dict(num_states=6, num_actions=3, gamma=0.5, seed=1), dict(num_states=8, num_actions=4, gamma=0.9, seed=2),
         dict(num_states=10, num_actions=5, gamma=0.95, tau=2.0, seed=3), dict(num_states=7, num_actions=2, gamma=0.0, seed=4)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"S{c['num_states']}A{c['num_actions']}g{c['gamma']}")
def test_direct_form_equals_adjoint_form(case):
    mdp, reward_fn, upper_fn, x = random_problem(**case)
    adjoint = exact_hypergradient(mdp, reward_fn, upper_fn, x, form="adjoint")
    direct = exact_hypergradient(mdp, reward_fn, upper_fn, x, form="direct")
    torch.testing.assert_close(adjoint.gradient, direct.gradient, rtol=0, atol=1e-12)
    assert adjoint.gradient.norm() > 1e-2  # not trivially zero


@pytest.mark.parametrize("case", CASES[:3], ids=lambda c: f"S{c['num_states']}A{c['num_actions']}g{c['gamma']}")
def test_oracle_matches_central_differences(case):
    mdp, reward_fn, upper_fn, x = random_problem(**case)
    oracle = exact_hypergradient(mdp, reward_fn, upper_fn, x).gradient
    numeric = finite_difference_hypergradient(mdp, reward_fn, upper_fn, x, step=1e-6, tolerance=1e-13)
    torch.testing.assert_close(oracle, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"S{c['num_states']}A{c['num_actions']}g{c['gamma']}")
def test_oracle_matches_unrolled_autograd(case):
    mdp, reward_fn, upper_fn, x = random_problem(**case)
    oracle = exact_hypergradient(mdp, reward_fn, upper_fn, x).gradient
    sweeps = 1000 if mdp.gamma >= 0.95 else 200
    unrolled = unrolled_hypergradient(mdp, reward_fn, upper_fn, x, sweeps).gradient
    torch.testing.assert_close(unrolled, oracle, rtol=0, atol=1e-10)
    if mdp.gamma >= 0.5:  # and the unrolled error is real (not a copy of the oracle) at few sweeps
        assert (unrolled_hypergradient(mdp, reward_fn, upper_fn, x, 5).gradient - oracle).abs().max() > 1e-6


def test_taylor_remainder_has_slope_two():
    """F(x + t v) - F(x) - t <grad F, v> = O(t^2): log-log slope about 2 over t in [1e-4, 1e-2]."""
    mdp, reward_fn, upper_fn, x = random_problem(gamma=0.9, seed=5)
    gradient = exact_hypergradient(mdp, reward_fn, upper_fn, x).gradient
    direction = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    F0 = upper_level_objective(mdp, reward_fn, upper_fn, x, tolerance=1e-14)
    steps = torch.logspace(-4, -2, 5, dtype=torch.float64)
    remainders = torch.tensor([
        abs(upper_level_objective(mdp, reward_fn, upper_fn, x + t * direction, tolerance=1e-14) - F0 - t * (gradient @ direction))
        for t in steps.tolist()
    ])
    slopes = torch.diff(remainders.log()) / torch.diff(steps.log())
    assert slopes.min() > 1.8 and slopes.max() < 2.2, slopes
    # a wrong gradient gives slope 1
    wrong = gradient + 0.1 * direction / direction.norm()
    bad = torch.tensor([abs(upper_level_objective(mdp, reward_fn, upper_fn, x + t * direction, tolerance=1e-14) - F0
                            - t * (wrong @ direction)) for t in steps.tolist()])
    assert (torch.diff(bad.log()) / torch.diff(steps.log())).mean() < 1.2


def test_tabular_reward_closed_form_at_gamma_zero():
    """gamma = 0, r_x = x (a table): pi = softmax(x/tau), so dF/dx = J_softmax^T g, an independent closed form."""
    S, A, tau = 4, 3, 0.7
    mdp = TabularMDP(torch.full((S, A, S), 1 / S, dtype=torch.float64), gamma=0.0, tau=tau)
    x = torch.randn(S, A, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    weights = torch.randn(S, A, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    oracle = exact_hypergradient(mdp, lambda x: x, lambda x, pi: (weights * pi).sum(), x).gradient
    pi = torch.softmax(x / tau, -1)
    closed = pi * (weights - (pi * weights).sum(-1, keepdim=True)) / tau  # softmax Jacobian-vector product
    torch.testing.assert_close(oracle, closed, rtol=0, atol=1e-14)


def test_frozenlake_oracle_matches_differences_and_unrolled():
    pytest.importorskip("gymnasium")
    problem = shaping_problem("FrozenLake-v1", learner_gamma=0.9, tau=0.1)
    x = 0.1 * torch.randn(problem.x0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    oracle = exact_hypergradient(problem.mdp, problem.reward_fn, problem.upper_fn, x)
    direct = exact_hypergradient(problem.mdp, problem.reward_fn, problem.upper_fn, x, form="direct")
    torch.testing.assert_close(oracle.gradient, direct.gradient, rtol=0, atol=1e-12)
    unrolled = unrolled_hypergradient(problem.mdp, problem.reward_fn, problem.upper_fn, x, 400)
    torch.testing.assert_close(unrolled.gradient, oracle.gradient, rtol=0, atol=1e-10)
    # central differences on a few coordinates (the full 68 take longer than needed)
    for index in (0, 9, 25, 57):
        shift = torch.zeros_like(x)
        shift[index] = 1e-6
        plus = upper_level_objective(problem.mdp, problem.reward_fn, problem.upper_fn, x + shift, tolerance=1e-14)
        minus = upper_level_objective(problem.mdp, problem.reward_fn, problem.upper_fn, x - shift, tolerance=1e-14)
        assert (plus - minus) / 2e-6 == pytest.approx(oracle.gradient[index].item(), rel=1e-5, abs=1e-9)


def test_bad_form_and_scalar_checks(problem):
    mdp, reward_fn, upper_fn, x = problem
    with pytest.raises(ValueError, match="form must be 'adjoint' or 'direct', got 'hessian'"):
        exact_hypergradient(mdp, reward_fn, upper_fn, x, form="hessian")
    with pytest.raises(ValueError, match=r"upper_fn must return a scalar, got shape \(8, 4\)"):
        exact_hypergradient(mdp, reward_fn, lambda x, pi: pi, x)
    with pytest.raises(ValueError, match="sweeps must be >= 1, got 0"):
        unrolled_hypergradient(mdp, reward_fn, upper_fn, x, 0)
