r"""Unit vectors in :math:`\mathbb{C}^d` with the real inner product :math:`\mathrm{Re}\langle u, v\rangle`.

As a real manifold this is the sphere :math:`S^{2d-1}` (``view_as_real``); the difference from geoopt's
``Sphere`` is the conjugation: geoopt computes :math:`\sum u v` without conjugating, which is not an inner
product on complex data. Here

.. math::
    \langle u, v\rangle_x = \mathrm{Re}(u^H v), \quad P_x(u) = u - \mathrm{Re}(x^H u)\, x, \quad
    R_x(u) = (x + u)/\lVert x + u\rVert, \quad \mathrm{Hess} f[u] = P_x(\mathrm{ehess}[u]) - \mathrm{Re}(x^H g)\, u.

PyTorch stores :math:`\partial/\partial \mathrm{Re} + i\,\partial/\partial \mathrm{Im}` in the ``.grad`` of a
complex leaf, which is exactly the real-view Euclidean gradient (:math:`\mathrm{D}f[u] = \mathrm{Re}(g^H u)`), so
``egrad2rgrad`` consumes ``.grad`` unchanged.

``real_view=True`` takes points as real tensors ``(..., d, 2)`` (real and imaginary parts, as
``torch.view_as_real`` gives them): safetensors cannot store complex128, so modules that are saved to the hub
use this form. The normalisation retraction is second order.
"""

from __future__ import annotations

import geoopt
import torch

from zoo.manifolds.base import ZooManifold

__all__ = ["ComplexSphere"]


class ComplexSphere(ZooManifold):
    """Unit vectors :math:`\\{\\psi \\in \\mathbb{C}^d : \\psi^H \\psi = 1\\}` with metric :math:`\\mathrm{Re}(u^H v)`.

    Args:
        real_view: points are real ``(..., d, 2)`` tensors instead of complex ``(..., d)`` ones.
    """

    name = "ComplexSphere"

    def __init__(self, real_view: bool = False) -> None:
        super().__init__()
        self.real_view = bool(real_view)
        self.ndim = 2 if self.real_view else 1

    def extra_repr(self) -> str:
        return f"real_view={self.real_view}"

    def _re_dot(self, u: torch.Tensor, v: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
        if u.is_complex():
            return (u.conj() * v).real.sum(-1, keepdim=keepdim)
        if self.real_view:
            out = (u * v).sum((-2, -1), keepdim=keepdim)
            return out
        return (u * v).sum(-1, keepdim=keepdim)

    def _check_shape(self, shape, name):
        if len(shape) < self.ndim:
            return False, f"{name} needs at least {self.ndim} dims, got shape {tuple(shape)}"
        if self.real_view and shape[-1] != 2:
            return False, f"ComplexSphere(real_view=True) needs {name} of shape (..., d, 2), got {tuple(shape)}"
        return True, None

    def _kind_error(self, x: torch.Tensor):
        if self.real_view and x.is_complex():
            return f"ComplexSphere(real_view=True) needs real (..., d, 2) tensors, got {x.dtype}"
        return None

    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        error = self._kind_error(x)
        if error is not None:
            return False, error
        norm2 = self._re_dot(x, x, keepdim=False)
        if not torch.allclose(norm2, torch.ones_like(norm2), atol=atol, rtol=rtol):
            return False, f"|x|^2 - 1 = {(norm2 - 1).abs().max().item():.3g}"
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=1e-5):
        error = self._kind_error(x) or self._kind_error(u)
        if error is not None:
            return False, error
        if x.shape != u.shape:
            return False, f"u must have the shape of x {tuple(x.shape)}, got {tuple(u.shape)}"
        dot = self._re_dot(x, u, keepdim=False)
        if not torch.allclose(dot, torch.zeros_like(dot), atol=atol, rtol=rtol):
            return False, f"Re<x, u> = {dot.abs().max().item():.3g}"
        return True, None

    def inner(self, x, u, v=None, *, keepdim=False):
        v = u if v is None else v
        return self._re_dot(u, v, keepdim=keepdim)

    def proju(self, x, u):
        return u - self._re_dot(x, u) * x

    def egrad2rgrad(self, x, u):
        return self.proju(x, u)

    def projx(self, x):
        return x / self._re_dot(x, x).sqrt()

    def retr(self, x, u):
        return self.projx(x + u)

    def ehess2rhess(self, x, egrad, ehess, u):
        return self.proju(x, ehess) - self._re_dot(x, egrad) * u

    def random(self, *size, dtype=None, device=None, generator=None, **kwargs):
        """A Haar-random unit vector (normalised complex Gaussian), a ``ManifoldTensor`` in torch's default dtype
        (real view) or its complex counterpart unless ``dtype`` is given."""
        if self.real_view:
            if not size or size[-1] != 2:
                raise ValueError(f"ComplexSphere(real_view=True).random needs size (..., d, 2), got {size}")
            sample = torch.randn(*size, dtype=dtype or torch.get_default_dtype(), device=device, generator=generator)
        else:
            dtype = dtype or torch.get_default_dtype().to_complex()
            if not dtype.is_complex:
                raise ValueError(f"ComplexSphere points are complex; got dtype {dtype} (use real_view=True for real views)")
            sample = torch.randn(*size, dtype=dtype, device=device, generator=generator)
        return geoopt.ManifoldTensor(self.projx(sample), manifold=self)

    def origin(self, *size, dtype=None, device=None, **kwargs):
        """The first basis vector :math:`e_1` (size ``(..., d)``, or ``(..., d, 2)`` in real view)."""
        if self.real_view:
            base = torch.zeros(*size, dtype=dtype or torch.get_default_dtype(), device=device)
            base[..., 0, 0] = 1
        else:
            base = torch.zeros(*size, dtype=dtype or torch.get_default_dtype().to_complex(), device=device)
            base[..., 0] = 1
        return geoopt.ManifoldTensor(base, manifold=self)
