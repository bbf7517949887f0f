r"""Riemannian nonlinear conjugate gradients (Absil, Mahony, Sepulchre 2008, section 8.3; Sato 2021).

:math:`d_{k+1} = -g_{k+1} + \beta_k \mathcal{T}(d_k)` with the betas

* ``"fr"`` Fletcher-Reeves :math:`\lVert g_{k+1}\rVert^2 / \lVert g_k\rVert^2`;
* ``"pr+"`` Polak-Ribiere+ :math:`\max(0, \langle g_{k+1}, g_{k+1} - \mathcal{T} g_k\rangle / \lVert g_k\rVert^2)`;
* ``"hs"`` Hestenes-Stiefel+ :math:`\max(0, \langle g_{k+1}, y\rangle / \langle \mathcal{T} d_k, y\rangle)`;
* ``"hz"`` Hager-Zhang :math:`\langle y - 2 d \lVert y\rVert^2/\langle d, y\rangle, g_{k+1}\rangle / \langle d, y\rangle`,

with :math:`y = g_{k+1} - \mathcal{T} g_k`. The direction restarts at :math:`-g` when it is not a descent
direction. Armijo backtracking from twice the last accepted step *length* along the new direction
(:math:`t_0 = 2 t_{k-1}\lVert d_{k-1}\rVert / \lVert d_k\rVert`; our rule, in the spirit of Manopt's adaptive line
search, which remembers a multiplier of :math:`d` instead of a length). The earlier first
trial, Nocedal and Wright's :math:`2 (f_k - f_{k-1}) / \langle g, d\rangle`, never lets the step grow again after a
small decrease; on an ill-conditioned simplex x spheres problem the method then crawled.

``line_step(x, d)``, when given, supplies the first trial instead (a positive finite number; anything else falls
back to the rule above): for a cost that is quadratic along the ambient line :math:`X + t\,D\varphi[d]`, its exact
minimiser (geomCG's linearised line search, :meth:`zoo.tensor_completion.CompletionProblem.exact_step`). Armijo
backtracking still guards it.
"""

from __future__ import annotations

import math

from zoo.optim.base import RiemannianOptimizer

__all__ = ["RiemannianCG"]

_BETAS = ("fr", "pr+", "hs", "hz")


class RiemannianCG(RiemannianOptimizer):
    """Riemannian CG with a restart safeguard and Armijo backtracking (see module docstring)."""

    def __init__(self, params, *, beta: str = "hz", sufficient_decrease: float = 1e-4, max_backtracks: int = 40,
                 initial_step: float | None = None, line_step=None, **common) -> None:
        if beta not in _BETAS:
            raise ValueError(f"beta must be one of {_BETAS}, got {beta!r}")
        super().__init__(params, {}, **common)
        self.beta, self.c, self.max_backtracks, self.initial_step = beta, sufficient_decrease, max_backtracks, initial_step
        self.line_step = line_step
        self._direction = None
        self._last_length = None  # length t |d| of the last accepted step

    def _iterate(self, closure, cost, egrad, rgrad, graph) -> None:
        x = [p.detach().clone() for p in self._params]
        direction = self._direction if self._direction is not None else self.combine(-1.0, rgrad)
        slope = self.inner(x, rgrad, direction)
        if slope >= 0:  # restart
            direction = self.combine(-1.0, rgrad)
            slope = -self.inner(x, rgrad, rgrad)
        direction_norm = self.norm(x, direction)
        guess = self.line_step(x, direction) if self.line_step is not None else math.nan
        if math.isfinite(guess) and guess > 0:  # the problem's own first trial (e.g. an exact line minimiser)
            step = guess
        elif self._last_length is None:
            step = self.initial_step or 1.0 / math.sqrt(-slope if slope < 0 else 1.0)
        else:  # twice the last accepted step length, along the new direction
            step = 2 * self._last_length / direction_norm if direction_norm > 0 else 1.0
        gradient_norm = self.norm(x, rgrad)
        found = self.backtrack(closure, x, direction, step, lambda t: cost + self.c * t * slope, cost, gradient_norm,
                               self.max_backtracks)
        if found is None:
            if self._direction is not None:  # retry from steepest descent once
                self._direction = None
                return
            self.stop_reason = "line search failed (no sufficient decrease)"
            return
        step, trial, evaluation = found
        new_cost, new_egrad, new_rgrad, _ = evaluation or self.evaluate(closure, trial)
        moved_grad = self.transp(x, trial, rgrad)
        moved_dir = self.transp(x, trial, direction)
        y = self.combine(1.0, new_rgrad, -1.0, moved_grad)
        g_g = self.inner(x, rgrad, rgrad)
        if self.beta == "fr":
            beta = self.inner(trial, new_rgrad, new_rgrad) / g_g
        elif self.beta == "pr+":
            beta = max(0.0, self.inner(trial, new_rgrad, y) / g_g)
        else:
            d_y = self.inner(trial, moved_dir, y)
            if d_y == 0:
                beta = 0.0
            elif self.beta == "hs":
                beta = max(0.0, self.inner(trial, new_rgrad, y) / d_y)  # HS+
            else:
                y_y = self.inner(trial, y, y)
                beta = (self.inner(trial, y, new_rgrad) - 2 * y_y / d_y * self.inner(trial, moved_dir, new_rgrad)) / d_y
                # Hager-Zhang lower bound -1 / (|d| min(eta, |g|)), eta = 0.01
                bound = -1.0 / (self.norm(trial, moved_dir) * min(0.01, math.sqrt(g_g)))
                beta = max(beta, bound)
        self._direction = self.combine(-1.0, new_rgrad, beta, moved_dir)
        self._last_length = step * direction_norm
        self.accept(trial, new_cost, new_egrad, new_rgrad, step)

    def reset(self) -> None:
        super().reset()
        self._direction, self._last_length = None, None
