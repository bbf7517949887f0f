"""SoBiRL and Stoc-SoBiRL: model-free hypergradients from sampled trajectory fragments (arXiv:2405.19697).

Setting [paper: SoBiRL is model-free; code: ``atari_SoBiRL.py``, ``RLHF_util/RLHF.py``]: the upper-level loss is
an expectation over trajectory fragments tau = (s_0, a_0, ..., s_{T-1}, a_{T-1}) drawn with s_0 ~ rho and
a_t ~ pi*_x, e.g. a preference loss over fragment pairs in RLHF:

    f(x, pi) = E_{tau ~ pi}[ loss(x, tau) ]
    grad F(x) = E[ grad_x loss(x, tau) ] + E[ loss(x, tau) sum_t grad_x log pi*_x(a_t | s_t) ]      (score function)
    grad_x log pi(a|s) = (dQ(s,a) - sum_a' pi(a'|s) dQ(s,a')) / tau,   dQ = Q^pi of the vector reward grad_x r_x

Estimators of the score term (``estimator=``):

- ``"official"`` [code: the hypergradient term of the reward loss in ``RLHF_util/RLHF.py``]: replaces dQ(s,a)
  by grad_x r(s,a), i.e. drops the future-value part gamma sum_s' P(s'|s,a) dV(s'). Exact at gamma = 0,
  biased for gamma > 0 (bias measured in the tests and the benchmark).
- ``"corrected"`` [our choice]: keeps the immediate part exactly and adds an unbiased estimate of the dropped
  part from two independent rollouts per fragment step, one from (s_t, a_t) and one from (s_t, a' ~ pi), each
  continued with probability gamma per step (a geometric horizon, so sum_k gamma^k needs no truncation):
  E[sum_{k>=1} J(s_k, a_k)] = gamma sum_s' P(s'|s,a) dV(s'). Needs a simulator that can start from any state
  (a generative model), which the tabular MDP provides.

Both weight the score by ``loss_i - baseline_i`` with the leave-one-out mean baseline [our choice], which keeps
the estimate unbiased (the baseline of fragment i does not depend on fragment i) and cuts its variance.
Everything reduces to one reward cotangent C[s, a] (visit counts times weights), so the estimate is
``mean_i grad_x loss_i + J^T C``, one backward pass for any reward model.

Inputs are checked (``zoo.bilevel_rl.checks``): states and actions must be integer tensors inside ``[0, S)`` and
``[0, A)`` (torch would wrap an action of -1 to the last action in the loss but to the previous state's last action
in the flat cotangent index, a wrong gradient with no error), a policy must be ``[S, A]`` with rows on the simplex,
and x, rewards, losses and step sizes must be finite.

Outer loops: ``sobirl`` (full batches; lower level by warm-started soft VI on the model, or by sampled soft
Q-learning) and ``stoc_sobirl`` (minibatches of fragments and of next-state samples in the lower level). The
paper's exact Stoc-SoBiRL schedule was not available to us [unknown]; ours is a plain constant-step minibatch loop.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from zoo.bilevel_rl.checks import (
    check_finite,
    check_float_tensor,
    check_indices,
    check_policy,
    check_positive_finite,
)
from zoo.bilevel_rl.hypergradient import RewardFn, checked_reward, exact_hypergradient, upper_level_objective
from zoo.bilevel_rl.mdp import TabularMDP, soft_value_iteration
from zoo.bilevel_rl.model_based import BilevelResult

__all__ = [
    "fragment_loss",
    "fragment_objective",
    "model_free_hypergradient",
    "sample_fragments",
    "sampled_soft_q_learning",
    "score_cotangent",
    "sobirl",
    "stoc_sobirl",
]

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ESTIMATORS = ("official", "corrected")


def sample_fragments(
    mdp: TabularMDP, policy: torch.Tensor, num_fragments: int, horizon: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(states, actions)``, each ``[N, T]`` int64: s_0 ~ rho, a_t ~ pi(.|s_t), s_{t+1} ~ P(.|s_t, a_t)."""
    if num_fragments < 1 or horizon < 1:
        raise ValueError(f"num_fragments and horizon must be >= 1, got {num_fragments}, {horizon}")
    check_policy(policy, mdp.num_states, mdp.num_actions)
    policy = policy.detach()
    states = torch.empty(num_fragments, horizon, dtype=torch.long)
    actions = torch.empty(num_fragments, horizon, dtype=torch.long)
    s = torch.multinomial(mdp.initial_distribution.expand(num_fragments, -1), 1, generator=generator).squeeze(-1)
    for t in range(horizon):
        a = torch.multinomial(policy[s], 1, generator=generator).squeeze(-1)
        states[:, t], actions[:, t] = s, a
        if t + 1 < horizon:
            s = torch.multinomial(mdp.transitions[s, a], 1, generator=generator).squeeze(-1)
    return states, actions


