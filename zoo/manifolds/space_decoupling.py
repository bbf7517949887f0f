r"""The space-decoupling manifold :math:`\mathcal{M}_h` of bounded-rank matrices with an orthogonally invariant constraint.

Paper: Y. Yang, B. Gao, Y. Yuan, "Space decoupling" for bounded rank plus an orthogonally invariant constraint,
arXiv 2501.13830 (we read the abstract; formulas below are checked numerically by the tests). The official
code (``UCAS-YanYang/Space-decoupling-framework``, GPL-3.0: ``Mh/Mhfactory.m``) was read for formulas only. With
no constraint this is the desingularisation of bounded-rank matrices (Khrulkov and Oseledets 2018; Manopt's
``desingularizationfactory``, Rebjock and Boumal, arXiv 2406.14211).

**Set.** For :math:`h(XQ) = h(X)` (orthogonal Q) and :math:`\mathcal{H} = \{h = 0\}`,

.. math::
    \mathcal{M}_h = \{(X, G) \in \mathbb{R}^{m\times n}\times\mathrm{Sym}(n) :
        G^2 = G,\ \mathrm{rank}\,G = n - r,\ XG = 0,\ h(X) = 0\},\qquad
    \phi(X, G) = X,\quad \phi(\mathcal{M}_h) = \{\mathrm{rank} \le r\}\cap\mathcal{H},

a smooth manifold of dimension :math:`(m + n - r) r - \mathrm{codim}` (codim of :math:`\mathcal{H}^r` below).

**Points** are pairs ``(H, V)``: :math:`X = H V^T`, :math:`G = I - V V^T`, :math:`V^T V = I_r`,
:math:`H \in \mathcal{H}^r = \{H \in \mathbb{R}^{m\times r} : h(H) = 0\}` (an :class:`InvariantConstraint`). No
m x n matrix is formed: a cost sees the factors (e.g. gathered rows ``H[i] . V[j]`` for sparse costs).
(The official code keeps the SVD ``H = U S``; we keep H and the dense r x r weight below, which changes nothing.)

**Tangent vectors** are pairs ``(K, Vp)`` with :math:`K \in T_H\mathcal{H}^r`, :math:`V^T V_p = 0`; in E,
:math:`\dot X = K V^T + H V_p^T`, :math:`\dot G = -(V_p V^T + V V_p^T)` (``to_ambient``).

**Metric.** :math:`\mathcal{M}_h` is a Riemannian submanifold of :math:`E = \mathbb{R}^{m\times n}\times
\mathrm{Sym}(n)` with :math:`\langle (X_1, G_1), (X_2, G_2)\rangle = \mathrm{tr}(X_1^T X_2) + \omega\,\mathrm{tr}(G_1 G_2)`;
in coordinates (:math:`\lVert\dot G\rVert^2 = 2\lVert V_p\rVert^2`)

.. math::
    g((K_1, V_{p1}), (K_2, V_{p2})) = \mathrm{tr}(K_1^T K_2) + \mathrm{tr}(V_{p1}^T V_{p2} W),\qquad
    W = 2\omega I_r + H^T H.

**Projection** of an ambient :math:`(X_a, G_a)` onto :math:`T_x\mathcal{M}_h` (metric-orthogonal in E):

.. math::
    K = P_H(X_a V),\qquad V_p = (I - V V^T)\,[X_a^T H - \omega (G_a + G_a^T) V]\,W^{-1}.

**Gradient.** For :math:`\bar f(H, V) = f(H V^T)`, autograd on the factors returns
:math:`E_H = \nabla f\,V` and :math:`E_V = \nabla f^T H` (no m x n product is formed); the Riemannian
gradient is the projection of :math:`(\nabla f, 0)`:
:math:`K_g = P_H(E_H)`, :math:`V_{pg} = (I - VV^T) E_V W^{-1}`.

**Hessian (our derivation).** For a Riemannian submanifold of a space with a constant metric,
:math:`\mathrm{Hess} f(x)[\xi] = P_x(\mathrm{D}\,\overline{\mathrm{grad}}(x)[\xi])` with the ambient field
:math:`\overline{\mathrm{grad}} = (K_g V^T + H V_{pg}^T,\ -(V_{pg} V^T + V V_{pg}^T))`. Differentiate along
:math:`\xi = (K, V_p)`: the factor Hessian-vector product of :math:`\bar f` gives exactly
:math:`\dot E_H = \mathrm{D}(\nabla f V)[\xi] = \nabla^2 f[\dot X] V + \nabla f V_p` and
:math:`\dot E_V = \mathrm{D}(\nabla f^T H)[\xi] = \nabla^2 f[\dot X]^T H + \nabla f^T K`. With
:math:`V^T \dot V_{pg} = -V_p^T V_{pg}` (from :math:`V^T V_{pg} = 0`), :math:`(I - VV^T)\dot G V = -(I - VV^T)\dot V_{pg}`
and :math:`\dot W = K^T H + H^T K`, projecting gives

.. math::
    K_h &= P_H\big(\dot E_H - H\,(V_{pg}^T V_p)\big) + P_H(\mathrm{D}_H P_H[K]\,E_H),\\
    V_{ph} &= (I - VV^T)\big[\dot E_V - V_p\,(E_H - K_g)^T H - V_{pg}\,(H^T K)\big]\,W^{-1},

where :math:`P_H(\mathrm{D}P_H[K]E_H)` is the constraint's ``weingarten`` term (e.g. :math:`-\mathrm{diag}(
\mathrm{rowsum}(H\circ E_H))K` for unit rows) and :math:`(E_H - K_g)^T H` is the normal part of :math:`E_H` (0
without a constraint). This agrees with the problem-specific Hessian of the official completion code and with
a dense ambient computation (``tests/manifolds/test_space_decoupling.py`` differentiates the dense projector
with autograd). Requirement: the factor cost must be :math:`f(HV^T)` as a function of both factors (write
:math:`X X^T` as :math:`H (V^T V) H^T`, never as :math:`H H^T`): another extension off the manifold changes the
factor gradients' normal parts, on which the Hessian formula relies.

**Retractions** (section 4 of the official factory's formulas; :math:`\mathrm{polar}(Z) = Z (Z^T Z)^{-1/2}`):

* ``"first_order"``: :math:`V_+ = \mathrm{polar}(V + V_p)`, :math:`H_+ = \mathrm{projH}(H + K)`;
* ``"second_order"`` (default): :math:`Z = V + V_p (I - (K^T H) W^{-1})`, :math:`V_+ = \mathrm{polar}(Z)`,
  :math:`H_+ = \mathrm{projH}((H + K) V^T V_+ + H V_p^T V_+)`: the tangential part of its acceleration vanishes
  (checked by the contract tests).

**Vector transport**: projection of the ambient vector at the new point, in factored form (only m x r and
n x r products: :math:`\dot X V_2 = K (V^T V_2) + H (V_p^T V_2)`, :math:`\dot X^T H_2 = V (K^T H_2) + V_p (H^T H_2)`,
:math:`2\dot G V_2 = -2 (V_p (V^T V_2) + V (V_p^T V_2))`). The official code's coordinate map is valid only when
the two points' frames are aligned; this one is not.
"""

