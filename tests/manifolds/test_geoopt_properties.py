"""geoopt-style property tests for every single-tensor zoo manifold and metric, float64 and float32, batched.

Ported in spirit from geoopt's own manifold tests (its suite is not vendored): projx from an ambient point lands on
the manifold and fixes manifold points; check methods explain failures instead of raising; geoopt's
``RiemannianSGD`` and ``RiemannianAdam`` keep iterates feasible; ``random``/``origin`` give ``ManifoldTensor`` s in
torch's default dtype. The defects of issue 20 each have a named test below.
"""

from __future__ import annotations

import geoopt
import pytest
import torch

from zoo.manifolds import ComplexSphere, Simplex, SymplecticStiefel
from zoo.manifolds.symplectic_stiefel import symplectic_feasibility

MANIFOLDS = {
    "simplex-fisher": (lambda: Simplex("fisher"), (5,)),
    "simplex-bi_invariant": (lambda: Simplex("bi_invariant"), (5,)),
    "complex_sphere": (lambda: ComplexSphere(), (4,)),
    "complex_sphere-real_view": (lambda: ComplexSphere(real_view=True), (4, 2)),
    "symplectic-euclidean": (lambda: SymplecticStiefel(4, 2, "euclidean"), (8, 4)),
    "symplectic-canonical_like": (lambda: SymplecticStiefel(4, 2, "canonical_like", rho=0.7), (8, 4)),
    "symplectic-tractable": (lambda: SymplecticStiefel(4, 2, "tractable", alpha=1.3, beta=0.8), (8, 4)),
    "symplectic-square": (lambda: SymplecticStiefel(2, 2, "euclidean"), (4, 4)),
}
DTYPES = {"float64": torch.float64, "float32": torch.float32}
TOL = {torch.float64: 1e-9, torch.float32: 1e-4}


def _dtype(manifold, real):
    if isinstance(manifold, ComplexSphere) and not manifold.real_view:
        return real.to_complex()
    return real


def _make(case, dtype_name, batch, seed=0):
    factory, size = MANIFOLDS[case]
    manifold = factory()
    dtype = _dtype(manifold, DTYPES[dtype_name])
    size = ((3,) + size) if batch else size
    generator = torch.Generator().manual_seed(seed)
    return manifold, manifold.random(*size, dtype=dtype, generator=generator), dtype, generator


GRID = [(case, dtype, batch) for case in MANIFOLDS for dtype in DTYPES for batch in (False, True)]
GRID_IDS = [f"{c}-{d}-{'batch' if b else 'single'}" for c, d, b in GRID]


@pytest.mark.parametrize("case, dtype_name, batch", GRID, ids=GRID_IDS)
def test_projx_from_an_ambient_point_lands_on_the_manifold_and_fixes_points(case, dtype_name, batch):
    manifold, x, dtype, generator = _make(case, dtype_name, batch)
    tol = TOL[DTYPES[dtype_name]]
    # an ambient point near the manifold (geoopt's projx test) and a far one
    for scale in (1e-2, 1.0):
        ambient = x + scale * torch.randn(x.shape, dtype=dtype, generator=generator)
        projected = manifold.projx(ambient)
        manifold.assert_check_point_on_manifold(projected, atol=tol, rtol=tol)
    # a point of the manifold is its own projection
    assert torch.allclose(manifold.projx(x), x, atol=50 * tol, rtol=0)


@pytest.mark.parametrize("case, dtype_name, batch", GRID, ids=GRID_IDS)
def test_random_and_origin_are_manifold_tensors_on_the_manifold(case, dtype_name, batch):
    manifold, x, dtype, _ = _make(case, dtype_name, batch)
    assert isinstance(x, geoopt.ManifoldTensor) and x.manifold == manifold and x.dtype == dtype
    manifold.assert_check_point_on_manifold(x)  # default tolerances, both dtypes
    origin = manifold.origin(*x.shape, dtype=dtype)
    assert isinstance(origin, geoopt.ManifoldTensor)
    manifold.assert_check_point_on_manifold(origin)
    # ManifoldParameter accepts them with another instance of the same manifold
    parameter = geoopt.ManifoldParameter(x, manifold=MANIFOLDS[case][0]())
    assert parameter.manifold == manifold


