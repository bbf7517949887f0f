"""The space-decoupling manifold M_h: the structured contract for every constraint (built-in and user-supplied) and
omega in {0.1, 0.5, 10}; the Riemannian gradient, Hessian and transport against a dense ambient implementation
(the tangent space as the kernel of the defining equations' Jacobian, its projector differentiated by autograd);
clear errors on invalid input."""

from __future__ import annotations

import itertools

import pytest
import scipy.linalg
import torch

from zoo.manifolds import FixedRowNorms, InvariantConstraint, SpaceDecoupling, Unconstrained, UnitFrobenius, UnitRows

from tests.manifolds.structured_contract import StructuredContract, autograd_factors


class SomeUnitRows(InvariantConstraint):
    """The user-supplied constraint of the InvariantConstraint docstring: listed rows have unit norm."""

    name = "some_unit_rows"

    def __init__(self, rows):
        self.rows = torch.as_tensor(rows)

    def codim(self, m, r):
        return len(self.rows)

    def proj(self, H, Z):
        h = H[self.rows]
        return Z.index_add(0, self.rows, -(h * Z[self.rows]).sum(1, keepdim=True) * h)

    def projH(self, Y):  # noqa: N802
        y = Y[self.rows]
        return Y.index_add(0, self.rows, y / y.norm(dim=1, keepdim=True) - y)


class UnitColumns(InvariantConstraint):
    """Not orthogonally invariant (column norms of H change under H -> HQ): must be refused."""

    def codim(self, m, r):
        return r

    def proj(self, H, Z):
        return Z - (H * Z).sum(0, keepdim=True) * H

    def projH(self, Y):  # noqa: N802
        return Y / Y.norm(dim=0, keepdim=True)


SIZES = {"m7n5r2": (7, 5, 2), "m4n6r3": (4, 6, 3)}


def constraint(name, m):
    return {"none": Unconstrained(), "unit_rows": UnitRows(), "unit_frobenius": UnitFrobenius(),
            "fixed_row_norms": FixedRowNorms(torch.linspace(0.5, 2.0, m, dtype=torch.float64)),
            "user_some_unit_rows": SomeUnitRows([0, m - 1])}[name]


CONSTRAINTS = ["none", "unit_rows", "unit_frobenius", "fixed_row_norms", "user_some_unit_rows"]
CASES = [(c, omega, size, "second_order") for c, omega, size in itertools.product(CONSTRAINTS, (0.1, 0.5, 10.0), ["m7n5r2"])]
CASES += [(c, 0.5, "m4n6r3", "second_order") for c in CONSTRAINTS]
CASES += [(c, 0.5, "m7n5r2", "first_order") for c in ("none", "unit_rows")]


def build(case):
    name, omega, size, retraction = case
    m, n, r = SIZES[size]
    return SpaceDecoupling(m, n, r, constraint(name, m), omega=omega, retraction=retraction)


class TestSpaceDecouplingContract(StructuredContract):
    @pytest.fixture(params=CASES, ids=["-".join(map(str, c)) for c in CASES])
    def manifold(self, request):
        return build(request.param)


# -- a dense ambient implementation -------------------------------------------------------------------------------
def _h_equations(name, X, m):
    """h(X) = 0 of each constraint, written on the dense X (independent of the factored code)."""
    rows = (X * X).sum(1)
    if name == "none":
        return X.new_zeros(0)
    if name == "unit_rows":
        return rows - 1
    if name == "unit_frobenius":
        return (X * X).sum().reshape(1) - 1
    if name == "fixed_row_norms":
        return rows - torch.linspace(0.5, 2.0, m, dtype=X.dtype) ** 2
    return rows[[0, m - 1]] - 1


def _equations(name, m, n, r):
    """All defining equations of M_h on E' = R^{m x n} x R^{n x n} (symmetry of G is one of them)."""
    def c(z):
        X, G = z[: m * n].reshape(m, n), z[m * n:].reshape(n, n)
        return torch.cat([(X @ G).reshape(-1), (G @ G - G).reshape(-1), (G - G.T).reshape(-1),
                          (torch.trace(G) - (n - r)).reshape(1), _h_equations(name, X, m)])
    return c


def _independent_rows(jacobian, tol=1e-9):
    """Indices of a maximal set of linearly independent rows (QR with column pivoting of J^T), chosen once at x."""
    _, upper, pivots = scipy.linalg.qr(jacobian.T.numpy(), pivoting=True, mode="economic")
    diagonal = abs(upper.diagonal())
    rank = int((diagonal > tol * diagonal[0]).sum())
    return torch.as_tensor(pivots[:rank])


def _dense_projector(equations, rows, weights):
    """z -> the M-orthogonal projector onto ker J(z) (M = diag(weights)): I - M^-1 J^T (J M^-1 J^T)^-1 J, J the chosen
    independent rows of the Jacobian; differentiable in z (its rank is constant along the manifold)."""
    def projector(z):
        jac = torch.autograd.functional.jacobian(equations, z, create_graph=True)[rows]
        scaled = jac / weights
        return torch.eye(z.numel(), dtype=z.dtype) - scaled.T @ torch.linalg.solve(scaled @ jac.T, jac)
    return projector


