"""Bilevel RL problems: the official synthetic random MDP and a reward-shaping task on gymnasium grids.

Synthetic problem [code: ``SyntheticProblem/RanMDP.py``, ``test_MSoBiRL.py`` of UCAS-YanYang/SoBiRL]:
|S| = 10, |A| = 5, gamma = 0.5, tau = 1 (the official ``--tau`` flag never reaches the MDP class), x in R^100
drawn from N(0, I), reward ``r_x(s,a) = c(s,a) x^T M x`` with c a product of two U(0,1) draws and M an N(0,1)
matrix, and upper level ``f(x, pi) = 1/2 ||x||^2 + 1/2 ||pi||_F^2``, whose minimum is F* = |S| / (2 |A|) = 1
at x = 0 (zero reward, uniform policy). Our random streams differ from the official ones (same distributions).

Reward shaping [our task, in the spirit of HPGD's configurable grid, arXiv:2406.01575]: a myopic, entropy-
regularised learner (small gamma) maximises ``R_env + x`` on a sparse-reward grid (FrozenLake); the upper level
chooses the shaping table x to maximise the *true* discounted return of the learner's policy under R_env with
a far-sighted discount, minus a penalty on ||x||^2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from zoo.bilevel_rl.checks import check_policy
from zoo.bilevel_rl.mdp import TabularMDP

__all__ = ["BilevelProblem", "policy_return", "random_problem", "shaping_problem", "synthetic_instance", "synthetic_problem"]


@dataclass
class BilevelProblem:
    """An MDP with ``reward_fn(x) -> [S, A]``, ``upper_fn(x, pi) -> scalar``, a start ``x0`` and the optimum if known."""

    mdp: TabularMDP
    reward_fn: Callable[[torch.Tensor], torch.Tensor]
    upper_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    x0: torch.Tensor
    optimum: float | None = None
    name: str = "problem"


def synthetic_instance(
    num_states: int = 10, num_actions: int = 5, dimension: int = 100, gamma: float = 0.5, tau: float = 1.0, seed: int = 3
) -> tuple[TabularMDP, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mdp, c [S, A], M [d, d], x0 [d])`` of the synthetic problem, drawn from ``torch.Generator(seed)``, float64."""
    if dimension < 1:
        raise ValueError(f"dimension must be >= 1, got {dimension}")
    generator = torch.Generator().manual_seed(seed)
    mdp = TabularMDP.random(num_states, num_actions, gamma, tau, generator=generator)
    scale = torch.rand(num_states, num_actions, generator=generator, dtype=torch.float64) * torch.rand(
        num_states, num_actions, generator=generator, dtype=torch.float64
    )  # c(s, a): product of two U(0, 1) draws [code]
    matrix = torch.randn(dimension, dimension, generator=generator, dtype=torch.float64)  # M [code]
    x0 = torch.randn(dimension, generator=generator, dtype=torch.float64)  # x ~ N(0, I) [code]
    return mdp, scale, matrix, x0


def synthetic_problem(
    num_states: int = 10, num_actions: int = 5, dimension: int = 100, gamma: float = 0.5, tau: float = 1.0, seed: int = 3
) -> BilevelProblem:
    """The official synthetic problem (module docstring), optimum F* = |S| / (2 |A|) at x = 0."""
    mdp, scale, matrix, x0 = synthetic_instance(num_states, num_actions, dimension, gamma, tau, seed)

    def reward_fn(x: torch.Tensor) -> torch.Tensor:
        return scale * (x @ matrix @ x)  # r_x(s,a) = c(s,a) x^T M x

    def upper_fn(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x * x).sum() + 0.5 * (pi * pi).sum()

    return BilevelProblem(mdp, reward_fn, upper_fn, x0, optimum=num_states / (2 * num_actions), name="synthetic")


def policy_return(mdp: TabularMDP, reward: torch.Tensor, policy: torch.Tensor, gamma: float) -> torch.Tensor:
    """``rho^T (I - gamma P_pi)^-1 r_pi``: the discounted return of ``policy`` (differentiable in it)."""
    check_policy(policy, mdp.num_states, mdp.num_actions)
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must be in [0, 1), got {gamma}")
    identity = torch.eye(mdp.num_states, dtype=policy.dtype)
    r_pi = (policy * reward).sum(-1)
    return mdp.initial_distribution @ torch.linalg.solve(identity - gamma * mdp.policy_transitions(policy), r_pi)


def shaping_problem(
    env_id: str = "FrozenLake-v1",
    *,
    learner_gamma: float = 0.5,
    tau: float = 0.02,
    true_gamma: float = 0.99,
    penalty: float = 1e-3,
    **make_kwargs,
) -> BilevelProblem:
    """Reward shaping on a gymnasium toy-text grid (module docstring); x is an ``[S, A]`` table, x0 = 0.

    Upper level ``f(x, pi) = -return_{true_gamma}(pi; R_env) + penalty * ||x||^2``; lower level: the soft-optimal
    policy of ``R_env + x`` at discount ``learner_gamma`` and temperature ``tau``.
    """
    mdp = TabularMDP.from_gymnasium(env_id, gamma=learner_gamma, tau=tau, **make_kwargs)
    base = mdp.reward
    S, A = mdp.num_states, mdp.num_actions

    def reward_fn(x: torch.Tensor) -> torch.Tensor:
        return base + x.reshape(S, A)

    def upper_fn(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        return -policy_return(mdp, base, pi, true_gamma) + penalty * (x * x).sum()

    return BilevelProblem(mdp, reward_fn, upper_fn, torch.zeros(S * A, dtype=torch.float64), None, f"shaping-{env_id}")


def random_problem(num_states: int = 8, num_actions: int = 4, dimension: int = 6, gamma: float = 0.9, tau: float = 0.5,
                   seed: int = 0):
    """A random test problem (our choice, for tests and benchmarks): reward r_x = Phi x + 0.1 tanh(Phi x)^2 (nonlinear
    in x) and upper objective f = 1/2 ||pi - target||^2 + 0.05 ||x||^2. Returns ``(mdp, reward_fn, upper_fn, x0)``."""
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
