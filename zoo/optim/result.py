"""The record every zoo optimizer keeps: point, cost, gradient norm, iterations, stop reason, time, counts."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

__all__ = ["OptimizeResult"]


@dataclasses.dataclass
class OptimizeResult:
    """What a Riemannian optimizer did (pymanopt's ``OptimizerResult`` plus evaluation counts and history).

    ``point`` holds detached copies of the parameters, in the order the optimizer was given them.
    """

    point: list[torch.Tensor]
    cost: float
    gradient_norm: float
    iterations: int
    stop_reason: str | None  # None while running; set once a stopping rule fires
    converged: bool  # True when the gradient-norm tolerance was met
    process_time: float  # CPU seconds spent inside step() (time.process_time)
    wall_time: float  # wall-clock seconds spent inside step()
    cost_evaluations: int
    gradient_evaluations: int
    hessian_vector_products: int
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)  # per iteration: cost, gradient_norm, step

    def summary(self) -> dict[str, Any]:
        """Scalars only (for logging or a card)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("point", "history")}
