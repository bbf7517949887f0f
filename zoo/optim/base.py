"""Shared machinery of the zoo's Riemannian optimizers (``torch.optim.Optimizer`` subclasses).

**Points.** All parameters of all param groups form one product point; each optimizer step moves them
together (one step size, one line search). A parameter is driven by its own geoopt manifold
(``ManifoldParameter.manifold``; plain parameters are Euclidean), or a param group names a
:class:`~zoo.manifolds.StructuredManifold` under ``"manifold"`` and its tensors form one multi-tensor point.

**Closures.** ``step(closure)`` needs a closure that evaluates the cost at the current parameters. Two kinds work:

* it returns the cost **with its graph** and does not call ``backward`` (plain PyTorch use, Lightning manual
  optimization): gradients and Hessian-vector products come from autograd;
* it calls ``backward`` itself and returns the (possibly detached) cost, as Lightning's automatic-optimization
  closure does: gradients are read from ``.grad``; second-order methods then use central finite differences of
  the Riemannian gradient for Hessian-vector products.

The optimizer clears ``.grad`` before each evaluation, so the closure need not call ``zero_grad``. The closure
must be deterministic (full batch). Each ``step`` is one iteration; ``minimize(closure)`` iterates until a
stopping rule fires. ``optimizer.result`` is an :class:`~zoo.optim.OptimizeResult`.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from zoo.manifolds.structured import StructuredManifold, as_structured
from zoo.optim.result import OptimizeResult

__all__ = ["RiemannianOptimizer"]

Vector = list  # list of tensors, one per parameter (a tangent vector of the product point)


def _real_inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.conj() * b).real.sum() if a.is_complex() else (a * b).sum()


class RiemannianOptimizer(torch.optim.Optimizer):
    """Base class: product-point algebra, gradient and HVP evaluation, stopping rules, the result record.

    Common arguments (every subclass):
        max_iterations: stop after this many iterations (steps that move the point).
        gradient_tolerance: stop (converged) when the Riemannian gradient norm is at most this.
        max_time: stop after this many seconds of wall time inside ``step``.
        ehess: optional closed-form Euclidean Hessian-vector product ``ehess(points, directions) -> list``.
        preconditioner: optional ``preconditioner(point, residual) -> tangent vector`` for truncated CG (Newton, trust
            region): a symmetric positive-definite operator on the tangent space at ``point`` in the manifold's metric,
            approximating the inverse Riemannian Hessian (see :func:`truncated_cg`).
    """

    def __init__(self, params, defaults: dict, *, max_iterations: int = 1000, gradient_tolerance: float = 1e-8,
                 max_time: float = math.inf, ehess: Callable | None = None,
                 preconditioner: Callable | None = None) -> None:
        if max_iterations < 0:
            raise ValueError(f"max_iterations must be >= 0, got {max_iterations}")
        if gradient_tolerance < 0:
            raise ValueError(f"gradient_tolerance must be >= 0, got {gradient_tolerance}")
        super().__init__(params, defaults)
        for group in self.param_groups:
            manifold = group.get("manifold")
            if manifold is not None and not isinstance(manifold, StructuredManifold):
                raise ValueError(f"a param group's 'manifold' must be a StructuredManifold, got {type(manifold).__name__}")
            if group.get("weight_decay", 0):
                raise ValueError("weight_decay is not supported (it pulls points off the manifold)")
        self.max_iterations = int(max_iterations)
        self.gradient_tolerance = float(gradient_tolerance)
        self.max_time = float(max_time)
        self.ehess = ehess
        self.preconditioner = preconditioner
        self.iterations = 0
        self.stop_reason: str | None = None
        self.history: list[dict[str, float]] = []
        self.counts = {"cost": 0, "gradient": 0, "hvp": 0}
        self.fd_underflows = 0  # finite-difference Hessian-vector products skipped because the step would underflow
        self._process_time = 0.0
        self._wall_time = 0.0
        self._cache: dict | None = None  # point, cost, egrad, rgrad at the current point
        self._pending: dict | None = None  # the last closure call (loss, parameter versions, point) for evaluate to reuse

    # -- the product point ---------------------------------------------------------------------------
    def _blocks(self) -> list[tuple[list[torch.Tensor], StructuredManifold]]:
        blocks = []
        for group in self.param_groups:
            if group.get("manifold") is not None:
                blocks.append((list(group["params"]), group["manifold"]))
            else:
                blocks.extend(([p], as_structured(getattr(p, "manifold", None))) for p in group["params"])
        return blocks

    @property
    def _params(self) -> list[torch.Tensor]:
        return [p for params, _ in self._blocks() for p in params]

    def _point(self) -> Vector:
        return [p.detach().clone() for p in self._params]

    @torch.no_grad()
    def _set_point(self, point: Vector) -> None:
        for p, value in zip(self._params, point):
            p.copy_(value)

    def _per_block(self, fn, *vectors) -> Vector:
        out, start = [], 0
        for params, manifold in self._blocks():
            k = len(params)
            out.extend(fn(manifold, *(tuple(v[start:start + k]) for v in vectors)))
            start += k
        return out

    def inner(self, x: Vector, u: Vector, v: Vector) -> float:
        total, start = 0.0, 0
        for params, manifold in self._blocks():
            k = len(params)
            total += float(manifold.inner(tuple(x[start:start + k]), tuple(u[start:start + k]), tuple(v[start:start + k])))
            start += k
        return total

    def norm(self, x: Vector, u: Vector) -> float:
        return math.sqrt(max(self.inner(x, u, u), 0.0))

    def proju(self, x: Vector, u: Vector) -> Vector:
        return self._per_block(lambda m, x_, u_: m.proju(x_, u_), x, u)

    def egrad2rgrad(self, x: Vector, g: Vector) -> Vector:
        return self._per_block(lambda m, x_, g_: m.egrad2rgrad(x_, g_), x, g)

    def retr(self, x: Vector, u: Vector, t: float = 1.0) -> Vector:
        return self._per_block(lambda m, x_, u_: m.retr(x_, tuple(t * a for a in u_)), x, u)

    def transp(self, x: Vector, y: Vector, v: Vector) -> Vector:
        return self._per_block(lambda m, x_, y_, v_: m.transp(x_, y_, v_), x, y, v)

    def ehess2rhess(self, x: Vector, g: Vector, h: Vector, u: Vector) -> Vector:
        return self._per_block(lambda m, x_, g_, h_, u_: m.ehess2rhess(x_, g_, h_, u_), x, g, h, u)

    @staticmethod
    def roundoff(cost: float) -> float:
        """Cost differences below this are round-off (cannot confirm a decrease)."""
        return 100 * 2.220446049250313e-16 * max(1.0, abs(cost))

    def backtrack(self, closure, x: Vector, direction: Vector, step: float, threshold: Callable[[float], float],
                  cost: float, gradient_norm: float, max_backtracks: int):
        """Backtracking (x 1/2) until ``f(R_x(step d)) <= threshold(step)``; returns ``(step, trial, evaluation)`` or None.

        In the round-off regime (the cost change is below :meth:`roundoff`, so no decrease can be confirmed) a
        trial is accepted when its gradient norm is smaller; ``evaluation`` then holds its (cost, egrad, rgrad,
        graph), else None. Without this, line searches stall near the solution (our safeguard).
        """
        for _ in range(max_backtracks):
            trial = self.retr(x, direction, step)
            trial_cost = self.cost_at(closure, trial)
            if trial_cost <= threshold(step):
                return step, trial, None
            if abs(trial_cost - cost) <= self.roundoff(cost):
                evaluation = self.evaluate(closure, trial)
                if self.norm(trial, evaluation[2]) < gradient_norm:
                    return step, trial, evaluation
            step *= 0.5
        self._set_point(x)
        return None

    @staticmethod
    def combine(a: float, u: Vector, b: float = 0.0, v: Vector | None = None) -> Vector:
        """``a u + b v``."""
        if v is None:
            return [a * ui for ui in u]
        return [a * ui + b * vi for ui, vi in zip(u, v)]

    # -- evaluation ----------------------------------------------------------------------------------
    def _call(self, closure: Callable, create_graph: bool = False):
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure that returns the cost")
        params = self._params
        for p in params:
            p.grad = None
        with torch.enable_grad():
            loss = closure()
        if loss is None:
            raise ValueError("the closure returned None; it must return the cost (a 0-dim tensor)")
        if not torch.is_tensor(loss):
            loss = torch.as_tensor(loss)
        self.counts["cost"] += 1
        self._pending = {"loss": loss, "versions": [p._version for p in params], "point": None}
        return loss, params

    def cost_at(self, closure: Callable, point: Vector) -> float:
        """Cost at ``point`` (the parameters are left at ``point``)."""
        self._set_point(point)
        loss, _ = self._call(closure)
        self._pending["point"] = point
        value = float(loss.detach())
        return value if math.isfinite(value) else math.inf

    def _reusable(self, point: Vector | None):
        """The loss of the last ``cost_at(closure, point)`` if the parameters have not changed since (its graph, or
        the gradients its closure accumulated, then give the gradient without a second forward pass)."""
        pending, self._pending = self._pending, None
        if point is None or pending is None or pending["point"] is not point:
            return None
        params = self._params
        if [p._version for p in params] != pending["versions"]:
            return None
        return pending["loss"]

    def evaluate(self, closure: Callable, point: Vector | None = None, create_graph: bool = False):
        """``(cost, egrad, rgrad, graph)`` at ``point`` (default: the current parameters).

        ``graph`` is ``(loss, params, egrad_with_graph)`` when autograd Hessian-vector products are possible. Right
        after ``cost_at(closure, point)`` (same ``point`` object, parameters untouched) the closure is not called
        again: the gradient comes from that call's graph or accumulated ``.grad``.
        """
        loss = self._reusable(point)
        if loss is not None:
            params = self._params
        else:
            if point is not None:
                self._set_point(point)
            loss, params = self._call(closure, create_graph)
            self._pending = None
        graph = None
        if all(p.grad is None for p in params) and loss.requires_grad:
            grads = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
            if create_graph:
                graph = (loss, params, grads)
            egrad = [g.detach() for g in grads]
        else:
            egrad = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
        self.counts["gradient"] += 1
        x = [p.detach() for p in params]
        rgrad = self.egrad2rgrad(x, egrad)
        return float(loss.detach()), egrad, rgrad, graph

    def hessian_operator(self, closure: Callable, x: Vector, egrad: Vector, rgrad: Vector, graph) -> Callable[[Vector], Vector]:
        """The Riemannian Hessian at ``x`` as a function of a tangent vector (closed form, autograd or finite differences)."""
        x = [xi.clone() for xi in x]

        def count():
            self.counts["hvp"] += 1

        if self.ehess is not None:
            def hvp(u):
                count()
                return self.ehess2rhess(x, egrad, list(self.ehess(x, u)), u)
            return hvp
        if graph is not None and any(g.requires_grad for g in graph[2]):
            _, params, grads = graph

            def hvp(u):
                count()
                dot = sum(_real_inner(g, ui) for g, ui in zip(grads, u))
                h = torch.autograd.grad(dot, params, retain_graph=True, allow_unused=True)
                h = [torch.zeros_like(p) if hi is None else hi.detach() for p, hi in zip(params, h)]
                return self.ehess2rhess(x, egrad, h, u)
            return hvp

        def hvp(u):  # central differences of the transported Riemannian gradient
            count()
            size = self.norm(x, u)
            if size == 0:
                return [torch.zeros_like(ui) for ui in u]
            h = 1e-5 / size
            if not (math.isfinite(size) and h >= 1e-150):
                # the step would underflow (e.g. a Fisher-metric norm at weights near 1e-308): no curvature
                # information; a zero product makes truncated CG fall back to the gradient direction
                self.fd_underflows += 1
                return [torch.zeros_like(ui) for ui in u]
            _, _, g_plus, _ = self.evaluate(closure, self.retr(x, u, h))
            plus = self.transp(self.retr(x, u, h), x, g_plus)
            _, _, g_minus, _ = self.evaluate(closure, self.retr(x, u, -h))
            minus = self.transp(self.retr(x, u, -h), x, g_minus)
            self._set_point(x)
            return self.combine(0.5 / h, plus, -0.5 / h, minus)
        return hvp

    def current(self, closure: Callable, create_graph: bool = False):
        """Cost and gradients at the current parameters (cached between steps when nothing moved them)."""
        x = self._point()
        cache = self._cache
        if (cache is not None and not create_graph and len(cache["x"]) == len(x)
                and all(torch.equal(a, b) for a, b in zip(cache["x"], x))):
            return cache["cost"], cache["egrad"], cache["rgrad"], None
        cost, egrad, rgrad, graph = self.evaluate(closure, create_graph=create_graph)
        self._cache = {"x": x, "cost": cost, "egrad": egrad, "rgrad": rgrad}
        return cost, egrad, rgrad, graph

    def accept(self, point: Vector, cost: float, egrad: Vector, rgrad: Vector, step_size: float) -> None:
        """Move to ``point`` (with its cost and gradients already known) and record the iteration."""
        self._set_point(point)
        self._cache = {"x": [p.clone() for p in point], "cost": cost, "egrad": egrad, "rgrad": rgrad}
        self.iterations += 1
        self.history.append({"iteration": self.iterations, "cost": cost,
                             "gradient_norm": self.norm(point, rgrad), "step": step_size})

    # -- the step --------------------------------------------------------------------------------------
    @property
    def converged(self) -> bool:
        return self.stop_reason is not None and self.stop_reason.startswith("gradient norm")

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    def _check_stop(self, gradient_norm: float) -> bool:
        if not math.isfinite(gradient_norm):
            self.stop_reason = "gradient is not finite"
        elif gradient_norm <= self.gradient_tolerance:
            self.stop_reason = f"gradient norm {gradient_norm:.3g} <= tolerance {self.gradient_tolerance:.3g}"
        elif self.iterations >= self.max_iterations:
            self.stop_reason = f"reached max_iterations = {self.max_iterations}"
        elif self._wall_time >= self.max_time:
            self.stop_reason = f"reached max_time = {self.max_time} s"
        return self.stop_reason is not None

    def _iterate(self, closure: Callable, cost: float, egrad: Vector, rgrad: Vector, graph) -> None:
        raise NotImplementedError

    def _max_inner(self, x: Vector) -> int:
        """Inner CG cap: ``max_inner`` if set, else the number of real entries of the point (>= the dimension,
        pymanopt's default is the dimension): ill-conditioned Hessians need that many to reach the theta rule."""
        configured = getattr(self, "max_inner", None)
        return configured if configured is not None else sum(2 * p.numel() if p.is_complex() else p.numel() for p in x)

    def dimension(self) -> int:
        """Dimension of the product point: a structured manifold's ``dimension`` where it declares one, else the number of
        real entries of the block's tensors (an upper bound: complex entries count twice)."""
        total = 0
        for params, manifold in self._blocks():
            dim = getattr(manifold, "dimension", None) if isinstance(manifold, StructuredManifold) else None
            total += int(dim) if isinstance(dim, int) else sum(2 * p.numel() if p.is_complex() else p.numel() for p in params)
        return total

    def _needs_graph(self) -> bool:
        return False

    def _precondition_at(self, x: Vector) -> Callable[[Vector], Vector] | None:
        """The preconditioner at ``x`` as a map of tangent vectors (None without one)."""
        if self.preconditioner is None:
            return None
        return lambda r: self.preconditioner(x, r)

    def step(self, closure: Callable | None = None):  # type: ignore[override]
        """One iteration (no-op once a stopping rule has fired); returns the cost before the step."""
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        try:
            calls = self.counts["cost"]
            cost, egrad, rgrad, graph = self.current(closure, create_graph=self._needs_graph() and not self.stopped)
            x = [p.detach() for p in self._params]
            if not self.stopped and not self._check_stop(self.norm(x, rgrad)):
                self._iterate(closure, cost, egrad, rgrad, graph)
            if self.counts["cost"] == calls:  # Lightning requires every step to run the closure at least once
                self._call(closure)
            return torch.tensor(cost)
        finally:
            self._wall_time += time.perf_counter() - started_wall
            self._process_time += time.process_time() - started_cpu

    def minimize(self, closure: Callable, progress: bool = False) -> OptimizeResult:
        """Iterate ``step(closure)`` until a stopping rule fires; returns :attr:`result`."""
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.max_iterations, desc=type(self).__name__, leave=False)
        while not self.stopped:
            self.step(closure)
            if bar is not None:
                bar.n = self.iterations
                bar.set_postfix(cost=self.history[-1]["cost"] if self.history else None, refresh=True)
        if bar is not None:
            bar.close()
        return self.result

    @property
    def process_time(self) -> float:
        """CPU seconds spent inside ``step`` so far."""
        return self._process_time

    @property
    def wall_time(self) -> float:
        """Wall-clock seconds spent inside ``step`` so far."""
        return self._wall_time

    @property
    def result(self) -> OptimizeResult:
        cache = self._cache or {}
        x = self._point()
        rgrad = cache.get("rgrad")
        gradient_norm = self.norm(x, rgrad) if rgrad is not None else math.nan
        return OptimizeResult(
            point=x, cost=cache.get("cost", math.nan), gradient_norm=gradient_norm, iterations=self.iterations,
            stop_reason=self.stop_reason, converged=self.converged, process_time=self._process_time,
            wall_time=self._wall_time, cost_evaluations=self.counts["cost"], gradient_evaluations=self.counts["gradient"],
            hessian_vector_products=self.counts["hvp"], history=list(self.history),
        )

    def reset(self) -> None:
        """Forget the stop reason and the counters (keep the point)."""
        self.iterations, self.stop_reason, self.history = 0, None, []
        self.counts = {"cost": 0, "gradient": 0, "hvp": 0}
        self._process_time = self._wall_time = 0.0
        self._cache = None