@pytest.mark.parametrize("name", CONSTRAINTS)
@pytest.mark.parametrize("omega", [0.1, 10.0])
def test_gradient_hessian_and_transport_against_the_dense_ambient_projector(name, omega):
    m, n, r = 5, 4, 2
    manifold = SpaceDecoupling(m, n, r, constraint(name, m), omega=omega)
    generator = torch.Generator().manual_seed(3)
    H, V = manifold.random(generator=generator)
    u = manifold.proju((H, V), (torch.randn(m, r, dtype=torch.float64, generator=generator),
                                 torch.randn(n, r, dtype=torch.float64, generator=generator)))
    target = torch.randn(m, n, dtype=torch.float64, generator=generator)

    def f(X):  # smooth, not quadratic
        return 0.5 * ((X - target) ** 2).sum() + 0.25 * (X ** 4).sum() + (X[:, 0] * X[:, 1]).sum()

    def ambient_gradient(X):
        X = X.detach().requires_grad_(True) if not X.requires_grad else X
        return torch.autograd.grad(f(X), X, create_graph=True)[0]

    equations = _equations(name, m, n, r)
    z0 = torch.cat([t.reshape(-1) for t in manifold.represent((H, V))])
    jacobian = torch.autograd.functional.jacobian(equations, z0)
    rows = _independent_rows(jacobian)
    assert z0.numel() - len(rows) == manifold.dimension  # the kernel (symmetry of G is one of the equations) has dim M_h
    weights = torch.cat([torch.ones(m * n, dtype=torch.float64), omega * torch.ones(n * n, dtype=torch.float64)])
    projector = _dense_projector(equations, rows, weights)

    def dense(pair):
        return torch.cat([t.reshape(-1) for t in pair])

    # the field z -> P_z(grad_E f, 0) along the curve t -> (projH(H + tK), polar(V + t Vp)) (velocity u), by autograd in t
    def field(t):
        Ht = manifold.constraint.projH(H + t * u[0])
        Vt = torch.linalg.svd(V + t * u[1], full_matrices=False)
        Vt = Vt[0] @ Vt[2]
        Xt = Ht @ Vt.T
        zt = torch.cat([Xt.reshape(-1), (torch.eye(n, dtype=torch.float64) - Vt @ Vt.T).reshape(-1)])
        grad = torch.cat([ambient_gradient(Xt).reshape(-1), torch.zeros(n * n, dtype=torch.float64)])
        return projector(zt) @ grad

    t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    value = field(t)
    derivative = torch.stack([torch.autograd.grad(value[i], t, retain_graph=True)[0] for i in range(value.numel())])
    P0 = projector(z0).detach()
    dense_gradient, dense_hessian = value.detach(), P0 @ derivative

    cost = lambda point: f(point[0] @ point[1].T)  # noqa: E731  f(H V^T) on the factors
    egrad, ehess = autograd_factors(cost, (H, V), u)
    rgrad = manifold.egrad2rgrad((H, V), egrad)
    hess = manifold.ehess2rhess((H, V), egrad, ehess, u)
    scale = float(dense_hessian.norm())
    assert float((dense(manifold.to_ambient((H, V), rgrad)) - dense_gradient).norm()) < 1e-10 * float(dense_gradient.norm())
    assert float((dense(manifold.to_ambient((H, V), hess)) - dense_hessian).norm()) < 1e-9 * scale
    # the factored projection of a dense ambient vector, and the projection transport, match P0 / P_y
    ambient = torch.randn(z0.numel(), dtype=torch.float64, generator=generator)
    xa, ga = ambient[: m * n].reshape(m, n), ambient[m * n:].reshape(n, n)
    assert float((dense(manifold.to_ambient((H, V), manifold.project_ambient((H, V), (xa, ga)))) - P0 @ ambient).norm()) < 1e-10
    y = manifold.retr((H, V), tuple(0.4 * a for a in u))
    moved = manifold.transp((H, V), y, u)
    zy = torch.cat([t_.reshape(-1) for t_ in manifold.represent(y)])
    expected = projector(zy).detach() @ dense(manifold.to_ambient((H, V), u))
    assert float((dense(manifold.to_ambient(y, moved)) - expected).norm()) < 1e-10


# -- invalid input ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: SpaceDecoupling(5, 4, 5), r"rank r = 5 exceeds min\(m, n\) = 4"),
    (lambda: SpaceDecoupling(5, 4, 0), "r must be a positive int"),
    (lambda: SpaceDecoupling(5, 4, 2, omega=0.0), "omega must be finite and > 0"),
    (lambda: SpaceDecoupling(5, 4, 2, omega=float("nan")), "omega must be finite and > 0"),
    (lambda: SpaceDecoupling(5, 4, 2, retraction="exp"), "retraction must be one of"),
    (lambda: SpaceDecoupling(5, 4, 2, "oblique"), "constraint must be"),
    (lambda: SpaceDecoupling(5, 4, 2, UnitColumns()), r"not orthogonally invariant: projH\(Y Q\) != projH\(Y\) Q"),
    (lambda: SpaceDecoupling(5, 4, 2, FixedRowNorms([1.0, 2.0])), "has 2 norms but the factor has m = 5 rows"),
    (lambda: FixedRowNorms([1.0, float("inf")]), "finite and > 0"),
    (lambda: FixedRowNorms([1.0, -1.0]), "finite and > 0"),
    (lambda: SpaceDecoupling(5, 4, 2).check_point((torch.zeros(4, 2), torch.zeros(4, 2))), "disagree with H"),
    (lambda: SpaceDecoupling(5, 4, 2).check_point((torch.full((5, 2), float("nan")), torch.zeros(4, 2))), "non-finite"),
])
def test_invalid_input_gives_one_line_errors(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


def test_dimension_and_names():
    assert SpaceDecoupling(50, 60, 6, "unit_rows").dimension == (50 + 60 - 6) * 6 - 50
    assert SpaceDecoupling(50, 60, 6).dimension == (50 + 60 - 6) * 6
    assert SpaceDecoupling(50, 60, 6, "unit_frobenius").dimension == (50 + 60 - 6) * 6 - 1
    assert SpaceDecoupling(6, 5, 2, SomeUnitRows([0, 3])).dimension == 16  # the docstring example
