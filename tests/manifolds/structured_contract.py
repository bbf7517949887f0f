"""The contract every :class:`~zoo.manifolds.StructuredManifold` passes (points that are tuples of tensors).

Subclass :class:`StructuredContract` in a test module, name the subclass ``Test...`` and give it a ``manifold``
fixture (parametrise it over every variant: constraints, metrics, weights); every check below then runs for
each. Checks, all in float64:

1. ``random()`` is feasible to 1e-12;
2. ``proju`` is tangent, idempotent and metric-orthogonal;
3. ``inner`` is symmetric and positive; if the manifold is a Riemannian submanifold (``ambient_inner``), the
   metric equals the ambient metric of the velocities;
4. ``to_ambient`` is the velocity of ``represent`` along the retraction curve (central differences);
5. the Riesz identity of ``egrad2rgrad``: ``inner(x, rgrad, v) = sum_i <egrad_i, v_i>``;
6. the retraction: ``R(x, 0) = x``, feasible for steps 1e-6..10, first order in the ambient space (slope 2);
   a second-order retraction (``second_order_retraction``) also has zero tangential acceleration;
7. ``transp`` gives tangent vectors and is linear;
8. Taylor slope 2 of the gradient and slope 3 of the Hessian (away from critical points when the retraction
   is second order; at a critical point from ``random_normal`` when the manifold offers one), the Hessian
   symmetric there (steps whose remainder is at the round-off floor of the cost are left out of the slope fit); a
   Hessian without its curvature term is shown to fail the same check.

The test cost is smooth and not quadratic in the represented object ``X = represent(x)[0]``:
``f = 1/2 sum w (X - X*)^2 + <L, X> + 1/4 sum (X - X*)^4``, differentiated by autograd on the factors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

__all__ = ["StructuredContract", "autograd_factors", "taylor_slope"]


def taylor_slope(ts, errors) -> float:
    """Slope of log(error) against log(t), by least squares."""
    return float(np.polyfit(np.log(np.asarray(ts)), np.log(np.asarray(errors)), 1)[0])


def _dot(u, v) -> torch.Tensor:
    return sum((a * b).sum() for a, b in zip(u, v))


def _norm(tensors) -> float:
    return float(torch.sqrt(sum((t * t).sum() for t in tensors)))


def _randn_like(x, generator):
    return tuple(torch.randn(t.shape, dtype=t.dtype, generator=generator) for t in x)


def autograd_factors(cost, x, u=None):
    """Gradient of ``cost`` in the factors of ``x`` and, with a direction ``u``, its derivative along ``u``."""
    point = tuple(t.detach().clone().requires_grad_(True) for t in x)
    value = cost(point)
    egrad = torch.autograd.grad(value, point, create_graph=u is not None)
    if u is None:
        return tuple(g.detach() for g in egrad)
    ehess = torch.autograd.grad(_dot(egrad, u), point)
    return tuple(g.detach() for g in egrad), tuple(h.detach() for h in ehess)


class StructuredContract:
    """Base of the contract tests; subclasses provide the ``manifold`` fixture."""

    seed = 0

    # -- helpers ---------------------------------------------------------------------------------------------
    def setup_point(self, manifold, seed=None):
        generator = torch.Generator().manual_seed(self.seed if seed is None else seed)
        return manifold.random(generator=generator, dtype=torch.float64), generator

    @staticmethod
    def tangent(manifold, x, generator, unit=True):
        u = manifold.proju(x, _randn_like(x, generator))
        if unit:
            scale = float(manifold.inner(x, u, u)) ** -0.5
            u = tuple(scale * a for a in u)
        return u

    @staticmethod
    def cost_near(manifold, generator, x, linear=None):
        """The smooth test cost of the module docstring, centred on another random point's object."""
        target = manifold.represent(manifold.random(generator=generator, dtype=torch.float64))[0].detach()
        weights = torch.rand(target.shape, dtype=torch.float64, generator=generator) + 0.5
        if linear is None:
            linear = torch.randn(target.shape, dtype=torch.float64, generator=generator)
        return StructuredContract.cost_from(manifold, target, weights, linear)

    @staticmethod
    def cost_from(manifold, target, weights, linear):
        def cost(point):
            difference = manifold.represent(point)[0] - target
            square = difference * difference
            return 0.5 * (weights * square).sum() + (linear * manifold.represent(point)[0]).sum() + 0.25 * (square * square).sum()

        return cost

    # -- the contract ----------------------------------------------------------------------------------------
    def test_random_point_is_feasible(self, manifold):
        for seed in range(3):
            x, _ = self.setup_point(manifold, seed)
            assert all(t.dtype == torch.float64 for t in x)
            assert manifold.feasibility(x) < 1e-12

    def test_projection_is_tangent_idempotent_and_metric_orthogonal(self, manifold):
        x, generator = self.setup_point(manifold)
        u = _randn_like(x, generator)
        pu = manifold.proju(x, u)
        scale = max(1.0, _norm(u))
        assert manifold.tangent_residual(x, pu) < 1e-11 * scale
        ppu = manifold.proju(x, pu)
        assert _norm(tuple(a - b for a, b in zip(ppu, pu))) < 1e-11 * scale
        v = self.tangent(manifold, x, generator)
        assert abs(float(manifold.inner(x, tuple(a - b for a, b in zip(u, pu)), v))) < 1e-10 * scale

    def test_metric_is_symmetric_positive_and_ambient(self, manifold):
        x, generator = self.setup_point(manifold)
        u, v = self.tangent(manifold, x, generator, unit=False), self.tangent(manifold, x, generator, unit=False)
        uv, vu = float(manifold.inner(x, u, v)), float(manifold.inner(x, v, u))
        assert abs(uv - vu) < 1e-12 * max(1.0, abs(uv))
        assert float(manifold.inner(x, u, u)) > 0
        try:
            ambient = float(manifold.ambient_inner(manifold.to_ambient(x, u), manifold.to_ambient(x, v)))
        except NotImplementedError:
            return
        assert abs(ambient - uv) < 1e-11 * max(1.0, abs(uv))

    def test_to_ambient_is_the_velocity_of_the_represented_point(self, manifold):
        x, generator = self.setup_point(manifold)
        u = self.tangent(manifold, x, generator)
        h = 1e-5
        plus, minus = manifold.represent(manifold.retr(x, tuple(h * a for a in u))), manifold.represent(
            manifold.retr(x, tuple(-h * a for a in u)))
        velocity = tuple((p - m) / (2 * h) for p, m in zip(plus, minus))
        expected = manifold.to_ambient(x, u)
        assert len(velocity) == len(expected)
        assert _norm(tuple(a - b for a, b in zip(velocity, expected))) < 1e-7 * max(1.0, _norm(expected))

    def test_riesz_identity_of_the_gradient(self, manifold):
        x, generator = self.setup_point(manifold)
        egrad = _randn_like(x, generator)
        rgrad = manifold.egrad2rgrad(x, egrad)
        assert manifold.tangent_residual(x, rgrad) < 1e-10 * max(1.0, _norm(egrad))
        for _ in range(3):
            v = self.tangent(manifold, x, generator)
            left, right = float(manifold.inner(x, rgrad, v)), float(_dot(egrad, v))
            assert abs(left - right) <= 1e-10 * max(1.0, abs(right))

    def test_retraction_is_feasible_and_first_order(self, manifold):
        x, generator = self.setup_point(manifold)
        u = self.tangent(manifold, x, generator)
        at_zero = manifold.represent(manifold.retr(x, tuple(0 * a for a in u)))
        assert _norm(tuple(a - b for a, b in zip(at_zero, manifold.represent(x)))) < 1e-12
        for size in (1e-6, 1e-2, 1.0, 10.0):
            assert manifold.feasibility(manifold.retr(x, tuple(size * a for a in u))) < 1e-10
        start, velocity = manifold.represent(x), manifold.to_ambient(x, u)
        ts = np.logspace(-4, -2, 5)
        errors = [_norm(tuple(r - s - t * v for r, s, v in zip(manifold.represent(manifold.retr(x, tuple(t * a for a in u))), start, velocity)))
                  for t in ts]
        assert taylor_slope(ts, errors) > 1.9

    def test_second_order_retraction_has_no_tangential_acceleration(self, manifold):
        if not manifold.second_order_retraction:
            pytest.skip(f"{manifold.name} does not claim a second-order retraction")
        x, generator = self.setup_point(manifold)
        u = self.tangent(manifold, x, generator)
        h = 1e-3
        curve = [manifold.represent(manifold.retr(x, tuple(s * h * a for a in u))) for s in (-1, 0, 1)]
        acceleration = tuple((p - 2 * c + m) / h**2 for m, c, p in zip(*curve))
        # tangential part: the metric pairing with every tangent direction vanishes (checked on random ones)
        for _ in range(3):
            v = self.tangent(manifold, x, generator)
            assert abs(float(manifold.ambient_inner(acceleration, manifold.to_ambient(x, v)))) < 1e-4

    def test_transport_is_tangent_and_linear(self, manifold):
        x, generator = self.setup_point(manifold)
        y = manifold.retr(x, tuple(0.3 * a for a in self.tangent(manifold, x, generator)))
        v, w = self.tangent(manifold, x, generator), self.tangent(manifold, x, generator)
        moved = manifold.transp(x, y, v)
        assert manifold.tangent_residual(y, moved) < 1e-10
        combined = manifold.transp(x, y, tuple(2.0 * a - 3.0 * b for a, b in zip(v, w)))
        expected = tuple(2.0 * a - 3.0 * b for a, b in zip(moved, manifold.transp(x, y, w)))
        assert _norm(tuple(a - b for a, b in zip(combined, expected))) < 1e-10

    def test_gradient_taylor_slope_two(self, manifold):
        x, generator = self.setup_point(manifold)
        cost = self.cost_near(manifold, generator, x)
        rgrad = manifold.egrad2rgrad(x, autograd_factors(cost, x))
        u = self.tangent(manifold, x, generator)
        slope = float(manifold.inner(x, rgrad, u))
        ts = np.logspace(-5, -2, 6)
        errors = [abs(float(cost(manifold.retr(x, tuple(t * a for a in u))) - cost(x)) - t * slope) for t in ts]
        assert abs(taylor_slope(ts, errors) - 2) < 0.1

    def _hessian_check(self, manifold, x, generator, cost, require_slope_drop: bool):
        u = self.tangent(manifold, x, generator)
        egrad, ehess = autograd_factors(cost, x, u)
        hess_u = manifold.ehess2rhess(x, egrad, ehess, u)
        assert manifold.tangent_residual(x, hess_u) < 1e-9 * max(1.0, _norm(hess_u))
        rgrad = manifold.egrad2rgrad(x, egrad)
        slope, quadratic = float(manifold.inner(x, rgrad, u)), float(manifold.inner(x, u, hess_u))

        def remainder(t, q):
            return abs(float(cost(manifold.retr(x, tuple(t * a for a in u))) - cost(x)) - t * slope - 0.5 * t * t * q)

        ts = np.logspace(-4, -2, 5)
        errors = [remainder(t, quadratic) for t in ts]
        # points at the round-off floor of the cost difference say nothing about the slope; drop them (keep >= 3)
        floor = 100 * np.finfo(np.float64).eps * max(1.0, abs(float(cost(x))))
        kept = [(t, e) for t, e in zip(ts, errors) if e > floor]
        assert len(kept) >= 3, f"the Hessian remainder is at round-off for most steps: {errors}"
        assert taylor_slope(*zip(*kept)) > 2.8
        # the projected Euclidean Hessian alone (no curvature term) must fail where the curvature term matters
        wrong = float(manifold.inner(x, u, manifold.proju(x, ehess)))
        if require_slope_drop and abs(wrong - quadratic) > 1e-6:
            assert taylor_slope(ts[:3], [remainder(t, wrong) for t in ts[:3]]) < 2.3
        # symmetric
        v = self.tangent(manifold, x, generator)
        _, ehess_v = autograd_factors(cost, x, v)
        hess_v = manifold.ehess2rhess(x, egrad, ehess_v, v)
        assert abs(float(manifold.inner(x, v, hess_u)) - float(manifold.inner(x, u, hess_v))) < 1e-9 * max(1.0, abs(quadratic))
        # linear
        both = manifold.ehess2rhess(x, egrad, tuple(2 * a - b for a, b in zip(ehess, ehess_v)), tuple(2 * a - b for a, b in zip(u, v)))
        assert _norm(tuple(c - 2 * a + b for c, a, b in zip(both, hess_u, hess_v))) < 1e-9 * max(1.0, _norm(hess_u))

    def test_hessian_taylor_slope_three(self, manifold):
        checked = False
        x, generator = self.setup_point(manifold)
        if manifold.second_order_retraction:
            self._hessian_check(manifold, x, generator, self.cost_near(manifold, generator, x), require_slope_drop=False)
            checked = True
        try:
            normal = manifold.random_normal(x, generator=generator)
        except NotImplementedError:
            normal = None
        if normal is not None:
            # f = 1/2 sum w (X - X(x))^2 + <N, X> + 1/4 sum (X - X(x))^4 is critical at x with Euclidean gradient N
            target = manifold.represent(x)[0].detach()
            weights = torch.rand(target.shape, dtype=torch.float64, generator=generator) + 0.5
            cost = self.cost_from(manifold, target, weights, normal)
            egrad = autograd_factors(cost, x)
            assert _norm(manifold.egrad2rgrad(x, egrad)) < 1e-10 * max(1.0, _norm(egrad))  # a critical point
            assert float(normal.norm()) > 0.1
            self._hessian_check(manifold, x, generator, cost, require_slope_drop=True)
            checked = True
        assert checked, f"{manifold.name}: neither a second-order retraction nor random_normal; the Hessian is unchecked"
