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
from zoo.symplectic.sparse import as_symmetric_operator, is_sparse_input, sparse_ldlt_solver

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


def symplectic_eigenvalues(m, k: int | None = None, **min_trace_options) -> torch.Tensor:
    """The symplectic eigenvalues :math:`d_1 \\le \\dots \\le d_n` of SPD ``m`` ``[2n, 2n]`` (Williamson), or the k smallest.

    Dense ``m``: direct (Cholesky and ``eigvalsh``, module docstring), all n values, or the first ``k``.
    Sparse or operator ``m`` (torch sparse, SciPy sparse, :class:`~zoo.symplectic.SymmetricOperator`): ``k`` is
    required; the k smallest come from :func:`min_trace` (``min_trace_options`` are passed on) as the symplectic
    eigenvalues of the reduced ``[2k, 2k]`` matrix :math:`X^T M X` at the minimiser X: for X spanning the symplectic
    eigenspace of :math:`d_1..d_k`, :math:`X^T M X` is symplectically congruent to
    :math:`\\mathrm{diag}(d_{1..k}, d_{1..k})` (Williamson; the minimiser characterisation of Son, Absil, Gao, Stykel, arXiv 2101.02618 [recall, theorem number not checked]).
    No dense ``[2n, 2n]`` matrix is formed on that path; a run that does not converge raises instead of returning
    the values of a non-optimal X.
    """
    if is_sparse_input(m):
        if k is None:
            raise ValueError("k is required for sparse or operator input (the k smallest symplectic eigenvalues)")
        _check_p(k, int(m.shape[0]) // 2, "k")
        result = min_trace(m, k, **min_trace_options)
        if not result.converged:  # X^T M X away from the minimiser: its symplectic eigenvalues are not the d_j
            raise RuntimeError(f"min_trace did not converge ({result.stop_reason}); the reduced matrix's values would not be "
                               "the symplectic eigenvalues: raise max_iterations / max_time, or call min_trace and read "
                               "result.eigenvalues as an estimate")
        return result.eigenvalues
    if min_trace_options:
        raise ValueError(f"options {sorted(min_trace_options)} apply to sparse or operator input only")
    m = check_spd(m)
    if k is not None:
        _check_p(k, m.shape[0] // 2, "k")
        return symplectic_eigenvalues(m)[:k]
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
    eigenvalues: torch.Tensor | None = None  # the p smallest symplectic eigenvalues, Williamson of X^T M X
    matrix_products: int = 0  # products of M with [2n, k] blocks (sparse / operator path)


def _run(cost, ehess, x0: torch.Tensor, manifold: SymplecticStiefel, method: str, tol: float, scale: float,
         max_iterations: int, progress: bool, optimizer_options: dict | None = None) -> MinTraceResult:
    if method not in OPTIMIZERS:
        raise ValueError(f"method must be one of {sorted(OPTIMIZERS)}, got {method!r}")
    x = geoopt.ManifoldParameter(torch.as_tensor(x0).detach().as_subclass(torch.Tensor).clone(), manifold=manifold)
    options = {"ehess": ehess} if method in ("newton", "trust_region", "hybrid") else {}
    options.update(optimizer_options or {})
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


def _check_p(p, n: int, name: str = "p") -> None:
    if not isinstance(p, int) or isinstance(p, bool) or p < 1:
        raise ValueError(f"{name} must be a positive int, got {p!r}")
    if p > n:
        raise ValueError(f"{name} must be <= n, got {name}={p} > n={n}")


def _manifold(n: int, p: int, metric: str, rho: float, alpha: float = 1.0, beta: float = 0.5) -> SymplecticStiefel:
    _check_p(p, n)
    return SymplecticStiefel(n, p, metric, rho=rho, alpha=alpha, beta=beta)


class _TraceForm(torch.autograd.Function):
    """:math:`f(X) = \\mathrm{tr}(X^T M X)` for a symmetric operator M, with :math:`\\nabla f = 2MX` saved from the forward
    product (one product of M with a ``[2n, 2p]`` block per cost-and-gradient evaluation)."""

    @staticmethod
    def forward(ctx, x, operator):
        mx = operator.matmat(x.detach())
        ctx.save_for_backward(mx)
        return (x * mx).sum()

    @staticmethod
    def backward(ctx, grad_output):
        (mx,) = ctx.saved_tensors
        return 2 * grad_output * mx, None


def _start(manifold: SymplecticStiefel, x0, seed: int, dtype: torch.dtype, start: str = "random", solve=None,
           apply_m=None, steps: int = 30) -> torch.Tensor:
    n, p = manifold.n, manifold.p
    if start not in ("random", "subspace"):
        raise ValueError(f"start must be 'random' or 'subspace', got {start!r}")
    if x0 is None and start == "subspace":
        if solve is None:
            raise ValueError("start='subspace' needs a preconditioner (its solve with M)")
        return _subspace_start(apply_m, solve, n, p, steps, seed)
    if x0 is None:
        return manifold.random(dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    x0 = torch.as_tensor(x0).detach()
    if x0.dtype == dtype:  # checked absolutely: geoopt's default rtol (1e-5) would let a visibly infeasible start in
        if not manifold.check_point_on_manifold(x0, atol=1e-8, rtol=0.0):
            raise ValueError(f"x0 is not on Sp({2 * p}, {2 * n})")
        return x0
    # e.g. a float32 random(): feasible to its own precision, then made feasible in m's (symplectic Gram-Schmidt)
    if not manifold.check_point_on_manifold(x0):
        raise ValueError(f"x0 is not on Sp({2 * p}, {2 * n}) to the precision of its dtype {x0.dtype}")
    return manifold.projx(x0.to(dtype))


def williamson_basis(r: torch.Tensor, p: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d, S)``: the p smallest symplectic eigenvalues of SPD ``r`` ``[2m, 2m]`` and ``S`` ``[2m, 2p]`` on
    :math:`\\mathrm{Sp}(2p, 2m)` with :math:`S^T r S = \\mathrm{diag}(d, d)` (Williamson; dense, for small matrices).

    With :math:`r = LL^T` and the Hermitian :math:`iL^TJL w = \\delta w` (eigenvalues :math:`\\pm d_j`), the vector
    :math:`v = L^{-T}w` satisfies :math:`Jr\\,v = -i\\delta\\,v`; for :math:`\\delta = d_j > 0`,
    :math:`v = a + ib` gives the symplectic pair :math:`(a, \\pm b)` (:math:`a^TJb \\ne 0`, scaled to
    :math:`\\omega = 1`); pairs of distinct :math:`d_j` are :math:`\\omega`-orthogonal, and a final symplectic
    Gram-Schmidt (:func:`symplectic_gram_schmidt`) settles repeated ones.
    """
    r = 0.5 * (r + r.T)
    m = r.shape[0] // 2
    p = m if p is None else p
    lower = torch.linalg.cholesky(r)
    values, vectors = torch.linalg.eigh(1j * (lower.T @ apply_j(lower)).to(torch.complex128))
    values, vectors = values[m:m + p], vectors[:, m:m + p]  # the p smallest positive ones (eigh sorts ascending)
    v = torch.linalg.solve_triangular(lower.T.to(torch.complex128), vectors, upper=True)
    a, b = v.real, v.imag
    omega = (a * apply_j(b)).sum(0)
    scale = omega.abs().sqrt()
    s = torch.cat([a / scale, b * torch.sign(omega) / scale], dim=1)
    return values.real, symplectic_gram_schmidt(s)


def _reduced_eigenvalues(reduced: torch.Tensor) -> torch.Tensor:
    """Symplectic eigenvalues of the reduced ``[2p, 2p]`` matrix :math:`X^T M X` (ValueError if it is not positive definite)."""
    reduced = 0.5 * (reduced + reduced.T)
    _, info = torch.linalg.cholesky_ex(reduced)
    if info.item() != 0:
        smallest = torch.linalg.eigvalsh(reduced)[0].item()
        raise ValueError(f"M must be positive definite (the reduced matrix X^T M X has eigenvalue {smallest:.6g} <= 0)")
    return symplectic_eigenvalues(reduced)


def _solver(preconditioner, m):
    """``Y -> M^{-1} Y`` for ``preconditioner`` = ``"lu"`` (dense Cholesky or sparse LDL^T) or a callable; None for None."""
    if preconditioner is None:
        return None
    if isinstance(preconditioner, str) and preconditioner == "lu":
        if isinstance(m, torch.Tensor):
            lower = torch.linalg.cholesky(m)
            return lambda y: torch.cholesky_solve(y, lower)
        return sparse_ldlt_solver(m)
    if callable(preconditioner):
        return lambda y: torch.as_tensor(preconditioner(y), dtype=torch.float64)
    raise ValueError(f"preconditioner must be None, 'lu' or a callable, got {preconditioner!r}")


def _symplectic_frame(gram: torch.Tensor) -> torch.Tensor:
    """``T`` ``[2q, 2q]`` with :math:`T^T G T = J_{2q}` for a nonsingular skew ``gram`` :math:`G = V^TJV`, so that
    :math:`VT` is a symplectic basis of span(V) at :math:`O(q^3)` cost (no loop over the long vectors).

    The Hermitian :math:`iG` has eigenvalues :math:`\\pm g_j`; for :math:`g_j > 0` and unit eigenvector
    :math:`w = a + ib`, :math:`Ga = g_j b` and :math:`Gb = -g_j a` with :math:`|a|^2 = |b|^2 = 1/2`, so
    :math:`a^TG(-b) = g_j/2` and :math:`\\sqrt{2/g_j}\\,(a, -b)` is a pair with :math:`\\omega = 1`; pairs of different
    eigenvectors are :math:`G`-orthogonal (the real Schur form of a skew matrix [recall: Golub and Van Loan, 4th ed.,
    sec. 7.4])."""
    q = gram.shape[0] // 2
    values, vectors = torch.linalg.eigh(1j * (0.5 * (gram - gram.T)).to(torch.complex128))
    g, w = values[q:].real, vectors[:, q:]
    scale = (2 / g).sqrt()
    return torch.cat([w.real * scale, -w.imag * scale], dim=1)


def _subspace_start(apply_m, solve, n: int, p: int, steps: int, seed: int, tol: float = 1e-6) -> torch.Tensor:
    """A start on :math:`\\mathrm{Sp}(2p, 2n)` from ``steps`` steps of symplectic subspace iteration with
    :math:`(JM)^{-1} = -M^{-1}J` on a block of :math:`2q` columns, :math:`q = \\min(2p, n)`, from a Gaussian block: :math:`V \\leftarrow M^{-1}JV`,
    a symplectic basis of its span (:func:`_symplectic_frame`), then symplectic Rayleigh-Ritz (:func:`williamson_basis` of the
    reduced :math:`V^TMV`, whose symplectic eigenvalues bound the :math:`d_j` from above, Bhatia and Jain 2015
    [recall]). The eigenvalues of :math:`(JM)^{-1}` are :math:`\\mp i/d_j`, so the pairs of the p smallest
    :math:`d_j` converge at rate :math:`d_j / d_{q+1}` per step (inverse subspace iteration [recall: Saad, Numerical
    Methods for Large Eigenvalue Problems, 2011, ch. 5]). Cost per step: one solve and one product with M on
    :math:`2q` columns, :math:`O(nq^2)` besides. Stops early once the p smallest Ritz values change by at most
    ``tol`` (relative) in a step: Ritz values err by the square of the subspace error, so the basis is then about
    :math:`\\sqrt{tol}` from the eigenspace, inside Newton's quadratic region in our runs [observed, not proven]."""
    q = min(2 * p, n)
    v = torch.randn(2 * n, 2 * q, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    previous = None
    for _ in range(steps):
        v = solve(apply_j(v))
        frame = _symplectic_frame(v.T @ apply_j(v))  # symplectic basis of span(V): V T, T small
        mv = apply_m(v)
        values, basis = williamson_basis(frame.T @ (v.T @ mv) @ frame)
        v = v @ (frame @ basis)
        if previous is not None and ((values[:p] - previous).abs() <= tol * values[:p]).all():
            break
        previous = values[:p]
    _, basis = williamson_basis(v.T @ apply_m(v), p)
    return SymplecticStiefel(n, p).projx(v @ basis)  # symplectic Gram-Schmidt of the 2p columns against round-off


def _with_preconditioner(options: dict, solve, manifold: SymplecticStiefel, method: str, metric: str) -> dict:
    if solve is None:
        return options
    if method not in ("newton", "trust_region", "hybrid"):
        raise ValueError(f"preconditioner applies to newton, trust_region and hybrid, got method={method!r}")
    if metric != "euclidean":
        raise ValueError(f"preconditioner needs metric='euclidean' (P_X is then orthogonal), got {metric!r}")
    return {**options, "preconditioner": lambda xs, rs: [manifold.proju(xs[0], 0.5 * solve(rs[0]))]}


def _is_scipy_sparse(m) -> bool:
    """A SciPy sparse matrix or array (not a ``LinearOperator``), without importing SciPy for other inputs."""
    if not type(m).__module__.startswith("scipy"):
        return False
    import scipy.sparse

    return scipy.sparse.issparse(m)


def min_trace(m, p: int, *, method: str = "newton", metric: str = "euclidean", rho: float = 1.0,
              alpha: float = 1.0, beta: float = 0.5, tol: float = 1e-10, seed: int = 0, max_iterations: int = 5000,
              x0: torch.Tensor | None = None, progress: bool = False, preconditioner="auto", start: str = "auto",
              start_steps: int = 30, **optimizer_options) -> MinTraceResult:
    """Minimise :math:`\\mathrm{tr}(X^T M X)` over :math:`\\mathrm{Sp}(2p, 2n)`; the minimum is :math:`2\\sum_{j\\le p} d_j`.

    Args:
        m: SPD ``[2n, 2n]``: a dense tensor, or (sparse path) a torch sparse tensor (COO/CSR/CSC), a SciPy sparse
            matrix, or an operator with ``shape`` and ``matmat`` (:class:`~zoo.symplectic.SymmetricOperator`, a SciPy
            ``LinearOperator``). The sparse path only ever multiplies M with ``[2n, 2p]`` blocks (module
            :mod:`zoo.symplectic.sparse` for its input checks).
        p: number of symplectic eigenvalues (1 <= p <= n).
        method: ``"newton"`` (truncated CG), ``"hybrid"`` (RGD then Newton), ``"trust_region"``, ``"rgd"`` or ``"rcg"``.
        metric: manifold metric (``"euclidean"``, ``"canonical_like"``, ``"tractable"``).
        rho: canonical-like metric parameter; alpha, beta: tractable metric parameters (see ``SymplecticStiefel``).
        tol: stop when the gradient norm is at most ``tol * max(1, |M|_F)`` (scale-free; round-off in the
            gradient is about ``1e-16 |M|_F``). On the sparse path :math:`|M|_F` is exact for sparse matrices and a
            Hutchinson estimate for operators.
        seed: seeds the random start (ignored when ``x0`` is given). The start is the Cayley image of a random
            tangent vector of unit norm at :math:`E = [e_1..e_p, e_{n+1}..e_{n+p}]` (``SymplecticStiefel.random``,
            :math:`O(np^2)`, no product with M), on both paths.
        preconditioner: truncated-CG preconditioner of the second-order methods (Euclidean metric only): ``"auto"``
            (default: ``"lu"`` for a sparse *matrix* with a second-order method and the Euclidean metric, where it is
            what makes large n tractable; ``None`` otherwise, i.e. dense M, operators, first-order methods), ``None``,
            ``"lu"`` (sparse path: an exact sparse :math:`LDL^T` of M, :func:`~zoo.symplectic.sparse.sparse_ldlt_solver`,
            which also proves M positive definite) or a callable ``Y -> ~M^{-1} Y`` on ``[2n, k]`` blocks. The
            tangent-space preconditioner is :math:`P(R) = P_X(\\tfrac12 M^{-1} R)`, symmetric positive definite on
            :math:`T_X` (P_X is the Euclidean-orthogonal projection): it inverts the :math:`2MU` part of the Riemannian
            Hessian :math:`P_X(2MU - JU\\Omega)`, so the preconditioned spectrum no longer scales with
            :math:`\\lVert M\\rVert\\,\\lVert M^{-1}\\rVert` [inferred; the measured inner iterations are in
            ``benchmarks/symplectic_sparse.md``].
        start: ``"auto"`` (default: ``"subspace"`` when a preconditioner's solve is there on the sparse path,
            ``"random"`` otherwise), ``"random"`` (above) or ``"subspace"``: up to ``start_steps`` steps of symplectic
            subspace iteration with the preconditioner's solve, until the Ritz values settle to 1e-6 (needs
            ``preconditioner``; :func:`_subspace_start`). Ignored when ``x0`` is given.
        optimizer_options: passed to the optimizer (e.g. ``max_inner``, ``kappa``, ``max_time``).

    Euclidean gradient :math:`2MX`, Hessian :math:`U \\mapsto 2MU` (closed form, used by the second-order methods).
    ``result.eigenvalues`` holds :math:`d_1..d_p`, the symplectic eigenvalues of :math:`X^T M X` at the end.

    Example::

        >>> from zoo.symplectic import min_trace, planted_spd_matrix
        >>> m, d, _ = planted_spd_matrix(20, seed=0)
        >>> abs(min_trace(m, 3).value - 2 * d[:3].sum().item()) < 1e-8
        True
    """
    if is_sparse_input(m):
        if isinstance(preconditioner, str) and preconditioner == "auto":
            matrix = (torch.is_tensor(m) and m.layout != torch.strided) or _is_scipy_sparse(m)
            preconditioner = "lu" if matrix and metric == "euclidean" and method in ("newton", "trust_region", "hybrid") else None
        operator = as_symmetric_operator(m)
        n = operator.shape[0] // 2
        manifold = _manifold(n, p, metric, rho, alpha, beta)
        solve = _solver(preconditioner, operator)
        start = ("subspace" if solve is not None else "random") if start == "auto" else start
        x0 = _start(manifold, x0, seed, torch.float64, start, solve, operator.matmat, start_steps)

        def cost(x):
            value = _TraceForm.apply(x, operator)
            if not value.item() > 0:  # tr(X^T M X) > 0 for SPD M and full-rank X
                raise ValueError(f"M must be positive definite (tr(X^T M X) = {value.item():.6g} <= 0 at a point of "
                                 f"Sp({2 * p}, {2 * n}))")
            return value

        optimizer_options = _with_preconditioner(optimizer_options, solve, manifold, method, metric)
        result = _run(cost, lambda xs, us: [2 * operator.matmat(us[0])], x0, manifold, method, tol,
                      max(1.0, operator.frobenius_norm), max_iterations, progress, optimizer_options)
        result.eigenvalues = _reduced_eigenvalues(result.point.T @ operator.matmat(result.point))
        result.matrix_products = operator.products
        return result
    m = check_spd(m)
    n = m.shape[0] // 2
    manifold = _manifold(n, p, metric, rho, alpha, beta)
    preconditioner = None if isinstance(preconditioner, str) and preconditioner == "auto" else preconditioner
    start = "random" if start == "auto" else start
    solve = _solver(preconditioner, m)
    x0 = _start(manifold, x0, seed, m.dtype, start, solve, lambda y: m @ y, start_steps)
    optimizer_options = _with_preconditioner(optimizer_options, solve, manifold, method, metric)
    result = _run(lambda x: torch.trace(x.T @ m @ x), lambda xs, us: [2 * m @ us[0]], x0, manifold, method, tol,
                  max(1.0, torch.linalg.matrix_norm(m).item()), max_iterations, progress, optimizer_options)
    result.eigenvalues = _reduced_eigenvalues(result.point.T @ m @ result.point)
    return result


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
