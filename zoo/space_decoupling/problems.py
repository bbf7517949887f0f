r"""Problems on :math:`\mathcal{M}_h` with known optima, and the solver loop they share.

* :class:`SphericalFitting` (official experiment of arXiv 2501.13830, ``spherical_data_fitting/``):
  :math:`\min \tfrac12\lVert P_\Omega(H V^T - A)\rVert^2` with unit rows; planted A, optimum 0, and the error on a
  disjoint test mask measures recovery. The cost never forms :math:`H V^T`: the sampled product
  :math:`(HV^T)_{ij} = H_i \cdot V_j` is a sampled dense-dense product over the observed positions, and its
  gradients :math:`(R V, R^T H)` (R the sparse residual) are sparse-dense products (:class:`SamplingPattern`);
  double backward works, so the trust region gets exact Hessian-vector products in :math:`O(|\Omega| r)`.
* :class:`GraphSimilarity` (Blondel et al., SIAM Rev. 2004; low-rank version Cason, Absil, Van Dooren 2013):
  :math:`\max \langle X, B X A^T + B^T X A\rangle` over :math:`\lVert X\rVert_F = 1`, rank :math:`\le r`. For
  undirected graphs the operator is :math:`2 A \otimes B`, so by Perron-Frobenius the maximum is
  :math:`2\lambda_1(A)\lambda_1(B)`, attained at rank one (our derivation; checked against a dense eigen-solve).
* :class:`MaxCutSDP`: Burer-Monteiro for the Max-Cut relaxation :math:`\max \tfrac14\langle L, Z\rangle`,
  :math:`\mathrm{diag}(Z) = 1`, :math:`Z \succeq 0`, with :math:`Z = X X^T`, X ``[n, n]`` of rank :math:`\le r` with
  unit rows (our mapping onto :math:`\mathcal{M}_h`; the paper's SDP mapping was not read). For
  :math:`r(r+1)/2 > n` second-order critical points are global for generic costs (Boumal, Voroninski, Bandeira
  2016/2020); :func:`maxcut_sdp_reference` solves the convex SDP with cvxpy for comparison.

Every cost is written as a function of :math:`X = H V^T` in both factors (e.g. :math:`X X^T = H (V^T V) H^T`), as
:meth:`SpaceDecoupling.ehess2rhess <zoo.manifolds.SpaceDecoupling.ehess2rhess>` requires.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Callable

import torch

from zoo.manifolds import SpaceDecoupling, UnitFrobenius, UnitRows
from zoo.optim import OPTIMIZERS

__all__ = ["FitResult", "GraphSimilarity", "MaxCutSDP", "SamplingPattern", "SphericalFitting", "burer_monteiro_rank",
           "maxcut_sdp_reference", "solve"]


# -- sampled products --------------------------------------------------------------------------------------------
class SamplingPattern:
    """Distinct positions :math:`\\Omega` of an ``m x n`` matrix (row-major order) as CSR patterns of S and S^T.

    ``sample(A, B)[k] = A[i_k] . B[j_k]`` (A ``[m, r]``, B ``[n, r]``), ``matmul(values, B) = S(values) B`` and
    ``matmul_t(values, A) = S(values)^T A``, where S(values) is the sparse matrix with ``values`` on
    :math:`\\Omega`. All three are differentiable to any order (each one's derivative is made of the others).
    """

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, shape: tuple[int, int]) -> None:
        rows, cols = torch.as_tensor(rows), torch.as_tensor(cols)
        m, n = shape
        if rows.dim() != 1 or cols.shape != rows.shape:
            raise ValueError(f"rows and cols must be vectors of one length, got shapes {tuple(rows.shape)} and {tuple(cols.shape)}")
        if rows.dtype.is_floating_point or cols.dtype.is_floating_point or rows.numel() == 0:
            raise ValueError("rows and cols must be non-empty integer tensors")
        rows, cols = rows.to(torch.int64), cols.to(torch.int64)
        if int(rows.min()) < 0 or int(rows.max()) >= m or int(cols.min()) < 0 or int(cols.max()) >= n:
            raise ValueError(f"indices out of range for a {m} x {n} matrix: rows in [{int(rows.min())}, {int(rows.max())}], "
                             f"cols in [{int(cols.min())}, {int(cols.max())}]")
        linear = rows * n + cols
        if not bool((linear[1:] > linear[:-1]).all()):
            raise ValueError("positions must be distinct and in row-major order (sort i * n + j)")
        self.shape = (m, n)
        self.rows, self.cols = rows, cols
        self.crow = torch.searchsorted(rows, torch.arange(m + 1, device=rows.device))
        transposed = torch.argsort(cols * m + rows)  # positions in column-major order
        self.perm_t = transposed
        self.crow_t = torch.searchsorted(cols[transposed], torch.arange(n + 1, device=rows.device))
        self.col_t = rows[transposed]
        self._zeros: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.rows.numel()

    def to(self, device) -> "SamplingPattern":
        moved = object.__new__(SamplingPattern)
        moved.__dict__.update({k: (v.to(device) if torch.is_tensor(v) else v) for k, v in self.__dict__.items()})
        moved._zeros = None
        return moved

    @staticmethod
    def _csr_tensor(crow, col, values, shape) -> torch.Tensor:
        with warnings.catch_warnings():  # torch calls CSR support "beta"; the operations used here are tested
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)

    def _csr(self, values: torch.Tensor) -> torch.Tensor:
        return self._csr_tensor(self.crow, self.cols, values, self.shape)

    def _csr_t(self, values: torch.Tensor) -> torch.Tensor:
        return self._csr_tensor(self.crow_t, self.col_t, values[self.perm_t], self.shape[::-1])

    def _raw_sample(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        if self._zeros is None or self._zeros.dtype != A.dtype or self._zeros.device != A.device:
            self._zeros = torch.zeros(len(self), dtype=A.dtype, device=A.device)
        return torch.sparse.sampled_addmm(self._csr(self._zeros), A, B.T, beta=0.0).values()

    def sample(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """``[A[i_k] . B[j_k]]_k`` (differentiable)."""
        return _Sample.apply(A, B, self)

    def matmul(self, values: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """``S(values) @ B`` ``[m, r]`` (differentiable)."""
        return _Matmul.apply(values, B, self)

    def matmul_t(self, values: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        """``S(values)^T @ A`` ``[n, r]`` (differentiable)."""
        return _MatmulT.apply(values, A, self)


class _Sample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, B, pattern):
        ctx.save_for_backward(A, B)
        ctx.pattern = pattern
        return pattern._raw_sample(A, B)

    @staticmethod
    def backward(ctx, grad):
        A, B = ctx.saved_tensors
        p = ctx.pattern
        return (p.matmul(grad, B) if ctx.needs_input_grad[0] else None,
                p.matmul_t(grad, A) if ctx.needs_input_grad[1] else None, None)


class _Matmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, B, pattern):
        ctx.save_for_backward(values, B)
        ctx.pattern = pattern
        return pattern._csr(values) @ B

    @staticmethod
    def backward(ctx, grad):  # out[i] = sum_{k: i_k = i} values_k B[j_k]
        values, B = ctx.saved_tensors
        p = ctx.pattern
        return (p.sample(grad, B) if ctx.needs_input_grad[0] else None,
                p.matmul_t(values, grad) if ctx.needs_input_grad[1] else None, None)


class _MatmulT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, A, pattern):
        ctx.save_for_backward(values, A)
        ctx.pattern = pattern
        return pattern._csr_t(values) @ A

    @staticmethod
    def backward(ctx, grad):  # out[j] = sum_{k: j_k = j} values_k A[i_k]
        values, A = ctx.saved_tensors
        p = ctx.pattern
        return (p.sample(A, grad) if ctx.needs_input_grad[0] else None,
                p.matmul(values, grad) if ctx.needs_input_grad[1] else None, None)


def _check_values(values: torch.Tensor, count: int, name: str) -> torch.Tensor:
    values = torch.as_tensor(values)
    if values.shape != (count,):
        raise ValueError(f"{name} must have {count} entries (one per position), got shape {tuple(values.shape)}")
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} has non-finite entries")
    return values


INITS = ("continuation", "random", "spectral", "planted_columns")  # the starts of SphericalFitting.initial_point


def _grouped_least_squares(index: torch.Tensor, factor: torch.Tensor, values: torch.Tensor, groups: int) -> torch.Tensor:
    """For each group g, the x_g ``[k]`` minimising :math:`\\sum_{t: index_t = g} (x_g \\cdot factor_t - values_t)^2`
    (``factor`` ``[T, k]``), by its normal equations with a ridge of 1e-13 times their mean diagonal (so rows with
    fewer than k entries stay solvable). Returns ``[groups, k]``.

    The ridge is that small on purpose: the fit must be exact for a weak direction too. With 1e-8 (by our estimate
    about 1e-3 of the diagonal entry of a direction whose singular value is 0.079 against 37.9: 5000 x 6000, 1 %, data
    seed 4) the extrapolated sweeps floored at a relative training error of 8.7e-7 instead of reaching 1e-10."""
    k = factor.shape[1]
    outer = (factor[:, :, None] * factor[:, None, :]).reshape(-1, k * k)  # [T, k * k]
    gram = torch.zeros(groups, k * k, dtype=factor.dtype).index_add_(0, index, outer).reshape(groups, k, k)
    right = torch.zeros(groups, k, dtype=factor.dtype).index_add_(0, index, factor * values[:, None])
    ridge = 1e-13 * gram.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12)
    gram = gram + ridge[:, None, None] * torch.eye(k, dtype=factor.dtype)
    return torch.linalg.solve(gram, right)


def _orthonormal_factor(W: torch.Tensor, H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(V, H R^T)`` with ``W = V R`` (QR, diagonal of R made non-negative), so that ``H W^T = (H R^T) V^T``; the sign
    convention keeps the factors of consecutive sweeps comparable (the extrapolation subtracts them)."""
    V, R = torch.linalg.qr(W)
    signs = torch.where(torch.diagonal(R) < 0, -1.0, 1.0).to(W.dtype)
    return V * signs, H @ (R * signs[:, None]).T


def _cpu_copy(problem: "SphericalFitting") -> "SphericalFitting":
    copy = object.__new__(SphericalFitting)
    copy.__dict__.update(problem.__dict__)
    return copy.to("cpu")


# -- spherical data fitting ------------------------------------------------------------------------------------------
class SphericalFitting:
    """:math:`f(H, V) = \\tfrac12\\sum_{(i,j)\\in\\Omega} (H_i\\cdot V_j - A_{ij})^2` on :math:`\\mathcal{M}_h` with unit rows.

    Args:
        m, n: matrix shape.
        rows, cols, values: training entries (row-major, distinct).
        test_rows, test_cols, test_values: optional disjoint test entries (relative test error).
    """

    def __init__(self, m: int, n: int, rows, cols, values, test_rows=None, test_cols=None, test_values=None, *,
                 planted: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        self.m, self.n = m, n
        self.planted = planted  # (H*, V*) of a planted instance: only the "planted_columns" start uses it
        self.pattern = SamplingPattern(rows, cols, (m, n))
        self.values = _check_values(values, len(self.pattern), "values")
        self.test_pattern = None
        if test_rows is not None:
            self.test_pattern = SamplingPattern(test_rows, test_cols, (m, n))
            self.test_values = _check_values(test_values, len(self.test_pattern), "test_values")
            overlap = torch.isin(self.test_pattern.rows * n + self.test_pattern.cols, self.pattern.rows * n + self.pattern.cols)
            if bool(overlap.any()):
                raise ValueError(f"{int(overlap.sum())} test positions are also training positions; the masks must be disjoint")

    @classmethod
    def from_data(cls, data) -> "SphericalFitting":
        """From a :class:`~zoo.space_decoupling.data.SphericalData`."""
        return cls(data.m, data.n, data.rows, data.cols, data.values, data.test_rows, data.test_cols, data.test_values,
                   planted=data.planted)

    def to(self, device) -> "SphericalFitting":
        self.pattern = self.pattern.to(device)
        self.values = self.values.to(device)
        if self.test_pattern is not None:
            self.test_pattern, self.test_values = self.test_pattern.to(device), self.test_values.to(device)
        return self

    def manifold(self, rank: int, *, omega: float = 0.5, retraction: str = "second_order") -> SpaceDecoupling:
        return SpaceDecoupling(self.m, self.n, rank, UnitRows(), omega=omega, retraction=retraction)

    def cost(self, H: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        residual = self.pattern.sample(H, V) - self.values.to(H.dtype)
        return 0.5 * (residual * residual).sum()

    @torch.no_grad()
    def train_error(self, H: torch.Tensor, V: torch.Tensor) -> float:
        """:math:`\\lVert P_\\Omega(HV^T - A)\\rVert / \\lVert P_\\Omega A\\rVert`."""
        values = self.values.to(H.dtype)
        return float(torch.linalg.vector_norm(self.pattern._raw_sample(H, V) - values) / torch.linalg.vector_norm(values))

    @torch.no_grad()
    def test_error(self, H: torch.Tensor, V: torch.Tensor) -> float:
        """The same relative error on the test positions."""
        if self.test_pattern is None:
            raise ValueError("this problem has no test entries")
        values = self.test_values.to(H.dtype)
        return float(torch.linalg.vector_norm(self.test_pattern._raw_sample(H, V) - values) / torch.linalg.vector_norm(values))

    def oversampling(self, rank: int) -> float:
        """:math:`|\\Omega| / \\dim\\mathcal{M}_h` (1 = as many samples as degrees of freedom)."""
        return len(self.pattern) / ((self.m + self.n - rank) * rank - self.m)

    def initial_point(self, rank: int, *, seed: int = 0, init: str = "random", dtype=torch.float64):
        """A start ``(H, V)`` on the manifold of rank ``rank``:

        * ``"random"``: projH(Gaussian) and a random orthonormal V (uses no data);
        * ``"spectral"``: the top-``rank`` SVD of :math:`P_\\Omega(A) / p` (``torch.svd_lowrank``), rows normalised;
        * ``"continuation"``: rank continuation from the observed entries only (:meth:`continuation_start`); the
          recommended start when the rank bound may over-estimate the true rank;
        * ``"planted_columns"``: the official experiments' warm start (``experiment_exact.m``): H = projH of ``rank``
          random columns of the planted matrix A (all of A, not only the observed entries: an oracle start), V a
          random orthonormal matrix. Needs a planted instance.
        """
        generator = torch.Generator().manual_seed(seed)
        if init == "random":
            return self.manifold(rank).random(generator=generator, dtype=dtype)
        if init == "continuation":
            H, V = self.continuation_start(rank, seed=seed)
            return H.to(dtype), V.to(dtype)
        if init == "planted_columns":
            if self.planted is None:
                raise ValueError("init 'planted_columns' needs a planted instance (SphericalFitting.from_data)")
            h_star, v_star = (t.cpu().to(torch.float64) for t in self.planted)
            columns = torch.randperm(self.n, generator=generator)[:rank]
            H = UnitRows().projH(h_star @ v_star[columns].T)  # A[:, columns], rows normalised  [m, rank]
            V, _ = torch.linalg.qr(torch.randn(self.n, rank, dtype=torch.float64, generator=generator))
            return H.to(dtype), V.to(dtype)
        if init != "spectral":
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        rate = len(self.pattern) / (self.m * self.n)
        u, s, v = self._top_singular(self.values.cpu().to(torch.float64) / rate, min(rank + 10, self.m, self.n), seed)
        return UnitRows().projH(u[:, :rank] * s[:rank]).to(dtype), v[:, :rank].contiguous().to(dtype)

    def _top_singular(self, values: torch.Tensor, q: int, seed: int):
        """``torch.svd_lowrank`` (sketch size q, 4 power iterations) of the sparse matrix with ``values`` on Omega."""
        observed = torch.sparse_coo_tensor(torch.stack([self.pattern.rows, self.pattern.cols]).cpu(), values, (self.m, self.n),
                                           check_invariants=False).coalesce()
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)  # svd_lowrank draws its sketch from the global generator
        try:
            return torch.svd_lowrank(observed, q=q, niter=4)
        finally:
            torch.random.set_rng_state(state)

    def _row_sweep(self, H: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One sweep of the global row fit (float64): the V fit, then the row fit (:meth:`continuation_start`, step 2)."""
        rows, cols = self.pattern.rows.cpu(), self.pattern.cols.cpu()
        values = self.values.cpu().to(torch.float64)
        # V fit: with H fixed, X = H W^T with W [n, k] free; column j solves its least squares over Omega^j.
        W = _grouped_least_squares(cols, H[rows], values, self.n)
        V, _ = _orthonormal_factor(W, H)  # the row fit below replaces H
        # global row fit: with V fixed, row h_i solves min sum_{j in Omega_i} (h_i . v_j - A_ij)^2, then h_i / |h_i|
        H = UnitRows().projH(_grouped_least_squares(rows, V[cols], values, self.m))
        return H, V

    def _row_fit(self, H: torch.Tensor, V: torch.Tensor, sweeps: int, *, fitted: float = 0.0,
                 stall: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to ``sweeps`` sweeps of the global row fit with extrapolation (:meth:`continuation_start`, step 2); stops
        once the relative training error is below ``fitted`` or a step lowers it by less than the fraction ``stall``."""
        if sweeps < 1:
            return H, V
        H, V = self._row_sweep(H, V)
        error, beta = self.train_error(H, V), 1.0
        for _ in range(sweeps - 1):
            if error < fitted:
                break
            H1, V1 = self._row_sweep(H, V)
            error1 = self.train_error(H1, V1)
            # extrapolate along the sweep: (H1, V1) + beta (H1 - H, V1 - V), made feasible (V orthonormal, unit rows)
            Ve, He = _orthonormal_factor(V1 + beta * (V1 - V), H1 + beta * (H1 - H))
            He = UnitRows().projH(He)
            error_e = self.train_error(He, Ve)
            if error_e < error1:
                H1, V1, error1, beta = He, Ve, error_e, min(1.5 * beta, 50.0)
            else:
                beta = max(beta / 2, 1.0)
            stalled = error1 > (1 - stall) * error
            if error1 < error:
                H, V, error = H1, V1, error1
            if stalled:
                break
        return H, V

    def continuation_start(self, rank: int, *, seed: int = 0, stage_iterations: int = 100, sweeps: int = 40,
                           fitted: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor]:
        r"""A start of rank ``rank`` from the observed entries only: rank continuation with a global row fit (ours).

        For k = 1, 2, ..., ``rank``, with :math:`R = P_\Omega(A - H V^T)` the sparse residual (:math:`R = P_\Omega A`
        at k = 1) and p = :math:`|\Omega| / (mn)`:

        1. grow the rank by one: :math:`(u, \sigma, v)` the top singular triple of R (``torch.svd_lowrank``),
           :math:`V \leftarrow [V, v_\perp]` with :math:`v_\perp = (I - VV^T) v / \lVert\cdot\rVert`, and
           :math:`H \leftarrow \mathrm{projH}([H, (\sigma / p) u])` (:math:`R / p` estimates the full residual);
        2. the global row fit, one sweep being: with H fixed, each column of :math:`W` (:math:`X = H W^T`) solves its
           small least-squares problem over the observed entries of its column, :math:`W = V R_W` (QR, diagonal of
           :math:`R_W` made non-negative), :math:`H \leftarrow H R_W^T`; then with V fixed each row
           :math:`h_i = \arg\min \sum_{j \in \Omega_i} (h \cdot v_j - A_{ij})^2` (normal equations
           :math:`(\sum_j v_j v_j^T + \lambda I) h = \sum_j A_{ij} v_j`, :math:`\lambda` = 1e-13 times the mean diagonal),
           normalised to a unit row (the projection onto the constraint). Up to ``sweeps`` sweeps, each followed by an
           extrapolation: from the point :math:`x = (H, V)` before the sweep and :math:`x_1 = (H_1, V_1)` after it, try
           :math:`x_e = x_1 + \beta (x_1 - x)` made feasible (:math:`V_e = \mathrm{qf}(V_1 + \beta(V_1 - V))` with its
           R factor moved into H as above, then :math:`\mathrm{projH}`); keep :math:`x_e` if its training error is
           lower than that of :math:`x_1` and then set :math:`\beta \leftarrow \min(1.5\beta, 50)`, otherwise keep
           :math:`x_1` and set :math:`\beta \leftarrow \max(\beta / 2, 1)` (:math:`\beta_0 = 1`). The fit stops once the
           relative training error is below ``fitted``, or when a sweep lowers it by less than 0.1 % (the best point so
           far is kept);
        3. unless the data are explained, up to ``stage_iterations`` RGD iterations on :math:`\mathcal{M}_h` at rank k,
           stopped early once the cost fell by less than 1 % in the last 10 iterations.

        Once the relative training error is below ``fitted`` the data are explained: the remaining columns are padded
        with :math:`h = 0` and new orthonormal directions of V (the residual's top right singular vectors), which leaves
        X unchanged. Growing on past that point is avoided on purpose: a variant that kept adding (sigma / p) u from the
        round-off residual, refitting and re-solving ended at test errors of 3e-6 to 1e-4 (5000 x 6000, 1 %, r = 10,
        two seeds) and 3e-3 (500 x 600, 10 %, r = 10, one seed) in our runs, likely because the problem is flat
        along the extra directions. The true rank is never used: the data decide where the growth stops.

        Why the extrapolated sweeps (data seed 4 of ``planted_spherical_data(5000, 6000, 6, 0.01)``, our runs): the
        planted H has singular values 37.9, 36.8, 33.8, 25.8, 20.2 and 0.079, so the sixth direction carries a relative
        1.1e-3 of A. At rank 5 the fit explains the data to a relative 1.0e-3; the sparse residual's singular values
        are then flat (8.9e-4, 7.6e-4, 7.0e-4, ...: the sampled sixth direction, p times 0.079, is at the level of the
        sampling noise), and its top right singular vector has cosine 0.28 with the true new direction (that of the dense
        residual: 0.9999). From there the fit falls onto a plateau (training error 1.0e-4, test error 2.3e-3, its sixth
        direction at cosine 0.9945) that 5 plain sweeps and 100 RGD iterations did not leave, and the growth then added
        spurious seventh and eighth directions (test error 2.1e-3 after 1000 more RGD iterations at r = 8, 10). From the
        same rank-6 point RGD needed 580 more iterations (about 26 CPU s), the trust region 20 (948 Hessian-vector
        products, 35 CPU s); plain sweeps left it after about 45 (17 CPU s) but stopped near 8.5e-7 (the ridge, below);
        the extrapolated sweeps leave it in 29 (7 CPU s), to a training error of 5e-10 and a test error of 9e-10, so
        the growth stops at k = 6. A smaller metric weight did not help: with omega = 0.01 RGD took 814 iterations
        instead of 580, and omega = 0.01 or 0.001 in the rank-6 stage ended at the same training error (1.05e-4). The
        instance is identifiable: RGD at rank 6 from the planted point perturbed by a relative 1e-2 or 1e-1 reached test
        errors below 1e-9 in 472 and 750 iterations. With the old ridge (1e-8 of the mean diagonal, by our estimate
        about 1e-3 of the weak direction's diagonal entry in the column fits) the sweeps floored at a training error of
        8.7e-7, hence 1e-13.

        Cost: up to ``rank`` stages of O(|Omega| k^2) per sweep and O(|Omega| k) per RGD iteration; medians of 7.1-8.8
        CPU s at 5000 x 6000, 1 %, r = 6, 8, 10 and 0.6-0.7 s at 500 x 600, 10 % over data seeds 0-4 (one thread;
        ``benchmarks/space_decoupling_continuation.md``), against 15-16 s and about 2 s with 5 plain sweeps and 100 RGD
        iterations per rank.

        Returns ``(H, V)`` in float64 on the CPU.
        """
        if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= min(self.m, self.n):
            raise ValueError(f"rank must be an int in [1, {min(self.m, self.n)}], got {rank!r}")
        rate = len(self.pattern) / (self.m * self.n)
        values = self.values.cpu().to(torch.float64)
        problem = self if self.pattern.rows.device.type == "cpu" else _cpu_copy(self)
        H = torch.zeros(self.m, 0, dtype=torch.float64)
        V = torch.zeros(self.n, 0, dtype=torch.float64)
        done = False
        for k in range(1, rank + 1):
            residual = values - (problem.pattern._raw_sample(H, V) if k > 1 else 0.0)
            u, sigma, v = self._top_singular(residual, min(4, self.m, self.n), seed + k)
            v = v[:, 0]
            for _ in range(2):  # Gram-Schmidt twice: v may lie almost in span(V) once the residual is round-off
                v = v - V @ (V.T @ v)
            V = torch.cat([V, (v / torch.linalg.vector_norm(v))[:, None]], 1)
            if done:
                H = torch.cat([H, torch.zeros(self.m, 1, dtype=torch.float64)], 1)
                continue
            H = UnitRows().projH(torch.cat([H, (sigma[0] / rate) * u[:, :1]], 1))
            H, V = problem._row_fit(H, V, sweeps, fitted=fitted)
            if problem.train_error(H, V) >= fitted:
                costs: list[float] = []

                def stalled(record, costs=costs) -> bool:  # the cost fell by less than 1 % in the last 10 iterations
                    costs.append(record["cost"])
                    return len(costs) > 10 and costs[-1] > 0.99 * costs[-11]

                result = solve(problem.cost, problem.manifold(k), (H, V), method="rgd", gradient_tolerance=1e-12,
                               max_iterations=stage_iterations, stop=stalled)
                H, V = result.point
            done = problem.train_error(H, V) < fitted
        return H, V


# -- graph similarity -------------------------------------------------------------------------------------------------
def _check_square(matrix, name: str) -> torch.Tensor:
    matrix = torch.as_tensor(matrix, dtype=torch.float64)
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(f"{name} must be a square matrix of size >= 2, got shape {tuple(matrix.shape)}")
    if not torch.isfinite(matrix).all():
        raise ValueError(f"{name} has non-finite entries")
    return matrix


class GraphSimilarity:
    """Maximise :math:`\\langle X, B X A^T + B^T X A\\rangle` over unit-Frobenius X ``[n_B, n_A]`` of rank :math:`\\le r`
    (cost = minus that). ``A``, ``B``: adjacency matrices of the two graphs."""

    def __init__(self, adjacency_a, adjacency_b) -> None:
        self.a = _check_square(adjacency_a, "adjacency_a")
        self.b = _check_square(adjacency_b, "adjacency_b")
        self.m, self.n = self.b.shape[0], self.a.shape[0]  # X is n_B x n_A

    def to(self, device) -> "GraphSimilarity":
        self.a, self.b = self.a.to(device), self.b.to(device)
        return self

    @property
    def undirected(self) -> bool:
        return bool(torch.equal(self.a, self.a.T) and torch.equal(self.b, self.b.T))

    def manifold(self, rank: int, *, omega: float = 0.5, retraction: str = "second_order") -> SpaceDecoupling:
        return SpaceDecoupling(self.m, self.n, rank, UnitFrobenius(), omega=omega, retraction=retraction)

    def cost(self, H: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        a, b = self.a.to(H), self.b.to(H)
        # <X, B X A^T> = tr((H^T B H)(V^T A^T V)); <X, B^T X A> = tr((H^T B^T H)(V^T A V))
        hbh, vav = H.T @ b @ H, V.T @ a @ V
        return -((hbh * vav).sum() + (hbh.T * vav.T).sum())

    def optimum(self) -> float:
        """:math:`2\\lambda_1(A)\\lambda_1(B)` (undirected graphs only; ValueError otherwise)."""
        if not self.undirected:
            raise ValueError("the closed-form optimum 2 lambda_1(A) lambda_1(B) holds for undirected graphs (symmetric adjacency)")
        return 2 * float(torch.linalg.eigvalsh(self.a)[-1]) * float(torch.linalg.eigvalsh(self.b)[-1])


# -- Max-Cut SDP by Burer-Monteiro -------------------------------------------------------------------------------------
def burer_monteiro_rank(n: int) -> int:
    """The smallest r with :math:`r(r+1)/2 > n` (Boumal-Voroninski-Bandeira: then second-order critical points are
    global for generic costs)."""
    r = int(math.floor((math.sqrt(8 * n + 1) - 1) / 2))
    while r * (r + 1) // 2 <= n:
        r += 1
    return r


class MaxCutSDP:
    """:math:`\\min -\\tfrac14\\langle L, X X^T\\rangle` over X ``[n, n]`` with unit rows and rank :math:`\\le r`
    (L the graph Laplacian): the Burer-Monteiro form of the Max-Cut SDP; the SDP value is minus the optimum."""

    def __init__(self, adjacency) -> None:
        adjacency = _check_square(adjacency, "adjacency")
        if not torch.equal(adjacency, adjacency.T):
            raise ValueError("adjacency must be symmetric (an undirected, weighted graph)")
        self.adjacency = adjacency
        self.laplacian = torch.diag(adjacency.sum(1)) - adjacency
        self.m = self.n = adjacency.shape[0]

    def to(self, device) -> "MaxCutSDP":
        self.adjacency, self.laplacian = self.adjacency.to(device), self.laplacian.to(device)
        return self

    def manifold(self, rank: int, *, omega: float = 0.5, retraction: str = "second_order") -> SpaceDecoupling:
        return SpaceDecoupling(self.m, self.n, rank, UnitRows(), omega=omega, retraction=retraction)

    def cost(self, H: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        gram = H @ (V.T @ V)  # X X^T = H (V^T V) H^T, as a function of both factors
        return -0.25 * ((self.laplacian.to(H) @ H) * gram).sum()

    def cut_value(self, H: torch.Tensor) -> float:
        """Goemans-Williamson rounding with the best of 64 seeded hyperplanes: the cut weight found."""
        generator = torch.Generator().manual_seed(0)
        planes = torch.randn(H.shape[1], 64, dtype=torch.float64, generator=generator)
        signs = torch.sign(H.detach().to(torch.float64).cpu() @ planes)  # [n, 64]
        cuts = 0.25 * ((self.laplacian.cpu() @ signs) * signs).sum(0)
        return float(cuts.max())


def maxcut_sdp_reference(adjacency, solver: str = "CLARABEL") -> float:
    """The Max-Cut SDP value :math:`\\max \\tfrac14\\langle L, Z\\rangle` s.t. diag Z = 1, Z PSD, by cvxpy (convex),
    with tolerances tightened to about 1e-10 (``solver`` ``"CLARABEL"`` or ``"SCS"``)."""
    import cvxpy as cp
    import numpy as np

    laplacian = MaxCutSDP(torch.as_tensor(adjacency).cpu()).laplacian.numpy()
    n = laplacian.shape[0]
    z = cp.Variable((n, n), PSD=True)
    problem = cp.Problem(cp.Maximize(0.25 * cp.trace(laplacian @ z)), [cp.diag(z) == np.ones(n)])
    tight = {"SCS": {"eps": 1e-10, "max_iters": 200000},  # defaults stop near 1e-4 (SCS) and 1e-8 (Clarabel)
             "CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "tol_ktratio": 1e-8}}
    options = tight.get(solver.upper(), {})
    problem.solve(solver=solver, **options)
    if problem.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"cvxpy/{solver} did not solve the Max-Cut SDP: status {problem.status}")
    return float(problem.value)


# -- the shared solver loop --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class FitResult:
    """What :func:`solve` did: the point, its cost, the optimizer's record and the monitored quantities."""

    point: tuple[torch.Tensor, torch.Tensor]  # (H, V)
    cost: float
    iterations: int
    converged: bool  # gradient tolerance met
    stop_reason: str
    gradient_norm: float
    process_time: float  # CPU s inside the optimizer steps (monitoring excluded)
    wall_time: float  # wall s inside the optimizer steps
    cost_evaluations: int
    gradient_evaluations: int
    hessian_vector_products: int
    feasibility: float
    history: list[dict[str, float]]  # per iteration: cost, gradient_norm, process_time, wall_time + monitored values


def solve(cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], manifold: SpaceDecoupling, start, *, method: str = "rgd",
          gradient_tolerance: float = 1e-10, max_iterations: int = 5000, max_time: float = math.inf,
          monitor: Callable[[torch.Tensor, torch.Tensor], dict[str, float]] | None = None,
          stop: Callable[[dict[str, float]], bool] | None = None, progress: bool = False, **options) -> FitResult:
    """Minimise ``cost(H, V)`` on ``manifold`` from ``start`` with a :mod:`zoo.optim` optimizer (no special case).

    ``monitor(H, V)`` is evaluated after every iteration outside the timed region; ``stop(record)`` may end the run
    (e.g. once a test error reaches a target). ``options`` go to the optimizer.
    """
    if method not in OPTIMIZERS:
        raise ValueError(f"method must be one of {sorted(OPTIMIZERS)}, got {method!r}")
    H0, V0 = manifold.check_point(start, "start")
    H, V = torch.nn.Parameter(H0.detach().clone()), torch.nn.Parameter(V0.detach().clone())
    optimizer = OPTIMIZERS[method]([{"params": [H, V], "manifold": manifold}], max_iterations=max_iterations,
                                   gradient_tolerance=gradient_tolerance, max_time=max_time, **options)
    history: list[dict[str, float]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iterations, desc=f"space decoupling {method}", leave=False)
    stop_reason = None
    while not optimizer.stopped:
        optimizer.step(lambda: cost(H, V))
        if optimizer.history and (not history or optimizer.history[-1]["iteration"] != history[-1]["iteration"]):
            record = dict(optimizer.history[-1], process_time=optimizer.process_time, wall_time=optimizer.wall_time)
            if monitor is not None:
                record.update(monitor(H.detach(), V.detach()))
            history.append(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k not in ("iteration", "step")}, refresh=False)
            if stop is not None and stop(record):
                stop_reason = "monitor target reached"
                break
    if bar is not None:
        bar.close()
    result = optimizer.result
    point = (H.detach().clone(), V.detach().clone())
    return FitResult(point=point, cost=result.cost, iterations=result.iterations, converged=result.converged,
                     stop_reason=stop_reason or result.stop_reason or "", gradient_norm=result.gradient_norm,
                     process_time=result.process_time, wall_time=result.wall_time, cost_evaluations=result.cost_evaluations,
                     gradient_evaluations=result.gradient_evaluations, hessian_vector_products=result.hessian_vector_products,
                     feasibility=manifold.feasibility(point), history=history)
