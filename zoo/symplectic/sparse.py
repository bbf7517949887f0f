r"""Sparse and matrix-free SPD matrices for trace minimisation (no dense ``[2n, 2n]`` matrix is ever formed).

:func:`as_symmetric_operator` turns a torch sparse tensor (COO, CSR, CSC), a SciPy sparse matrix or array, or an
object with ``shape`` and ``matmat`` (a :class:`SymmetricOperator`, a ``scipy.sparse.linalg.LinearOperator``) into a
:class:`SymmetricOperator` that applies M to ``[2n, k]`` float64 blocks. Trace minimisation
:math:`f(X) = \mathrm{tr}(X^T M X)` on :math:`\mathrm{Sp}(2p, 2n)` needs nothing else: the Euclidean gradient is
:math:`2MX` and the Euclidean Hessian-vector product :math:`U \mapsto 2MU` (Son, Absil, Gao, Stykel,
arXiv 2101.02618), so one evaluation costs one product of M with a ``[2n, 2p]`` block plus :math:`O(np^2)` work
on the manifold (projection, Woodbury Cayley retraction).

Input checks (ValueError, one line, naming the bad value):

* square with an even side :math:`2n`;
* symmetric: exactly for sparse matrices (:math:`\max|M - M^T| \le 10^{-12}\max|M|`, one sparse transpose,
  :math:`O(\mathrm{nnz}\log\mathrm{nnz})`); for operators a randomised test with two random vectors,
  :math:`|u^T M v - v^T M u| \le 10^{-10}(\lVert u\rVert\lVert Mv\rVert + \lVert v\rVert\lVert Mu\rVert)`
  (a nonsymmetric operator passes only on a measure-zero set of u, v);
* positive definite, where it shows: a sparse matrix with a nonpositive diagonal entry is rejected up front
  (:math:`e_i^T M e_i > 0` is necessary); during the minimisation a nonpositive cost
  :math:`\mathrm{tr}(X^T M X) \le 0` (impossible for SPD M and full-rank X), and at the end a reduced matrix
  :math:`X^T M X` without a Cholesky factor, raise. With ``preconditioner="lu"`` the pivots of the sparse
  :math:`LDL^T` (:func:`sparse_ldlt_solver`) decide it exactly. Otherwise an indefinite M whose negative directions
  the iteration never meets is not detected.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

__all__ = ["SymmetricOperator", "as_symmetric_operator", "is_sparse_input", "sparse_ldlt_solver"]


class SymmetricOperator:
    """A symmetric ``[2n, 2n]`` linear operator given by ``matmat(X) -> M X`` on ``[2n, k]`` float64 torch tensors.

    Args:
        matmat: callable taking a ``[2n, k]`` float64 tensor and returning ``M X`` (tensor or array of that shape).
        shape: ``(2n, 2n)``.
        frobenius_norm: :math:`\\lVert M\\rVert_F` if known (sets the scale of ``min_trace``'s stopping rule);
            estimated from random products otherwise.
        diagonal: the diagonal of M if known (a nonpositive entry is rejected as not positive definite).
        kind: a label for messages and results.
    """

    def __init__(self, matmat: Callable, shape: tuple[int, int], *, frobenius_norm: float | None = None,
                 diagonal: torch.Tensor | None = None, kind: str = "operator") -> None:
        self._matmat = matmat
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = torch.float64
        self.frobenius_norm = frobenius_norm
        self.diagonal = diagonal
        self.kind = kind
        self.scipy_matrix = None  # the SciPy CSR form of a sparse input (for a sparse factorisation)
        self.products = 0  # number of [2n, k] blocks multiplied so far (columns counted in `columns`)
        self.columns = 0

    def matmat(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`M X` for ``x`` ``[2n, k]`` (or ``[2n]``)."""
        vector = x.dim() == 1
        block = x[:, None] if vector else x
        out = torch.as_tensor(self._matmat(block), dtype=torch.float64)
        if out.shape != block.shape:
            raise ValueError(f"M's matmat returned shape {tuple(out.shape)} for an input of shape {tuple(block.shape)}")
        self.products += 1
        self.columns += block.shape[1]
        return out[:, 0] if vector else out

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        return self.matmat(x)

    def __repr__(self) -> str:
        return f"SymmetricOperator(kind={self.kind!r}, shape={self.shape})"


def is_sparse_input(m) -> bool:
    """True for torch sparse tensors, SciPy sparse matrices/arrays and operator objects (``shape`` + ``matmat``)."""
    if isinstance(m, torch.Tensor):
        return m.layout != torch.strided
    if isinstance(m, np.ndarray):
        return False
    try:
        import scipy.sparse as sp

        if sp.issparse(m):
            return True
    except ImportError:  # pragma: no cover - scipy is a dependency of the zoo's extras
        pass
    return hasattr(m, "matmat") and hasattr(m, "shape") or callable(m)


def _check_shape(shape, name: str) -> int:
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] % 2 or shape[0] == 0:
        raise ValueError(f"{name} must be a square [2n, 2n] matrix with an even side, got shape {tuple(shape)}")
    return shape[0] // 2


