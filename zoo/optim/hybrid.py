r"""Hybrid Riemannian method: BB gradient descent far from a solution, Newton-tCG near it.

Runs :class:`~zoo.optim.RiemannianGD` until :math:`\lVert\mathrm{grad} f\rVert \le \tau` (default
:math:`10^{-3}\max(1, \lVert\mathrm{grad} f(x_0)\rVert)`), then :class:`~zoo.optim.RiemannianNewton`; a Newton
iteration that needs backtracking twice in a row sends it back to gradient descent until the gradient norm has
halved again. The idea (globally convergent first-order phase, locally quadratic Newton phase) is the hybrid
method named in Gao, Son, Stykel, arXiv 2406.14299; the switching rule is ours.
"""

from __future__ import annotations

from zoo.optim.base import RiemannianOptimizer
from zoo.optim.newton import RiemannianNewton
from zoo.optim.rgd import RiemannianGD

__all__ = ["HybridGDNewton"]


class HybridGDNewton(RiemannianOptimizer):
    """RGD (BB + nonmonotone Armijo) then Newton-tCG (see module docstring).

    Args:
        switch_tolerance: tau above; ``None`` = relative default.
        gd_options, newton_options: keyword arguments of the two inner optimizers.
    """

    def __init__(self, params, *, switch_tolerance: float | None = None, gd_options: dict | None = None,
                 newton_options: dict | None = None, **common) -> None:
        super().__init__(params, {}, **common)
        if switch_tolerance is not None and switch_tolerance <= 0:
            raise ValueError(f"switch_tolerance must be > 0, got {switch_tolerance}")
        self.switch_tolerance = switch_tolerance
        groups = [{k: v for k, v in g.items() if k == "params" or k == "manifold"} for g in self.param_groups]
        self.gd = RiemannianGD(groups, max_iterations=10**9, gradient_tolerance=0.0, **(gd_options or {}))
        self.newton = RiemannianNewton(groups, max_iterations=10**9, gradient_tolerance=0.0, ehess=self.ehess,
                                       preconditioner=self.preconditioner, **(newton_options or {}))
        self.phase = "gd"
        self.switch_iteration: int | None = None
        self._strikes = 0

    def _needs_graph(self) -> bool:
        return self.phase == "newton" and self.ehess is None

    def _iterate(self, closure, cost, egrad, rgrad, graph) -> None:
        x = [p.detach().clone() for p in self._params]
        gradient_norm = self.norm(x, rgrad)
        if self.switch_tolerance is None:
            self.switch_tolerance = 1e-3 * max(1.0, gradient_norm)
        if self.phase == "gd" and gradient_norm <= self.switch_tolerance:
            self.phase, self._strikes = "newton", 0
            if self.switch_iteration is None:
                self.switch_iteration = self.iterations
            if self.ehess is None:  # the Newton phase needs the graph this evaluation did not keep
                cost, egrad, rgrad, graph = self.evaluate(closure, create_graph=True)
        inner = self.gd if self.phase == "gd" else self.newton
        inner.stop_reason = None
        failures_before = getattr(inner, "failed_line_searches", 0)
        inner._iterate(closure, cost, egrad, rgrad, graph)
        self.counts = {k: self.counts[k] + inner.counts[k] for k in self.counts}
        inner.counts = {k: 0 for k in inner.counts}
        if inner.iterations and inner.history:
            record = inner.history.pop()
            self.accept([p.detach().clone() for p in self._params], record["cost"], inner._cache["egrad"],
                        inner._cache["rgrad"], record["step"])
            self.history[-1]["phase"] = self.phase
        if self.phase == "newton":
            failed = getattr(inner, "failed_line_searches", 0) > failures_before
            self._strikes = self._strikes + 1 if failed else 0
            if self._strikes >= 2 or inner.stop_reason is not None:
                self.phase = "gd"
                self.switch_tolerance *= 0.5
        elif inner.stop_reason is not None:
            self.stop_reason = inner.stop_reason
