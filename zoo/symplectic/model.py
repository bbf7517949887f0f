r"""Symplectic eigenvalues and optimisation on the symplectic Stiefel manifold.

Paper: Gao, Son, Stykel, arXiv 2406.14299 (optimisation on the symplectic Stiefel manifold with tractable
metrics, Riemannian Hessian, Newton and hybrid Newton methods; we read the abstract only, take the exact title from
arXiv when citing). Trace minimisation: Son, Absil, Gao, Stykel, arXiv 2101.02618:

.. math::
    \min_{X \in \mathrm{Sp}(2p, 2n)} \mathrm{tr}(X^T M X) = 2 \sum_{j=1}^p d_j

with :math:`d_1 \le \dots \le d_n` the symplectic eigenvalues of the SPD matrix M (Williamson's theorem;
Hiroshima 2006, Bhatia and Jain 2015). Minimisers are :math:`X = S_{:, (1..p, n+1..n+p)} Q` (Q
orthosymplectic), so the Hessian at a minimiser has a :math:`p^2`-dimensional kernel; truncated CG copes.

Direct computation (the oracle): with :math:`M = L L^T` (Cholesky), :math:`JM` is similar to the real skew matrix
:math:`L^T J L`, whose eigenvalues are :math:`\pm i d_j`; we take ``eigvalsh`` of the Hermitian
:math:`i L^T J L`.
"""

from __future__ import annotations

import dataclasses

import geoopt
import torch

from zoo.manifolds import SymplecticStiefel, symplectic_feasibility
from zoo.manifolds.symplectic_stiefel import apply_j
from zoo.optim import OPTIMIZERS

__all__ = ["MinTraceResult", "check_spd", "min_trace", "nearest_symplectic", "symplectic_eigenvalues", "symplectic_gram_schmidt"]


def check_spd(m: torch.Tensor, name: str = "M") -> torch.Tensor:
    """Return ``m`` as float64 after checking it is a symmetric positive-definite ``[2n, 2n]`` matrix (ValueError otherwise)."""
    m = torch.as_tensor(m)
    if m.dim() != 2 or m.shape[0] != m.shape[1] or m.shape[0] % 2:
        raise ValueError(f"{name} must be a square [2n, 2n] matrix, got shape {tuple(m.shape)}")
    m = m.to(torch.float64)
    if not torch.isfinite(m).all():
        raise ValueError(f"{name} has non-finite entries")
    asymmetry = torch.linalg.matrix_norm(m - m.T).item()
    if asymmetry > 1e-10 * max(1.0, torch.linalg.matrix_norm(m).item()):
        raise ValueError(f"{name} must be symmetric (|M - M^T| = {asymmetry:.3g})")
    _, info = torch.linalg.cholesky_ex(0.5 * (m + m.T))
    if info.item() != 0:
        raise ValueError(f"{name} must be positive definite (Cholesky failed at pivot {info.item()})")
    return 0.5 * (m + m.T)


def symplectic_eigenvalues(m: torch.Tensor) -> torch.Tensor:
    """The n symplectic eigenvalues :math:`d_1 \\le \\dots \\le d_n` of SPD ``m`` ``[2n, 2n]`` (direct, Williamson)."""
    m = check_spd(m)
    lower = torch.linalg.cholesky(m)
    skew = lower.T @ apply_j(lower)  # L^T J L, real skew-symmetric
    values = torch.linalg.eigvalsh(1j * skew.to(torch.complex128))  # = +-d_j
    n = m.shape[0] // 2
    return values[n:].sort().values


