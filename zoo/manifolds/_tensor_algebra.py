"""Small dense multilinear-algebra helpers shared by the Tucker and tensor-train manifolds (torch, any dtype).

``unfold(T, k)`` is the mode-k unfolding ``T_(k)`` (shape ``[n_k, prod of the other sizes]``, the other modes in
their natural order), ``mode_product(T, M, k)`` is ``T x_k M`` (``(T x_k M)_(k) = M T_(k)``), ``orthonormal_qr``
a thin QR whose R has a non-negative diagonal (so that the factor varies continuously with its argument), and
``spd_solve_right(B, W)`` is ``B W^{-1}`` for a symmetric positive definite ``W``.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["mode_product", "multi_mode_product", "orthonormal_qr", "spd_solve_right", "unfold"]


def unfold(tensor: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` unfolding ``[n_mode, prod(other sizes)]``."""
    return torch.movedim(tensor, mode, 0).reshape(tensor.shape[mode], -1)


def mode_product(tensor: torch.Tensor, matrix: torch.Tensor, mode: int) -> torch.Tensor:
    """``tensor x_mode matrix``: contracts the ``mode`` index of ``tensor`` with the columns of ``matrix``."""
    return torch.movedim(torch.tensordot(matrix, tensor, dims=([1], [mode])), 0, mode)


def multi_mode_product(tensor: torch.Tensor, matrices: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """``tensor x_1 M_1 x_2 M_2 ...``, skipping modes whose matrix is None."""
    for mode, matrix in enumerate(matrices):
        if matrix is not None:
            tensor = mode_product(tensor, matrix, mode)
    return tensor


def orthonormal_qr(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Thin QR ``matrix = Q R`` with ``diag(R) >= 0`` (the Q-factor map ``qf``, continuous in its argument)."""
    q, r = torch.linalg.qr(matrix)
    signs = torch.sign(torch.diagonal(r))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return q * signs, r * signs[:, None]


def spd_solve_right(rhs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``rhs @ weight^{-1}`` for a symmetric positive definite ``weight`` (Cholesky)."""
    factor = torch.linalg.cholesky(weight)
    return torch.cholesky_solve(rhs.transpose(-1, -2), factor).transpose(-1, -2)
