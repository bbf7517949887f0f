r"""Von Neumann entropy in bits with an exact :math:`0\log 0 = 0` and a gradient that is finite on rank-deficient states.

:math:`H(\rho) = -\sum_j \lambda_j \log_2 \lambda_j` over the eigenvalues of the Hermitian ``rho`` (negative
round-off clipped to 0). Its gradient is :math:`\nabla H = -V\,\mathrm{diag}(\log_2\lambda_j + 1/\ln 2)\,V^H`
(Hermitian, so it is also PyTorch's complex ``.grad`` convention). On the kernel the derivative is
:math:`+\infty`; we floor :math:`\lambda` at :math:`10^{-300}` there. In the Holevo gradient that term is multiplied
by the overlap of the state with the kernel, which is 0 at the points where it occurs, so the floor gives the
exact limit instead of ``nan`` (our choice; the official code instead mixes in a 1e-9 depolarising channel,
which biases the capacity by up to ~1e-8 bits). The backward does not use eigenvector derivatives, so it is
well defined at repeated eigenvalues (``torch.linalg.eigh``'s backward is not). Twice differentiable: the
gradient's derivative uses the Daleckii-Krein divided differences (see ``_EntropyGradient``), so autograd gives
exact Hessian-vector products wherever the entropy is twice differentiable (no kernel eigenvalue). Eigenvalues at
or below round-off (``d * eps * max``) count as kernel in both derivatives.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

__all__ = ["von_neumann_entropy"]

_FLOOR = 1e-300


def _kernel(values: torch.Tensor) -> torch.Tensor:
    """Eigenvalues at or below round-off (``d * eps * max``): the numerical kernel."""
    threshold = values.shape[-1] * torch.finfo(values.dtype).eps * values.abs().amax(-1, keepdim=True).clamp_min(_FLOOR)
    return values <= threshold


def _derivative(values: torch.Tensor) -> torch.Tensor:
    """:math:`f(\\lambda) = -(\\log_2\\lambda + 1/\\ln 2)`, the entropy's derivative, with the kernel floored at 1e-300."""
    floored = torch.where(_kernel(values), torch.full_like(values, _FLOOR), values)
    return -(torch.log2(floored) + 1 / math.log(2))


class _Entropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rho):
        values, vectors = torch.linalg.eigh(rho)
        values = values.clamp_min(0)
        safe = torch.where(values > 0, values, torch.ones_like(values))
        entropy = -(values * torch.log2(safe)).sum(-1)
        ctx.save_for_backward(rho, values, vectors)
        return entropy

    @staticmethod
    def backward(ctx, grad_output):
        rho, values, vectors = ctx.saved_tensors
        gradient = _EntropyGradient.apply(rho, values, vectors)  # differentiable in rho: Hessian-vector products
        return gradient * grad_output[..., None, None].to(gradient.dtype)


class _EntropyGradient(torch.autograd.Function):
    r""":math:`\nabla H(\rho) = V\,\mathrm{diag}(f(\lambda))\,V^H` with its derivative by the Daleckii-Krein formula:
    :math:`\mathrm{D}\nabla H[E] = V (F \circ V^H E V) V^H`, :math:`F_{ij} = (f_i - f_j)/(\lambda_i - \lambda_j)`
    (:math:`f'(\lambda_i) = -1/(\lambda_i\ln 2)` for coincident eigenvalues). The map is self-adjoint, so the same
    formula is the backward. On the kernel x kernel block :math:`F` is set to 0: the true second derivative of
    :math:`-\lambda\log\lambda` is infinite at 0, and that block of the first-order change of an output
    :math:`\mathcal{N}(\psi\psi^H)` vanishes (our choice; it also keeps round-off out of the product). Across the
    kernel boundary the floored f gives large but finite curvature (about :math:`997/\lambda_i` bits)."""

    @staticmethod
    def forward(ctx, rho, values, vectors):
        ctx.save_for_backward(values, vectors)
        return (vectors * _derivative(values).unsqueeze(-2).to(vectors.dtype)) @ vectors.mH

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_gradient):
        values, vectors = ctx.saved_tensors
        f = _derivative(values)
        kernel = _kernel(values)
        li, lj = values.unsqueeze(-1), values.unsqueeze(-2)
        gap = li - lj
        scale = torch.maximum(li.abs(), lj.abs())
        close = gap.abs() <= 1e-8 * scale
        mean = torch.where(kernel.unsqueeze(-1) | kernel.unsqueeze(-2), torch.ones_like(li), 0.5 * (li + lj))
        divided = torch.where(close, -1 / (mean * math.log(2)), (f.unsqueeze(-1) - f.unsqueeze(-2)) / torch.where(close, torch.ones_like(gap), gap))
        divided = torch.where(kernel.unsqueeze(-1) & kernel.unsqueeze(-2), torch.zeros_like(divided), divided)
        rotated = vectors.mH @ grad_gradient @ vectors
        return vectors @ (divided.to(rotated.dtype) * rotated) @ vectors.mH, None, None


def von_neumann_entropy(rho: torch.Tensor) -> torch.Tensor:
    """:math:`H(\\rho)` in bits for Hermitian ``rho`` of shape ``[..., d, d]`` (a batch gives a batch)."""
    if rho.dim() < 2 or rho.shape[-1] != rho.shape[-2]:
        raise ValueError(f"rho must have shape [..., d, d], got {tuple(rho.shape)}")
    return _Entropy.apply(rho)