def fragment_loss(utility_fn: Callable[[torch.Tensor], torch.Tensor]) -> LossFn:
    """``loss(x, states, actions) = sum_t u_x(s_t, a_t)`` per fragment, shape ``[N]``."""

    def loss_fn(x: torch.Tensor, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        utility = utility_fn(x)
        check_indices("states", states, utility.shape[0])
        check_indices("actions", actions, utility.shape[1])
        return utility[states, actions].sum(-1)

    return loss_fn


def fragment_objective(mdp: TabularMDP, utility_fn: Callable[[torch.Tensor], torch.Tensor], horizon: int):
    """The exact ``f(x, pi) = E_{tau ~ pi}[sum_{t<T} u_x(s_t, a_t)]`` (differentiable in pi): the oracle's upper level.

    State distributions ``d_0 = rho``, ``d_{t+1} = d_t P_pi``; ``f = sum_t sum_{s,a} d_t(s) pi(a|s) u_x(s,a)``.
    """

    def upper_fn(x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        utility = utility_fn(x)
        transition = mdp.policy_transitions(pi)
        distribution, total = mdp.initial_distribution.to(pi.dtype), pi.new_zeros(())
        for _ in range(horizon):
            total = total + (distribution[:, None] * pi * utility).sum()
            distribution = distribution @ transition
        return total

    return upper_fn


def _future_counts(
    mdp: TabularMDP, policy: torch.Tensor, s: torch.Tensor, a: torch.Tensor, weight: torch.Tensor,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Weighted visit counts ``[S, A]`` of k >= 1 steps of rollouts from (s, a), continued with probability gamma."""
    S, A = mdp.num_states, mdp.num_actions
    counts = torch.zeros(S * A, dtype=policy.dtype)
    while s.numel():
        keep = torch.rand(s.numel(), generator=generator, dtype=policy.dtype) < mdp.gamma
        s, a, weight = s[keep], a[keep], weight[keep]
        if not s.numel():
            break
        s = torch.multinomial(mdp.transitions[s, a], 1, generator=generator).squeeze(-1)
        a = torch.multinomial(policy[s], 1, generator=generator).squeeze(-1)
        counts.index_add_(0, s * A + a, weight)
    return counts.reshape(S, A)


def _check_fragments(mdp: TabularMDP, states: torch.Tensor, actions: torch.Tensor) -> None:
    """``states`` and ``actions`` both ``[N, T]`` integer tensors of indices in ``[0, S)`` and ``[0, A)``."""
    shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in (states, actions)]
    if not all(isinstance(t, torch.Tensor) and t.dim() == 2 for t in (states, actions)) or shapes[0] != shapes[1]:
        raise ValueError(f"states and actions must both be [N, T], got {shapes[0]}, {shapes[1]}")
    check_indices("states", states, mdp.num_states)
    check_indices("actions", actions, mdp.num_actions)


def score_cotangent(
    mdp: TabularMDP, policy: torch.Tensor, states: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor, *,
    estimator: str = "corrected", generator: torch.Generator | None = None,
) -> torch.Tensor:
    """C ``[S, A]`` with ``J^T C = (1/N) sum_i weights_i sum_t estimate of grad_x log pi(a_t|s_t)``."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    check_policy(policy, mdp.num_states, mdp.num_actions)
    _check_fragments(mdp, states, actions)
    policy = policy.detach()
    S, A = mdp.num_states, mdp.num_actions
    N, T = states.shape
    if tuple(weights.shape) != (N,):
        raise ValueError(f"weights must have shape [N] = [{N}], got {tuple(weights.shape)}")
    check_finite("weights", weights)
    s, a = states.reshape(-1), actions.reshape(-1)
    weight = (weights.detach().to(policy.dtype)[:, None].expand(N, T) / (N * mdp.tau)).reshape(-1)
    counts = torch.zeros(S * A, dtype=policy.dtype)
    counts.index_add_(0, s * A + a, weight)  # + J(s_t, a_t)
    counts = counts.reshape(S, A)
    counts.index_add_(0, s, -weight[:, None] * policy[s])  # - sum_a' pi(a'|s_t) J(s_t, a')
    if estimator == "corrected" and mdp.gamma > 0:
        counts += _future_counts(mdp, policy, s, a, weight, generator)  # + gamma P dV at (s_t, a_t)
        other = torch.multinomial(policy[s], 1, generator=generator).squeeze(-1)
        counts -= _future_counts(mdp, policy, s, other, weight, generator)  # - its policy average
    return counts


def model_free_hypergradient(
    mdp: TabularMDP,
    reward_fn: RewardFn,
    loss_fn: LossFn,
    x: torch.Tensor,
    policy: torch.Tensor,
    states: torch.Tensor,
    actions: torch.Tensor,
    *,
    estimator: str = "corrected",
    baseline: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Model-free hypergradient estimate from fragments sampled with ``policy`` (module docstring).

    Args:
        reward_fn: ``x -> r_x [S, A]`` (the learned reward model).
        loss_fn: ``(x, states [N, T], actions [N, T]) -> [N]`` per-fragment upper-level loss, differentiable in x.
        policy: the lower-level policy that generated the fragments ``[S, A]``.
        estimator: ``"official"`` (drops future terms, biased for gamma > 0) or ``"corrected"`` (unbiased).
        baseline: subtract the leave-one-out mean loss (unbiased; needs N >= 2).

    Returns:
        The estimate, shape of ``x``.
    """
    x = check_float_tensor("x", x)
    check_policy(policy, mdp.num_states, mdp.num_actions)
    _check_fragments(mdp, states, actions)  # before loss_fn indexes with them
    N = states.shape[0]
    if baseline and N < 2:
        raise ValueError(f"baseline=True needs at least 2 fragments, got {N}")
    with torch.enable_grad():
        x_ = x.detach().clone().requires_grad_(True)
        losses = loss_fn(x_, states, actions)
        if losses.shape != (N,):
            raise ValueError(f"loss_fn must return shape [{N}], got {tuple(losses.shape)}")
        check_finite("loss_fn(x, states, actions)", losses)
        weights = losses.detach()
        if baseline:
            weights = weights - (weights.sum() - weights) / (N - 1)
        C = score_cotangent(mdp, policy, states, actions, weights, estimator=estimator, generator=generator)
        surrogate = losses.mean() + (checked_reward(mdp, reward_fn, x_) * C).sum()  # its gradient is the estimate
        (gradient,) = torch.autograd.grad(surrogate, x_)
    return gradient


def sampled_soft_q_learning(
    mdp: TabularMDP, reward: torch.Tensor, q: torch.Tensor, *, steps: int, step_size: float, samples: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Synchronous soft Q-learning with a generative model: ``Q <- Q + alpha (r + gamma V(s') - Q)``, s' sampled.

    Each step draws ``samples`` next states per (s, a) and averages ``V(s') = tau logsumexp(Q(s')/tau)``.
    """
    S, A = mdp.num_states, mdp.num_actions
    if steps < 0 or samples < 1:
        raise ValueError(f"steps must be >= 0 and samples >= 1, got {steps}, {samples}")
    step_size = check_positive_finite("step_size", step_size)
    for name, tensor in (("reward", reward), ("q", q)):
        if tuple(tensor.shape) != (S, A):
            raise ValueError(f"{name} must have shape [S, A] = [{S}, {A}], got {tuple(tensor.shape)}")
        check_finite(name, tensor)
    flat = mdp.transitions.reshape(S * A, S)
    with torch.no_grad():
        reward = reward.detach()
        for _ in range(steps):
            value = mdp.tau * torch.logsumexp(q / mdp.tau, dim=-1)
            next_states = torch.multinomial(flat, samples, replacement=True, generator=generator)  # [S*A, samples]
            target = reward + mdp.gamma * value[next_states].mean(-1).reshape(S, A)
            q = q + step_size * (target - q)
    return q


def sobirl(
    mdp: TabularMDP,
    reward_fn: RewardFn,
    loss_fn: LossFn,
    x0: torch.Tensor,
    *,
    iterations: int = 500,
    step_size: float = 0.05,
    fragments: int = 256,
    horizon: int = 10,
    estimator: str = "corrected",
    lower_level: str = "model",
    sweeps: int = 10,
    q_step_size: float = 0.5,
    transition_samples: int = 8,
    seed: int = 0,
    upper_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    oracle_every: int = 0,
    progress: bool = False,
) -> BilevelResult:
    """SoBiRL outer loop: ``x <- x - beta h`` with h the model-free estimate from fresh fragments each iteration.

    Args:
        lower_level: ``"model"`` (``sweeps`` warm-started soft-VI sweeps on P) or ``"samples"`` (``sweeps`` steps of
            ``sampled_soft_q_learning`` with ``transition_samples`` next states and step ``q_step_size``).
        upper_fn: the exact ``f(x, pi)`` when known (e.g. ``fragment_objective``); needed for ``objective`` and
            ``oracle_every`` (records ``||h - exact||`` at the current policy's x).

    Returns:
        ``BilevelResult`` (``objective`` is None without ``upper_fn``: it is unknown, not NaN); history ``loss`` (mean fragment loss),
        ``hypergradient_norm``, ``seconds`` and optionally ``oracle_iteration``, ``oracle_error``.
    """
    if lower_level not in ("model", "samples"):
        raise ValueError(f"lower_level must be 'model' or 'samples', got {lower_level!r}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    step_size = check_positive_finite("step_size", step_size)  # nan passed ``step_size <= 0``
    check_positive_finite("q_step_size", q_step_size)
    if oracle_every and upper_fn is None:
        raise ValueError("oracle_every needs upper_fn")
    generator = torch.Generator().manual_seed(seed)
    x = check_float_tensor("x0", x0).detach().clone()
    value = torch.zeros(mdp.num_states, dtype=mdp.dtype)
    q = torch.zeros(mdp.num_states, mdp.num_actions, dtype=mdp.dtype)
    history: dict[str, list[float]] = {"loss": [], "hypergradient_norm": [], "seconds": []}
    if oracle_every:
        history.update(oracle_iteration=[], oracle_error=[])
    steps = range(iterations)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="SoBiRL", leave=False)
    started = time.perf_counter()
    for k in steps:
        reward = checked_reward(mdp, reward_fn, x).detach()
        if lower_level == "model":
            solution = soft_value_iteration(mdp, reward, value, tolerance=0.0, max_iterations=sweeps)
            value, policy = solution.value, solution.policy
        else:
            q = sampled_soft_q_learning(mdp, reward, q, steps=sweeps, step_size=q_step_size, samples=transition_samples,
                                        generator=generator)
            policy = torch.softmax(q / mdp.tau, dim=-1)
        states, actions = sample_fragments(mdp, policy, fragments, horizon, generator=generator)
        with torch.no_grad():
            history["loss"].append(loss_fn(x, states, actions).mean().item())
        h = model_free_hypergradient(mdp, reward_fn, loss_fn, x, policy, states, actions, estimator=estimator,
                                     generator=generator)
        history["hypergradient_norm"].append(h.norm().item())
        if oracle_every and k % oracle_every == 0:
            exact = exact_hypergradient(mdp, reward_fn, upper_fn, x)
            history["oracle_iteration"].append(k)
            history["oracle_error"].append((h - exact.gradient).norm().item())
        x = x - step_size * h
        history["seconds"].append(time.perf_counter() - started)
    seconds = time.perf_counter() - started
    objective = upper_level_objective(mdp, reward_fn, upper_fn, x) if upper_fn is not None else None
    return BilevelResult(x, objective, iterations, seconds, "iterations", history)


def stoc_sobirl(
    mdp: TabularMDP, reward_fn: RewardFn, loss_fn: LossFn, x0: torch.Tensor, *, batch_size: int = 16,
    transition_samples: int = 1, sweeps: int = 1, q_step_size: float = 0.5, **kwargs,
) -> BilevelResult:
    """Stoc-SoBiRL: ``sobirl`` with minibatches: ``batch_size`` fragments per estimate and a sampled lower level
    (``sweeps`` soft Q-learning steps from ``transition_samples`` next states per (s, a)) [our schedule]."""
    return sobirl(mdp, reward_fn, loss_fn, x0, fragments=batch_size, lower_level="samples", sweeps=sweeps,
                  transition_samples=transition_samples, q_step_size=q_step_size, **kwargs)
