"""M-SoBiRL: the model-based single-loop algorithm of arXiv:2405.19697 (Yang, Gao, Yuan).

Per outer iteration k, with the model P known [paper: M-SoBiRL; details from the official code
``UCAS-YanYang/SoBiRL``, ``SyntheticProblem/RanMDP.py`` and ``test_MSoBiRL.py``]:

1. ``sweeps`` soft value-iteration sweeps warm-started from the previous V (stop early at ``sweep_tolerance``),
   then Q = r + gamma P V and pi = softmax(Q / tau)                          [code: 10 sweeps, tolerance 1e-6]
2. ``adjoint_steps`` warm-started gradient steps on 1/2 ||A w - b||^2, A = (I - gamma P_pi)^T:
   ``w <- w - zeta (A^T A w - A^T b)``                                        [code: one step, zeta = 0.5]
3. hypergradient estimate h = df/dx + J^T c, c = pi (g - w) / tau               [paper/code: the w-form]
4. ``x <- x - beta h``                                                         [code: beta = 8e-3, 3000 steps]

Our choices: the sweeps come first in each iteration (the official loop does them last, which differs only at
iteration 0); ``adjoint_solver="exact"`` replaces step 2 by a linear solve. One w-step per iteration is enough
at gamma = 0.5 but slow at gamma = 0.9: the step contracts the slowest mode of A A^T by only zeta * (1 - gamma)^2
(docs/methods/bilevel_rl.md), so use more steps or the exact solve there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from zoo.bilevel_rl.hypergradient import (
    Hypergradient,
    RewardFn,
    UpperFn,
    adjoint_rhs,
    adjoint_system,
    exact_hypergradient,
    hypergradient_from_adjoint,
    reward_cotangent,
    upper_level_objective,
    upper_level_partials,
)
from zoo.bilevel_rl.mdp import TabularMDP, soft_value_iteration

__all__ = ["BilevelResult", "InnerState", "m_sobirl", "model_based_hypergradient"]


@dataclass
class InnerState:
    """Warm-start state carried between outer iterations: soft value V ``[S]`` and adjoint w ``[S]``."""

    value: torch.Tensor
    adjoint: torch.Tensor

    @classmethod
    def zeros(cls, mdp: TabularMDP) -> "InnerState":
        return cls(torch.zeros(mdp.num_states, dtype=mdp.dtype), torch.zeros(mdp.num_states, dtype=mdp.dtype))


@dataclass
class BilevelResult:
    """What an outer loop returns: the final x, its exact objective, and per-iteration history."""

    x: torch.Tensor
    objective: float  # F(x) with the lower level solved to 1e-12
    iterations: int
    seconds: float
    stop_reason: str
    history: dict[str, list[float]] = field(default_factory=dict)


def model_based_hypergradient(
    mdp: TabularMDP,
    reward_fn: RewardFn,
    upper_fn: UpperFn,
    x: torch.Tensor,
    state: InnerState | None = None,
    *,
    sweeps: int = 10,
    sweep_tolerance: float = 1e-6,
    adjoint_steps: int = 1,
    adjoint_step_size: float = 0.5,
    adjoint_solver: str = "gradient",
) -> tuple[Hypergradient, InnerState]:
    """One M-SoBiRL hypergradient estimate (steps 1-3 of the module docstring) and the updated warm state.

    With ``sweeps`` and ``adjoint_steps`` large (or ``adjoint_solver="exact"``) it equals ``exact_hypergradient``.
    """
    if sweeps < 0 or adjoint_steps < 0:
        raise ValueError(f"sweeps and adjoint_steps must be >= 0, got {sweeps}, {adjoint_steps}")
    if adjoint_solver not in ("gradient", "exact"):
        raise ValueError(f"adjoint_solver must be 'gradient' or 'exact', got {adjoint_solver!r}")
    state = InnerState.zeros(mdp) if state is None else state
    x = x.detach()
    with torch.no_grad():
        solution = soft_value_iteration(mdp, reward_fn(x), state.value, tolerance=sweep_tolerance, max_iterations=sweeps)
    pi = solution.policy
    f, grad_x, grad_pi = upper_level_partials(upper_fn, x, pi)
    A = adjoint_system(mdp, pi)
    b = adjoint_rhs(mdp, pi, grad_pi)
    if adjoint_solver == "exact":
        w = torch.linalg.solve(A, b)
    else:
        w = state.adjoint.clone()
        normal, projected = A.T @ A, A.T @ b  # gradient of 1/2 ||A w - b||^2 is A^T A w - A^T b
        for _ in range(adjoint_steps):
            w = w - adjoint_step_size * (normal @ w - projected)
    c = reward_cotangent(mdp, pi, grad_pi, w)
    gradient = hypergradient_from_adjoint(reward_fn, x, grad_x, c)
    return Hypergradient(gradient, f, pi, solution.value, w, c), InnerState(solution.value, w)


def m_sobirl(
    mdp: TabularMDP,
    reward_fn: RewardFn,
    upper_fn: UpperFn,
    x0: torch.Tensor,
    *,
    iterations: int = 3000,
    step_size: float = 8e-3,
    sweeps: int = 10,
    sweep_tolerance: float = 1e-6,
    adjoint_steps: int = 1,
    adjoint_step_size: float = 0.5,
    adjoint_solver: str = "gradient",
    gradient_tolerance: float = 0.0,
    oracle_every: int = 0,
    progress: bool = False,
    callback: Callable[[int, torch.Tensor, Hypergradient], None] | None = None,
) -> BilevelResult:
    """Run M-SoBiRL from ``x0`` (defaults are the official synthetic run's [code]).

    Args:
        iterations: outer iterations (official: 3000).
        step_size: beta, the upper-level step (official: 8e-3).
        sweeps, sweep_tolerance: soft-VI sweeps per iteration and their early stop (official: 10, 1e-6).
        adjoint_steps, adjoint_step_size, adjoint_solver: the w update (official: 1 step, zeta = 0.5).
        gradient_tolerance: stop once the *estimate's* norm is below this (0 = run all iterations).
        oracle_every: every this many iterations also record ``||h - exact||`` (costs a tight solve).
        progress: show a tqdm bar.
        callback: called as ``callback(k, x, estimate)`` after each estimate.

    Returns:
        ``BilevelResult``; history keys: ``f`` (f(x, pi_k), the official log's value), ``hypergradient_norm``,
        ``seconds`` and, with ``oracle_every``, ``oracle_iteration`` and ``oracle_error``.
    """
    if iterations < 0 or step_size <= 0:
        raise ValueError(f"iterations must be >= 0 and step_size > 0, got {iterations}, {step_size}")
    x = x0.detach().clone()
    state = InnerState.zeros(mdp)
    history: dict[str, list[float]] = {"f": [], "hypergradient_norm": [], "seconds": []}
    if oracle_every:
        history.update(oracle_iteration=[], oracle_error=[])
    steps = range(iterations)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="M-SoBiRL", leave=False)
    started, stop_reason, k = time.perf_counter(), "iterations", 0
    for k in steps:
        estimate, state = model_based_hypergradient(
            mdp, reward_fn, upper_fn, x, state, sweeps=sweeps, sweep_tolerance=sweep_tolerance,
            adjoint_steps=adjoint_steps, adjoint_step_size=adjoint_step_size, adjoint_solver=adjoint_solver,
        )
        norm = estimate.gradient.norm().item()
        history["f"].append(estimate.objective)
        history["hypergradient_norm"].append(norm)
        if oracle_every and k % oracle_every == 0:
            exact = exact_hypergradient(mdp, reward_fn, upper_fn, x, value=state.value)
            history["oracle_iteration"].append(k)
            history["oracle_error"].append((estimate.gradient - exact.gradient).norm().item())
        if callback is not None:
            callback(k, x, estimate)
        if not torch.isfinite(estimate.gradient).all():
            stop_reason = "non-finite hypergradient"
            break
        if gradient_tolerance and norm <= gradient_tolerance:
            stop_reason = "gradient_tolerance"
            history["seconds"].append(time.perf_counter() - started)
            k += 1
            break
        x = x - step_size * estimate.gradient
        history["seconds"].append(time.perf_counter() - started)
    else:
        k = iterations
    seconds = time.perf_counter() - started
    return BilevelResult(x, upper_level_objective(mdp, reward_fn, upper_fn, x), k, seconds, stop_reason, history)
