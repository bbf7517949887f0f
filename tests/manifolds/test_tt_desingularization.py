"""The desingularised tensor-train manifold: the structured-manifold contract (orders 3 to 5, several omegas,
over-estimated ranks with a rank-deficient interface), and its gradient, Hessian and transport against an
independent dense implementation of the submanifold geometry (tests/manifolds/dense_ambient.py)."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.manifolds import TTDesingularization
from zoo.manifolds.tt_desingularization import tt_full

from tests.manifolds.dense_ambient import DenseSubmanifold
from tests.manifolds.structured_contract import StructuredContract, autograd_factors


class RankDeficientTT(TTDesingularization):
    """Random points whose interface 2 has rank 1 < r_2 (the last core has rank one)."""

    def random(self, *, generator=None, dtype=torch.float64, device=None):
        cores = list(super().random(generator=generator, dtype=dtype, device=device))
        last = cores[-1]
        a = torch.randn(last.shape[0], 1, dtype=dtype, generator=generator)
        b = torch.randn(1, last.shape[1], dtype=dtype, generator=generator)
        cores[-1] = (a @ b).reshape(last.shape)
        return tuple(cores)


CASES = {
    "order3": lambda: TTDesingularization((3, 4, 5), (2, 3)),
    "order4_omega0.3": lambda: TTDesingularization((3, 2, 4, 3), (2, 3, 2), omega=0.3),
    "order5": lambda: TTDesingularization((2, 3, 2, 3, 2), (2, 3, 3, 2)),
    "rank_deficient": lambda: RankDeficientTT((3, 3, 4), (3, 3), omega=2.0),
}


class TestTTContract(StructuredContract):
    @pytest.fixture(params=sorted(CASES))
    def manifold(self, request):
        return CASES[request.param]()


def _chart(manifold, x):
    """A gauge-free chart: L(C_k) = [I; B_k] for k < d, the last core free; P_k from the (non-orthonormal) bases."""
    carry, bs = torch.ones(1, 1, dtype=torch.float64), []
    for core, r in zip(x[:-1], manifold.ranks):
        core = torch.einsum("ab,bsc->asc", carry, core)
        left = core.reshape(-1, r)
        carry = left[:r]
        bs.append(left[r:] @ torch.linalg.inv(carry))
    last = torch.einsum("ab,bsc->asc", carry, x[-1])
    sizes = [b.numel() for b in bs] + [last.numel()]

    def psi(c):
        parts = torch.split(c, sizes)
        cores = []
        for k, (p, b) in enumerate(zip(parts[:-1], bs)):
            left = torch.cat([torch.eye(b.shape[1], dtype=c.dtype), p.reshape(b.shape)])
            cores.append(left.reshape(manifold.bond[k], manifold.shape[k], manifold.bond[k + 1]))
        cores.append(parts[-1].reshape(last.shape))
        pieces, basis = [tt_full(cores).reshape(-1)], torch.ones(1, 1, dtype=c.dtype)
        for core in cores[:-1]:
            basis = torch.einsum("Na,asb->Nsb", basis, core).reshape(-1, core.shape[-1])
            projector = torch.eye(basis.shape[0], dtype=c.dtype) - basis @ torch.linalg.solve(basis.T @ basis, basis.T)
            pieces.append(projector.reshape(-1))
        return torch.cat(pieces)

    c0 = torch.cat([b.reshape(-1) for b in bs] + [last.reshape(-1)])
    interface = [math.prod(manifold.shape[: k + 1]) for k in range(manifold.order - 1)]
    weights = torch.cat([torch.ones(math.prod(manifold.shape), dtype=torch.float64)]
                        + [torch.full((n * n,), manifold.omega, dtype=torch.float64) for n in interface])
    return psi, c0, weights


def _flat(parts):
    return torch.cat([p.reshape(-1) for p in parts])


@pytest.mark.parametrize("case", ["order3", "order4_omega0.3", "rank_deficient"])
def test_gradient_hessian_and_transport_match_the_dense_submanifold(case):
    manifold = CASES[case]()
    generator = torch.Generator().manual_seed(5)
    x = manifold.random(generator=generator)
    target = torch.randn(manifold.shape, dtype=torch.float64, generator=generator)
    weights = torch.rand(manifold.shape, dtype=torch.float64, generator=generator) + 0.5
    linear = torch.randn(manifold.shape, dtype=torch.float64, generator=generator)
    size = math.prod(manifold.shape)

    def cost(point):
        difference = tt_full(point) - target
        return 0.5 * (weights * difference**2).sum() + (linear * tt_full(point)).sum() + 0.25 * (difference**4).sum()

    def ambient_gradient(e):
        difference = e[:size].reshape(manifold.shape) - target
        return torch.cat([(weights * difference + linear + difference**3).reshape(-1), torch.zeros_like(e[size:])])

    psi, c0, metric = _chart(manifold, x)
    assert torch.allclose(psi(c0), _flat(manifold.represent(x)), atol=1e-12)
    dense = DenseSubmanifold(psi, c0, metric)
    u = manifold.proju(x, tuple(torch.randn(t.shape, dtype=torch.float64, generator=generator) for t in x))
    egrad, ehess = autograd_factors(cost, x, u)
    expected = dense.gradient(ambient_gradient)
    got = _flat(manifold.to_ambient(x, manifold.egrad2rgrad(x, egrad)))
    assert float((got - expected).norm()) < 1e-10 * float(expected.norm())
    expected = dense.hessian(ambient_gradient, _flat(manifold.to_ambient(x, u)))
    got = _flat(manifold.to_ambient(x, manifold.ehess2rhess(x, egrad, ehess, u)))
    assert float((got - expected).norm()) < 1e-9 * float(expected.norm()), float((got - expected).norm() / expected.norm())
    plain = _flat(manifold.to_ambient(x, manifold.egrad2rgrad(x, ehess)))
    assert float((plain - expected).norm()) > 1e-3 * float(expected.norm())
    step = manifold.proju(x, tuple(torch.randn(t.shape, dtype=torch.float64, generator=generator) for t in x))
    y = manifold.retr(x, tuple(0.3 * a for a in step))
    psi_y, c_y, _ = _chart(manifold, y)
    expected = DenseSubmanifold(psi_y, c_y, metric).projector(c_y) @ _flat(manifold.to_ambient(x, u))
    got = _flat(manifold.to_ambient(y, manifold.transp(x, y, u)))
    assert float((got - expected).norm()) < 1e-10 * float(expected.norm())


def test_retraction_reaches_rank_deficient_points_and_keeps_the_represented_tensor():
    manifold = CASES["rank_deficient"]()
    x = manifold.random(generator=torch.Generator().manual_seed(1))
    again = manifold.orthogonalize([2.0 * c if k == 0 else c for k, c in enumerate(x)])
    assert manifold.feasibility(again) < 1e-12
    assert torch.allclose(tt_full(again), 2.0 * tt_full(x), atol=1e-12)


@pytest.mark.parametrize("shape, ranks, match", [
    ((4, 5), (2,), "order d >= 3"),
    ((4, 5, 6), (2,), "interface ranks"),
    ((2, 3, 4, 5), (2, 7, 3), r"r_2 = 7 violates r_k <= r_\(k-1\) n_k = 2 \* 3"),
    ((3, 3, 2), (3, 3), r"r_2 = 3 exceeds the interface unfolding's dimensions 9 x 2"),
    ((4, 5, 6), (0, 2), "positive ints"),
])
def test_invalid_shapes_and_ranks_give_one_line_errors(shape, ranks, match):
    with pytest.raises(ValueError, match=match) as error:
        TTDesingularization(shape, ranks)
    assert "\n" not in str(error.value)
