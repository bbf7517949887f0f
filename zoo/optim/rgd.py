r"""Riemannian gradient descent with Barzilai-Borwein steps and a nonmonotone Armijo search.

Step size: alternating BB1 :math:`\langle s, s\rangle / \langle s, y\rangle` and BB2
:math:`\langle s, y\rangle / \langle y, y\rangle` with :math:`s = \mathcal{T}(t d)` the transported step and
:math:`y = \mathrm{grad} f(x_{k+1}) - \mathcal{T}\,\mathrm{grad} f(x_k)`, clamped to [1e-10, 1e10] (Iannazzo and
Porcelli, IMA J. Numer. Anal. 2018). Acceptance: the nonmonotone rule of Zhang and Hager (SIAM J. Optim. 2004):
accept :math:`f(R_x(-t g)) \le C_k - c\, t \lVert g\rVert^2`, with the reference
:math:`C_{k+1} = (\eta Q_k C_k + f_{k+1}) / Q_{k+1}`, :math:`Q_{k+1} = \eta Q_k + 1`; backtrack by 1/2.
This is the solver of the Holevo-capacity paper's official code (Manopt ``barzilaiborwein``), written anew.
``line_step(x, d)``, when given and positive, replaces the BB trial (e.g. an exact line minimiser along d).
"""

from __future__ import annotations

import math

from zoo.optim.base import RiemannianOptimizer

__all__ = ["RiemannianGD"]


class RiemannianGD(RiemannianOptimizer):
    """RGD with BB steps and nonmonotone Armijo backtracking (see module docstring).

    Args:
        params: parameters or param groups (see :mod:`zoo.optim.base`).
        initial_step: first trial step (default ``1 / |grad_0|``).
        sufficient_decrease: Armijo constant c.
        nonmonotone: Zhang-Hager eta in [0, 1] (0 = monotone Armijo).
        max_backtracks: halvings before the line search gives up (stop reason).
        line_step: optional ``line_step(x, direction) -> float``, the trial step to use instead of BB where it
            returns a positive finite number.
        **common: ``max_iterations``, ``gradient_tolerance``, ``max_time`` (see ``RiemannianOptimizer``).

    Example::

        >>> opt = RiemannianGD([weights, states], gradient_tolerance=1e-9)
        >>> result = opt.minimize(lambda: cost(weights, states))
    """

    def __init__(self, params, *, initial_step: float | None = None, sufficient_decrease: float = 1e-4,
                 nonmonotone: float = 0.85, max_backtracks: int = 40, min_step: float = 1e-10, max_step: float = 1e10,
                 line_step=None, **common) -> None:
        if not 0 <= nonmonotone <= 1:
            raise ValueError(f"nonmonotone must be in [0, 1], got {nonmonotone}")
        if not 0 < sufficient_decrease < 1:
            raise ValueError(f"sufficient_decrease must be in (0, 1), got {sufficient_decrease}")
        if initial_step is not None and initial_step <= 0:
            raise ValueError(f"initial_step must be > 0, got {initial_step}")
        super().__init__(params, {}, **common)
        self.initial_step, self.c, self.eta = initial_step, sufficient_decrease, nonmonotone
        self.max_backtracks, self.min_step, self.max_step = max_backtracks, min_step, max_step
        self.line_step = line_step
        self._bb: float | None = None
        self._reference: tuple[float, float] | None = None  # (C_k, Q_k)

    def _iterate(self, closure, cost, egrad, rgrad, graph) -> None:
        x = [p.detach().clone() for p in self._params]
        g2 = self.inner(x, rgrad, rgrad)
        if self._reference is None:
            self._reference = (cost, 1.0)
        reference, q = self._reference
        direction = self.combine(-1.0, rgrad)
        guess = self.line_step(x, direction) if self.line_step is not None else math.nan
        if math.isfinite(guess) and guess > 0:  # the problem's own trial step replaces BB
            step = guess
        else:
            step = self._bb if self._bb is not None else (self.initial_step or 1.0 / math.sqrt(g2))
        found = self.backtrack(closure, x, direction, step, lambda t: reference - self.c * t * g2, cost, math.sqrt(g2),
                               self.max_backtracks)
        if found is None:
            self.stop_reason = "line search failed (no sufficient decrease)"
            return
        step, trial, evaluation = found
        new_cost, new_egrad, new_rgrad, _ = evaluation or self.evaluate(closure, trial)
        s = self.transp(x, trial, self.combine(step, direction))
        y = self.combine(1.0, new_rgrad, -1.0, self.transp(x, trial, rgrad))
        s_y, s_s, y_y = self.inner(trial, s, y), self.inner(trial, s, s), self.inner(trial, y, y)
        if s_y > 0:
            bb = s_s / s_y if self.iterations % 2 == 0 else s_y / y_y
        else:  # no curvature information: grow the accepted step (a max_step trial would waste backtracks)
            bb = 2 * step
        self._bb = min(max(bb, self.min_step), self.max_step)
        q_new = self.eta * q + 1.0
        self._reference = ((self.eta * q * reference + new_cost) / q_new, q_new)
        self.accept(trial, new_cost, new_egrad, new_rgrad, step)

    def reset(self) -> None:
        super().reset()
        self._bb, self._reference = None, None
