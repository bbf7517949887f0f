"""Tabular entropy-regularised MDPs and soft value iteration (the lower level of bilevel RL).

Paper: Yan Yang, Bin Gao, Ya-xiang Yuan, "Bilevel Reinforcement Learning via the Development of Hyper-gradient
without Lower-Level Convexity", AISTATS 2025, arXiv:2405.19697.

The lower level is the entropy-regularised MDP (states S, actions A, kernel P, discount gamma, temperature tau)

    pi*_x = argmax_pi E[ sum_t gamma^t ( r_x(s_t, a_t) + tau * H(pi(.|s_t)) ) ]

whose unique solution is given by the soft Bellman fixed point [paper]:

    Q(s,a) = r(s,a) + gamma * sum_s' P(s'|s,a) V(s')
    V(s)   = tau * log sum_a exp(Q(s,a) / tau)
    pi(a|s) = exp((Q(s,a) - V(s)) / tau)

The map V -> tau logsumexp((r + gamma P V)/tau) is a gamma-contraction in the sup norm, so soft value iteration
converges linearly from any start; stopping when ||V_new - V||_inf <= tol leaves ||V - V*||_inf <= gamma tol/(1-gamma).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from zoo.bilevel_rl.checks import check_distribution_rows, check_finite, check_nonnegative_finite

__all__ = ["SoftValueResult", "TabularMDP", "soft_bellman_q", "soft_value_iteration"]

class TabularMDP:
    """A finite MDP with known kernel, discount and entropy temperature.

    Args:
        transitions: ``P[s, a, s']`` of shape ``[S, A, S]``; each ``P[s, a]`` sums to 1 (float64 by default).
        gamma: discount factor in [0, 1).
        tau: entropy temperature, > 0 (the paper's regularisation weight).
        reward: optional environment reward ``[S, A]`` (expected reward of taking a in s), e.g. from gymnasium.
        initial_distribution: optional start distribution ``[S]`` (default uniform), used to sample fragments
            and to report returns.
        name: label for messages and cards.

    Example:
        >>> P = torch.full((2, 1, 2), 0.5, dtype=torch.float64)
        >>> mdp = TabularMDP(P, gamma=0.9, tau=1.0)
        >>> mdp.num_states, mdp.num_actions
        (2, 1)
    """

    def __init__(
        self,
        transitions: Any,
        gamma: float,
        tau: float = 1.0,
        reward: Any = None,
        initial_distribution: Any = None,
        name: str = "tabular",
    ) -> None:
        P = torch.as_tensor(transitions)
        if not torch.is_floating_point(P):
            P = P.to(torch.float64)
        if P.dim() != 3 or P.shape[0] != P.shape[2] or P.shape[0] < 1 or P.shape[1] < 1:
            raise ValueError(f"transitions must have shape [S, A, S], got {tuple(P.shape)}")
        check_distribution_rows("transitions", P)
        gamma = float(gamma)
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {gamma}")
        tau = float(tau)
        if not (tau > 0.0 and tau < float("inf")):
            raise ValueError(f"tau must be > 0 and finite, got {tau}")
        S, A = P.shape[0], P.shape[1]
        if reward is not None:
            reward = torch.as_tensor(reward, dtype=P.dtype)
            if reward.shape != (S, A):
                raise ValueError(f"reward must have shape [S, A] = [{S}, {A}], got {tuple(reward.shape)}")
            check_finite("reward", reward)
        if initial_distribution is None:
            initial_distribution = torch.full((S,), 1.0 / S, dtype=P.dtype)
        else:
            initial_distribution = torch.as_tensor(initial_distribution, dtype=P.dtype)
            if initial_distribution.shape != (S,):
                raise ValueError(f"initial_distribution must have shape [{S}], got {tuple(initial_distribution.shape)}")
            check_distribution_rows("initial_distribution", initial_distribution)
        self.transitions = P
        self.gamma = gamma
        self.tau = tau
        self.reward = reward
        self.initial_distribution = initial_distribution
        self.name = name

    def __repr__(self) -> str:
        return f"TabularMDP({self.name!r}, S={self.num_states}, A={self.num_actions}, gamma={self.gamma}, tau={self.tau})"

    @property
    def num_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def num_actions(self) -> int:
        return self.transitions.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.transitions.dtype

    def replace(self, **changes: Any) -> "TabularMDP":
        """A copy with some of ``gamma``, ``tau``, ``reward``, ``initial_distribution``, ``name`` changed."""
        fields = dict(transitions=self.transitions, gamma=self.gamma, tau=self.tau, reward=self.reward,
                      initial_distribution=self.initial_distribution, name=self.name)
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise ValueError(f"TabularMDP has no field(s) {unknown}")
        fields.update(changes)
        return TabularMDP(**fields)

    def policy_transitions(self, policy: torch.Tensor) -> torch.Tensor:
        """``P_pi[s, s'] = sum_a pi(a|s) P(s'|s,a)``, shape ``[S, S]``."""
        if tuple(policy.shape) != (self.num_states, self.num_actions):
            raise ValueError(f"policy must have shape [S, A] = [{self.num_states}, {self.num_actions}], got {tuple(policy.shape)}")
        return torch.einsum("sa,sat->st", policy, self.transitions)

    # -- constructors ------------------------------------------------------------------------------
    @classmethod
    def random(
        cls, num_states: int, num_actions: int, gamma: float, tau: float = 1.0, *,
        generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64,
    ) -> "TabularMDP":
        """A random MDP shaped like the official synthetic problem (``SyntheticProblem/RanMDP.py`` [code]).

        For each (s, a) a random number (1 to S-1, at least 1) of distinct next states gets random weights
        U(0, 1), normalised to sum to 1. Our random streams differ from the official code's.
        """
        if num_states < 1 or num_actions < 1:
            raise ValueError(f"num_states and num_actions must be >= 1, got {num_states}, {num_actions}")
        S, A = num_states, num_actions
        P = torch.zeros(S, A, S, dtype=dtype)
        for s in range(S):
            for a in range(A):
                count = int(torch.randint(1, max(S, 2), (1,), generator=generator))
                support = torch.randperm(S, generator=generator)[:count]
                weights = torch.rand(count, generator=generator, dtype=dtype) + 1e-3
                P[s, a, support] = weights / weights.sum()
        return cls(P, gamma=gamma, tau=tau, name=f"random-{S}x{A}")

    @classmethod
    def from_gymnasium(cls, env_id: str, gamma: float = 0.99, tau: float = 1.0, **make_kwargs: Any) -> "TabularMDP":
        """The exact model of a gymnasium toy-text environment (``FrozenLake-v1``, ``CliffWalking-v1``, ``Taxi-v4``).

        Reads ``env.unwrapped.P[s][a] = [(prob, next_state, reward, terminated), ...]``. A terminating
        transition goes to one extra absorbing state (index ``S``, zero reward), so the discounted MDP ends
        where the episode ends [our choice]. ``reward[s, a]`` is the expected reward ``sum prob * reward``.
        """
        try:
            import gymnasium
        except ImportError as error:  # pragma: no cover - optional dependency
            raise ImportError("TabularMDP.from_gymnasium needs gymnasium: pip install gymnasium") from error
        env = gymnasium.make(env_id, **make_kwargs)
        unwrapped = env.unwrapped
        table = getattr(unwrapped, "P", None)
        if not isinstance(table, dict):
            raise ValueError(f"{env_id!r} exposes no tabular model env.unwrapped.P; only toy-text environments do")
        S, A = int(unwrapped.observation_space.n), int(unwrapped.action_space.n)
        absorbing = S
        P = torch.zeros(S + 1, A, S + 1, dtype=torch.float64)
        R = torch.zeros(S + 1, A, dtype=torch.float64)
        for s in range(S):
            for a in range(A):
                for probability, next_state, reward, terminated in table[s][a]:
                    P[s, a, absorbing if terminated else int(next_state)] += float(probability)
                    R[s, a] += float(probability) * float(reward)
        P[absorbing, :, absorbing] = 1.0
        start = getattr(unwrapped, "initial_state_distrib", None)
        initial = torch.zeros(S + 1, dtype=torch.float64)
        if start is None:
            initial[:S] = 1.0 / S
        else:
            initial[:S] = torch.as_tensor(start, dtype=torch.float64)
        env.close()
        return cls(P, gamma=gamma, tau=tau, reward=R, initial_distribution=initial / initial.sum(), name=env_id)


@dataclass
class SoftValueResult:
    """Output of ``soft_value_iteration``: Q ``[S, A]``, V ``[S]``, policy ``[S, A]`` and how it stopped."""

    q: torch.Tensor
    value: torch.Tensor
    policy: torch.Tensor
    iterations: int
    residual: float  # ||V_last - V_previous||_inf of the last sweep
    converged: bool  # residual <= tolerance


def soft_bellman_q(mdp: TabularMDP, reward: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``Q = r + gamma P V`` (shape ``[S, A]``); differentiable in ``reward`` and ``value``."""
    return reward + mdp.gamma * torch.einsum("sat,t->sa", mdp.transitions, value)


def soft_value_iteration(
    mdp: TabularMDP,
    reward: torch.Tensor,
    value: torch.Tensor | None = None,
    *,
    tolerance: float = 1e-10,
    max_iterations: int = 100_000,
) -> SoftValueResult:
    """Soft value iteration ``V <- tau logsumexp((r + gamma P V)/tau)`` to ``||V_new - V||_inf <= tolerance``.

    Runs without autograd (use ``unrolled_hypergradient`` to differentiate through sweeps).

    Args:
        mdp: the MDP.
        reward: ``r[s, a]``, shape ``[S, A]``.
        value: warm start ``V[s]`` (default zeros).
        tolerance: stop once a sweep changes V by at most this (sup norm); 0 runs exactly ``max_iterations``.
        max_iterations: sweep budget (M-SoBiRL uses 10 per outer step [code]).

    Returns:
        ``SoftValueResult`` with Q = r + gamma P V, pi = softmax(Q / tau) computed from the final V.
    """
    S, A = mdp.num_states, mdp.num_actions
    if tuple(reward.shape) != (S, A):
        raise ValueError(f"reward must have shape [S, A] = [{S}, {A}], got {tuple(reward.shape)}")
    check_nonnegative_finite("tolerance", tolerance)
    if max_iterations < 0:
        raise ValueError(f"max_iterations must be >= 0, got {max_iterations}")
    check_finite("reward", reward)  # a NaN reward would give a NaN policy and hypergradient without a word
    with torch.no_grad():
        reward = reward.detach().to(mdp.dtype)
        V = torch.zeros(S, dtype=mdp.dtype) if value is None else value.detach().to(mdp.dtype).clone()
        if V.shape != (S,):
            raise ValueError(f"value must have shape [{S}], got {tuple(V.shape)}")
        check_finite("value", V)
        residual, iterations = float("inf"), 0
        while iterations < max_iterations:
            new = mdp.tau * torch.logsumexp(soft_bellman_q(mdp, reward, V) / mdp.tau, dim=-1)
            residual = (new - V).abs().max().item()
            V, iterations = new, iterations + 1
            if residual <= tolerance:
                break
        Q = soft_bellman_q(mdp, reward, V)
        policy = torch.softmax(Q / mdp.tau, dim=-1)
    return SoftValueResult(Q, V, policy, iterations, residual, residual <= tolerance)