def symplectic_gram_schmidt(a: torch.Tensor) -> torch.Tensor:
    """A point of :math:`\\mathrm{Sp}(2p, 2n)` spanning the columns of ``a`` ``[2n, 2p]`` (symplectic Gram-Schmidt).

    Pairs :math:`(a_k, a_{p+k})` are made :math:`\\omega`-orthogonal to the previous pairs
    (:math:`u \\leftarrow u - \\sum_j \\omega(u, f_j) e_j - \\omega(u, e_j) f_j`, :math:`\\omega(u, v) = u^T J v`) and
    scaled to :math:`\\omega(e_k, f_k) = 1`. Exact (up to round-off) on points of the manifold. Raises ValueError on a
    (near-)isotropic pair (relative threshold 1e3 eps).
    """
    a = torch.as_tensor(a, dtype=torch.float64)
    if a.dim() != 2 or a.shape[0] % 2 or a.shape[1] % 2:
        raise ValueError(f"a must be a [2n, 2p] matrix, got shape {tuple(a.shape)}")
    return SymplecticStiefel(a.shape[0] // 2, a.shape[1] // 2).projx(a)  # the manifold's projection is this procedure


@dataclasses.dataclass
class MinTraceResult:
    """Result of :func:`min_trace` / :func:`nearest_symplectic`."""

    point: torch.Tensor  # [2n, 2p] optimal X on Sp(2p, 2n)
    value: float  # cost at the point
    iterations: int
    converged: bool
    gradient_norm: float
    gradient_norms: list[float]  # per iteration (for rate checks)
    feasibility: float  # |X^T J X - J|_F
    stop_reason: str
    time: float  # wall seconds
    process_time: float  # CPU seconds
    method: str
    hessian_vector_products: int


def _run(cost, ehess, x0: torch.Tensor, manifold: SymplecticStiefel, method: str, tol: float, scale: float,
         max_iterations: int, progress: bool) -> MinTraceResult:
    if method not in OPTIMIZERS:
        raise ValueError(f"method must be one of {sorted(OPTIMIZERS)}, got {method!r}")
    x = geoopt.ManifoldParameter(torch.as_tensor(x0).detach().as_subclass(torch.Tensor).clone(), manifold=manifold)
    options = {"ehess": ehess} if method in ("newton", "trust_region", "hybrid") else {}
    optimizer = OPTIMIZERS[method]([x], max_iterations=max_iterations, gradient_tolerance=0.0, **options)
    optimizer.gradient_tolerance = tol * scale
    record = optimizer.minimize(lambda: cost(x), progress=progress)
    point = x.detach().clone()
    return MinTraceResult(
        point=point, value=record.cost, iterations=record.iterations, converged=record.converged,
        gradient_norm=record.gradient_norm, gradient_norms=[h["gradient_norm"] for h in record.history],
        feasibility=float(symplectic_feasibility(point)), stop_reason=record.stop_reason or "", time=record.wall_time,
        process_time=record.process_time, method=method, hessian_vector_products=record.hessian_vector_products,
    )


def _manifold(n: int, p: int, metric: str, rho: float, alpha: float = 1.0, beta: float = 0.5) -> SymplecticStiefel:
    if not isinstance(p, int) or p < 1:
        raise ValueError(f"p must be a positive int, got {p!r}")
    if p > n:
        raise ValueError(f"p must be <= n, got p={p} > n={n}")
    return SymplecticStiefel(n, p, metric, rho=rho, alpha=alpha, beta=beta)


def min_trace(m: torch.Tensor, p: int, *, method: str = "newton", metric: str = "euclidean", rho: float = 1.0,
              alpha: float = 1.0, beta: float = 0.5, tol: float = 1e-10, seed: int = 0, max_iterations: int = 5000,
              x0: torch.Tensor | None = None, progress: bool = False) -> MinTraceResult:
    """Minimise :math:`\\mathrm{tr}(X^T M X)` over :math:`\\mathrm{Sp}(2p, 2n)`; the minimum is :math:`2\\sum_{j\\le p} d_j`.

    Args:
        m: SPD ``[2n, 2n]``.
        p: number of symplectic eigenvalues (1 <= p <= n).
        method: ``"newton"`` (truncated CG), ``"hybrid"`` (RGD then Newton), ``"trust_region"``, ``"rgd"`` or ``"rcg"``.
        metric: manifold metric (``"euclidean"``, ``"canonical_like"``, ``"tractable"``).
        rho: canonical-like metric parameter; alpha, beta: tractable metric parameters (see ``SymplecticStiefel``).
        tol: stop when the gradient norm is at most ``tol * max(1, |M|_F)`` (scale-free; round-off in the
            gradient is about ``1e-16 |M|_F``).
        seed: seeds the random start (ignored when ``x0`` is given).

    Euclidean gradient :math:`2MX`, Hessian :math:`U \\mapsto 2MU` (closed form, used by the second-order methods).

    Example::

        >>> from zoo.symplectic import min_trace, planted_spd_matrix
        >>> m, d, _ = planted_spd_matrix(20, seed=0)
        >>> abs(min_trace(m, 3).value - 2 * d[:3].sum().item()) < 1e-8
        True
    """
    m = check_spd(m)
    n = m.shape[0] // 2
    manifold = _manifold(n, p, metric, rho, alpha, beta)
    if x0 is None:
        x0 = manifold.random(dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    else:
        x0 = torch.as_tensor(x0).detach()
        if x0.dtype == m.dtype:  # checked absolutely: geoopt's default rtol (1e-5) would let a visibly infeasible start in
            if not manifold.check_point_on_manifold(x0, atol=1e-8, rtol=0.0):
                raise ValueError(f"x0 is not on Sp({2 * p}, {2 * n})")
        else:  # e.g. a float32 random(): feasible to its own precision, then made feasible in m's (symplectic Gram-Schmidt)
            if not manifold.check_point_on_manifold(x0):
                raise ValueError(f"x0 is not on Sp({2 * p}, {2 * n}) to the precision of its dtype {x0.dtype}")
            x0 = manifold.projx(x0.to(m.dtype))
    return _run(lambda x: torch.trace(x.T @ m @ x), lambda xs, us: [2 * m @ us[0]], x0, manifold, method, tol,
                max(1.0, torch.linalg.matrix_norm(m).item()), max_iterations, progress)


def nearest_symplectic(a: torch.Tensor, *, method: str = "newton", metric: str = "euclidean", rho: float = 1.0,
                       alpha: float = 1.0, beta: float = 0.5, tol: float = 1e-10, max_iterations: int = 5000) -> MinTraceResult:
    """The point of :math:`\\mathrm{Sp}(2p, 2n)` nearest to ``a`` ``[2n, 2p]`` in the Frobenius norm (a local minimiser).

    Minimises :math:`\\lVert X - A\\rVert_F^2` from the symplectic Gram-Schmidt of A (exact when A is already
    symplectic). ``value`` is the squared distance. ``metric``, ``rho``, ``alpha`` and ``beta`` choose the manifold
    metric as in :func:`min_trace` (the minimiser does not depend on them; the path does).
    """
    a = torch.as_tensor(a, dtype=torch.float64)
    if a.dim() != 2 or a.shape[0] % 2 or a.shape[1] % 2:
        raise ValueError(f"a must be a [2n, 2p] matrix, got shape {tuple(a.shape)}")
    n, p = a.shape[0] // 2, a.shape[1] // 2
    manifold = _manifold(n, p, metric, rho, alpha, beta)
    x0 = symplectic_gram_schmidt(a)
    return _run(lambda x: ((x - a) ** 2).sum(), lambda xs, us: [2 * us[0]], x0, manifold, method, tol,
                max(1.0, torch.linalg.matrix_norm(a).item()), max_iterations, False)
