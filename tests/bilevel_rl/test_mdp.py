"""TabularMDP validation, soft value iteration, and the gymnasium toy-text tables."""

from __future__ import annotations

import pytest
import torch

from zoo.bilevel_rl import TabularMDP, soft_value_iteration
from zoo.bilevel_rl.mdp import soft_bellman_q


def _uniform(S=3, A=2):
    return torch.full((S, A, S), 1.0 / S, dtype=torch.float64)


def test_bad_inputs_name_the_value():
    P = _uniform()
    bad = P.clone()
    bad[1, 0, 0] += 0.1
    with pytest.raises(ValueError, match=r"rows must sum to 1; row \(1, 0\) sums to 1.1"):
        TabularMDP(bad, gamma=0.5)
    with pytest.raises(ValueError, match="gamma must be in \\[0, 1\\), got 1.0"):
        TabularMDP(P, gamma=1.0)
    with pytest.raises(ValueError, match="gamma must be in \\[0, 1\\), got -0.1"):
        TabularMDP(P, gamma=-0.1)
    with pytest.raises(ValueError, match="tau must be > 0 and finite, got 0.0"):
        TabularMDP(P, gamma=0.5, tau=0.0)
    with pytest.raises(ValueError, match="tau must be > 0 and finite, got -1.0"):
        TabularMDP(P, gamma=0.5, tau=-1.0)
    with pytest.raises(ValueError, match=r"shape \[S, A, S\], got \(3, 2\)"):
        TabularMDP(P[:, :, 0], gamma=0.5)
    with pytest.raises(ValueError, match=r"shape \[S, A, S\], got \(3, 2, 4\)"):
        TabularMDP(torch.full((3, 2, 4), 0.25), gamma=0.5)
    negative = P.clone()
    negative[0, 0] = torch.tensor([1.5, -0.5, 0.0])
    with pytest.raises(ValueError, match="non-negative"):
        TabularMDP(negative, gamma=0.5)
    with pytest.raises(ValueError, match=r"reward must have shape \[S, A\] = \[3, 2\], got \(2, 3\)"):
        TabularMDP(P, gamma=0.5, reward=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="initial_distribution must sum to 1, got 1.5"):
        TabularMDP(P, gamma=0.5, initial_distribution=torch.tensor([0.5, 0.5, 0.5]))
    mdp = TabularMDP(P, gamma=0.5)
    with pytest.raises(ValueError, match=r"reward must have shape \[S, A\] = \[3, 2\]"):
        soft_value_iteration(mdp, torch.zeros(3, 3, dtype=torch.float64))


def test_soft_value_iteration_reaches_the_fixed_point():
    mdp = TabularMDP.random(7, 3, gamma=0.9, tau=0.3, generator=torch.Generator().manual_seed(1))
    reward = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    result = soft_value_iteration(mdp, reward, tolerance=1e-13)
    assert result.converged and result.residual <= 1e-13
    Q = soft_bellman_q(mdp, reward, result.value)
    torch.testing.assert_close(result.value, mdp.tau * torch.logsumexp(Q / mdp.tau, -1), rtol=0, atol=1e-11)
    torch.testing.assert_close(result.policy.sum(-1), torch.ones(7, dtype=torch.float64), rtol=0, atol=1e-14)
    # pi = exp((Q - V)/tau), the soft-greedy policy
    torch.testing.assert_close(result.policy, torch.exp((Q - result.value[:, None]) / mdp.tau), rtol=0, atol=1e-12)
    # A warm start at the solution stops after one sweep; a cold start needs many.
    warm = soft_value_iteration(mdp, reward, result.value, tolerance=1e-12)
    assert warm.iterations == 1 and result.iterations > 100
    # A fixed sweep budget is honoured and reported as not converged.
    short = soft_value_iteration(mdp, reward, tolerance=0.0, max_iterations=10)
    assert short.iterations == 10 and not short.converged


def test_gamma_zero_is_a_softmax_of_the_reward():
    mdp = TabularMDP(torch.full((4, 3, 4), 0.25, dtype=torch.float64), gamma=0.0, tau=2.0)
    reward = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    result = soft_value_iteration(mdp, reward)
    torch.testing.assert_close(result.policy, torch.softmax(reward / 2.0, -1), rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "env_id, states, actions, low, high",
    [("FrozenLake-v1", 16, 4, 0.0, 1 / 3), ("CliffWalking-v1", 48, 4, -100.0, -1.0), ("Taxi-v4", 500, 6, -10.0, 20.0)],
)
def test_from_gymnasium_tables(env_id, states, actions, low, high):
    pytest.importorskip("gymnasium")
    mdp = TabularMDP.from_gymnasium(env_id, gamma=0.9, tau=0.1)
    assert (mdp.num_states, mdp.num_actions) == (states + 1, actions)  # + one absorbing terminal state
    torch.testing.assert_close(mdp.transitions.sum(-1), torch.ones(states + 1, actions, dtype=torch.float64))
    assert mdp.transitions[-1, :, -1].eq(1).all() and mdp.reward[-1].eq(0).all()
    live = mdp.reward[:-1]
    assert live.min().item() >= low - 1e-12 and live.max().item() <= high + 1e-12
    assert abs(mdp.initial_distribution.sum().item() - 1) < 1e-12 and mdp.initial_distribution[-1] == 0
    result = soft_value_iteration(mdp, mdp.reward, tolerance=1e-9)
    assert result.converged


def test_frozenlake_values_match_a_direct_computation():
    """FrozenLake 4x4: the goal reward reaches the start only through slippery moves; check against hand facts."""
    pytest.importorskip("gymnasium")
    mdp = TabularMDP.from_gymnasium("FrozenLake-v1", gamma=0.9, tau=1.0)
    # From state 14 (left of the goal 15), action "right" (2) reaches the goal with probability 1/3.
    assert mdp.reward[14, 2].item() == pytest.approx(1 / 3, abs=1e-12)
    # Holes (5, 7, 11, 12) and the goal (15) are terminal: every transition into them goes to the absorbing state.
    for s in (5, 7, 11, 12, 15):
        assert mdp.transitions[:, :, s].sum().item() == 0.0