def _check_diagonal(diagonal: torch.Tensor, name: str) -> None:
    bad = torch.nonzero(~(diagonal > 0))
    if bad.numel():
        i = int(bad[0, 0])
        raise ValueError(f"{name} must be positive definite (diagonal entry {name}[{i}, {i}] = {diagonal[i].item():.6g} <= 0)")


def _from_scipy(m, name: str) -> SymmetricOperator:
    import scipy.sparse as sp

    _check_shape(m.shape, name)
    csr = sp.csr_matrix(m, dtype=np.float64)
    csr.sum_duplicates()
    if not np.isfinite(csr.data).all():
        raise ValueError(f"{name} has non-finite entries")
    largest = float(np.abs(csr.data).max()) if csr.nnz else 0.0
    difference = csr - csr.T
    asymmetry = float(np.abs(difference.data).max()) if difference.nnz else 0.0
    if asymmetry > 1e-12 * largest:
        raise ValueError(f"{name} must be symmetric (max |M - M^T| = {asymmetry:.3g}, max |M| = {largest:.3g})")
    diagonal = torch.from_numpy(np.asarray(csr.diagonal(), dtype=np.float64))
    _check_diagonal(diagonal, name)

    def matmat(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(csr @ x.detach().numpy()))

    op = SymmetricOperator(matmat, csr.shape, frobenius_norm=float(np.linalg.norm(csr.data)), diagonal=diagonal,
                           kind="scipy sparse")
    op.scipy_matrix = csr
    return op


def _from_torch_sparse(m: torch.Tensor, name: str) -> SymmetricOperator:
    _check_shape(tuple(m.shape), name)
    coo = m.to_sparse_coo().coalesce().to(torch.float64) if m.layout != torch.sparse_coo else m.coalesce().to(torch.float64)
    values = coo.values()
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} has non-finite entries")
    largest = float(values.abs().max()) if values.numel() else 0.0
    difference = (coo - coo.t()).coalesce().values()
    asymmetry = float(difference.abs().max()) if difference.numel() else 0.0
    if asymmetry > 1e-12 * largest:
        raise ValueError(f"{name} must be symmetric (max |M - M^T| = {asymmetry:.3g}, max |M| = {largest:.3g})")
    indices = coo.indices()
    on_diagonal = indices[0] == indices[1]
    diagonal = torch.zeros(m.shape[0], dtype=torch.float64).index_add_(0, indices[0][on_diagonal], values[on_diagonal])
    _check_diagonal(diagonal, name)
    csr = coo.to_sparse_csr()

    def matmat(x: torch.Tensor) -> torch.Tensor:
        return csr @ x

    op = SymmetricOperator(matmat, tuple(m.shape), frobenius_norm=float(torch.linalg.vector_norm(values)),
                           diagonal=diagonal, kind="torch sparse")
    import scipy.sparse as sp

    op.scipy_matrix = sp.csr_matrix((values.numpy(), indices.numpy()), shape=tuple(m.shape))
    return op


