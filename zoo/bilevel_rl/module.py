"""``BilevelRLAgent``: a ZooModule whose upper-level variable x is trained by the M-SoBiRL hypergradient.

Paper: Yang, Gao, Yuan, "Bilevel Reinforcement Learning via the Development of Hyper-gradient without
Lower-Level Convexity", AISTATS 2025, arXiv:2405.19697 (algorithm M-SoBiRL; loop details from the official
code, see ``zoo.bilevel_rl.model_based``).

The reward is a parametrised ``nn.Module`` (``reward()`` -> ``[S, A]``); its parameters are the upper-level
variable x. Each ``training_step`` is one M-SoBiRL outer iteration: warm-started soft-VI sweeps give pi, one
(or more) warm-started adjoint steps give w, and the step returns the *surrogate*

    L = f(x, pi) + sum_{s,a} r_x(s,a) c(s,a),    c = pi (g - w) / tau  (pi, g, w held constant)

whose gradient in x is exactly the M-SoBiRL hypergradient estimate df/dx + J^T c [our formulation]. So the
optimizer (SGD with lr beta, as in the official loop) and any reward network work unchanged. The warm-start
state (V, w) lives in buffers and is saved with the weights.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo._core.module import ZooModule
from zoo.bilevel_rl.config import BilevelRLConfig
from zoo.bilevel_rl.hypergradient import (
    Hypergradient,
    adjoint_rhs,
    adjoint_system,
    exact_hypergradient,
    reward_cotangent,
    upper_level_objective,
)
from zoo.bilevel_rl.mdp import TabularMDP, soft_value_iteration
from zoo.bilevel_rl.problems import policy_return, shaping_problem, synthetic_instance

__all__ = ["BilevelRLAgent", "QuadraticFormReward", "TabularShapingReward"]


class QuadraticFormReward(nn.Module):
    """``r_x(s,a) = c(s,a) x^T M x`` with parameter x ``[d]`` and fixed buffers c ``[S, A]``, M ``[d, d]`` [code]."""

    def __init__(self, scale: torch.Tensor, matrix: torch.Tensor, x0: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.clone())
        self.register_buffer("matrix", matrix.clone())
        self.x = nn.Parameter(x0.clone())

    def forward(self, x: torch.Tensor | None = None) -> torch.Tensor:
        x = self.x if x is None else x
        return self.scale * (x @ self.matrix @ x)


class TabularShapingReward(nn.Module):
    """``r_x(s,a) = R_env(s,a) + x(s,a)`` with the shaping table x ``[S, A]`` as parameter (initialised to 0)."""

    def __init__(self, base: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("base", base.clone())
        self.x = nn.Parameter(torch.zeros_like(base))

    def forward(self, x: torch.Tensor | None = None) -> torch.Tensor:
        x = self.x if x is None else x
        return self.base + x.reshape(self.base.shape)


class BilevelRLAgent(ZooModule):
    """M-SoBiRL agent on a tabular entropy-regularised MDP (see the module docstring).

    Example:
        >>> agent = BilevelRLAgent(BilevelRLConfig(reward_dimension=4))
        >>> agent.reward().shape
        torch.Size([10, 5])
    """
    single_process_reason = "each step solves the whole MDP (soft value iteration and the adjoint system); there is no batch to split"

    config_class = BilevelRLConfig
    card_template = "bilevel_rl"

    def __init__(self, config: BilevelRLConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        if c.task == "synthetic":
            mdp, scale, matrix, x0 = synthetic_instance(c.num_states, c.num_actions, c.reward_dimension, c.gamma,
                                                        c.tau, c.seed)
            self.reward = QuadraticFormReward(scale, matrix, x0)
            self.optimum = c.num_states / (2 * c.num_actions)  # F* at x = 0, uniform policy
        else:
            mdp = shaping_problem(c.env_id, learner_gamma=c.gamma, tau=c.tau, true_gamma=c.true_gamma,
                                  penalty=c.shaping_penalty).mdp
            self.reward = TabularShapingReward(mdp.reward)
            self.optimum = None
        self.register_buffer("transitions", mdp.transitions.clone())
        self.register_buffer("initial_distribution", mdp.initial_distribution.clone())
        self.register_buffer("value", torch.zeros(mdp.num_states, dtype=torch.float64))  # warm-start V
        self.register_buffer("adjoint", torch.zeros(mdp.num_states, dtype=torch.float64))  # warm-start w
        self._mdp: TabularMDP | None = None

    # -- problem ---------------------------------------------------------------------------------------
    @property
    def mdp(self) -> TabularMDP:
        """The lower-level MDP (built from the buffers once, after loading if needed)."""
        if self._mdp is None or self._mdp.transitions is not self.transitions:
            self._mdp = TabularMDP(self.transitions, self.config.gamma, self.config.tau,
                                   initial_distribution=self.initial_distribution, name=self.config.task)
        return self._mdp

    def upper_objective(self, x: torch.Tensor, policy: torch.Tensor) -> torch.Tensor:
        """``f(x, pi)``: synthetic ``1/2 ||x||^2 + 1/2 ||pi||_F^2``; shaping ``-return(pi) + penalty ||x||^2``."""
        if self.config.task == "synthetic":
            return 0.5 * (x * x).sum() + 0.5 * (policy * policy).sum()
        true_return = policy_return(self.mdp, self.reward.base, policy, self.config.true_gamma)
        return -true_return + self.config.shaping_penalty * (x * x).sum()

    def forward(self) -> torch.Tensor:
        """The learner's current soft-optimal policy ``[S, A]`` under ``r_x`` (solved to 1e-12)."""
        with torch.no_grad():
            return soft_value_iteration(self.mdp, self.reward(), tolerance=1e-12).policy

    # -- training ----------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        c = self.config
        mdp = self.mdp
        with torch.no_grad():
            solution = soft_value_iteration(mdp, self.reward(), self.value, tolerance=c.sweep_tolerance,
                                            max_iterations=c.sweeps)
        pi = solution.policy.clone().requires_grad_(True)
        f = self.upper_objective(self.reward.x, pi)
        (grad_pi,) = torch.autograd.grad(f, pi, retain_graph=True)
        pi = pi.detach()
        with torch.no_grad():
            A, b = adjoint_system(mdp, pi), adjoint_rhs(mdp, pi, grad_pi)
            if c.adjoint_solver == "exact":
                w = torch.linalg.solve(A, b)
            else:
                w, normal, projected = self.adjoint.clone(), A.T @ A, A.T @ b
                for _ in range(c.adjoint_steps):
                    w = w - c.adjoint_step_size * (normal @ w - projected)
            cotangent = reward_cotangent(mdp, pi, grad_pi, w)
            self.value.copy_(solution.value)
            self.adjoint.copy_(w)
        surrogate = f + (self.reward() * cotangent).sum()  # d/dx = df/dx + J^T c, the M-SoBiRL estimate
        self.log("f", f.detach(), prog_bar=True)
        return surrogate

    def on_before_optimizer_step(self, optimizer) -> None:
        norm = torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in self.parameters() if p.grad is not None))
        self.log("hypergradient_norm", norm, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.config.learning_rate)

    # -- evaluation ----------------------------------------------------------------------------------------
    def _functional(self):
        def reward_fn(x: torch.Tensor) -> torch.Tensor:
            return self.reward(x)

        return reward_fn, self.upper_objective

    def exact_objective(self) -> float:
        """``F(x) = f(x, pi*_x)`` with the lower level solved to 1e-12."""
        reward_fn, upper_fn = self._functional()
        return upper_level_objective(self.mdp, reward_fn, upper_fn, self.reward.x.detach())

    def exact_hypergradient(self) -> Hypergradient:
        """The oracle hypergradient at the current x (implicit differentiation, a linear solve)."""
        reward_fn, upper_fn = self._functional()
        return exact_hypergradient(self.mdp, reward_fn, upper_fn, self.reward.x.detach())

    def true_return(self, x: torch.Tensor | None = None) -> float:
        """Shaping: discounted environment return (``true_gamma``) of the learner's soft-optimal policy for ``r_x``."""
        if self.config.task != "shaping":
            raise ValueError(f"true_return is defined for task 'shaping', not {self.config.task!r}")
        with torch.no_grad():
            x = self.reward.x if x is None else x
            policy = soft_value_iteration(self.mdp, self.reward(x), tolerance=1e-12).policy
            return float(policy_return(self.mdp, self.reward.base, policy, self.config.true_gamma))
