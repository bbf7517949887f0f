r"""The symplectic Stiefel manifold :math:`\mathrm{Sp}(2p, 2n)` with several metrics, Cayley retraction, Hessian.

.. math::
    J_{2m} = \begin{pmatrix} 0 & I_m \\ -I_m & 0 \end{pmatrix}, \qquad
    \mathrm{Sp}(2p, 2n) = \{X \in \mathbb{R}^{2n\times 2p} : X^T J_{2n} X = J_{2p}\}, \qquad
    \dim = 4np - p(2p - 1),

    T_X = \{Z : X^T J_{2n} Z \text{ symmetric}\}.

Sources: Gao, Son, Absil, Stykel, "Riemannian optimization on the symplectic Stiefel manifold", SIAM J. Optim.
2021 (arXiv 2006.15226): Euclidean and canonical-like metrics, Cayley retraction; Gao, Son, Stykel, arXiv
2406.14299 (tractable metrics, Riemannian Hessian and Newton methods). Only the abstract of 2406.14299 was
available to us: the metric family and the Hessian below are **our derivation**, checked by the contract tests
(Riesz identity, idempotent metric-orthogonal projection, Taylor slopes).

**Metrics** (all of the form :math:`g_X(Z_1, Z_2) = \mathrm{tr}(Z_1^T M_X Z_2)` with :math:`M_X` SPD):

* ``"euclidean"``: :math:`M_X = I`.
* ``"canonical_like"`` (parameter :math:`\rho > 0`): writing a tangent vector as
  :math:`Z = X J W + J X_\perp K` (W symmetric, :math:`X_\perp` an orthonormal basis of
  :math:`\ker X^T`), the metric is :math:`\rho^{-1}\lVert W\rVert^2 + \lVert K\rVert^2` (Gao et al. 2021; equation number not re-checked).
  Since :math:`W = -X^T J Z` and :math:`K = X_\perp^T J^T (I + X J X^T J) Z`, it is
  :math:`M_X = \rho^{-1} J^T X X^T J + T^T J P_\perp J^T T` with :math:`T = I + X J_{2p} X^T J_{2n}`,
  :math:`P_\perp = I - X (X^T X)^{-1} X^T`; this :math:`M_X` is SPD on all of :math:`\mathbb{R}^{2n\times 2p}`
  (our derivation) and equals :math:`I` plus a term living in :math:`\mathrm{span}(X, JX)`, so
  :math:`M_X^{-1}` costs one :math:`4p\times 4p` inverse (Woodbury).
* ``"tractable"`` (parameters :math:`\alpha > 0, \beta \ge 0`): :math:`M_X^{-1} = \alpha I + \beta X X^T`, a
  point-dependent metric that is cheap to invert (our member of the tractable family; the Euclidean metric
  is :math:`\alpha = 1, \beta = 0`).

**Projection and gradient** for any SPD :math:`M_X` (our derivation): with
:math:`A = X^T J M_X^{-1} J X` (symmetric, definite),

.. math::
    P_X(Y) = Y - M_X^{-1} J X \Omega, \quad A\Omega + \Omega A = X^T J Y + Y^T J X \;(\Omega \text{ skew}),
    \qquad \mathrm{grad} f = P_X(M_X^{-1} \nabla f).

:math:`P_X` is the :math:`g`-orthogonal projection; the Lyapunov equation is solved by ``eigh`` of :math:`A`.

**Hessian.** Euclidean metric (exact, the Weingarten form, Gao-Son-Stykel 2406.14299 give the same object):
:math:`\mathrm{Hess} f[U] = P_X(\nabla^2 f[U] - J U \Omega_X(\nabla f))` with :math:`\Omega_X(\nabla f)` the
multiplier of :math:`P_X(\nabla f)`. Point-dependent metrics (exact, our derivation): the manifold is a Riemannian
submanifold of :math:`(\mathbb{R}^{2n\times 2p}, \langle Z_1, M_X Z_2\rangle)`, so its Levi-Civita connection is the
:math:`g`-projection of the ambient one, given by the Koszul formula (Absil, Mahony, Sepulchre 2008, sec. 5.3):

.. math::
    \mathrm{Hess} f[U] = P_X\Big(D\,\mathrm{grad} f[U] + \tfrac12 M_X^{-1}\big(DM[U]\,\mathrm{grad} f
        + DM[\mathrm{grad} f]\,U - K\big)\Big), \qquad \langle K, W\rangle = \langle U, DM[W]\,\mathrm{grad} f\rangle\;\forall W,

with :math:`\mathrm{grad} f(X) = P_X(M_X^{-1}\nabla f(X))` extended off the manifold by the same formula;
:math:`D\,\mathrm{grad} f[U]` and :math:`DM[\cdot]` are forward-mode derivatives (``torch.func.jvp``), :math:`K` a
reverse-mode gradient. Tested: self-adjoint in :math:`g` at non-critical points, equal to the Weingarten form for
:math:`M_X = I`. ``exact_hessian=False`` returns the cheaper :math:`g`-Riesz representative of the Euclidean Hessian
form, which equals the Riemannian Hessian only at critical points (enough for Newton's local quadratic rate).

**Cayley retraction** (Gao et al. 2021): :math:`G_X = I - \tfrac12 X J_{2p} X^T J_{2n}^T`,
:math:`W_Z = G_X Z (X J_{2p})^T + X J_{2p} Z^T G_X^T`, :math:`S_Z = W_Z J_{2n}`,
:math:`R_X(Z) = (I - \tfrac12 S_Z)^{-1}(I + \tfrac12 S_Z) X`. It is first order only. With
:math:`U = [G_X Z, X J_{2p}]` and :math:`S_Z = U E U^T J_{2n}` (E swaps the two blocks), Woodbury turns the
:math:`2n\times 2n` solve into a :math:`4p \times 4p` one (as ``spopt`` does for p < n/2).

``projx`` is the symplectic Gram-Schmidt process (column pairs :math:`(x_k, x_{p+k})` made
:math:`\omega`-orthogonal to the previous pairs and scaled to :math:`\omega(e_k, f_k) = 1`,
:math:`\omega(u, v) = u^T J v`): a feasible point that equals ``x`` on the manifold (up to round-off) and spans
the same columns, cost :math:`O(n p^2)`. It is **not** the Frobenius-nearest point (that needs an optimisation,
``zoo.symplectic.nearest_symplectic``). It raises ``ValueError`` when a pair is (nearly) isotropic.

``random`` and ``origin`` return ``geoopt.ManifoldTensor`` s in torch's default dtype unless ``dtype`` is given
(as ``Simplex`` and ``ComplexSphere`` do).
"""

