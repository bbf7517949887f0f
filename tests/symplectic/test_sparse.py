r"""Sparse and operator inputs of min_trace / symplectic_eigenvalues(k=p): agreement with the dense path, closed
forms, one-line errors, and no dense 2n x 2n matrix on the sparse path.

Closed forms used here:

* harmonic chain :math:`H = K \oplus I`, K the fixed-end path-graph stiffness matrix tridiag(-1, 2, -1) of N
  sites. K = U diag(lambda) U^T with lambda_k = 2 - 2 cos(k pi / (N + 1)) = 4 sin^2(k pi / (2(N + 1))) (the
  discrete sine transform diagonalises it). S = diag(U Lambda^{-1/4}, U Lambda^{1/4}) is symplectic
  (S^T J S = J because the two diagonal scalings are inverse to each other and U is orthogonal) and
  S^T H S = diag(Lambda^{1/2}, Lambda^{1/2}): the symplectic eigenvalues are d_k = sqrt(lambda_k) =
  2 sin(k pi / (2(N + 1))) (the chain's normal-mode frequencies);
* shifted graph Laplacian :math:`M = (L + \sigma I) \oplus (L + \sigma I)`: S = U \oplus U is orthosymplectic, so
  d_j = sigma + lambda_j(L); for an a x b grid lambda = 4 sin^2(i pi / 2(a+1)) + 4 sin^2(j pi / 2(b+1));
* planted banded matrix :math:`M = L\,\mathrm{diag}(D, D)\,L^T` with the symplectic shear L = [[I, B], [0, I]], B
  symmetric tridiagonal: M = [[D + BDB, BD], [DB, D]] is sparse and its symplectic eigenvalues are exactly D.
"""

from __future__ import annotations


import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from zoo.symplectic import SymmetricOperator, min_trace, planted_banded_sparse, planted_spd_matrix, symplectic_eigenvalues


def path_stiffness(n: int) -> sp.csr_matrix:
    return sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1], format="csr")


def harmonic_chain(n: int) -> tuple[sp.csr_matrix, np.ndarray]:
    return sp.block_diag([path_stiffness(n), sp.eye(n)], format="csr"), 2 * np.sin(np.arange(1, n + 1) * np.pi / (2 * (n + 1)))


