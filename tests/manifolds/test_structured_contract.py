"""The structured-manifold contract checked on a manifold whose geometry is textbook: S^{n-1} x R^k as a
Riemannian submanifold of R^{n+k}, a point being the pair (a, b). Broken variants (a Hessian without its
curvature term, a gradient with the wrong metric, a retraction that leaves the sphere) must fail the same
checks, so the contract can catch what it claims to catch."""

from __future__ import annotations

import pytest
import torch

from zoo.manifolds import StructuredManifold

from tests.manifolds.structured_contract import StructuredContract


class SphereTimesEuclidean(StructuredManifold):
    """Points (a, b) with |a| = 1; metric and everything else from the embedding in R^{n+k}."""

    name = "SphereTimesEuclidean"
    second_order_retraction = True  # a -> (a + u) / |a + u| is the metric projection: second order

    def __init__(self, n: int = 5, k: int = 3) -> None:
        self.n, self.k = n, k

    def inner(self, x, u, v):
        return (u[0] * v[0]).sum() + (u[1] * v[1]).sum()

    def proju(self, x, u):
        return (u[0] - (x[0] * u[0]).sum() * x[0], u[1])

    def egrad2rgrad(self, x, egrad):
        return self.proju(x, egrad)

    def retr(self, x, u):
        a = x[0] + u[0]
        return (a / a.norm(), x[1] + u[1])

    def ehess2rhess(self, x, egrad, ehess, u):
        projected = self.proju(x, ehess)
        return (projected[0] - (x[0] * egrad[0]).sum() * u[0], projected[1])

    def random(self, *, generator=None, dtype=torch.float64, device=None):
        a = torch.randn(self.n, dtype=dtype, generator=generator, device=device)
        return (a / a.norm(), torch.randn(self.k, dtype=dtype, generator=generator, device=device))

    def feasibility(self, x):
        return abs(float(x[0].norm()) - 1.0)

    def tangent_residual(self, x, u):
        return abs(float((x[0] * u[0]).sum()))

    def represent(self, x):
        return (torch.cat([x[0], x[1]]),)

    def to_ambient(self, x, u):
        return (torch.cat([u[0], u[1]]),)

    def ambient_inner(self, a, b):
        return (a[0] * b[0]).sum()

    def random_normal(self, x, *, generator=None):
        scale = 1.0 + torch.rand((), dtype=x[0].dtype, generator=generator)
        return torch.cat([scale * x[0], torch.zeros_like(x[1])])


class NoCurvatureHessian(SphereTimesEuclidean):
    name = "NoCurvatureHessian"

    def ehess2rhess(self, x, egrad, ehess, u):
        return self.proju(x, ehess)


class WrongMetricGradient(SphereTimesEuclidean):
    name = "WrongMetricGradient"

    def egrad2rgrad(self, x, egrad):
        return (2.0 * self.proju(x, egrad)[0], egrad[1])


class LeavesTheSphere(SphereTimesEuclidean):
    name = "LeavesTheSphere"

    def retr(self, x, u):
        return (x[0] + u[0], x[1] + u[1])


class TestSphereTimesEuclideanContract(StructuredContract):
    @pytest.fixture(params=[(5, 3), (2, 1)], ids=["n5k3", "n2k1"])
    def manifold(self, request):
        return SphereTimesEuclidean(*request.param)


@pytest.mark.parametrize("broken, check", [
    (NoCurvatureHessian, "test_hessian_taylor_slope_three"),
    (WrongMetricGradient, "test_riesz_identity_of_the_gradient"),
    (WrongMetricGradient, "test_gradient_taylor_slope_two"),
    (LeavesTheSphere, "test_retraction_is_feasible_and_first_order"),
])
def test_the_contract_catches_a_broken_manifold(broken, check):
    with pytest.raises(AssertionError):
        getattr(StructuredContract(), check)(broken())