def truncated_cg(optimizer: RiemannianOptimizer, x: Vector, rgrad: Vector, hvp: Callable[[Vector], Vector], *,
                 radius: float | None, kappa: float, theta: float, max_inner: int,
                 precondition: Callable[[Vector], Vector] | None = None):
    """Steihaug-Toint truncated CG on ``Hess[eta] = -grad`` in the tangent space (metric of the manifold).

    Stops when ``|r| <= |r0| min(|r0|^theta, kappa)`` (Absil, Baker, Gallivan 2007, Alg. 2), on negative
    curvature, or at the trust-region boundary (``radius``; None = Newton, no boundary). Returns
    ``(eta, H eta, reason)``.

    With ``precondition`` (a symmetric positive-definite map P of the tangent space, ideally close to the inverse
    Hessian) this is preconditioned CG: search directions come from :math:`z = P r`, and the trust region is the
    ball of the P^{-1}-norm :math:`\\lVert\\eta\\rVert_{P^{-1}}` (the quantities ``e_Pe``, ``e_Pd``, ``d_Pd`` of Conn, Gould,
    Toint, Trust-Region Methods, 2000, sec. 7.5 [recall], as in Manopt's ``tCG``); the stopping rule still uses the plain
    residual norm. Without it, P is the identity and this is the plain method.
    """
    inner = lambda u, v: optimizer.inner(x, u, v)  # noqa: E731
    apply_p = precondition if precondition is not None else (lambda r_: r_)
    eta = [torch.zeros_like(g) for g in rgrad]
    h_eta = [torch.zeros_like(g) for g in rgrad]
    r = [g.clone() for g in rgrad]
    r0 = math.sqrt(inner(r, r))
    z = apply_p(r)
    z_r = inner(z, r)
    delta = optimizer.combine(-1.0, z)
    e_e, e_d, d_d = 0.0, 0.0, z_r  # <eta, eta>, <eta, delta>, <delta, delta> in the P^{-1}-norm
    # no need to solve below the outer tolerance (round-off would make the last inner steps wander)
    target = max(r0 * min(r0 ** theta, kappa), 0.1 * optimizer.gradient_tolerance)
    for _ in range(max_inner):
        h_delta = hvp(delta)
        d_h_d = inner(delta, h_delta)
        alpha = z_r / d_h_d if d_h_d != 0 else math.inf
        e_e_new = e_e + 2 * alpha * e_d + alpha * alpha * d_d
        if d_h_d <= 0 or (radius is not None and e_e_new >= radius * radius):
            if radius is None:
                if not any(float(e.abs().max()) > 0 for e in eta):
                    return optimizer.combine(-1.0, rgrad), None, "negative curvature at the first inner step"
                return eta, h_eta, "negative curvature"
            tau = (-e_d + math.sqrt(max(e_d * e_d + d_d * (radius * radius - e_e), 0.0))) / d_d
            eta = optimizer.combine(1.0, eta, tau, delta)
            h_eta = optimizer.combine(1.0, h_eta, tau, h_delta)
            return eta, h_eta, "negative curvature" if d_h_d <= 0 else "trust-region boundary"
        eta = optimizer.combine(1.0, eta, alpha, delta)
        h_eta = optimizer.combine(1.0, h_eta, alpha, h_delta)
        e_e = e_e_new
        r = optimizer.combine(1.0, r, alpha, h_delta)
        r = optimizer.proju(x, r)  # keep the residual tangent against round-off
        if math.sqrt(max(inner(r, r), 0.0)) <= target:
            return eta, h_eta, "residual tolerance"
        z = apply_p(r)
        z_r_new = inner(z, r)
        beta = z_r_new / z_r
        z_r = z_r_new
        delta = optimizer.combine(-1.0, z, beta, delta)
        e_d = beta * (e_d + alpha * d_d)
        d_d = z_r + beta * beta * d_d
    return eta, h_eta, "max inner iterations"