from __future__ import annotations

import math

import torch

from zoo.manifolds.invariant_constraints import InvariantConstraint, as_constraint, check_invariance
from zoo.manifolds.structured import StructuredManifold

__all__ = ["SpaceDecoupling"]

Pair = tuple[torch.Tensor, torch.Tensor]
_RETRACTIONS = ("second_order", "first_order")


def _polar(z: torch.Tensor) -> torch.Tensor:
    """:math:`Z (Z^T Z)^{-1/2}` by a thin SVD (orthonormal to round-off whatever the conditioning)."""
    u, _, vh = torch.linalg.svd(z, full_matrices=False)
    return u @ vh


class SpaceDecoupling(StructuredManifold):
    r"""The manifold :math:`\mathcal{M}_h` of the module docstring, points ``(H [m, r], V [n, r])``.

    Args:
        m, n: shape of :math:`X = H V^T`.
        r: rank bound, ``1 <= r <= min(m, n)``.
        constraint: an :class:`~zoo.manifolds.InvariantConstraint` on H (default none; names ``"none"``,
            ``"unit_rows"``, ``"unit_frobenius"`` also work). Checked for orthogonal invariance on random data.
        omega: weight :math:`\omega > 0` of the slack variable G in the metric (paper default 1/2).
        retraction: ``"second_order"`` (default) or ``"first_order"``.

    Example::

        >>> import torch
        >>> from zoo.manifolds import SpaceDecoupling, UnitRows
        >>> from zoo.optim import RiemannianTrustRegion
        >>> manifold = SpaceDecoupling(40, 30, 3, UnitRows())
        >>> H, V = (torch.nn.Parameter(t) for t in manifold.random(generator=torch.Generator().manual_seed(0)))
        >>> target = torch.randn(40, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        >>> optimizer = RiemannianTrustRegion([{"params": [H, V], "manifold": manifold}], gradient_tolerance=1e-9)
        >>> result = optimizer.minimize(lambda: ((H @ V.T - target) ** 2).sum())
        >>> bool(result.converged), float((H.detach().norm(dim=1) - 1).abs().max()) < 1e-12
        (True, True)
    """

    name = "SpaceDecoupling"

    def __init__(self, m: int, n: int, r: int, constraint: InvariantConstraint | str | None = None, *,
                 omega: float = 0.5, retraction: str = "second_order") -> None:
        for label, value in (("m", m), ("n", n), ("r", r)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SpaceDecoupling {label} must be a positive int, got {value!r}")
        if r > min(m, n):
            raise ValueError(f"SpaceDecoupling rank r = {r} exceeds min(m, n) = {min(m, n)}")
        if not (isinstance(omega, (int, float)) and math.isfinite(omega) and omega > 0):
            raise ValueError(f"SpaceDecoupling omega must be finite and > 0, got {omega!r}")
        if retraction not in _RETRACTIONS:
            raise ValueError(f"SpaceDecoupling retraction must be one of {_RETRACTIONS}, got {retraction!r}")
        self.m, self.n, self.r, self.omega, self.retraction = m, n, r, float(omega), retraction
        self.constraint = as_constraint(constraint)
        self.constraint.check(m, r)
        check_invariance(self.constraint, m, r)
        self.second_order_retraction = retraction == "second_order"

    def __repr__(self) -> str:
        return (f"SpaceDecoupling(m={self.m}, n={self.n}, r={self.r}, constraint={self.constraint!r}, omega={self.omega}, "
                f"retraction={self.retraction!r})")

    @property
    def dimension(self) -> int:
        """:math:`(m + n - r) r - \\mathrm{codim}(\\mathcal{H}^r)`."""
        return (self.m + self.n - self.r) * self.r - self.constraint.codim(self.m, self.r)

    # -- helpers -----------------------------------------------------------------------------------------------------
    def _weight(self, H: torch.Tensor) -> torch.Tensor:
        """:math:`W = 2\\omega I + H^T H` ``[r, r]``."""
        return 2 * self.omega * torch.eye(self.r, dtype=H.dtype, device=H.device) + H.T @ H

    @staticmethod
    def _solve_right(B: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """:math:`B W^{-1}` for SPD ``W`` (Cholesky)."""
        factor = torch.linalg.cholesky(W)
        return torch.cholesky_solve(B.T, factor).T

    @staticmethod
    def _horizontal(V: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """:math:`(I - V V^T) B`."""
        return B - V @ (V.T @ B)

    def _project(self, x: Pair, x_v: torch.Tensor, xt_h: torch.Tensor, g_v: torch.Tensor | None) -> Pair:
        """Coordinates of the projection of an ambient (Xa, Ga) given only :math:`X_a V`, :math:`X_a^T H` and
        :math:`(G_a + G_a^T) V` (None = 0)."""
        H, V = x
        right = xt_h if g_v is None else xt_h - self.omega * g_v
        return self.constraint.proj(H, x_v), self._solve_right(self._horizontal(V, right), self._weight(H))

    # -- the StructuredManifold protocol ----------------------------------------------------------------------------
    def inner(self, x, u, v):
        H, _ = x
        return (u[0] * v[0]).sum() + (u[1] * (v[1] @ self._weight(H))).sum()

    def proju(self, x, u):
        """Orthogonal projection in the coordinate metric: :math:`(P_H(K), (I - VV^T) V_p)` (W is SPD, so this is
        g-orthogonal too: :math:`\\mathrm{tr}((VV^T B)^T V_p W) = 0`)."""
        H, V = x
        return self.constraint.proj(H, u[0]), self._horizontal(V, u[1])

    def egrad2rgrad(self, x, egrad):
        """From the factor gradients :math:`(E_H, E_V) = (\\nabla f V, \\nabla f^T H)`."""
        return self._project(x, egrad[0], egrad[1], None)

    def project_ambient(self, x: Pair, ambient: Pair) -> Pair:
        """Coordinates of the projection of a dense ambient vector ``(Xa [m, n], Ga [n, n])`` (small sizes)."""
        H, V = x
        xa, ga = ambient
        return self._project(x, xa @ V, xa.T @ H, (ga + ga.T) @ V)

    def retr(self, x, u):
        H, V = x
        K, Vp = u
        if self.retraction == "first_order":
            return self.constraint.projH(H + K), _polar(V + Vp)
        W = self._weight(H)
        # Z = V + Vp (I - (K^T H) W^{-1})  [n, r]
        z = V + Vp - Vp @ self._solve_right(K.T @ H, W)
        V_new = _polar(z)
        H_new = self.constraint.projH((H + K) @ (V.T @ V_new) + H @ (Vp.T @ V_new))
        return H_new, V_new

    def transp(self, x, y, v):
        """Projection transport: the ambient vector of ``v`` at ``x`` projected at ``y`` (factored products only)."""
        H, V = x
        H2, V2 = y
        K, Vp = v
        vtv2, vpt_v2 = V.T @ V2, Vp.T @ V2  # [r, r]
        x_v2 = K @ vtv2 + H @ vpt_v2  # Xdot V2
        xt_h2 = V @ (K.T @ H2) + Vp @ (H.T @ H2)  # Xdot^T H2
        g_v2 = -2 * (Vp @ vtv2 + V @ vpt_v2)  # (Gdot + Gdot^T) V2
        return self._project(y, x_v2, xt_h2, g_v2)

    def ehess2rhess(self, x, egrad, ehess, u):
        """Riemannian Hessian from the factor gradient and the factor Hessian-vector product (module docstring)."""
        H, V = x
        E_H, E_V = egrad
        dE_H, dE_V = ehess
        K, Vp = u
        W = self._weight(H)
        K_g = self.constraint.proj(H, E_H)
        Vp_g = self._solve_right(self._horizontal(V, E_V), W)
        K_h = self.constraint.proj(H, dE_H - H @ (Vp_g.T @ Vp)) + self.constraint.weingarten(H, E_H, K)
        bracket = dE_V - Vp @ ((E_H - K_g).T @ H) - Vp_g @ (H.T @ K)
        return K_h, self._solve_right(self._horizontal(V, bracket), W)

    # -- optional members (random points, checks) -------------------------------------------------------------------
    def random(self, *, generator=None, dtype=torch.float64, device=None):
        """``H = projH(Gaussian)``, ``V`` = the Q factor of a Gaussian."""
        H = self.constraint.projH(torch.randn(self.m, self.r, dtype=dtype, generator=generator))
        V, _ = torch.linalg.qr(torch.randn(self.n, self.r, dtype=dtype, generator=generator))
        return H.to(device), V.to(device)

    def check_point(self, x, name: str = "point") -> Pair:
        """``x`` as a pair after checking shapes and finiteness (``ValueError`` otherwise); feasibility is not checked."""
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise ValueError(f"{name} must be a pair (H, V), got {type(x).__name__}")
        H, V = (torch.as_tensor(t) for t in x)
        if tuple(H.shape) != (self.m, self.r) or tuple(V.shape) != (self.n, self.r):
            raise ValueError(f"{name} shapes H {tuple(H.shape)}, V {tuple(V.shape)} disagree with "
                             f"H [{self.m}, {self.r}], V [{self.n}, {self.r}]")
        if not (torch.isfinite(H).all() and torch.isfinite(V).all()):
            raise ValueError(f"{name} has non-finite entries")
        return H, V

    def feasibility(self, x):
        H, V = x
        orthonormal = float((V.T @ V - torch.eye(self.r, dtype=V.dtype, device=V.device)).abs().max())
        return max(orthonormal, self.constraint.residual(H))

    def tangent_residual(self, x, u):
        H, V = x
        K, Vp = u
        return max(float((V.T @ Vp).abs().max()), float((K - self.constraint.proj(H, K)).abs().max()))

    def represent(self, x):
        H, V = x
        return H @ V.T, torch.eye(self.n, dtype=V.dtype, device=V.device) - V @ V.T

    def to_ambient(self, x, u):
        H, V = x
        K, Vp = u
        return K @ V.T + H @ Vp.T, -(Vp @ V.T + V @ Vp.T)

    def ambient_inner(self, a, b):
        return (a[0] * b[0]).sum() + self.omega * (a[1] * b[1]).sum()

    def random_normal(self, x, *, generator=None):
        r""":math:`G = N V^T + (I - Q_H Q_H^T) C (I - V V^T)`, N normal to :math:`\mathcal{H}^r` at H: then
        :math:`G V = N` (projects to 0) and :math:`G^T H = V N^T H` (its horizontal part is 0)."""
        H, V = x
        z = torch.randn(H.shape, dtype=H.dtype, generator=generator).to(H.device)
        normal = z - self.constraint.proj(H, z)
        c = torch.randn(self.m, self.n, dtype=H.dtype, generator=generator).to(H.device)
        q, _ = torch.linalg.qr(H)
        c = c - q @ (q.T @ c)
        return normal @ V.T + c - (c @ V) @ V.T
