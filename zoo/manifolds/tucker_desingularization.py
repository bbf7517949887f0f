r"""The desingularised set of tensors of bounded multilinear rank (Gao, Peng, Yuan, arXiv 2411.14093, Tucker part).

**The manifold.** For a shape :math:`(n_1, \dots, n_d)` and ranks :math:`(r_1, \dots, r_d)`,

.. math::

    \mathcal{M} = \{(X, P_1, \dots, P_d) : P_k \in \mathrm{Gr}(n_k, n_k - r_k) \text{ (orthogonal projectors)},\;
    X \times_k P_k = 0\}, \qquad \varphi(\mathcal{M}) = \{X : \mathrm{rank}_{ml}(X) \le r\},

a smooth manifold of dimension :math:`\prod_k r_k + \sum_k r_k (n_k - r_k)` that covers every tensor of
multilinear rank *at most* r (the core may be rank deficient, e.g. when the rank is over-estimated). It is a
Riemannian submanifold of :math:`E = \mathbb{R}^{n_1 \times \dots \times n_d} \times \prod_k \mathrm{Sym}(n_k)`
with the constant metric :math:`\langle (X, P), (Y, Q)\rangle = \langle X, Y\rangle + \omega \sum_k \langle P_k,
Q_k\rangle`, ``omega`` > 0.

**Coordinates.** A point is stored as ``(G, U_1, ..., U_d)``: core G of shape ``ranks`` and orthonormal factors
:math:`U_k \in \mathrm{St}(n_k, r_k)`, so :math:`X = G \times_1 U_1 \cdots \times_d U_d` and
:math:`P_k = I - U_k U_k^T` (the slack projectors are never formed). A tangent vector is
:math:`(\dot G, \dot U_1, \dots, \dot U_d)` with :math:`U_k^T \dot U_k = 0`; its velocity in E is

.. math::

    \dot X = \dot G \times_k U_k + \sum_k G \times_k \dot U_k \times_{j \ne k} U_j, \qquad
    \dot P_k = -(\dot U_k U_k^T + U_k \dot U_k^T).

The terms of :math:`\dot X` are mutually orthogonal and :math:`\|\dot P_k\|^2 = 2\|\dot U_k\|^2`, so the metric is
(the official code's ``innerprod_desing``, with omega made explicit)

.. math::

    g(\xi, \eta) = \langle \dot G_\xi, \dot G_\eta\rangle + \sum_k \mathrm{tr}(\dot U_{k,\xi}^T \dot U_{k,\eta} W_k),
    \qquad W_k = G_{(k)} G_{(k)}^T + 2\omega I_{r_k}.

**Projection and gradient.** The orthogonal projection of :math:`(Z, S) \in E` onto the tangent space (normal
equations over tangent vectors) is

.. math::

    \dot G = Z \times_k U_k^T, \qquad
    \dot U_k = (I - U_k U_k^T)\big[(Z \times_{j \ne k} U_j^T)_{(k)} G_{(k)}^T - \omega (S_k + S_k^T) U_k\big] W_k^{-1}.

For a cost f(X), automatic differentiation of :math:`f(G \times_k U_k)` in the factors returns
:math:`\partial_G = \nabla f \times_k U_k^T` and :math:`\partial_{U_k} = (\nabla f \times_{j \ne k} U_j^T)_{(k)}
G_{(k)}^T`, exactly the pieces above (S = 0), so ``egrad2rgrad`` is
:math:`(\partial_G, (I - U_k U_k^T)\partial_{U_k} W_k^{-1})` and a sparse cost never forms the dense tensor.

**Hessian** (ours). For a Riemannian submanifold of a flat space, parametrised by :math:`\varphi` (here the map
from factors to E, extended to non-orthonormal factors by :math:`P_k = I - \Pi(U_k)`, the projector onto the
complement of the column space, so that every factor tuple maps into :math:`\mathcal{M}`), and for tangent
:math:`\xi, \eta`,

.. math::

    \mathrm{Hess} f(x)[\xi, \eta] = D^2 \tilde f(x)[\xi, \eta] - \langle D\varphi[\rho], D^2\varphi[\xi, \eta]\rangle_E,
    \qquad \tilde f = f \circ \varphi,\ \rho = \mathrm{grad} f(x),

(the curve :math:`\varphi(x + t\xi)` has acceleration :math:`D^2\varphi[\xi,\xi]`; subtract its tangential part
paired with the gradient, then polarise). The first term is the factor-space Hessian-vector product ``ehess``
(autograd), the second is evaluated in closed form: with :math:`U_k^T \dot U_k = 0` the only surviving pairings
give, after the Riesz map of the metric,

.. math::

    \mathrm{Hess}_G = \mathrm{ehess}_G - \sum_k G \times_k (\dot U_k^T \rho_{U_k}), \qquad
    \mathrm{Hess}_{U_k} = (I - U_k U_k^T)\big[\mathrm{ehess}_{U_k} - \rho_{U_k} G_{(k)} \dot G_{(k)}^T\big] W_k^{-1},

with :math:`\rho_{U_k} = (I - U_k U_k^T)\partial_{U_k} W_k^{-1}` (the slack terms cancel: :math:`D^2 P_k` pairs to
zero with :math:`D P_k` when only one factor moves). It equals :math:`P_x(D[x \mapsto P_x(\nabla f, 0)][\xi])`,
checked against a dense implementation of that formula in ``tests/manifolds``.

**Retraction** (ours, second order). Along :math:`x + t\xi` the tangential acceleration is
:math:`(0, 2\dot U_k \dot G_{(k)} G_{(k)}^T W_k^{-1})`; removing it gives

.. math::

    R_x(\xi) = \big((G + \dot G) \times_k R_k,\; Q_k\big), \qquad
    Q_k R_k = U_k + \dot U_k\,(I - \dot G_{(k)} G_{(k)}^T W_k^{-1}),

a thin QR (the re-orthonormalisation changes the coordinates, not the point of :math:`\mathcal{M}`). The official
code instead projects :math:`X + \dot X` on the new bases (first order); both keep feasibility exactly.

**Vector transport**: the orthogonal projection at y of the ambient velocity of v at x (closed form, small
``r x r`` products only).

With omega = 0 the same formulas are the embedded geometry of the manifold of tensors of *fixed* multilinear
rank (Kressner, Steinlechner, Vandereycken, BIT 54, 2014), used by the fixed-rank references of
:mod:`zoo.tensor_completion`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from zoo.manifolds._tensor_algebra import (mode_product, multi_mode_product, orthonormal_qr, spd_solve_right,
                                           unfold)
from zoo.manifolds.structured import StructuredManifold

__all__ = ["TuckerDesingularization", "check_tucker_ranks"]


def check_tucker_ranks(shape: Sequence[int], ranks: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validated ``(shape, ranks)`` as int tuples (ValueError naming the bad value)."""
    shape, ranks = tuple(shape), tuple(ranks)
    if len(shape) < 3:
        raise ValueError(f"shape must have order d >= 3 (a Tucker tensor), got {shape}")
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in shape):
        raise ValueError(f"shape must be positive ints, got {shape}")
    if len(ranks) != len(shape):
        raise ValueError(f"ranks must have one entry per mode ({len(shape)}), got {ranks}")
    total = math.prod(shape)
    for k, (n, r) in enumerate(zip(shape, ranks)):
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            raise ValueError(f"ranks must be positive ints, got {ranks}")
        if r > min(n, total // n):
            raise ValueError(f"ranks[{k}] = {r} exceeds the mode-{k} unfolding's dimensions {n} x {total // n}")
    return shape, ranks


class TuckerDesingularization(StructuredManifold):
    """Desingularised bounded-multilinear-rank tensors, points ``(core, U_1, ..., U_d)`` (see module docstring).

    Args:
        shape: tensor shape ``(n_1, ..., n_d)``, d >= 3.
        ranks: working multilinear ranks ``(r_1, ..., r_d)``, ``r_k <= n_k`` (and <= the other unfolding size).
        omega: weight of the slack projectors in the metric (> 0).

    Example::

        >>> manifold = TuckerDesingularization((10, 12, 14), (2, 3, 4))
        >>> core, *factors = manifold.random(generator=torch.Generator().manual_seed(0))
    """

    name = "TuckerDesingularization"
    second_order_retraction = True
    _allow_zero_omega = False

    def __init__(self, shape: Sequence[int], ranks: Sequence[int], omega: float = 1.0) -> None:
        self.shape, self.ranks = check_tucker_ranks(shape, ranks)
        omega = float(omega)
        if not math.isfinite(omega) or omega < 0 or (omega == 0 and not self._allow_zero_omega):
            raise ValueError(f"omega must be a finite number > 0, got {omega}")
        self.omega = omega
        self.order = len(self.shape)

    @property
    def dimension(self) -> int:
        """``prod r_k + sum_k r_k (n_k - r_k)``."""
        return math.prod(self.ranks) + sum(r * (n - r) for n, r in zip(self.shape, self.ranks))

    # -- pieces ------------------------------------------------------------------------------------------------
    def weights(self, core: torch.Tensor) -> list[torch.Tensor]:
        """``W_k = G_(k) G_(k)^T + 2 omega I``."""
        out = []
        for k in range(self.order):
            g = unfold(core, k)
            out.append(g @ g.T + 2 * self.omega * torch.eye(g.shape[0], dtype=g.dtype, device=g.device))
        return out

    @staticmethod
    def _perp(factor: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        return vector - factor @ (factor.T @ vector)

    def full(self, x: Sequence[torch.Tensor]) -> torch.Tensor:
        """The dense tensor ``G x_k U_k`` (small sizes)."""
        return multi_mode_product(x[0], x[1:])

    # -- the protocol ------------------------------------------------------------------------------------------
    def inner(self, x, u, v):
        total = (u[0] * v[0]).sum()
        for weight, a, b in zip(self.weights(x[0]), u[1:], v[1:]):
            total = total + ((a @ weight) * b).sum()
        return total

    def proju(self, x, u):
        return (u[0], *(self._perp(factor, a) for factor, a in zip(x[1:], u[1:])))

    def egrad2rgrad(self, x, egrad):
        weights = self.weights(x[0])
        return (egrad[0], *(spd_solve_right(self._perp(factor, g), w) for factor, g, w in zip(x[1:], egrad[1:], weights)))

    def retr(self, x, u):
        core, factors = x[0], x[1:]
        weights = self.weights(core)
        new_factors, triangles = [], []
        for k, (factor, direction, weight) in enumerate(zip(factors, u[1:], weights)):
            # second-order correction: remove the tangential acceleration 2 dU dG_(k) G_(k)^T W^{-1}
            correction = spd_solve_right(unfold(u[0], k) @ unfold(core, k).T, weight)
            q, r = orthonormal_qr(factor + direction - direction @ correction)
            new_factors.append(q)
            triangles.append(r)
        return (multi_mode_product(core + u[0], triangles), *new_factors)

    def transp(self, x, y, v):
        """Projection at y of the ambient velocity (dX, dP) of v at x (module docstring)."""
        core, factors = x[0], x[1:]
        new_core, new_factors = y[0], y[1:]
        cross = [b.T @ a for a, b in zip(factors, new_factors)]  # V_k^T U_k
        cross_dot = [b.T @ du for du, b in zip(v[1:], new_factors)]  # V_k^T dU_k
        # dX x_all V^T = dG x_k (V^T U) + sum_k G x_k (V_k^T dU_k) x_{j != k} (V_j^T U_j)
        moved_core = multi_mode_product(v[0], cross)
        for k in range(self.order):
            moved_core = moved_core + multi_mode_product(core, [cross_dot[j] if j == k else cross[j] for j in range(self.order)])
        weights = self.weights(new_core)
        moved_factors = []
        for k in range(self.order):
            others = [None if j == k else cross[j] for j in range(self.order)]
            dot_others = [None if j == k else cross_dot[j] for j in range(self.order)]
            # (dX x_{j != k} V_j^T)_(k) = U_k (dG x_{j!=k} V^T U)_(k) + dU_k (G x_{j!=k} V^T U)_(k)
            #                              + U_k sum_{l != k} (G x_l V_l^T dU_l x_{others} V^T U)_(k)
            part = unfold(multi_mode_product(v[0], others), k)
            for l in range(self.order):
                if l != k:
                    part = part + unfold(multi_mode_product(core, [dot_others[j] if j == l else others[j]
                                                                   for j in range(self.order)]), k)
            term = factors[k] @ part + v[1 + k] @ unfold(multi_mode_product(core, others), k)
            ambient = term @ unfold(new_core, k).T
            # slack: -omega (S + S^T) V with S = -(dU U^T + U dU^T)  ->  2 omega (dU (U^T V) + U (dU^T V))
            ambient = ambient + 2 * self.omega * (v[1 + k] @ cross[k].T + factors[k] @ cross_dot[k].T)
            moved_factors.append(spd_solve_right(self._perp(new_factors[k], ambient), weights[k]))
        return (moved_core, *moved_factors)

    def ehess2rhess(self, x, egrad, ehess, u):
        core, factors = x[0], x[1:]
        weights = self.weights(core)
        rgrad = [spd_solve_right(self._perp(f, g), w) for f, g, w in zip(factors, egrad[1:], weights)]
        hess_core = ehess[0]
        hess_factors = []
        for k in range(self.order):
            hess_core = hess_core - mode_product(core, u[1 + k].T @ rgrad[k], k)
            inner = ehess[1 + k] - rgrad[k] @ (unfold(core, k) @ unfold(u[0], k).T)
            hess_factors.append(spd_solve_right(self._perp(factors[k], inner), weights[k]))
        return (hess_core, *hess_factors)

    # -- optional members (tests, initialisation) ----------------------------------------------------------------
    def random(self, *, generator=None, dtype=torch.float64, device=None):
        core = torch.randn(self.ranks, dtype=dtype, generator=generator, device=device)
        factors = [orthonormal_qr(torch.randn(n, r, dtype=dtype, generator=generator, device=device))[0]
                   for n, r in zip(self.shape, self.ranks)]
        return (core, *factors)

    def feasibility(self, x) -> float:
        if tuple(x[0].shape) != self.ranks or tuple(tuple(f.shape) for f in x[1:]) != tuple(zip(self.shape, self.ranks)):
            return math.inf
        eye = [torch.eye(r, dtype=x[0].dtype, device=x[0].device) for r in self.ranks]
        return max(float((f.T @ f - i).abs().max()) for f, i in zip(x[1:], eye))

    def tangent_residual(self, x, u) -> float:
        return max(float((f.T @ a).abs().max()) for f, a in zip(x[1:], u[1:]))

    def represent(self, x):
        projectors = [torch.eye(f.shape[0], dtype=f.dtype, device=f.device) - f @ f.T for f in x[1:]]
        return (self.full(x), *projectors)

    def to_ambient(self, x, u):
        core, factors = x[0], x[1:]
        velocity = multi_mode_product(u[0], factors)
        for k in range(self.order):
            velocity = velocity + multi_mode_product(core, [u[1 + j] if j == k else factors[j] for j in range(self.order)])
        return (velocity, *(-(a @ f.T + f @ a.T) for f, a in zip(factors, u[1:])))

    def ambient_inner(self, a, b):
        return (a[0] * b[0]).sum() + self.omega * sum((p * q).sum() for p, q in zip(a[1:], b[1:]))

    def random_normal(self, x, *, generator=None):
        """``N = Z x_1 (I - U_1 U_1^T) x_2 (I - U_2 U_2^T)``: every factor gradient of ``<N, X>`` vanishes."""
        factors = x[1:]
        noise = torch.randn(self.shape, dtype=x[0].dtype, generator=generator)
        perps = [torch.eye(f.shape[0], dtype=f.dtype) - f @ f.T for f in factors[:2]]
        normal = multi_mode_product(noise, perps + [None] * (self.order - 2))
        return normal / normal.norm() * (1.0 + float(torch.rand((), dtype=torch.float64, generator=generator)))