def planted_banded(n: int, seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    return planted_banded_sparse(n, seed=seed)


class NoDenseOperator:
    """An operator that only multiplies blocks: anything asking for a dense form fails the test."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.matrix, self.shape, self.dtype, self.calls = matrix, matrix.shape, np.float64, []

    def matmat(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[0] == self.shape[0] and x.shape[1] <= 40, f"block of shape {tuple(x.shape)}"
        self.calls.append(x.shape[1])
        return torch.from_numpy(self.matrix @ x.numpy())

    def __array__(self, *args, **kwargs):
        raise AssertionError("dense form requested")

    def to_dense(self):
        raise AssertionError("dense form requested")

    toarray = todense = to_dense


def relative(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.mark.parametrize("kind", ["torch_coo", "torch_csr", "scipy", "operator", "linear_operator"])
def test_sparse_and_operator_inputs_agree_with_the_dense_path(kind):
    m, d, _ = planted_spd_matrix(40, seed=4)
    m = m + 0.05 * torch.eye(80, dtype=torch.float64)  # not planted: the dense eigensolver is the reference
    dense = symplectic_eigenvalues(m)[:5]
    dense_min = min_trace(m, 5, seed=3)
    matrix = sp.csr_matrix(m.numpy())
    inputs = {"torch_coo": m.to_sparse(), "torch_csr": m.to_sparse_csr(), "scipy": matrix,
              "operator": SymmetricOperator(lambda x: torch.from_numpy(matrix @ x.numpy()), (80, 80)),
              "linear_operator": spla.aslinearoperator(matrix)}
    result = min_trace(inputs[kind], 5, seed=3)
    assert result.converged and result.feasibility < 1e-10
    assert relative(result.eigenvalues, dense) < 1e-10
    assert abs(result.value - dense_min.value) / dense_min.value < 1e-12
    assert relative(symplectic_eigenvalues(inputs[kind], k=5, seed=3), dense) < 1e-10


def test_banded_planted_matrix_sparse_path_matches_dense_and_planted_spectrum():
    matrix, d = planted_banded(250, seed=1)
    dense = symplectic_eigenvalues(torch.from_numpy(matrix.toarray()))[:5]
    assert relative(dense, d[:5]) < 1e-11
    operator = NoDenseOperator(matrix)
    result = min_trace(operator, 5, preconditioner=lambda y: torch.from_numpy(spla.spsolve(matrix.tocsc(), y.numpy())),
                       start="subspace")
    assert result.converged and relative(result.eigenvalues, dense) < 1e-10
    assert max(operator.calls) <= 20  # blocks of at most 2q = 4p columns, never the identity


def test_operator_path_never_forms_a_dense_matrix_without_preconditioner():
    matrix, d = planted_banded(30, seed=2)
    operator = NoDenseOperator(matrix)
    result = min_trace(operator, 2, seed=1)
    assert result.converged and relative(result.eigenvalues, d[:2]) < 1e-10
    assert set(operator.calls) <= {1, 2, 4}  # random probes (4 columns), 2p = 4 columns, final reduced product


@pytest.mark.parametrize("method", ["newton", "trust_region"])
def test_harmonic_chain_closed_form(method):
    """d_k = 2 sin(k pi / (2(N + 1))) (module docstring); also against the dense solver."""
    n = 300
    matrix, exact = harmonic_chain(n)
    result = min_trace(matrix, 5, method=method, preconditioner="lu", start="subspace")
    assert result.converged
    assert relative(result.eigenvalues, exact[:5]) < 1e-10
    assert abs(result.value - 2 * exact[:5].sum()) / (2 * exact[:5].sum()) < 1e-10
    dense = symplectic_eigenvalues(torch.from_numpy(matrix.toarray()), k=5)
    assert relative(dense, exact[:5]) < 1e-10


def test_unpreconditioned_newton_from_a_random_start_on_a_small_chain():
    matrix, exact = harmonic_chain(40)
    result = min_trace(matrix, 3, preconditioner=None, start="random")
    assert result.converged and relative(result.eigenvalues, exact[:3]) < 1e-10


def test_a_sparse_matrix_gets_the_factorised_preconditioner_and_subspace_start_by_default():
    """Defaults for a sparse matrix: the sparse LDL^T preconditioner and the subspace start (without them a
    2000-site chain needs thousands of Hessian-vector products); the same answer as asking for them by name."""
    matrix, exact = harmonic_chain(2000)
    default = min_trace(matrix, 5)
    named = min_trace(matrix, 5, preconditioner="lu", start="subspace")
    assert default.converged and relative(default.eigenvalues, exact[:5]) < 1e-10
    assert default.matrix_products == named.matrix_products and default.value == named.value
    operator = NoDenseOperator(matrix)  # an operator cannot be factorised: no preconditioner, random start
    small, small_exact = harmonic_chain(40)
    assert min_trace(NoDenseOperator(small), 3).converged and relative(min_trace(small, 3, preconditioner=None).eigenvalues, small_exact[:3]) < 1e-10
    with pytest.raises(ValueError, match="needs a sparse M"):
        min_trace(operator, 5, preconditioner="lu")


def test_shifted_grid_laplacian_closed_form():
    a, b, sigma = 12, 17, 0.3
    laplacian = sp.kron(path_stiffness(a), sp.eye(b)) + sp.kron(sp.eye(a), path_stiffness(b))
    shifted = laplacian + sigma * sp.eye(a * b)
    matrix = torch.from_numpy(sp.block_diag([shifted, shifted]).toarray()).to_sparse_csr()
    la = 4 * np.sin(np.arange(1, a + 1) * np.pi / (2 * (a + 1))) ** 2
    lb = 4 * np.sin(np.arange(1, b + 1) * np.pi / (2 * (b + 1))) ** 2
    exact = np.sort((la[:, None] + lb[None, :]).ravel())[:5] + sigma
    values = symplectic_eigenvalues(matrix, k=5, preconditioner="lu", start="subspace")
    assert relative(values, exact) < 1e-10


def test_preconditioner_cuts_inner_iterations_on_the_dense_path_too():
    matrix, exact = harmonic_chain(60)
    dense = torch.from_numpy(matrix.toarray())
    plain = min_trace(dense, 3, seed=0)
    preconditioned = min_trace(dense, 3, seed=0, preconditioner="lu")
    assert plain.converged and preconditioned.converged
    assert relative(preconditioned.eigenvalues, exact[:3]) < 1e-10
    assert preconditioned.hessian_vector_products < plain.hessian_vector_products / 2  # measured 99 vs 268


def _indefinite_with_positive_diagonal(n: int) -> sp.csr_matrix:
    m = sp.eye(2 * n, format="lil")
    m[0, 1] = m[1, 0] = 2.0  # the block [[1, 2], [2, 1]] has eigenvalue -1
    return m.tocsr()


@pytest.mark.parametrize("bad, match", [
    (lambda: min_trace(sp.csr_matrix(np.triu(np.ones((6, 6))) + np.eye(6)), 1), r"symmetric \(max \|M - M\^T\| = 1"),
    (lambda: min_trace(torch.tensor([[2.0, 1.0], [0.0, 2.0]]).to_sparse(), 1), "symmetric"),
    (lambda: min_trace(SymmetricOperator(lambda x: torch.from_numpy(np.triu(np.ones((6, 6))) @ x.numpy()), (6, 6)), 1),
     "symmetric \\(randomised test"),
    (lambda: min_trace(sp.diags([1.0, -2.0, 1.0, 1.0]).tocsr(), 1), r"positive definite \(diagonal entry M\[1, 1\] = -2"),
    (lambda: min_trace(SymmetricOperator(lambda x: -x, (6, 6)), 1), "positive definite"),
    (lambda: min_trace(SymmetricOperator(lambda x: x, (6, 6), diagonal=torch.tensor([1.0, 1, 0, 1, 1, 1])), 1),
     r"positive definite \(diagonal entry M\[2, 2\] = 0"),  # the caller's diagonal is checked too
    (lambda: min_trace(_indefinite_with_positive_diagonal(3), 1, preconditioner="lu"), "positive definite \\(sparse LDL"),
    (lambda: min_trace(_indefinite_with_positive_diagonal(3), 1, seed=0), "positive definite \\(sparse LDL"),  # auto: factorised
    (lambda: min_trace(_indefinite_with_positive_diagonal(3), 1, seed=0, preconditioner=None), "positive definite"),
    (lambda: min_trace(sp.eye(5, format="csr"), 1), r"even side, got shape \(5, 5\)"),
    (lambda: min_trace(sp.eye(6, format="csr"), 4), "p must be <= n, got p=4 > n=3"),
    (lambda: min_trace(sp.eye(6, format="csr"), 0), "p must be a positive int, got 0"),
    (lambda: symplectic_eigenvalues(sp.eye(6, format="csr"), k=0), "k must be a positive int, got 0"),
    (lambda: symplectic_eigenvalues(sp.eye(6, format="csr")), "k is required"),
    (lambda: min_trace(lambda x: x, 1), "bare callable"),
    (lambda: min_trace(sp.eye(6, format="csr"), 1, start="lobpcg"), "start must be"),
    (lambda: min_trace(sp.eye(6, format="csr"), 1, start="subspace", preconditioner=None), "needs a preconditioner"),
])
def test_bad_sparse_inputs_give_one_line_errors(bad, match):
    with pytest.raises(ValueError, match=match) as error:
        bad()
    assert "\n" not in str(error.value)


def test_indefinite_matrix_without_factorisation_is_caught_when_it_shows():
    """The indefinite direction of _indefinite_with_positive_diagonal is e_0 - e_1 (eigenvalue -1): trace minimisation
    runs down it (tr(X^T M X) is unbounded below), and the nonpositive cost or reduced matrix raises."""
    with pytest.raises(ValueError, match=r"positive definite \(tr\(X\^T M X\)|positive definite \(.*reduced") as error:
        min_trace(_indefinite_with_positive_diagonal(20), 2, seed=3, preconditioner=None)
    assert "\n" not in str(error.value) and "LDL" not in str(error.value)


def test_sparse_symplectic_eigenvalues_refuse_an_unconverged_run():
    """The reduced matrix's values at a non-optimal X are not the symplectic eigenvalues: an unconverged run raises
    (before, max_iterations=1 returned [2.00, 2.25, 2.54] where the values are [1.08, 1.10, 1.13])."""
    matrix, _ = planted_banded(50, seed=0)
    with pytest.raises(RuntimeError, match="min_trace did not converge"):
        symplectic_eigenvalues(matrix, k=3, max_iterations=1, preconditioner=None, start="random")


def test_symplectic_frame_and_williamson_basis():
    """V T is a symplectic basis of span(V) (T^T V^T J V T = J), and williamson_basis diagonalises a planted matrix."""
    from zoo.manifolds.symplectic_stiefel import apply_j
    from zoo.symplectic.model import _symplectic_frame, williamson_basis

    v = torch.randn(40, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    frame = _symplectic_frame(v.T @ apply_j(v))
    j8 = apply_j(torch.eye(8, dtype=torch.float64))
    assert torch.allclose((v @ frame).T @ apply_j(v @ frame), j8, atol=1e-10)
    assert torch.linalg.matrix_rank(torch.cat([v, v @ frame], 1)).item() == 8  # same span
    m, d, _ = planted_spd_matrix(6, seed=2)
    values, s = williamson_basis(m, 3)
    assert torch.allclose(values, d[:3], atol=1e-10)
    assert torch.allclose(s.T @ m @ s, torch.diag(torch.cat([values, values])), atol=1e-9)