@pytest.mark.parametrize("case", list(MANIFOLDS))
def test_random_and_origin_follow_torchs_default_dtype(case):
    manifold = MANIFOLDS[case][0]()
    size = MANIFOLDS[case][1]
    previous = torch.get_default_dtype()
    try:
        for default in (torch.float32, torch.float64):
            torch.set_default_dtype(default)
            expected = _dtype(manifold, default)
            assert manifold.random(*size).dtype == expected
            assert manifold.origin(*size).dtype == expected
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("case", list(MANIFOLDS))
def test_check_methods_explain_instead_of_raising(case):
    manifold, x, dtype, generator = _make(case, "float64", False)
    wrong_shape = torch.zeros(x.shape[:-1] + (x.shape[-1] + 1,), dtype=dtype)
    ok, reason = manifold.check_point_on_manifold(wrong_shape, explain=True)
    assert not ok and isinstance(reason, str) and reason
    ok, reason = manifold.check_vector_on_tangent(x, wrong_shape, explain=True)
    assert not ok and isinstance(reason, str) and reason
    off = 2 * x.as_subclass(torch.Tensor) + 0.1
    ok, reason = manifold.check_point_on_manifold(off, explain=True)
    assert not ok and reason
    u = manifold.proju(x, torch.randn(x.shape, dtype=dtype, generator=generator))
    assert manifold.check_vector_on_tangent(x, u, explain=True) == (True, None)
    assert manifold.check_point_on_manifold(x, explain=True) == (True, None)


def _distance_cost(x, target):
    """Squared Euclidean distance to another point: bounded below, so no optimizer runs off to infinity."""
    return (x - target).abs().pow(2).sum()


@pytest.mark.parametrize("optimizer", ["sgd", "sgd_momentum", "adam"])
@pytest.mark.parametrize("case, dtype_name, batch", GRID, ids=GRID_IDS)
def test_geoopt_optimizer_steps_keep_points_feasible(case, dtype_name, batch, optimizer):
    manifold, x, dtype, generator = _make(case, dtype_name, batch)
    target = manifold.random(*x.shape, dtype=dtype, generator=generator).as_subclass(torch.Tensor)
    parameter = geoopt.ManifoldParameter(x.clone(), manifold=manifold)
    if optimizer == "adam":
        opt = geoopt.optim.RiemannianAdam([parameter], lr=1e-2)
    else:
        opt = geoopt.optim.RiemannianSGD([parameter], lr=1e-2, momentum=0.9 if optimizer == "sgd_momentum" else 0.0)
    start = float(_distance_cost(parameter.detach(), target))
    for _ in range(20):
        opt.zero_grad()
        _distance_cost(parameter, target).backward()
        opt.step()
    tol = TOL[DTYPES[dtype_name]]
    manifold.assert_check_point_on_manifold(parameter.detach(), atol=10 * tol, rtol=10 * tol)
    assert float(_distance_cost(parameter.detach(), target)) < start  # the steps go downhill


# -- the defects of issue 20, each failing on the code before the fix -------------------------------------------

