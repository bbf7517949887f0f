"""Recipe evaluations for ``BilevelRLAgent`` (called by ``zoo run`` as ``evaluate(model, datamodule, trainer)``)."""

from __future__ import annotations

import torch

from zoo.bilevel_rl.mdp import TabularMDP

__all__ = ["evaluate", "optimal_return"]


def optimal_return(mdp: TabularMDP, reward: torch.Tensor, gamma: float, tolerance: float = 1e-12) -> float:
    """Return of the optimal deterministic policy (plain value iteration, no entropy) from the start distribution."""
    value = torch.zeros(mdp.num_states, dtype=mdp.dtype)
    for _ in range(1_000_000):
        new = (reward + gamma * torch.einsum("sat,t->sa", mdp.transitions, value)).max(-1).values
        done = (new - value).abs().max().item() <= tolerance
        value = new
        if done:
            break
    return float(mdp.initial_distribution @ value)


def evaluate(model, datamodule=None, trainer=None) -> dict[str, float]:
    """Measured numbers for the card.

    Synthetic: ``upper_objective`` F(x) (lower level to 1e-12), ``optimum_gap`` F - F*, ``exact_hypergradient_norm``,
    ``x_norm``. Shaping: the learner's true return before (x = 0) and after shaping, the optimal return, ``upper_objective``.
    Both: ``outer_iterations``.
    """
    model = model.double() if model.reward.x.dtype != torch.float64 else model
    metrics: dict[str, float] = {"upper_objective": model.exact_objective()}
    exact = model.exact_hypergradient()
    metrics["exact_hypergradient_norm"] = exact.gradient.norm().item()
    if model.config.task == "synthetic":
        metrics["optimum_gap"] = metrics["upper_objective"] - model.optimum
        metrics["x_norm"] = model.reward.x.detach().norm().item()
    else:
        metrics["true_return_unshaped"] = model.true_return(torch.zeros_like(model.reward.x))
        metrics["true_return_shaped"] = model.true_return()
        metrics["optimal_return"] = optimal_return(model.mdp, model.reward.base, model.config.true_gamma)
    if trainer is not None:
        metrics["outer_iterations"] = float(trainer.global_step)
    return metrics
