"""The desingularised Tucker manifold: the structured-manifold contract (orders 3 and 4, several omegas, an
over-estimated rank with a rank-deficient core), and its gradient, Hessian and transport against an independent
dense implementation of the submanifold geometry (tests/manifolds/dense_ambient.py)."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.manifolds import TuckerDesingularization
from zoo.manifolds._tensor_algebra import multi_mode_product

from tests.manifolds.dense_ambient import DenseSubmanifold
from tests.manifolds.structured_contract import StructuredContract, autograd_factors


class RankDeficientTucker(TuckerDesingularization):
    """Random points whose core has mode-1 rank 1 < r_1 (an over-estimated rank: the point the
    desingularisation exists for); the metric stays positive through omega."""

    def random(self, *, generator=None, dtype=torch.float64, device=None):
        core, *factors = super().random(generator=generator, dtype=dtype, device=device)
        first = torch.randn(self.ranks[0], 1, dtype=dtype, generator=generator)
        rest = torch.randn(1, math.prod(self.ranks[1:]), dtype=dtype, generator=generator)
        return ((first @ rest).reshape(self.ranks), *factors)


CASES = {
    "order3": lambda: TuckerDesingularization((4, 5, 6), (2, 3, 2)),
    "order3_omega0.1": lambda: TuckerDesingularization((4, 5, 6), (2, 3, 2), omega=0.1),
    "order4_omega3": lambda: TuckerDesingularization((3, 4, 3, 5), (2, 2, 3, 2), omega=3.0),
    "rank_deficient_core": lambda: RankDeficientTucker((5, 4, 6), (3, 2, 2)),
}


class TestTuckerContract(StructuredContract):
    @pytest.fixture(params=sorted(CASES))
    def manifold(self, request):
        return CASES[request.param]()


# -- the dense ambient check -------------------------------------------------------------------------------------------
def _chart(manifold, x):
    """A gauge-free chart around x: X = H x_k [I; B_k], P_k = I - Pi([I; B_k]) (needs invertible top blocks)."""
    core, factors = x[0], x[1:]
    tops = [f[: r] for f, r in zip(factors, manifold.ranks)]
    h = multi_mode_product(core, tops)
    bs = [f[r:] @ torch.linalg.inv(t) for f, t, r in zip(factors, tops, manifold.ranks)]
    sizes = [h.numel()] + [b.numel() for b in bs]

    def psi(c):
        parts = torch.split(c, sizes)
        hh = parts[0].reshape(manifold.ranks)
        bases = [torch.cat([torch.eye(r, dtype=c.dtype), p.reshape(n - r, r)]) for p, n, r in
                 zip(parts[1:], manifold.shape, manifold.ranks)]
        x_dense = multi_mode_product(hh, bases)
        projectors = [torch.eye(v.shape[0], dtype=c.dtype) - v @ torch.linalg.solve(v.T @ v, v.T) for v in bases]
        return torch.cat([x_dense.reshape(-1)] + [p.reshape(-1) for p in projectors])

    c0 = torch.cat([h.reshape(-1)] + [b.reshape(-1) for b in bs])
    weights = torch.cat([torch.ones(math.prod(manifold.shape), dtype=torch.float64)]
                        + [torch.full((n * n,), manifold.omega, dtype=torch.float64) for n in manifold.shape])
    return psi, c0, weights


def _flat(parts):
    return torch.cat([p.reshape(-1) for p in parts])


def _cost_pieces(manifold, generator):
    target = torch.randn(manifold.shape, dtype=torch.float64, generator=generator)
    weights = torch.rand(manifold.shape, dtype=torch.float64, generator=generator) + 0.5
    linear = torch.randn(manifold.shape, dtype=torch.float64, generator=generator)

    def cost(point):
        difference = manifold.full(point) - target
        return 0.5 * (weights * difference**2).sum() + (linear * manifold.full(point)).sum() + 0.25 * (difference**4).sum()

    size = math.prod(manifold.shape)

    def ambient_gradient(e):  # (df/dX, 0) for the cost above, written out (forward-mode differentiable)
        difference = e[:size].reshape(manifold.shape) - target
        grad_x = weights * difference + linear + difference**3
        return torch.cat([grad_x.reshape(-1), torch.zeros_like(e[size:])])

    return cost, ambient_gradient


@pytest.mark.parametrize("case", ["order3", "order4_omega3", "rank_deficient_core"])
def test_gradient_hessian_and_transport_match_the_dense_submanifold(case):
    manifold = CASES[case]()
    generator = torch.Generator().manual_seed(3)
    x = manifold.random(generator=generator)
    cost, ambient_gradient = _cost_pieces(manifold, generator)
    dense = DenseSubmanifold(*_chart(manifold, x))
    u = manifold.proju(x, tuple(torch.randn(t.shape, dtype=torch.float64, generator=generator) for t in x))
    egrad, ehess = autograd_factors(cost, x, u)
    rgrad = manifold.egrad2rgrad(x, egrad)
    expected = dense.gradient(ambient_gradient)
    assert torch.allclose(_flat(manifold.to_ambient(x, rgrad)), expected, atol=1e-10 * max(1.0, float(expected.norm())))
    hessian = manifold.ehess2rhess(x, egrad, ehess, u)
    expected = dense.hessian(ambient_gradient, _flat(manifold.to_ambient(x, u)))
    got = _flat(manifold.to_ambient(x, hessian))
    assert float((got - expected).norm()) < 1e-9 * float(expected.norm()), float((got - expected).norm() / expected.norm())
    # without the curvature terms the Hessian is wrong by O(1)
    plain = _flat(manifold.to_ambient(x, manifold.egrad2rgrad(x, ehess)))
    assert float((plain - expected).norm()) > 1e-3 * float(expected.norm())
    # the transport is the projection at y of the ambient velocity at x
    y = manifold.retr(x, tuple(0.3 * a for a in manifold.proju(x, tuple(torch.randn(t.shape, dtype=torch.float64,
                                                                                       generator=generator) for t in x))))
    moved = manifold.transp(x, y, u)
    dense_y = DenseSubmanifold(*_chart(manifold, y))
    expected = dense_y.projector(dense_y.c0) @ _flat(manifold.to_ambient(x, u))
    assert torch.allclose(_flat(manifold.to_ambient(y, moved)), expected, atol=1e-10 * float(expected.norm()))


@pytest.mark.parametrize("shape, ranks, match", [
    ((4, 5), (2, 2), "order d >= 3"),
    ((4, 5, 6), (2, 2), "one entry per mode"),
    ((4, 5, 6), (5, 2, 2), r"ranks\[0\] = 5 exceeds"),
    ((2, 2, 9), (1, 1, 5), r"ranks\[2\] = 5 exceeds the mode-2 unfolding's dimensions 9 x 4"),
    ((4, 5, 6), (0, 2, 2), "positive ints"),
])
def test_invalid_shapes_and_ranks_give_one_line_errors(shape, ranks, match):
    with pytest.raises(ValueError, match=match) as error:
        TuckerDesingularization(shape, ranks)
    assert "\n" not in str(error.value)


def test_omega_must_be_positive():
    with pytest.raises(ValueError, match="omega"):
        TuckerDesingularization((4, 5, 6), (2, 2, 2), omega=0.0)
    with pytest.raises(ValueError, match="omega"):
        TuckerDesingularization((4, 5, 6), (2, 2, 2), omega=float("nan"))
