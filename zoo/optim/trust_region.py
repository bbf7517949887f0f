r"""Riemannian trust regions with Steihaug-Toint truncated CG (Absil, Baker, Gallivan, FoCM 2007, Alg. 1-2).

Model :math:`m(\eta) = f + \langle g, \eta\rangle + \tfrac12\langle \mathrm{Hess} f[\eta], \eta\rangle` on
:math:`\lVert \eta\rVert \le \Delta`; ratio :math:`\rho = (f(x) - f(R_x\eta)) / (m(0) - m(\eta))` (both
regularised by :math:`10^3\,\epsilon\max(1, |f|)`, as pymanopt does); accept when :math:`\rho > \rho'` = 0.1;
shrink :math:`\Delta` by 1/4 when :math:`\rho < 1/4`, double it (up to :math:`\bar\Delta`) when
:math:`\rho > 3/4` and tCG stopped at the boundary. Defaults as pymanopt 2.2.1: :math:`\bar\Delta = \sqrt{\dim}`
(a structured manifold's ``dimension`` where it declares one, else the number of real entries of the point; see
``RiemannianOptimizer.dimension``), :math:`\Delta_0 = \bar\Delta / 8`, kappa = 0.1, theta = 1.
"""

from __future__ import annotations

import math

import torch

from zoo.optim.base import RiemannianOptimizer, truncated_cg

__all__ = ["RiemannianTrustRegion"]


class RiemannianTrustRegion(RiemannianOptimizer):
    """RTR-tCG (see module docstring)."""

    def __init__(self, params, *, max_radius: float | None = None, initial_radius: float | None = None,
                 rho_prime: float = 0.1, kappa: float = 0.1, theta: float = 1.0, max_inner: int | None = None,
                 max_rejections: int = 60, **common) -> None:
        if not 0 <= rho_prime < 0.25:
            raise ValueError(f"rho_prime must be in [0, 1/4), got {rho_prime}")
        super().__init__(params, {}, **common)
        self.max_radius, self.radius = max_radius, initial_radius
        self.rho_prime, self.kappa, self.theta, self.max_inner = rho_prime, kappa, theta, max_inner
        self.max_rejections = max_rejections
        self.last_inner_reason: str | None = None

    def _needs_graph(self) -> bool:
        return self.ehess is None

    def _iterate(self, closure, cost, egrad, rgrad, graph) -> None:
        x = [p.detach().clone() for p in self._params]
        if self.max_radius is None:
            self.max_radius = math.sqrt(self.dimension())
        if self.radius is None:
            self.radius = self.max_radius / 8
        hvp = self.hessian_operator(closure, x, egrad, rgrad, graph)
        for _ in range(self.max_rejections):  # one iteration = until a step is accepted
            eta, h_eta, self.last_inner_reason = truncated_cg(
                self, x, rgrad, hvp, radius=self.radius, kappa=self.kappa, theta=self.theta, max_inner=self._max_inner(x),
                precondition=self._precondition_at(x))
            trial = self.retr(x, eta)
            trial_cost = self.cost_at(closure, trial)
            model_decrease = -(self.inner(x, rgrad, eta) + 0.5 * self.inner(x, eta, h_eta))
            regularisation = 1e3 * torch.finfo(torch.float64).eps * max(1.0, abs(cost))
            rho = (cost - trial_cost + regularisation) / (model_decrease + regularisation)
            if not math.isfinite(trial_cost) or rho < 0.25:
                self.radius *= 0.25
            elif rho > 0.75 and self.last_inner_reason in ("trust-region boundary", "negative curvature"):
                self.radius = min(2 * self.radius, self.max_radius)
            if model_decrease >= 0 and rho > self.rho_prime and math.isfinite(trial_cost):
                new_cost, new_egrad, new_rgrad, _ = self.evaluate(closure, trial)
                self.accept(trial, new_cost, new_egrad, new_rgrad, self.norm(x, eta))
                return
            self._set_point(x)
            if self.radius < 1e-14:
                break
            if graph is not None:  # moving the parameters invalidated the autograd graph: rebuild it at x
                cost, egrad, rgrad, graph = self.evaluate(closure, create_graph=True)
                hvp = self.hessian_operator(closure, x, egrad, rgrad, graph)
        self.stop_reason = "trust region collapsed (no acceptable step)"
