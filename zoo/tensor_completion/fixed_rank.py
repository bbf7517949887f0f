r"""Fixed-rank Riemannian references: Tucker as in geomCG (Kressner, Steinlechner, Vandereycken, BIT 54:447-468,
2014) and TT as in RTTC (Steinlechner, SIAM J. Sci. Comput. 38, 2016), written anew for the benchmark.

Both are the embedded geometry of the manifold of tensors of *fixed* rank r: the metric is the Frobenius norm of
the tensor velocity only. That is the desingularised geometry with omega = 0 (the slack projectors weigh
nothing), so the gradient, Hessian and transport formulas are those of
:class:`~zoo.manifolds.TuckerDesingularization` / :class:`~zoo.manifolds.TTDesingularization` with
:math:`W_k = G_{(k)} G_{(k)}^T` (the Gram matrices of the unfoldings): they blow up when the rank is
over-estimated, which is the failure mode the desingularisation removes. The retractions are the ones of those
papers: truncation of :math:`X + \xi` (a rank-2r representation) back to rank r, by HOSVD (Tucker) or TT-SVD
rounding (TT).
"""

from __future__ import annotations

import math

import torch

from zoo.manifolds import TTDesingularization, TuckerDesingularization
from zoo.manifolds._tensor_algebra import multi_mode_product, orthonormal_qr

__all__ = ["FixedRankTT", "FixedRankTucker"]


class FixedRankTucker(TuckerDesingularization):
    """Tensors of fixed multilinear rank, embedded metric, HOSVD-truncation retraction (geomCG's geometry)."""

    name = "FixedRankTucker"
    second_order_retraction = False
    _allow_zero_omega = True

    def __init__(self, shape, ranks) -> None:
        super().__init__(shape, ranks, omega=0.0)

    @property
    def dimension(self) -> int:
        return math.prod(self.ranks) + sum(r * (n - r) for n, r in zip(self.shape, self.ranks))

    def retr(self, x, u):
        core, factors = x[0], x[1:]
        d = self.order
        # X + xi = S x_k [U_k, dU_k] with the 2r block core S: (G + dG) at block 0, G at the block e_k
        block = torch.zeros([2 * r for r in self.ranks], dtype=core.dtype, device=core.device)
        block[tuple(slice(0, r) for r in self.ranks)] = core + u[0]
        for k in range(d):
            index = tuple(slice(r, 2 * r) if j == k else slice(0, r) for j, r in enumerate(self.ranks))
            block[index] = core
        bases, triangles = [], []
        for f, df in zip(factors, u[1:]):
            q, r = orthonormal_qr(torch.cat([f, df], dim=1))
            bases.append(q)
            triangles.append(r)
        small = multi_mode_product(block, triangles)
        # HOSVD truncation of the small core: leading left singular vectors of each unfolding
        tops = []
        for k, r in enumerate(self.ranks):
            left = torch.linalg.svd(torch.movedim(small, k, 0).reshape(small.shape[k], -1), full_matrices=False)[0]
            tops.append(left[:, :r])
        new_core = multi_mode_product(small, [t.T for t in tops])
        return (new_core, *(b @ t for b, t in zip(bases, tops)))


class FixedRankTT(TTDesingularization):
    """Tensors of fixed TT rank, embedded metric, TT-SVD rounding retraction (RTTC's geometry)."""

    name = "FixedRankTT"
    second_order_retraction = False
    _allow_zero_omega = True

    def __init__(self, shape, ranks) -> None:
        super().__init__(shape, ranks, omega=0.0)

    def retr(self, x, u):
        d = self.order
        # X + xi as a rank-2r train: [C_1, dC_1], [[C_k, dC_k], [0, C_k]], [[C_d + dC_d], [C_d]]
        cores = []
        for k in range(d):
            c, dc = x[k], u[k]
            if k == 0:
                cores.append(torch.cat([c, dc], dim=2))
            elif k == d - 1:
                cores.append(torch.cat([c + dc, c], dim=0))
            else:
                top = torch.cat([c, dc], dim=2)
                bottom = torch.cat([torch.zeros_like(c), c], dim=2)
                cores.append(torch.cat([top, bottom], dim=0))
        # right-to-left orthogonalisation, then left-to-right truncated SVDs (TT rounding, Oseledets 2011)
        for k in range(d - 1, 0, -1):
            c = cores[k]
            q, r = torch.linalg.qr(c.reshape(c.shape[0], -1).T)
            cores[k] = q.T.reshape(-1, c.shape[1], c.shape[2])
            cores[k - 1] = torch.einsum("asb,cb->asc", cores[k - 1], r)
        for k in range(d - 1):
            c = cores[k]
            u_, s, vh = torch.linalg.svd(c.reshape(-1, c.shape[2]), full_matrices=False)
            rank = self.ranks[k]
            cores[k] = u_[:, :rank].reshape(c.shape[0], c.shape[1], rank)
            cores[k + 1] = torch.einsum("ab,bsc->asc", s[:rank, None] * vh[:rank], cores[k + 1])
        return self.orthogonalize(cores)
