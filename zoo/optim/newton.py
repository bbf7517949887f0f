r"""Riemannian Newton's method with truncated CG (Absil, Mahony, Sepulchre 2008, Alg. 5 and section 6.3).

Each iteration solves :math:`\mathrm{Hess} f(x)[\eta] = -\mathrm{grad} f(x)` in :math:`T_x\mathcal{M}` by CG in
the manifold's metric, stopped at :math:`\lVert r\rVert \le \lVert g\rVert\min(\kappa, \lVert g\rVert^\theta)`
(theta = 1: quadratic local rate) or at negative curvature (then the iterate so far, or :math:`-g`), then takes
an Armijo step along :math:`\eta` (falling back to :math:`-g` when :math:`\eta` is not a descent direction).
Hessian-vector products: closed form (``ehess=``), autograd double backward (a closure that returns the
graph-attached cost), or central differences of the Riemannian gradient (a closure that calls ``backward``).
The singular Hessians of problems with symmetries (phases, X -> XQ) are fine: CG never factorises.
"""

from __future__ import annotations

from zoo.optim.base import RiemannianOptimizer, truncated_cg

__all__ = ["RiemannianNewton"]


class RiemannianNewton(RiemannianOptimizer):
    """Newton-tCG with Armijo globalisation (see module docstring).

    Args:
        kappa, theta: inner stopping rule of truncated CG.
        max_inner: inner CG iterations at most (default: the number of real entries of the point).
        sufficient_decrease, max_backtracks: the Armijo line search.
    """

    def __init__(self, params, *, kappa: float = 0.1, theta: float = 1.0, max_inner: int | None = None,
                 sufficient_decrease: float = 1e-4, max_backtracks: int = 40, **common) -> None:
        if not 0 < kappa < 1:
            raise ValueError(f"kappa must be in (0, 1), got {kappa}")
        if theta < 0:
            raise ValueError(f"theta must be >= 0, got {theta}")
        super().__init__(params, {}, **common)
        self.kappa, self.theta, self.max_inner = kappa, theta, max_inner
        self.c, self.max_backtracks = sufficient_decrease, max_backtracks
        self.failed_line_searches = 0
        self.last_inner_reason: str | None = None

    def _needs_graph(self) -> bool:
        return self.ehess is None

    def _iterate(self, closure, cost, egrad, rgrad, graph) -> None:
        x = [p.detach().clone() for p in self._params]
        hvp = self.hessian_operator(closure, x, egrad, rgrad, graph)
        eta, _, self.last_inner_reason = truncated_cg(self, x, rgrad, hvp, radius=None, kappa=self.kappa,
                                                      theta=self.theta, max_inner=self._max_inner(x),
                precondition=self._precondition_at(x))
        slope = self.inner(x, rgrad, eta)
        if slope >= 0:
            eta, slope = self.combine(-1.0, rgrad), -self.inner(x, rgrad, rgrad)
        found = self.backtrack(closure, x, eta, 1.0, lambda t: cost + self.c * t * slope, cost, self.norm(x, rgrad),
                               self.max_backtracks)
        if found is None:
            self.failed_line_searches += 1
            self.stop_reason = "line search failed (no sufficient decrease)"
            return
        step, trial, evaluation = found
        if step < 1.0:
            self.failed_line_searches += 1
        new_cost, new_egrad, new_rgrad, _ = evaluation or self.evaluate(closure, trial)
        self.accept(trial, new_cost, new_egrad, new_rgrad, step)
