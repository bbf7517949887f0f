"""Contract tests run over every zoo manifold and metric (float64 / complex128).

Checks: random points on the manifold; proju tangent, idempotent, metric-orthogonal; metric symmetric, positive,
real; Riesz identity of egrad2rgrad; retraction (R(x, 0) = x, feasible for steps 1e-6..10, first order);
transport tangent and linear; Taylor slopes of the gradient (2) and of the Hessian at a critical point (3).
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from zoo.manifolds import ComplexSphere, Simplex, SymplecticStiefel
from zoo.manifolds.symplectic_stiefel import apply_j

CASES = {
    "simplex-fisher": (lambda: Simplex("fisher"), (6,)),
    "simplex-bi_invariant": (lambda: Simplex("bi_invariant"), (6,)),
    "simplex-fisher-batch": (lambda: Simplex("fisher"), (3, 5)),
    "complex_sphere": (lambda: ComplexSphere(), (4,)),
    "complex_sphere-batch": (lambda: ComplexSphere(), (3, 4)),
    "complex_sphere-real_view": (lambda: ComplexSphere(real_view=True), (4, 2)),
    "symplectic-euclidean": (lambda: SymplecticStiefel(5, 2, "euclidean"), (10, 4)),
    "symplectic-canonical_like": (lambda: SymplecticStiefel(5, 2, "canonical_like", rho=0.7), (10, 4)),
    "symplectic-tractable": (lambda: SymplecticStiefel(5, 2, "tractable", alpha=1.3, beta=0.8), (10, 4)),
    "symplectic-euclidean-batch": (lambda: SymplecticStiefel(4, 1, "euclidean"), (2, 8, 2)),
    "symplectic-square": (lambda: SymplecticStiefel(3, 3, "canonical_like", rho=2.0), (6, 6)),
}
IDS = list(CASES)


def _setup(case, seed=0):
    factory, size = CASES[case]
    manifold = factory()
    generator = torch.Generator().manual_seed(seed)
    x = manifold.random(*size, dtype=torch.complex128 if isinstance(manifold, ComplexSphere) and not manifold.real_view else torch.float64,
                        generator=generator)
    return manifold, x, generator


def _randn(like, generator):
    return torch.randn(like.shape, dtype=like.dtype, generator=generator)


def _tangent(manifold, x, generator):
    return manifold.proju(x, _randn(x, generator))


def _frobenius(a, b):
    return (a.conj() * b).real.sum() if a.is_complex() else (a * b).sum()


def _normal(manifold, x, generator):
    """A Euclidean normal vector at x: egrad2rgrad maps it to 0 (makes x a critical point of <N, .>)."""
    if isinstance(manifold, Simplex):
        return torch.randn(x.shape[:-1] + (1,), dtype=x.dtype, generator=generator).expand_as(x).clone()
    if isinstance(manifold, ComplexSphere):
        dims = x.shape[:-2] + (1, 1) if manifold.real_view else x.shape[:-1] + (1,)
        return torch.randn(dims, dtype=torch.float64, generator=generator) * x
    omega = torch.randn(x.shape[:-2] + (x.shape[-1], x.shape[-1]), dtype=x.dtype, generator=generator)
    return apply_j(x) @ (omega - omega.transpose(-1, -2))


def _slope(ts, errors):
    ts, errors = np.asarray(ts), np.asarray(errors)
    return np.polyfit(np.log(ts), np.log(errors), 1)[0]


@pytest.mark.parametrize("case", IDS)
def test_random_point_is_on_manifold(case):
    manifold, x, _ = _setup(case)
    manifold.assert_check_point_on_manifold(x, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("case", IDS)
def test_projection_is_tangent_idempotent_and_metric_orthogonal(case):
    manifold, x, generator = _setup(case)
    u = _randn(x, generator)
    pu = manifold.proju(x, u)
    manifold.assert_check_vector_on_tangent(x, pu, atol=1e-11, rtol=1e-11)
    assert torch.allclose(manifold.proju(x, pu), pu, atol=1e-11)
    v = _tangent(manifold, x, generator)
    assert manifold.inner(x, u - pu, v).abs().max() < 1e-10


@pytest.mark.parametrize("case", IDS)
def test_metric_is_symmetric_positive_and_real(case):
    manifold, x, generator = _setup(case)
    u, v = _tangent(manifold, x, generator), _tangent(manifold, x, generator)
    uv, vu, uu = manifold.inner(x, u, v), manifold.inner(x, v, u), manifold.inner(x, u)
    assert not uv.is_complex()
    assert torch.allclose(uv, vu, atol=1e-12)
    assert (uu > 0).all()


@pytest.mark.parametrize("case", IDS)
def test_riesz_identity_of_the_gradient(case):
    manifold, x, generator = _setup(case)
    egrad = _randn(x, generator)
    rgrad = manifold.egrad2rgrad(x, egrad)
    manifold.assert_check_vector_on_tangent(x, rgrad, atol=1e-10, rtol=1e-10)
    for _ in range(3):
        v = _tangent(manifold, x, generator)
        left = manifold.inner(x, rgrad, v).sum()
        right = _frobenius(egrad, v)
        assert abs(left - right) <= 1e-10 * max(1.0, abs(right))


@pytest.mark.parametrize("case", IDS)
def test_retraction_stays_on_manifold_and_is_first_order(case):
    manifold, x, generator = _setup(case)
    u = _tangent(manifold, x, generator)
    u = u / manifold.inner(x, u, keepdim=True).sqrt()
    assert torch.allclose(manifold.retr(x, 0 * u), x, atol=1e-14)
    for size in (1e-6, 1e-2, 1.0, 10.0):
        manifold.assert_check_point_on_manifold(manifold.retr(x, size * u), atol=1e-10, rtol=1e-10)
    ts = np.logspace(-4, -2, 5)
    errors = [float(torch.linalg.vector_norm(manifold.retr(x, t * u) - x - t * u)) for t in ts]
    assert _slope(ts, errors) > 1.9


@pytest.mark.parametrize("case", IDS)
def test_transport_is_tangent_and_linear(case):
    manifold, x, generator = _setup(case)
    y = manifold.retr(x, 0.3 * _tangent(manifold, x, generator))
    v, w = _tangent(manifold, x, generator), _tangent(manifold, x, generator)
    moved = manifold.transp(x, y, v)
    manifold.assert_check_vector_on_tangent(y, moved, atol=1e-10, rtol=1e-10)
    combined = manifold.transp(x, y, 2.0 * v - 3.0 * w)
    assert torch.allclose(combined, 2.0 * moved - 3.0 * manifold.transp(x, y, w), atol=1e-10)


def _test_cost(x_star, weights, linear):
    """f(x) = 1/2 sum w |x - x*|^2 + Re<linear, x> + 1/4 sum |x - x*|^4 (smooth, non-quadratic)."""

    def cost(x):
        difference = x - x_star
        square = (difference.conj() * difference).real if difference.is_complex() else difference * difference
        return 0.5 * (weights * square).sum() + _frobenius(linear, x) + 0.25 * (square * square).sum()

    return cost


def _autograd(cost, x, u=None):
    point = x.clone().requires_grad_(True)
    value = cost(point)
    (egrad,) = torch.autograd.grad(value, point, create_graph=True)
    if u is None:
        return egrad.detach()
    (ehess,) = torch.autograd.grad(_frobenius(egrad, u), point)
    return egrad.detach(), ehess.detach()


@pytest.mark.parametrize("case", IDS)
def test_gradient_taylor_slope_two(case):
    manifold, x, generator = _setup(case)
    cost = _test_cost(manifold.random(*x.shape, dtype=x.dtype, generator=generator), torch.rand(x.shape, dtype=torch.float64, generator=generator) + 0.5,
                      _randn(x, generator))
    rgrad = manifold.egrad2rgrad(x, _autograd(cost, x))
    u = _tangent(manifold, x, generator)
    slope = manifold.inner(x, rgrad, u).sum()
    ts = np.logspace(-5, -2, 6)
    errors = [abs(float(cost(manifold.retr(x, t * u)) - cost(x) - t * slope)) for t in ts]
    assert abs(_slope(ts, errors) - 2) < 0.1


@pytest.mark.parametrize("case", IDS)
def test_hessian_taylor_slope_three_at_a_critical_point(case):
    manifold, x_star, generator = _setup(case)
    normal = _normal(manifold, x_star, generator)
    cost = _test_cost(x_star, torch.rand(x_star.shape, dtype=torch.float64, generator=generator) + 0.5, normal)
    u = _tangent(manifold, x_star, generator)
    egrad, ehess = _autograd(cost, x_star, u)
    rgrad = manifold.egrad2rgrad(x_star, egrad)
    assert torch.linalg.vector_norm(rgrad) < 1e-10 * max(1.0, float(torch.linalg.vector_norm(egrad)))  # critical point
    assert float(torch.linalg.vector_norm(egrad)) > 0.1  # ... with a non-zero Euclidean gradient (curvature term active)
    hess_u = manifold.ehess2rhess(x_star, egrad, ehess, u)
    manifold.assert_check_vector_on_tangent(x_star, hess_u, atol=1e-10, rtol=1e-10)
    quadratic = manifold.inner(x_star, u, hess_u).sum()
    ts = np.logspace(-4, -2, 5)
    errors = [abs(float(cost(manifold.retr(x_star, t * u)) - cost(x_star) - 0.5 * t * t * quadratic)) for t in ts]
    assert _slope(ts, errors) > 2.8  # 3, or more when the cubic term happens to vanish
    # a Hessian without the curvature term would fail: the slope would drop to 2
    wrong = manifold.proju(x_star, ehess)
    wrong_quadratic = manifold.inner(x_star, u, wrong).sum()
    if abs(float(wrong_quadratic - quadratic)) > 1e-6:
        wrong_errors = [abs(float(cost(manifold.retr(x_star, t * u)) - cost(x_star) - 0.5 * t * t * wrong_quadratic)) for t in ts]
        assert _slope(ts[:3], wrong_errors[:3]) < 2.3
    # symmetric at the critical point
    v = _tangent(manifold, x_star, generator)
    _, ehess_v = _autograd(cost, x_star, v)
    hess_v = manifold.ehess2rhess(x_star, egrad, ehess_v, v)
    assert abs(float(manifold.inner(x_star, v, hess_u).sum() - manifold.inner(x_star, u, hess_v).sum())) < 1e-9


def test_euclidean_symplectic_hessian_away_from_critical_points():
    """The Euclidean-metric Hessian is exact everywhere: check slope 3 along a second-order curve substitute.

    With the first-order Cayley retraction we compare the Hessian with a finite difference of the Riemannian
    gradient instead (grad(R(x, t u)) projected back, central differences)."""
    manifold = SymplecticStiefel(5, 2)
    generator = torch.Generator().manual_seed(3)
    x = manifold.random(dtype=torch.float64, generator=generator)
    cost = _test_cost(manifold.random(generator=generator), torch.rand(10, 4, dtype=torch.float64, generator=generator) + 0.5,
                      torch.randn(10, 4, dtype=torch.float64, generator=generator))
    u = _tangent(manifold, x, generator)
    egrad, ehess = _autograd(cost, x, u)
    hess_u = manifold.ehess2rhess(x, egrad, ehess, u)
    v = _tangent(manifold, x, generator)
    h = 1e-5
    plus, minus = manifold.retr(x, h * u), manifold.retr(x, -h * u)
    # d/dt <grad f(R(tu)), P_{R(tu)} v> = <Hess u, v> + <grad, D(P v)[u]>; for the Euclidean metric the
    # Levi-Civita derivative equals P(D grad[u]), so <P_x(d/dt grad), v> = <Hess u, v>
    grad_plus = manifold.egrad2rgrad(plus, _autograd(cost, plus))
    grad_minus = manifold.egrad2rgrad(minus, _autograd(cost, minus))
    difference = manifold.proju(x, (grad_plus - grad_minus) / (2 * h))
    assert abs(float(manifold.inner(x, difference, v) - manifold.inner(x, hess_u, v))) < 1e-6 * max(1.0, float(manifold.inner(x, hess_u).sqrt()))


def test_symplectic_tangent_dimension_and_woodbury_cayley():
    manifold = SymplecticStiefel(4, 2)
    generator = torch.Generator().manual_seed(0)
    x = manifold.random(dtype=torch.float64, generator=generator)
    basis = torch.eye(32, dtype=torch.float64).reshape(32, 8, 4)
    projector = torch.stack([manifold.proju(x, b).reshape(-1) for b in basis])
    assert torch.linalg.matrix_rank(projector, atol=1e-9).item() == manifold.dimension == 4 * 4 * 2 - 2 * 3
    big = SymplecticStiefel(12, 2)
    y = big.random(dtype=torch.float64, generator=generator)
    z = big.proju(y, torch.randn(24, 4, dtype=torch.float64, generator=generator))
    dense = SymplecticStiefel(12, 2, retraction_solver="dense").retr(y, z)
    woodbury = SymplecticStiefel(12, 2, retraction_solver="woodbury").retr(y, z)
    assert torch.allclose(dense, woodbury, atol=1e-11)


def test_canonical_like_gradient_matches_the_published_formula():
    """Gao-Son-Absil-Stykel 2021 (spopt): grad = PG + X J PG^T J X, PG = (I - J X (X^T X)^{-1} X^T J^T + rho/2 X X^T) G."""
    rho = 0.7
    manifold = SymplecticStiefel(6, 2, "canonical_like", rho=rho)
    generator = torch.Generator().manual_seed(1)
    x = manifold.random(dtype=torch.float64, generator=generator)
    g = torch.randn(12, 4, dtype=torch.float64, generator=generator)
    j = apply_j(torch.eye(12, dtype=torch.float64))
    jp = apply_j(torch.eye(4, dtype=torch.float64))
    pg = (torch.eye(12, dtype=torch.float64) - j @ x @ torch.linalg.inv(x.T @ x) @ x.T @ j.T + rho / 2 * x @ x.T) @ g
    published = pg + x @ jp @ pg.T @ j @ x
    assert torch.allclose(manifold.egrad2rgrad(x, g), published, atol=1e-11)


def test_complex_sphere_conjugates_where_geoopt_sphere_does_not():
    import geoopt

    generator = torch.Generator().manual_seed(0)
    x = ComplexSphere().random(5, dtype=torch.complex128, generator=generator)
    u = torch.randn(5, dtype=torch.complex128, generator=generator)
    ours = ComplexSphere().proju(x, u)
    assert abs(float((x.conj() * ours).real.sum())) < 1e-14
    theirs = geoopt.Sphere().proju(x, u)
    assert abs(float((x.conj() * theirs).real.sum())) > 1e-3  # the reason ComplexSphere exists


@pytest.mark.parametrize("bad, match", [
    (lambda: SymplecticStiefel(2, 3), "p <= n"),
    (lambda: SymplecticStiefel(3, 1, "riemannian"), "metric"),
    (lambda: SymplecticStiefel(3, 1, rho=0), "rho"),
    (lambda: SymplecticStiefel(3, 1, "tractable", alpha=-1), "alpha"),
    (lambda: Simplex("euclid"), "metric"),
    (lambda: ComplexSphere().random(3, dtype=torch.float64), "complex"),
    (lambda: SymplecticStiefel(3, 1).random(5, 2), "trailing shape"),
])
def test_invalid_arguments_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_check_point_rejects_wrong_shape_and_infeasible_points():
    manifold = SymplecticStiefel(3, 1)
    ok, reason = manifold.check_point_on_manifold(torch.zeros(6, 3, dtype=torch.float64), explain=True)
    assert not ok and "trailing shape" in reason
    ok, reason = manifold.check_point_on_manifold(2 * manifold.origin(), explain=True)
    assert not ok and "X^T J X" in reason
    assert not Simplex().check_point_on_manifold(torch.tensor([0.5, 0.6], dtype=torch.float64))


def _chart_hessian(manifold, seed):
    """The Riemannian Hessian in the chart y -> R_x(sum_i y_i e_i) (an independent computation): with the pulled-back
    metric G(y), H_ij = d_i d_j F - Gamma^k_ij d_k F, Gamma^k_ij = 1/2 G^kl (d_i G_jl + d_j G_il - d_l G_ij) at y = 0.
    Returns (H from the chart, H from ehess2rhess) in the basis e_i of T_x."""
    from torch.func import hessian, jacfwd, jacrev

    generator = torch.Generator().manual_seed(seed)
    rows, cols = 2 * manifold.n, 2 * manifold.p
    x = manifold.random(dtype=torch.float64, generator=generator)
    tangents = torch.stack([_tangent(manifold, x, generator) for _ in range(manifold.dimension)])
    q, _ = torch.linalg.qr(tangents.reshape(manifold.dimension, -1).T)
    basis = q.T.reshape(-1, rows, cols)
    a = torch.randn(rows, rows, dtype=torch.float64, generator=generator)
    b = torch.randn(rows, cols, dtype=torch.float64, generator=generator)
    cost = lambda z: torch.trace(z.T @ a @ a.T @ z) + (b * z).sum() ** 2 + (z**3).sum()  # noqa: E731
    chart = lambda y: manifold.retr(x, torch.einsum("i,iab->ab", y, basis))  # noqa: E731

    def gram(y):  # reverse mode inside: forward-over-forward through torch.linalg.solve is wrong in torch 2.13 (CPU)
        frame = jacrev(chart)(y).permute(2, 0, 1)
        point = chart(y)
        return torch.einsum("iab,jab->ij", frame, torch.stack([manifold.metric_apply(point, f) for f in frame]))

    y0 = torch.zeros(manifold.dimension, dtype=torch.float64)
    g, dg = gram(y0), jacfwd(gram)(y0)  # dg[i, j, k] = d_k G_ij
    lower = 0.5 * (dg.permute(0, 2, 1) + dg - dg.permute(2, 0, 1))  # [l, i, j]
    christoffel = torch.einsum("kl,lij->kij", torch.linalg.inv(g), lower)
    chart_h = hessian(lambda y: cost(chart(y)))(y0) - torch.einsum("kij,k->ij", christoffel, jacrev(lambda y: cost(chart(y)))(y0))
    ours = torch.empty_like(chart_h)
    for i, e in enumerate(basis):
        egrad, ehess = _autograd(cost, x, e)
        hess = manifold.ehess2rhess(x, egrad, ehess, e)
        ours[i] = torch.stack([manifold.inner(x, hess, f) for f in basis])
    return chart_h, ours


@pytest.mark.parametrize("metric,options", [("euclidean", {}), ("canonical_like", {"rho": 0.7}), ("tractable", {"alpha": 1.3, "beta": 0.8})])
def test_symplectic_hessian_equals_the_chart_hessian_away_from_critical_points(metric, options):
    """ehess2rhess is the Levi-Civita Hessian of each metric at a generic (non-critical) point; the cheaper
    critical-point form (exact_hessian=False) is not, for the point-dependent metrics (so the test discriminates)."""
    for n, p in ((3, 1), (3, 2)):
        chart_h, ours = _chart_hessian(SymplecticStiefel(n, p, metric, **options), seed=n + p)
        assert (ours - chart_h).abs().max() < 1e-10 * chart_h.abs().max()
    if metric != "euclidean":
        chart_h, cheap = _chart_hessian(SymplecticStiefel(3, 1, metric, exact_hessian=False, **options), seed=4)
        assert (cheap - chart_h).abs().max() > 1e-3 * chart_h.abs().max()


def test_lyapunov_solver_derivatives_at_repeated_eigenvalues():
    from zoo.manifolds.symplectic_stiefel import _lyapunov

    def solve(a, c):  # A is symmetric by contract: symmetrise so that every perturbation is admissible
        return _lyapunov(0.5 * (a + a.T), c)

    c = torch.randn(4, 4, dtype=torch.float64).requires_grad_(True)
    repeated = (torch.eye(4, dtype=torch.float64) * 2.0).requires_grad_(True)  # eigh's own derivatives are infinite here
    s = torch.randn(4, 4, dtype=torch.float64)
    generic = (s @ s.T + torch.eye(4, dtype=torch.float64)).requires_grad_(True)
    for a in (repeated, generic):
        assert torch.autograd.gradcheck(solve, (a, c))
        assert torch.autograd.gradcheck(solve, (a, c), check_forward_ad=True, check_backward_ad=False)
        assert torch.autograd.gradgradcheck(solve, (a, c))  # second order also through the custom rule, not eigh


def test_levi_civita_formula_reduces_to_the_weingarten_form_for_the_euclidean_metric():
    """The Koszul-formula Hessian (used for the point-dependent metrics) with M_X = I equals the Euclidean branch."""
    manifold = SymplecticStiefel(3, 2, "euclidean")
    generator = torch.Generator().manual_seed(5)
    x = manifold.random(dtype=torch.float64, generator=generator)
    u = _tangent(manifold, x, generator)
    a = torch.randn(6, 6, dtype=torch.float64, generator=generator)
    egrad, ehess = _autograd(lambda z: torch.trace(z.T @ a @ z) + (z**3).sum(), x, u)
    weingarten = manifold.ehess2rhess(x, egrad, ehess, u)
    assert (manifold._levi_civita_hessian(x, egrad, ehess, u) - weingarten).abs().max() < 1e-12 * weingarten.abs().max()
