r"""Von Neumann entropy in bits with an exact :math:`0\log 0 = 0` and a gradient that is finite on rank-deficient states.

:math:`H(\rho) = -\sum_j \lambda_j \log_2 \lambda_j` over the eigenvalues of the Hermitian ``rho`` (negative
round-off clipped to 0). Its gradient is :math:`\nabla H = -V\,\mathrm{diag}(\log_2\lambda_j + 1/\ln 2)\,V^H`
(Hermitian, so it is also PyTorch's complex ``.grad`` convention). On the kernel the derivative is
:math:`+\infty`; we floor :math:`\lambda` at :math:`10^{-300}` there. In the Holevo gradient that term is multiplied
by the overlap of the state with the kernel, which is 0 at the points where it occurs, so the floor gives the
exact limit instead of ``nan`` (our choice; the official code instead mixes in a 1e-9 depolarising channel,
which biases the capacity by up to ~1e-8 bits). The backward does not use eigenvector derivatives, so it is
well defined at repeated eigenvalues (``torch.linalg.eigh``'s backward is not). Differentiable once.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

__all__ = ["von_neumann_entropy"]

_FLOOR = 1e-300


class _Entropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rho):
        values, vectors = torch.linalg.eigh(rho)
        values = values.clamp_min(0)
        safe = torch.where(values > 0, values, torch.ones_like(values))
        entropy = -(values * torch.log2(safe)).sum(-1)
        ctx.save_for_backward(values, vectors)
        return entropy

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        values, vectors = ctx.saved_tensors
        derivative = -(torch.log2(values.clamp_min(_FLOOR)) + 1 / math.log(2))
        gradient = (vectors * derivative.unsqueeze(-2).to(vectors.dtype)) @ vectors.mH
        return gradient * grad_output[..., None, None].to(gradient.dtype)


def von_neumann_entropy(rho: torch.Tensor) -> torch.Tensor:
    """:math:`H(\\rho)` in bits for Hermitian ``rho`` of shape ``[..., d, d]`` (a batch gives a batch)."""
    if rho.dim() < 2 or rho.shape[-1] != rho.shape[-2]:
        raise ValueError(f"rho must have shape [..., d, d], got {tuple(rho.shape)}")
    return _Entropy.apply(rho)
