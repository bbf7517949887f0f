"""Points made of several tensors (``StructuredManifold``) and the adapter that lets single-tensor manifolds join.

A structured point is a tuple of tensors, e.g. ``(U, S, V)`` of a factorisation or ``(core, U_1, ..., U_d)`` of a
Tucker tensor; each factor is a plain ``nn.Parameter`` and one param group names the manifold::

    optimizer = RiemannianTrustRegion([{"params": [U, S, V], "manifold": FixedRankEmbedded(...)}])

Tangent vectors are tuples of the same shapes. Every method works on tuples; ``inner`` returns a 0-dim tensor.
geoopt optimizers cannot drive these; the ones in :mod:`zoo.optim` can (they drive everything through this
interface, wrapping single-tensor geoopt manifolds in :class:`SingleTensor`). Our design, not from a paper.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["SingleTensor", "StructuredManifold", "as_structured"]

Tensors = tuple[torch.Tensor, ...]


class StructuredManifold:
    """Protocol of a manifold whose points are tuples of tensors (override every method)."""

    name = "StructuredManifold"

    def inner(self, x: Tensors, u: Tensors, v: Tensors) -> torch.Tensor:
        raise NotImplementedError

    def proju(self, x: Tensors, u: Tensors) -> Tensors:
        raise NotImplementedError

    def egrad2rgrad(self, x: Tensors, egrad: Tensors) -> Tensors:
        raise NotImplementedError

    def retr(self, x: Tensors, u: Tensors) -> Tensors:
        raise NotImplementedError

    def transp(self, x: Tensors, y: Tensors, v: Tensors) -> Tensors:
        return self.proju(y, v)

    def ehess2rhess(self, x: Tensors, egrad: Tensors, ehess: Tensors, u: Tensors) -> Tensors:
        raise NotImplementedError

    # -- optional members: random points and the checks of the contract tests (tests/manifolds) -----------------
    second_order_retraction = False  # True when retr(x, t u) has zero tangential acceleration at t = 0
    dimension: int | None = None  # the manifold's dimension, if known (the trust region's default max radius is sqrt of it)

    def random(self, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None) -> Tensors:
        """A random point (for tests, initialisation and benchmarks)."""
        raise NotImplementedError

    def feasibility(self, x: Tensors) -> float:
        """The largest violation of the constraints that define a point (0 for an exact point)."""
        raise NotImplementedError

    def tangent_residual(self, x: Tensors, u: Tensors) -> float:
        """The largest violation of the equations that define a tangent vector at ``x`` (0 if tangent)."""
        raise NotImplementedError

    def represent(self, x: Tensors) -> Tensors:
        """The point in the ambient space E where the manifold is embedded, as dense tensors (small sizes only).

        The first tensor is the object the user optimises (e.g. the matrix X = H V^T); the rest are slack
        variables, if any (e.g. the projector G). Differentiable in the factors of ``x``.
        """
        raise NotImplementedError

    def to_ambient(self, x: Tensors, u: Tensors) -> Tensors:
        """The tangent vector ``u`` as the velocity of ``represent`` (a tuple shaped like ``represent(x)``)."""
        raise NotImplementedError

    def ambient_inner(self, a: Tensors, b: Tensors) -> torch.Tensor:
        """The metric of E (for a Riemannian submanifold: ``inner(x, u, v) = ambient_inner(to_ambient(x, u), to_ambient(x, v))``)."""
        raise NotImplementedError

    def random_normal(self, x: Tensors, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """A Euclidean gradient G, shaped like ``represent(x)[0]``, of the cost X -> <G, X> that has ``x`` as a
        critical point (its Riemannian gradient is 0) while G itself is not small; used by the Hessian check."""
        raise NotImplementedError


def _real_inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.conj() * b).real.sum() if a.is_complex() else (a * b).sum()


class SingleTensor(StructuredManifold):
    """A geoopt manifold (or ``None`` = Euclidean) seen as a one-factor structured manifold."""

    def __init__(self, manifold) -> None:
        self.manifold = manifold
        self.name = getattr(manifold, "name", "Euclidean")

    def _euclidean(self) -> bool:
        return self.manifold is None or type(self.manifold).__name__ == "Euclidean"

    def inner(self, x, u, v):
        if self._euclidean():
            return _real_inner(u[0], v[0])
        return self.manifold.inner(x[0], u[0], v[0]).sum()

    def proju(self, x, u):
        return (u[0],) if self._euclidean() else (self.manifold.proju(x[0], u[0]),)

    def egrad2rgrad(self, x, egrad):
        return (egrad[0],) if self._euclidean() else (self.manifold.egrad2rgrad(x[0], egrad[0]),)

    def retr(self, x, u):
        return (x[0] + u[0],) if self._euclidean() else (self.manifold.retr(x[0], u[0]),)

    def transp(self, x, y, v):
        if self._euclidean():
            return (v[0],)
        return (self.manifold.transp(x[0], y[0], v[0]),)

    def ehess2rhess(self, x, egrad, ehess, u):
        if self._euclidean():
            return (ehess[0],)
        method = getattr(self.manifold, "ehess2rhess", None)
        if method is None:
            raise NotImplementedError(f"{type(self.manifold).__name__} has no ehess2rhess; second-order optimizers need one")
        return (method(x[0], egrad[0], ehess[0], u[0]),)


def as_structured(manifold, count: int = 1) -> StructuredManifold:
    """``manifold`` as a :class:`StructuredManifold` (single-tensor manifolds are wrapped)."""
    if isinstance(manifold, StructuredManifold):
        return manifold
    if count != 1:
        raise ValueError(f"a single-tensor manifold {type(manifold).__name__} cannot hold a group of {count} tensors")
    return SingleTensor(manifold)


def split(values: Sequence[torch.Tensor], sizes: Sequence[int]) -> list[tuple[torch.Tensor, ...]]:
    out, start = [], 0
    for size in sizes:
        out.append(tuple(values[start:start + size]))
        start += size
    return out
