"""An independent dense implementation of the geometry of a Riemannian submanifold of E (small sizes only).

Given a local chart ``psi: c -> E`` (all coordinates free, no gauge) of a manifold embedded in E with a constant
diagonal metric D, everything is built from the Jacobian J of psi alone:

* tangent projection ``P(c) = J (J^T D J)^{-1} J^T D`` (orthogonal in the metric D);
* Riemannian gradient ``P grad_E f`` (the E-gradient of a cost of the first block only: ``(df/dX, 0, ...)``);
* Riemannian Hessian ``P(c) d/dt [P(c(t)) grad_E f(psi(c(t)))]`` along ``c(t) = c + t c'`` (forward-mode autograd),
  the definition for a submanifold of a flat space: the projected derivative of the projected gradient field.

The tests compare the factored formulas of ``zoo.manifolds`` with these, never with themselves. The chart
Jacobian is taken in reverse mode: forward-over-forward through ``torch.linalg.solve`` (jacfwd inside jvp) gave
wrong second derivatives in torch 2.13 (46 % off a central difference on a 5 x 3 projector), reverse inside
forward agrees with the central difference to 1e-10.
"""

from __future__ import annotations

import torch
from torch.func import jacrev, jvp

__all__ = ["DenseSubmanifold"]


class DenseSubmanifold:
    """Dense geometry at the chart point ``c0`` (a flat float64 vector)."""

    def __init__(self, chart, c0: torch.Tensor, metric_weights: torch.Tensor) -> None:
        self.chart, self.c0, self.weights = chart, c0, metric_weights

    def projector(self, c: torch.Tensor) -> torch.Tensor:
        jac = jacrev(self.chart)(c)
        gram = jac.T @ (self.weights[:, None] * jac)
        return jac @ torch.linalg.solve(gram, jac.T * self.weights[None, :])

    def chart_velocity(self, ambient: torch.Tensor) -> torch.Tensor:
        """The chart direction whose velocity is ``ambient`` (least squares in the metric)."""
        jac = jacrev(self.chart)(self.c0)
        gram = jac.T @ (self.weights[:, None] * jac)
        return torch.linalg.solve(gram, jac.T @ (self.weights * ambient))

    def gradient(self, ambient_gradient) -> torch.Tensor:
        return self.projector(self.c0) @ ambient_gradient(self.chart(self.c0))

    def hessian(self, ambient_gradient, ambient_direction: torch.Tensor) -> torch.Tensor:
        direction = self.chart_velocity(ambient_direction)

        def field(t):
            c = self.c0 + t * direction
            return self.projector(c) @ ambient_gradient(self.chart(c))

        zero = torch.zeros((), dtype=self.c0.dtype)
        _, derivative = jvp(field, (zero,), (torch.ones_like(zero),))
        return self.projector(self.c0) @ derivative