from __future__ import annotations

import geoopt
import torch

from zoo.manifolds.base import ZooManifold

__all__ = ["SymplecticStiefel", "apply_j", "apply_jt", "apply_j_right", "symplectic_feasibility"]

_METRICS = ("euclidean", "canonical_like", "tractable")


def apply_j(y: torch.Tensor) -> torch.Tensor:
    """:math:`J_{2m} Y` for ``y`` of shape ``(..., 2m, k)`` (no J matrix is formed)."""
    m = y.shape[-2] // 2
    return torch.cat([y[..., m:, :], -y[..., :m, :]], dim=-2)


def apply_jt(y: torch.Tensor) -> torch.Tensor:
    """:math:`J_{2m}^T Y = -J_{2m} Y`."""
    m = y.shape[-2] // 2
    return torch.cat([-y[..., m:, :], y[..., :m, :]], dim=-2)


def apply_j_right(y: torch.Tensor) -> torch.Tensor:
    """:math:`Y J_{2m}` for ``y`` of shape ``(..., k, 2m)``."""
    m = y.shape[-1] // 2
    return torch.cat([-y[..., m:], y[..., :m]], dim=-1)


def _t(a: torch.Tensor) -> torch.Tensor:
    return a.transpose(-1, -2)


def symplectic_feasibility(x: torch.Tensor) -> torch.Tensor:
    """:math:`\\lVert X^T J_{2n} X - J_{2p}\\rVert_F` per point."""
    p2 = x.shape[-1]
    eye = torch.eye(p2, dtype=x.dtype, device=x.device)
    return torch.linalg.matrix_norm(_t(x) @ apply_j(x) - apply_j_right(eye))


