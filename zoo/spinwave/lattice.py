"""Triangular-lattice conventions shared by the spin-wave code.

Bravais vectors ``a1 = (1, 0)``, ``a2 = (1/2, sqrt(3)/2)`` (60-degree basis, lattice constant 1; the issue's
convention). A wavevector ``q = (h, k)`` in reciprocal lattice units means ``q = h b1 + k b2`` with
``a_i . b_j = 2 pi delta_ij``, i.e. ``b1 = 2 pi (1, -1/sqrt 3)``, ``b2 = 2 pi (0, 2/sqrt 3)``. In this basis
Gamma = (0, 0), M = (1/2, 0), K = (2/3, 1/3) (and (1/3, 1/3) is *not* K: gamma = 0 there).

    gamma(q) = [cos(q . a1) + cos(q . a2) + cos(q . (a2 - a1))] / 3 = [cos 2 pi h + cos 2 pi k + cos 2 pi (k - h)] / 3

gamma(Gamma) = 1, gamma(K) = -1/2, gamma(M) = -1/3 (docs/methods/spinwave.md).
"""

from __future__ import annotations

import math

import torch

__all__ = ["A1", "A2", "GAMMA", "K_POINT", "M_POINT", "bond_vectors", "check_q", "gamma", "high_symmetry_path", "to_cartesian"]

A1 = (1.0, 0.0)
A2 = (0.5, math.sqrt(3.0) / 2.0)
GAMMA, M_POINT, K_POINT = (0.0, 0.0), (0.5, 0.0), (2.0 / 3.0, 1.0 / 3.0)


def check_q(q, name: str = "q") -> torch.Tensor:
    """``q`` as a float64 ``[N, 2]`` tensor; ``ValueError`` naming the shape otherwise."""
    q = torch.as_tensor(q, dtype=torch.float64) if not torch.is_tensor(q) or not q.is_floating_point() else q.to(torch.float64)
    if q.ndim != 2 or q.shape[-1] != 2:
        raise ValueError(f"{name} must have shape [N, 2] (h, k in reciprocal lattice units), got {tuple(q.shape)}")
    if q.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(q.shape)})")
    if not bool(torch.isfinite(q).all()):
        raise ValueError(f"{name} must be finite")
    return q


def to_cartesian(q: torch.Tensor) -> torch.Tensor:
    """``[N, 2]`` r.l.u. -> Cartesian wavevectors (inverse lattice-constant units), ``q = h b1 + k b2``."""
    b1 = torch.tensor([1.0, -1.0 / math.sqrt(3.0)], dtype=q.dtype) * 2 * math.pi
    b2 = torch.tensor([0.0, 2.0 / math.sqrt(3.0)], dtype=q.dtype) * 2 * math.pi
    return q[..., :1] * b1 + q[..., 1:] * b2


def bond_vectors(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The three nearest-neighbour bonds counted once, ``a1, a2, a2 - a1``, Cartesian, ``[3, 2]``."""
    a1, a2 = torch.tensor(A1, dtype=dtype), torch.tensor(A2, dtype=dtype)
    return torch.stack([a1, a2, a2 - a1])


def gamma(q: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour structure factor ``gamma(q)``, computed from Cartesian ``q``, ``[N]``."""
    k = to_cartesian(q)
    return torch.cos(k @ bond_vectors(q.dtype).T).mean(-1)


def high_symmetry_path(points_per_segment: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Gamma-K-M-Gamma in r.l.u. ``[N, 2]`` and the cumulative Cartesian path length ``[N]`` for plots."""
    if points_per_segment < 2:
        raise ValueError(f"points_per_segment must be >= 2, got {points_per_segment}")
    corners = torch.tensor([GAMMA, K_POINT, M_POINT, GAMMA], dtype=torch.float64)
    pieces = []
    for i in range(3):
        t = torch.linspace(0, 1, points_per_segment + 1, dtype=torch.float64)[:-1, None]
        pieces.append(corners[i] + t * (corners[i + 1] - corners[i]))
    pieces.append(corners[-1:])
    q = torch.cat(pieces)
    steps = to_cartesian(q).diff(dim=0).norm(dim=-1)
    return q, torch.cat([torch.zeros(1, dtype=q.dtype), steps.cumsum(0)])
