"""Shared random bilevel problems for the bilevel RL tests (float64, seeded)."""

from __future__ import annotations

import pytest
import torch

from zoo.bilevel_rl import TabularMDP


def random_problem(num_states=8, num_actions=4, dimension=6, gamma=0.9, tau=0.5, seed=0):
    """A random MDP with a nonlinear reward r_x = Phi x + 0.1 tanh(Phi x)^2 and f = 1/2||pi - target||^2 + 0.05||x||^2."""
    generator = torch.Generator().manual_seed(seed)
    mdp = TabularMDP.random(num_states, num_actions, gamma=gamma, tau=tau, generator=generator)
    features = torch.randn(num_states, num_actions, dimension, generator=generator, dtype=torch.float64)
    target = torch.softmax(torch.randn(num_states, num_actions, generator=generator, dtype=torch.float64), -1)
    x = torch.randn(dimension, generator=generator, dtype=torch.float64)

    def reward_fn(x):
        linear = features @ x
        return linear + 0.1 * torch.tanh(linear) ** 2

    def upper_fn(x, pi):
        return 0.5 * ((pi - target) ** 2).sum() + 0.05 * (x * x).sum()

    return mdp, reward_fn, upper_fn, x


@pytest.fixture
def problem():
    return random_problem()


@pytest.fixture(autouse=True)
def single_thread():
    """Tabular problems are tiny: intra-op threads only add contention on a shared CPU (10x slower measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