def _omega(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """:math:`u^T J v` for batches of vectors ``(..., 2n)``."""
    m = v.shape[-1] // 2
    return (u * torch.cat([v[..., m:], -v[..., :m]], dim=-1)).sum(-1)


def _lyapunov_eigh(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(a)
    rotated = _t(vectors) @ c @ vectors
    rotated = rotated / (values.unsqueeze(-1) + values.unsqueeze(-2))
    return vectors @ rotated @ _t(vectors)


class _Lyapunov(torch.autograd.Function):
    """Derivatives by implicit differentiation, not through ``eigh`` (whose derivatives are infinite at repeated
    eigenvalues, which A has, e.g., for the canonical-like metric): with :math:`L(\\Omega) = A\\Omega + \\Omega A`,
    :math:`d\\Omega = L^{-1}(dC - dA\\,\\Omega - \\Omega\\,dA)`; L is self-adjoint, so the reverse mode is
    :math:`\\bar C = L^{-1}(\\bar\\Omega)`, :math:`\\bar A = -(\\bar C \\Omega^T + \\Omega^T \\bar C)`."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a, c):
        return _lyapunov_eigh(a, c)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output)
        ctx.save_for_forward(inputs[0], output)

    @staticmethod
    def jvp(ctx, da, dc):
        a, omega = ctx.saved_tensors
        rhs = (torch.zeros_like(omega) if dc is None else dc) - (0 if da is None else da @ omega + omega @ da)
        return _Lyapunov.apply(a, rhs)  # through this rule again: higher orders never differentiate eigh

    @staticmethod
    def backward(ctx, grad_omega):
        a, omega = ctx.saved_tensors
        grad_c = _Lyapunov.apply(a, grad_omega)
        return -(grad_c @ _t(omega) + _t(omega) @ grad_c), grad_c


def _lyapunov(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Solve :math:`A \\Omega + \\Omega A = C` for symmetric definite A (batched) by ``eigh``."""
    return _Lyapunov.apply(a, c)


class SymplecticStiefel(ZooManifold):
    """:math:`\\mathrm{Sp}(2p, 2n)`: real ``(..., 2n, 2p)`` matrices with :math:`X^T J X = J` (see module docstring).

    Args:
        n: half the number of rows (2n rows).
        p: half the number of columns (2p columns), ``1 <= p <= n``.
        metric: ``"euclidean"``, ``"canonical_like"`` or ``"tractable"``.
        rho: canonical-like parameter (> 0).
        alpha, beta: tractable metric :math:`M_X^{-1} = \\alpha I + \\beta X X^T` (alpha > 0, beta >= 0).
        retraction_solver: ``"auto"`` (Woodbury when 4p < 2n), ``"dense"`` or ``"woodbury"``.
        exact_hessian: for the point-dependent metrics, the Levi-Civita Hessian (default) or the cheaper form that is
            exact only at critical points (module docstring).
    """

    name = "SymplecticStiefel"
    ndim = 2

    def __init__(self, n: int, p: int, metric: str = "euclidean", *, rho: float = 1.0, alpha: float = 1.0,
                 beta: float = 0.5, retraction_solver: str = "auto", exact_hessian: bool = True) -> None:
        super().__init__()
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"SymplecticStiefel n must be a positive int, got {n!r}")
        if not isinstance(p, int) or p < 1:
            raise ValueError(f"SymplecticStiefel p must be a positive int, got {p!r}")
        if p > n:
            raise ValueError(f"SymplecticStiefel needs p <= n, got p={p} > n={n}")
        if metric not in _METRICS:
            raise ValueError(f"SymplecticStiefel metric must be one of {_METRICS}, got {metric!r}")
        if rho <= 0:
            raise ValueError(f"SymplecticStiefel rho must be > 0, got {rho}")
        if alpha <= 0 or beta < 0:
            raise ValueError(f"SymplecticStiefel needs alpha > 0 and beta >= 0, got alpha={alpha}, beta={beta}")
        if retraction_solver not in ("auto", "dense", "woodbury"):
            raise ValueError(f"retraction_solver must be 'auto', 'dense' or 'woodbury', got {retraction_solver!r}")
        self.n, self.p, self.metric = n, p, metric
        self.exact_hessian = bool(exact_hessian)
        self.rho, self.alpha, self.beta = float(rho), float(alpha), float(beta)
        self.retraction_solver = retraction_solver

    def extra_repr(self) -> str:
        extra = {"canonical_like": f", rho={self.rho}", "tractable": f", alpha={self.alpha}, beta={self.beta}"}
        return f"n={self.n}, p={self.p}, metric={self.metric!r}" + extra.get(self.metric, "")

    @property
    def dimension(self) -> int:
        return 4 * self.n * self.p - self.p * (2 * self.p - 1)

    # -- checks --------------------------------------------------------------------------------------
    def _check_shape(self, shape, name):
        if len(shape) < 2 or tuple(shape[-2:]) != (2 * self.n, 2 * self.p):
            return False, f"{name} must have trailing shape (2n, 2p) = ({2 * self.n}, {2 * self.p}), got {tuple(shape)}"
        return True, None

    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        # |X^T J X - J|_F <= atol + rtol |X|_F^2 (the size of X^T J X): float32 points of norm ~10 carry ~1e-5 round-off
        error = symplectic_feasibility(x)
        bound = atol + rtol * torch.linalg.matrix_norm(x) ** 2
        if (error > bound).any():
            return False, f"|X^T J X - J| = {error.max().item():.3g} > atol + rtol |X|^2 = {bound.min().item():.3g}"
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=1e-5):
        if x.shape != u.shape:
            return False, f"u must have the shape of x {tuple(x.shape)}, got {tuple(u.shape)}"
        w = _t(x) @ apply_j(u)
        error = torch.linalg.matrix_norm(w - _t(w)).max().item()
        scale = (torch.linalg.matrix_norm(x) * torch.linalg.matrix_norm(u)).max().item()
        if error > atol + rtol * scale:
            return False, f"X^T J Z is not symmetric (asymmetry {error:.3g})"
        return True, None

    # -- metric operators ----------------------------------------------------------------------------
    def metric_apply(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """:math:`M_X Z` (the metric is :math:`\\mathrm{tr}(Z_1^T M_X Z_2)`)."""
        if self.metric == "euclidean":
            return z
        if self.metric == "tractable":
            gram = _t(x) @ x
            eye = torch.eye(gram.shape[-1], dtype=x.dtype, device=x.device)
            inner = torch.linalg.solve(self.alpha * eye + self.beta * gram, _t(x) @ z)
            return (z - self.beta * x @ inner) / self.alpha
        # canonical-like: rho^{-1} J^T X X^T J Z + T^T J P_perp J^T T Z
        gram = _t(x) @ x
        tz = z + x @ apply_j(_t(x) @ apply_j(z))  # T Z = Z + X J_p X^T J_n Z
        jt_tz = apply_jt(tz)
        perp = jt_tz - x @ torch.linalg.solve(gram, _t(x) @ jt_tz)  # P_perp J^T T Z
        middle = apply_j(perp)
        tt_middle = middle + apply_jt(x @ apply_jt(_t(x) @ middle))  # T^T Y = Y + J_n^T X J_p^T X^T Y
        return apply_jt(x @ (_t(x) @ apply_j(z))) / self.rho + tt_middle

    def metric_inverse(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """:math:`M_X^{-1} Y`."""
        if self.metric == "euclidean":
            return y
        if self.metric == "tractable":
            return self.alpha * y + self.beta * x @ (_t(x) @ y)
        # canonical-like: M = I + Q C Q^T with Q an orthonormal basis containing span(X, JX)
        basis, _ = torch.linalg.qr(torch.cat([x, apply_j(x)], dim=-1))
        core = _t(basis) @ self.metric_apply(x, basis)  # = I + C
        coefficients = _t(basis) @ y
        return y + basis @ (torch.linalg.solve(core, coefficients) - coefficients)

    def _multiplier(self, x, y, minv_jx=None):
        """Skew :math:`\\Omega` with :math:`A\\Omega + \\Omega A = X^T J Y + Y^T J X`, :math:`A = X^T J M^{-1} J X`."""
        if minv_jx is None:
            minv_jx = self.metric_inverse(x, apply_j(x))
        a = _t(x) @ apply_j(minv_jx)
        a = 0.5 * (a + _t(a))
        c = _t(x) @ apply_j(y)
        c = c - _t(c)  # X^T J Y + Y^T J X = X^T J Y - (X^T J Y)^T
        return _lyapunov(a, c), minv_jx

    # -- geoopt contract -------------------------------------------------------------------------------
    def inner(self, x, u, v=None, *, keepdim=False):
        v = u if v is None else v
        out = (u * self.metric_apply(x, v)).sum((-2, -1))
        return out[..., None, None] if keepdim else out

    def proju(self, x, u):
        omega, minv_jx = self._multiplier(x, u)
        return u - minv_jx @ omega

    def egrad2rgrad(self, x, u):
        return self.proju(x, self.metric_inverse(x, u))

    def projx(self, x):
        """Symplectic Gram-Schmidt (module docstring): feasible, equal to ``x`` on the manifold, not the nearest point."""
        p = self.p
        es, fs = [], []
        for k in range(p):
            e, f = x[..., :, k], x[..., :, p + k]
            for ej, fj in zip(es, fs):
                e = e - _omega(e, fj)[..., None] * ej + _omega(e, ej)[..., None] * fj
                f = f - _omega(f, fj)[..., None] * ej + _omega(f, ej)[..., None] * fj
            omega = _omega(e, f)
            size = torch.linalg.vector_norm(e, dim=-1) * torch.linalg.vector_norm(f, dim=-1)
            if (omega.abs() <= 1e3 * torch.finfo(x.dtype).eps * size).any() or not torch.isfinite(omega).all():
                raise ValueError(f"projx: columns {k} and {p + k} are (nearly) isotropic (omega = {omega.abs().min().item():.3g})")
            scale = omega.abs().sqrt()[..., None]
            es.append(e / scale)
            fs.append(f / scale * torch.sign(omega)[..., None])
        return torch.stack(es + fs, dim=-1)

    def ehess2rhess(self, x, egrad, ehess, u):
        if self.metric != "euclidean" and self.exact_hessian:
            return self._levi_civita_hessian(x, egrad, ehess, u)
        # Euclidean multiplier of the gradient projection: -X^T X W - W X^T X = X^T J G + G^T J X
        gram = _t(x) @ x
        c = _t(x) @ apply_j(egrad)
        omega = _lyapunov(-0.5 * (gram + _t(gram)), c - _t(c))
        euclidean_form = ehess - apply_j(u) @ omega
        return self.proju(x, euclidean_form) if self.metric == "euclidean" else self.egrad2rgrad(x, euclidean_form)

    def _levi_civita_hessian(self, x, egrad, ehess, u):
        r""":math:`P_X(\bar\nabla_U \mathrm{grad} f)` with the Koszul formula of the ambient metric (module docstring);
        directional derivatives by forward-mode autograd, the adjoint term by reverse mode."""
        from torch.func import grad, jvp

        rgrad, d_rgrad = jvp(lambda point, euclidean: self.egrad2rgrad(point, euclidean), (x, egrad), (u, ehess))
        _, dm_u_grad = jvp(lambda point: self.metric_apply(point, rgrad), (x,), (u,))
        _, dm_grad_u = jvp(lambda point: self.metric_apply(point, u), (x,), (rgrad,))
        adjoint = grad(lambda point: (u * self.metric_apply(point, rgrad)).sum())(x)
        return self.proju(x, d_rgrad + 0.5 * self.metric_inverse(x, dm_u_grad + dm_grad_u - adjoint))

    def retr(self, x, u):
        xj = apply_j_right(x)  # X J_p
        gz = u - 0.5 * xj @ (_t(x) @ apply_jt(u))  # G_X Z = Z - 1/2 X J_p X^T J^T Z
        solver = self.retraction_solver
        if solver == "auto":
            solver = "woodbury" if 4 * self.p < 2 * self.n else "dense"
        if solver == "dense":
            w = gz @ _t(xj) + xj @ _t(gz)  # symmetric 2n x 2n
            s = apply_j_right(w)  # S = W J_n
            eye_n = torch.eye(2 * self.n, dtype=x.dtype, device=x.device)
            return torch.linalg.solve(eye_n - 0.5 * s, x + 0.5 * s @ x)
        big_u = torch.cat([gz, xj], dim=-1)  # (2n, 4p)
        # R = E U^T J_n with E swapping the blocks: rows of R = [xj^T J; gz^T J]
        r = torch.cat([_t(apply_jt(xj)), _t(apply_jt(gz))], dim=-2)  # U^T J = (J^T U)^T
        v = x + 0.5 * big_u @ (r @ x)
        small = torch.eye(4 * self.p, dtype=x.dtype, device=x.device) - 0.5 * r @ big_u
        return v + 0.5 * big_u @ torch.linalg.solve(small, r @ v)

    def random(self, *size, dtype=None, device=None, generator=None, scale: float = 1.0, **kwargs):
        """Cayley image of a random tangent vector of Frobenius norm ``scale`` at the canonical point :math:`E`."""
        size = size or (2 * self.n, 2 * self.p)
        ok, reason = self._check_shape(size, "size")
        if not ok:
            raise ValueError(reason)
        dtype = dtype or torch.get_default_dtype()
        base = self.origin(*size, dtype=dtype, device=device).as_subclass(torch.Tensor)
        noise = torch.randn(*size, dtype=dtype, device=device, generator=generator)
        tangent = self.proju(base, noise)
        tangent = tangent / torch.linalg.matrix_norm(tangent, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
        return geoopt.ManifoldTensor(self.retr(base, scale * tangent), manifold=self)

    def origin(self, *size, dtype=None, device=None, **kwargs):
        """:math:`E = [e_1..e_p, e_{n+1}..e_{n+p}]`."""
        size = size or (2 * self.n, 2 * self.p)
        base = torch.zeros(*size, dtype=dtype or torch.get_default_dtype(), device=device)
        idx = torch.arange(self.p)
        base[..., idx, idx] = 1
        base[..., self.n + idx, self.p + idx] = 1
        return geoopt.ManifoldTensor(base, manifold=self)