def test_symplectic_projx_is_not_the_identity():
    """Was the identity: ``ManifoldParameter(randn).proj_()`` stayed infeasible (|X^T J X - J| up to 1.4)."""
    manifold = SymplecticStiefel(4, 2)
    ambient = manifold.random(dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.3 * torch.randn(
        8, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    parameter = geoopt.ManifoldParameter(ambient.as_subclass(torch.Tensor), manifold=manifold)
    assert float(symplectic_feasibility(parameter.detach())) > 1e-2
    with torch.no_grad():
        parameter.proj_()
    assert float(symplectic_feasibility(parameter.detach())) < 1e-12


def test_symplectic_projx_names_an_isotropic_pair():
    manifold = SymplecticStiefel(2, 1)
    isotropic = torch.zeros(4, 2, dtype=torch.float64)
    isotropic[0, 0] = isotropic[1, 1] = 1.0  # e_1, e_2: omega(e_1, e_2) = 0
    with pytest.raises(ValueError, match="columns 0 and 1 .*isotropic"):
        manifold.projx(isotropic)


def test_symplectic_point_check_uses_rtol():
    """float32 points made by the manifold's own retraction failed the default check (rtol was ignored)."""
    manifold = SymplecticStiefel(20, 5, "euclidean")
    x = manifold.random(dtype=torch.float32, generator=torch.Generator().manual_seed(0), scale=10.0)
    assert float(symplectic_feasibility(x)) > 1e-5  # round-off of a point of norm ~10 in float32
    manifold.assert_check_point_on_manifold(x)
    ok, reason = manifold.check_point_on_manifold(x, atol=1e-5, rtol=0.0, explain=True)
    assert not ok and "atol + rtol" in reason


def test_simplex_projx_gives_a_point_the_metric_can_live_with():
    """projx clamped to 1e-308, so the point passed the check but inner(u, u) was 1.5e308 (and overflowed)."""
    for metric in ("fisher", "bi_invariant"):
        for dtype in (torch.float64, torch.float32):
            manifold = Simplex(metric)
            x = manifold.projx(torch.tensor([0.6, -0.2, 0.5, 0.0], dtype=dtype))
            manifold.assert_check_point_on_manifold(x)
            u = manifold.proju(x, torch.tensor([1.0, -1.0, 0.5, -0.5], dtype=dtype))
            value = float(manifold.inner(x, u, u))
            assert torch.isfinite(manifold.inner(x, u, u)) and value < 1e40 and x.min() >= torch.finfo(dtype).eps / 2
    centre = Simplex().projx(torch.tensor([-1.0, -2.0, 0.0], dtype=torch.float64))
    assert torch.allclose(centre, torch.full((3,), 1 / 3, dtype=torch.float64))


def test_complex_sphere_checks_explain_a_wrong_shape_or_kind():
    """The check methods raised ValueError on a wrong shape instead of returning (False, reason)."""
    sphere = ComplexSphere(real_view=True)
    ok, reason = sphere.check_point_on_manifold(torch.ones(4, 3, dtype=torch.float64), explain=True)
    assert not ok and "(..., d, 2)" in reason
    ok, reason = sphere.check_point_on_manifold(torch.ones(4, 2, dtype=torch.complex128), explain=True)
    assert not ok and "real" in reason
    x = sphere.random(4, 2, dtype=torch.float64)
    ok, reason = sphere.check_vector_on_tangent(x, torch.zeros(4, 3, dtype=torch.float64), explain=True)
    assert not ok and reason


def test_symplectic_docstrings_are_raw():
    """A docstring with \\bar was not raw: '\\b' became a backspace character."""
    import zoo.manifolds.symplectic_stiefel as module

    for obj in [module, *vars(module).values(), *vars(SymplecticStiefel).values()]:
        doc = getattr(obj, "__doc__", None) or ""
        assert "\b" not in doc and "\x07" not in doc and "\x0c" not in doc


def test_min_trace_and_nearest_symplectic_take_the_tractable_parameters():
    from zoo.symplectic import min_trace, nearest_symplectic, planted_spd_matrix

    m, d, _ = planted_spd_matrix(4, seed=0)
    result = min_trace(m, 1, method="rgd", metric="tractable", alpha=0.7, beta=0.2, tol=1e-9)
    assert abs(result.value - 2 * d[:1].sum().item()) < 1e-7
    a = SymplecticStiefel(3, 1).random(dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    near = nearest_symplectic(a + 0.01, metric="tractable", alpha=0.7, beta=0.2, tol=1e-9)
    assert near.converged and near.feasibility < 1e-10
    with pytest.raises(ValueError, match="alpha"):
        min_trace(m, 1, metric="tractable", alpha=-1.0)


def test_simplex_with_geoopt_adam_moves_where_plain_sgd_barely_does():
    """Documented: RiemannianSGD's steps scale like p^2 (bi-invariant); RiemannianAdam normalises them."""
    manifold = Simplex("bi_invariant")
    target = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    moved = {}
    for name in ("sgd", "adam"):
        p = geoopt.ManifoldParameter(manifold.origin(4, dtype=torch.float64), manifold=manifold)
        opt = geoopt.optim.RiemannianAdam([p], lr=0.05) if name == "adam" else geoopt.optim.RiemannianSGD([p], lr=0.05)
        for _ in range(50):
            opt.zero_grad()
            (p * target).sum().backward()
            opt.step()
        moved[name] = 0.25 - float(p.detach()[0])
    assert moved["adam"] > 2 * moved["sgd"] > 0
    assert "RiemannianAdam" in Simplex.__doc__