def _check_operator(op: SymmetricOperator, name: str, seed: int = 12345) -> SymmetricOperator:
    """Randomised symmetry test and Frobenius-norm estimate (Hutchinson: :math:`E\\lVert Mz\\rVert^2 = \\lVert M\\rVert_F^2`
    for standard Gaussian z) from one product with a ``[2n, 4]`` Gaussian block (Gaussian, not Rademacher: integer
    test vectors meet an integer nonsymmetric matrix's :math:`u^TMv = v^TMu` with positive probability)."""
    if op.diagonal is not None:  # a diagonal the caller knows: a nonpositive entry proves M indefinite
        _check_diagonal(torch.as_tensor(op.diagonal, dtype=torch.float64).reshape(-1), name)
    size = op.shape[0]
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(size, 4, generator=generator, dtype=torch.float64)
    mz = op.matmat(z)
    if not torch.isfinite(mz).all():
        raise ValueError(f"{name} returned non-finite values")
    u, v, mu, mv = z[:, 0], z[:, 1], mz[:, 0], mz[:, 1]
    asymmetry = abs(float(u @ mv - v @ mu))
    scale = float(torch.linalg.vector_norm(u) * torch.linalg.vector_norm(mv) + torch.linalg.vector_norm(v) * torch.linalg.vector_norm(mu))
    if asymmetry > 1e-10 * scale:
        raise ValueError(f"{name} must be symmetric (randomised test: |u^T M v - v^T M u| = {asymmetry:.3g}, "
                         f"relative {asymmetry / max(scale, 1e-300):.3g})")
    quadratic = (z * mz).sum(0)
    if (quadratic <= 0).any():
        raise ValueError(f"{name} must be positive definite (z^T M z = {float(quadratic.min()):.6g} <= 0 for a random z)")
    if op.frobenius_norm is None:
        op.frobenius_norm = math.sqrt(float((mz ** 2).sum()) / z.shape[1])
    op.products = op.columns = 0
    return op


def as_symmetric_operator(m, name: str = "M") -> SymmetricOperator:
    """``m`` (torch sparse, SciPy sparse, or an object with ``shape`` and ``matmat``) as a checked :class:`SymmetricOperator`.

    Operators other than :class:`SymmetricOperator` are called with NumPy arrays if they are SciPy
    ``LinearOperator`` s and with torch tensors otherwise. A bare callable has no shape: wrap it as
    ``SymmetricOperator(fn, (2n, 2n))``.
    """
    if isinstance(m, SymmetricOperator):
        _check_shape(m.shape, name)
        return _check_operator(m, name)
    if isinstance(m, torch.Tensor):
        if m.layout == torch.strided:
            raise ValueError(f"{name} is a dense tensor; the dense path takes it directly")
        return _from_torch_sparse(m, name)
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    if sp.issparse(m):
        return _from_scipy(m, name)
    if hasattr(m, "matmat") and hasattr(m, "shape"):
        _check_shape(tuple(m.shape), name)
        if isinstance(m, spla.LinearOperator):
            op = SymmetricOperator(lambda x: np.asarray(m.matmat(x.detach().numpy())), m.shape, kind="LinearOperator")
        else:
            op = SymmetricOperator(m.matmat, m.shape, kind=type(m).__name__)
        return _check_operator(op, name)
    if callable(m):
        raise ValueError(f"{name} is a bare callable without a shape; wrap it as zoo.symplectic.SymmetricOperator(fn, (2n, 2n))")
    raise ValueError(f"{name} must be a dense or sparse matrix or an operator with shape and matmat, got {type(m).__name__}")


def sparse_ldlt_solver(op: SymmetricOperator, name: str = "M") -> Callable[[torch.Tensor], torch.Tensor]:
    """``Y -> M^{-1} Y`` from SciPy's SuperLU factorisation of a sparse M, in symmetric mode: minimum-degree ordering of
    :math:`M + M^T` and no pivoting (``diag_pivot_thresh=0``), so :math:`P M P^T = L U` with :math:`U = D L^T` and,
    by Sylvester's law of inertia, M is positive definite iff every pivot :math:`U_{ii} > 0` (ValueError naming
    the first bad pivot otherwise: an exact positive-definiteness check that costs the factorisation).
    """
    import scipy.sparse.linalg as spla

    if op.scipy_matrix is None:
        raise ValueError(f"preconditioner='lu' needs a sparse {name} (torch or SciPy), got a {op.kind}; pass a callable")
    try:
        factor = spla.splu(op.scipy_matrix.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                           options={"SymmetricMode": True})
    except RuntimeError as error:  # exactly singular pivot
        raise ValueError(f"{name} must be positive definite (sparse LDL^T: {error})") from None
    pivots = factor.U.diagonal()
    bad = np.nonzero(~(pivots > 0))[0]
    if bad.size:
        raise ValueError(f"{name} must be positive definite (sparse LDL^T pivot {bad[0]} = {pivots[bad[0]]:.6g} <= 0)")

    def solve(y: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(factor.solve(np.asfortranarray(y.detach().numpy()))))

    solve.factor = factor
    return solve
