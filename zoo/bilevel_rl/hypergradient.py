"""The exact hypergradient of bilevel RL by implicit differentiation of the soft Bellman fixed point.

Paper: Yang, Gao, Yuan, "Bilevel Reinforcement Learning via the Development of Hyper-gradient without
Lower-Level Convexity", arXiv:2405.19697. The paper's point [paper]: the hypergradient of

    F(x) = f(x, pi*_x),    pi*_x = soft-optimal policy of the MDP with reward r_x

needs first-order quantities only (no Hessian, no lower-level convexity), because differentiating the soft
Bellman fixed point gives a policy-evaluation problem, solvable since I - gamma P_pi is invertible for gamma < 1.

Notation: pi = pi*_x, g = df/dpi ``[S, A]``, J(s,a) = grad_x r_x(s,a), P_pi(s,s') = sum_a pi(a|s) P(s'|s,a).

Direct form (an S x d solve: policy evaluation of pi with the vector reward J)::

    phi(s)   = sum_a pi(a|s) J(s,a)
    dV       = (I - gamma P_pi)^-1 phi
    dQ(s,a)  = J(s,a) + gamma sum_s' P(s'|s,a) dV(s')
    grad_x log pi(a|s) = (dQ(s,a) - dV(s)) / tau
    grad F   = grad_x f + sum_{s,a} pi(a|s) g(s,a) grad_x log pi(a|s)

Adjoint ("w") form, one S-dimensional solve, the form the official code uses [code: SyntheticProblem/RanMDP.py]::

    b_j = sum_{s,a} pi(a|s) g(s,a) (delta_sj - gamma P(j|s,a))
    solve (I - gamma P_pi)^T w = b
    grad F = grad_x f + (1/tau) sum_{s,a} pi(a|s) (g(s,a) - w(s)) J(s,a)

The last line is one vector-Jacobian product of ``reward_fn`` with the *reward cotangent*
``c(s,a) = pi(a|s) (g(s,a) - w(s)) / tau`` [our formulation of the w-form]: any reward model (a table, a
neural network) gets the hypergradient of its parameters from ``backward`` of ``sum(r_x * c)``.
Derivation (dV = sum_a pi dQ from V = tau logsumexp(Q/tau); then move the inverse onto b) is in
``docs/methods/bilevel_rl.md`` (section "The hypergradient").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from zoo.bilevel_rl.mdp import TabularMDP, soft_bellman_q, soft_value_iteration

__all__ = [
    "Hypergradient",
    "adjoint_rhs",
    "adjoint_system",
    "exact_hypergradient",
    "finite_difference_hypergradient",
    "hypergradient_from_adjoint",
    "reward_cotangent",
    "unrolled_hypergradient",
    "upper_level_objective",
    "upper_level_partials",
]

RewardFn = Callable[[torch.Tensor], torch.Tensor]
UpperFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Hypergradient:
    """A hypergradient (exact or estimated) at x with the lower-level quantities it used."""

    gradient: torch.Tensor  # dF/dx, shape of x
    objective: float  # f(x, pi) at the policy used
    policy: torch.Tensor  # pi [S, A]
    value: torch.Tensor  # V [S]
    adjoint: torch.Tensor  # w [S] (zeros for the direct form)
    cotangent: torch.Tensor  # c [S, A] = pi (g - w) / tau


def upper_level_partials(upper_fn: UpperFn, x: torch.Tensor, policy: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    """``(f(x, pi), df/dx, df/dpi)`` at fixed ``pi`` (partial derivatives)."""
    with torch.enable_grad():
        x_ = x.detach().clone().requires_grad_(True)
        pi_ = policy.detach().clone().requires_grad_(True)
        f = upper_fn(x_, pi_)
        if f.dim() != 0:
            raise ValueError(f"upper_fn must return a scalar, got shape {tuple(f.shape)}")
        grad_x, grad_pi = torch.autograd.grad(f, (x_, pi_), allow_unused=True)
    grad_x = torch.zeros_like(x_) if grad_x is None else grad_x
    grad_pi = torch.zeros_like(pi_) if grad_pi is None else grad_pi
    return f.item(), grad_x, grad_pi


def adjoint_system(mdp: TabularMDP, policy: torch.Tensor) -> torch.Tensor:
    """``A = (I - gamma P_pi)^T`` of the adjoint equation ``A w = b``."""
    identity = torch.eye(mdp.num_states, dtype=policy.dtype)
    return (identity - mdp.gamma * mdp.policy_transitions(policy)).T


def adjoint_rhs(mdp: TabularMDP, policy: torch.Tensor, grad_policy: torch.Tensor) -> torch.Tensor:
    """``b_j = sum_{s,a} pi(a|s) g(s,a) (delta_sj - gamma P(j|s,a))``, shape ``[S]``."""
    weighted = policy * grad_policy  # [S, A]
    return weighted.sum(-1) - mdp.gamma * torch.einsum("sa,saj->j", weighted, mdp.transitions)


def reward_cotangent(mdp: TabularMDP, policy: torch.Tensor, grad_policy: torch.Tensor, adjoint: torch.Tensor) -> torch.Tensor:
    """``c(s,a) = pi(a|s) (g(s,a) - w(s)) / tau``: dF/dx = df/dx + J^T c."""
    return policy * (grad_policy - adjoint[:, None]) / mdp.tau


def hypergradient_from_adjoint(
    reward_fn: RewardFn, x: torch.Tensor, grad_x: torch.Tensor, cotangent: torch.Tensor
) -> torch.Tensor:
    """``df/dx + J^T c`` by one vector-Jacobian product of ``reward_fn`` at ``x``."""
    with torch.enable_grad():
        x_ = x.detach().clone().requires_grad_(True)
        reward = reward_fn(x_)
        (vjp,) = torch.autograd.grad(reward, x_, grad_outputs=cotangent.to(reward.dtype), allow_unused=True)
    return grad_x + (torch.zeros_like(x_) if vjp is None else vjp)


def upper_level_objective(
    mdp: TabularMDP, reward_fn: RewardFn, upper_fn: UpperFn, x: torch.Tensor, *, tolerance: float = 1e-12
) -> float:
    """``F(x) = f(x, pi*_x)`` with the lower level solved by soft VI to ``tolerance``."""
    with torch.no_grad():
        solution = soft_value_iteration(mdp, reward_fn(x.detach()), tolerance=tolerance)
        return float(upper_fn(x.detach(), solution.policy))


def exact_hypergradient(
    mdp: TabularMDP,
    reward_fn: RewardFn,
    upper_fn: UpperFn,
    x: torch.Tensor,
    *,
    form: str = "adjoint",
    tolerance: float = 1e-12,
    value: torch.Tensor | None = None,
) -> Hypergradient:
    """The exact hypergradient dF/dx (the test oracle), by implicit differentiation (a linear solve).

    Args:
        mdp: the lower-level MDP.
        reward_fn: ``x -> r_x`` of shape ``[S, A]``, differentiable in torch.
        upper_fn: ``(x, pi) -> f`` scalar, differentiable in both.
        x: upper-level variable (any shape).
        form: ``"adjoint"`` (w-form, one S-dim solve and one VJP) or ``"direct"`` (full Jacobian J, S x d solve).
        tolerance: soft-VI stopping tolerance (sup norm); the error in pi is O(tolerance / (1 - gamma)).
        value: warm start for soft VI.

    Returns:
        ``Hypergradient`` whose ``gradient`` has the shape of ``x``.

    Example:
        >>> mdp = TabularMDP.random(4, 2, gamma=0.5)
        >>> h = exact_hypergradient(mdp, lambda x: x.reshape(4, 2), lambda x, pi: (pi ** 2).sum(), torch.zeros(8, dtype=torch.float64))
        >>> h.gradient.shape
        torch.Size([8])
    """
    if form not in ("adjoint", "direct"):
        raise ValueError(f"form must be 'adjoint' or 'direct', got {form!r}")
    x = x.detach()
    with torch.no_grad():
        solution = soft_value_iteration(mdp, reward_fn(x), value, tolerance=tolerance)
    pi = solution.policy
    f, grad_x, grad_pi = upper_level_partials(upper_fn, x, pi)
    if form == "adjoint":
        w = torch.linalg.solve(adjoint_system(mdp, pi), adjoint_rhs(mdp, pi, grad_pi))
        c = reward_cotangent(mdp, pi, grad_pi, w)
        gradient = hypergradient_from_adjoint(reward_fn, x, grad_x, c)
        return Hypergradient(gradient, f, pi, solution.value, w, c)
    # direct form: J [S, A, d] by autograd, then policy evaluation with the vector reward J
    S, A = mdp.num_states, mdp.num_actions
    jacobian = torch.autograd.functional.jacobian(reward_fn, x).reshape(S, A, -1)  # [S, A, d]
    phi = torch.einsum("sa,sad->sd", pi, jacobian)  # [S, d]
    identity = torch.eye(S, dtype=pi.dtype)
    dV = torch.linalg.solve(identity - mdp.gamma * mdp.policy_transitions(pi), phi)  # [S, d]
    dQ = jacobian + mdp.gamma * torch.einsum("sat,td->sad", mdp.transitions, dV)  # [S, A, d]
    grad_log_pi = (dQ - dV[:, None, :]) / mdp.tau  # [S, A, d]
    gradient = grad_x + torch.einsum("sa,sad->d", pi * grad_pi, grad_log_pi).reshape(x.shape)
    zeros = torch.zeros(S, dtype=pi.dtype)
    return Hypergradient(gradient, f, pi, solution.value, zeros, reward_cotangent(mdp, pi, grad_pi, zeros))


def unrolled_hypergradient(
    mdp: TabularMDP,
    reward_fn: RewardFn,
    upper_fn: UpperFn,
    x: torch.Tensor,
    sweeps: int,
    *,
    value: torch.Tensor | None = None,
) -> Hypergradient:
    """The baseline most users would write: autograd through ``sweeps`` soft-VI sweeps from ``value`` (default 0).

    The start value is treated as a constant; the error against the exact hypergradient shrinks like gamma^sweeps.
    """
    if sweeps < 1:
        raise ValueError(f"sweeps must be >= 1, got {sweeps}")
    with torch.enable_grad():
        x_ = x.detach().clone().requires_grad_(True)
        reward = reward_fn(x_)
        V = torch.zeros(mdp.num_states, dtype=reward.dtype) if value is None else value.detach().clone()
        for _ in range(sweeps):
            V = mdp.tau * torch.logsumexp(soft_bellman_q(mdp, reward, V) / mdp.tau, dim=-1)
        pi = torch.softmax(soft_bellman_q(mdp, reward, V) / mdp.tau, dim=-1)
        f = upper_fn(x_, pi)
        (gradient,) = torch.autograd.grad(f, x_)
    zeros = torch.zeros(mdp.num_states, dtype=pi.dtype)
    return Hypergradient(gradient, f.item(), pi.detach(), V.detach(), zeros, torch.zeros_like(pi.detach()))


def finite_difference_hypergradient(
    mdp: TabularMDP, reward_fn: RewardFn, upper_fn: UpperFn, x: torch.Tensor, *, step: float = 1e-6, tolerance: float = 1e-13
) -> torch.Tensor:
    """Central differences of F(x) (2 d lower-level solves to ``tolerance``); an independent check."""
    x = x.detach()
    flat = x.reshape(-1)
    gradient = torch.empty_like(flat)
    for i in range(flat.numel()):
        shift = torch.zeros_like(flat)
        shift[i] = step
        plus = upper_level_objective(mdp, reward_fn, upper_fn, (flat + shift).reshape(x.shape), tolerance=tolerance)
        minus = upper_level_objective(mdp, reward_fn, upper_fn, (flat - shift).reshape(x.shape), tolerance=tolerance)
        gradient[i] = (plus - minus) / (2 * step)
    return gradient.reshape(x.shape)
