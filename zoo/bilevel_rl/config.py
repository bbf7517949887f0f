"""Config and presets of ``BilevelRLAgent`` (arXiv:2405.19697, M-SoBiRL)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from zoo import register_model

__all__ = ["BilevelRLConfig", "TASKS"]

TASKS = ("synthetic", "shaping")
ADJOINT_SOLVERS = ("gradient", "exact")


@dataclass
class BilevelRLConfig:
    task: str = "synthetic"  # "synthetic" (official random MDP, f = ||x||^2/2 + ||pi||^2/2) | "shaping" (gymnasium grid)
    num_states: int = 10  # |S| of the synthetic random MDP
    num_actions: int = 5  # |A| of the synthetic random MDP
    reward_dimension: int = 100  # d = size of x in r_x(s,a) = c(s,a) x^T M x (synthetic)
    env_id: str = "FrozenLake-v1"  # gymnasium toy-text environment (task "shaping")
    gamma: float = 0.5  # lower-level discount (official synthetic: 0.5)
    tau: float = 1.0  # entropy temperature (official synthetic: effectively 1)
    true_gamma: float = 0.99  # shaping: discount of the true return the upper level maximises
    shaping_penalty: float = 1e-3  # shaping: weight of ||x||^2 in the upper level
    seed: int = 3  # seed of the synthetic instance and of x0 ~ N(0, I) (official: 3)
    sweeps: int = 10  # soft-VI sweeps per outer step, warm-started (official: 10)
    sweep_tolerance: float = 1e-6  # early stop of the sweeps, sup norm (official: 1e-6)
    adjoint_solver: str = "gradient"  # "gradient" (official w-steps) | "exact" (linear solve)
    adjoint_steps: int = 1  # gradient steps on 1/2 ||A w - b||^2 per outer step (official: 1)
    adjoint_step_size: float = 0.5  # zeta (official: 0.5)
    learning_rate: float = 8e-3  # beta, the upper-level SGD step (official: 8e-3)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        for name in ("num_states", "num_actions", "reward_dimension"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gamma", "true_gamma"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not (self.tau > 0 and math.isfinite(self.tau)):
            raise ValueError(f"tau must be > 0 and finite, got {self.tau}")
        # ``not (v >= 0)`` rather than ``v < 0``: nan fails every comparison, so a plain sign check lets it through
        if not (self.shaping_penalty >= 0 and math.isfinite(self.shaping_penalty)):
            raise ValueError(f"shaping_penalty must be >= 0 and finite, got {self.shaping_penalty}")
        if self.sweeps < 1 or self.adjoint_steps < 0:
            raise ValueError(f"sweeps must be >= 1 and adjoint_steps >= 0, got {self.sweeps}, {self.adjoint_steps}")
        if not (self.sweep_tolerance >= 0 and math.isfinite(self.sweep_tolerance)):
            raise ValueError(f"sweep_tolerance must be >= 0 and finite, got {self.sweep_tolerance}")
        if self.adjoint_solver not in ADJOINT_SOLVERS:
            raise ValueError(f"adjoint_solver must be one of {ADJOINT_SOLVERS}, got {self.adjoint_solver!r}")
        for name in ("adjoint_step_size", "learning_rate"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be > 0 and finite, got {getattr(self, name)}")


@register_model("bilevel_rl_synthetic")
def bilevel_rl_synthetic() -> BilevelRLConfig:
    """The official synthetic run: 10 states, 5 actions, gamma 0.5, tau 1, x in R^100, beta 8e-3 [code]."""
    return BilevelRLConfig()


@register_model("bilevel_rl_synthetic_tiny")
def bilevel_rl_synthetic_tiny() -> BilevelRLConfig:
    """The synthetic problem with x in R^10 and a larger step: trains in about a second."""
    return BilevelRLConfig(reward_dimension=10, learning_rate=0.05)


@register_model("bilevel_rl_shaping")
def bilevel_rl_shaping() -> BilevelRLConfig:
    """Reward shaping of slippery FrozenLake 4x4 for a myopic learner (gamma 0.5, tau 0.02)."""
    return BilevelRLConfig(task="shaping", gamma=0.5, tau=0.02, adjoint_solver="exact", sweeps=50,
                           sweep_tolerance=1e-10, learning_rate=0.5)


@register_model("bilevel_rl_shaping_tiny")
def bilevel_rl_shaping_tiny() -> BilevelRLConfig:
    """The shaping task with fewer sweeps (the recipe runs fewer outer steps)."""
    return BilevelRLConfig(task="shaping", gamma=0.5, tau=0.02, adjoint_solver="exact", sweeps=20,
                           sweep_tolerance=1e-10, learning_rate=0.5)
