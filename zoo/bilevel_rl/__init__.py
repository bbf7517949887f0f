"""Bilevel RL with the fully first-order hypergradient (Yang, Gao, Yuan; AISTATS 2025; arXiv:2405.19697).

- ``TabularMDP``, ``soft_value_iteration``: the entropy-regularised lower level.
- ``exact_hypergradient`` (implicit differentiation, the oracle), ``unrolled_hypergradient`` (autograd through
  sweeps, the usual baseline), ``finite_difference_hypergradient``.
- ``m_sobirl`` / ``model_based_hypergradient`` (model-based), ``sobirl`` / ``stoc_sobirl`` /
  ``model_free_hypergradient`` (from sampled fragments; ``estimator="official"`` or ``"corrected"``).
- ``BilevelRLAgent``: the ZooModule; presets ``bilevel_rl_synthetic[_tiny]``, ``bilevel_rl_shaping[_tiny]``.
- ``PreferenceRLAgent``: RLHF on CartPole (neural policy, reward model from preferences, SoBiRL hypergradient
  term); presets ``bilevel_rl_cartpole_rlhf[_tiny]``.
"""

from zoo.bilevel_rl.config import BilevelRLConfig
from zoo.bilevel_rl.data import OuterSteps
from zoo.bilevel_rl.hypergradient import (
    Hypergradient,
    exact_hypergradient,
    finite_difference_hypergradient,
    unrolled_hypergradient,
    upper_level_objective,
)
from zoo.bilevel_rl.mdp import SoftValueResult, TabularMDP, soft_value_iteration
from zoo.bilevel_rl.model_based import BilevelResult, InnerState, m_sobirl, model_based_hypergradient
from zoo.bilevel_rl.model_free import (
    fragment_loss,
    fragment_objective,
    model_free_hypergradient,
    sample_fragments,
    sobirl,
    stoc_sobirl,
)
from zoo.bilevel_rl.module import BilevelRLAgent, QuadraticFormReward, TabularShapingReward
from zoo.bilevel_rl.rlhf import PreferenceRLAgent, PreferenceRLConfig
from zoo.bilevel_rl.problems import BilevelProblem, policy_return, shaping_problem, synthetic_problem

__all__ = [
    "BilevelProblem",
    "BilevelRLAgent",
    "BilevelRLConfig",
    "BilevelResult",
    "Hypergradient",
    "InnerState",
    "OuterSteps",
    "PreferenceRLAgent",
    "PreferenceRLConfig",
    "QuadraticFormReward",
    "SoftValueResult",
    "TabularMDP",
    "TabularShapingReward",
    "exact_hypergradient",
    "finite_difference_hypergradient",
    "fragment_loss",
    "fragment_objective",
    "m_sobirl",
    "model_based_hypergradient",
    "model_free_hypergradient",
    "policy_return",
    "sample_fragments",
    "shaping_problem",
    "sobirl",
    "soft_value_iteration",
    "stoc_sobirl",
    "synthetic_problem",
    "unrolled_hypergradient",
    "upper_level_objective",
]
