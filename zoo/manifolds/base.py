"""Shared base of the zoo's single-tensor manifolds: geoopt's contract plus a Riemannian Hessian.

geoopt 0.5.1 has no second-order API. ``ZooManifold`` adds ``ehess2rhess(x, egrad, ehess, u)`` (Manopt's
argument order: point, Euclidean gradient, Euclidean Hessian applied to ``u``, direction ``u``), aliases
``expmap`` to the retraction (none of our manifolds claims an exponential map) and makes ``transp`` the
projection onto the tangent space at the new point (a vector transport in the sense of Absil, Mahony and
Sepulchre 2008, section 8.1). Our choice, not from a paper. Two instances with the same type and settings
compare equal (so geoopt's ``ManifoldParameter`` accepts a ``ManifoldTensor`` made by another instance).
"""

from __future__ import annotations

import torch
from geoopt.manifolds.base import Manifold

__all__ = ["ZooManifold"]


class ZooManifold(Manifold):
    """A geoopt ``Manifold`` with ``ehess2rhess``, ``transp`` by projection and ``expmap = retr``."""

    reversible = False

    def _settings(self) -> tuple:
        """Type and plain settings (ints, floats, strings, bools): what makes two instances the same manifold."""
        simple = (bool, int, float, str)
        return (type(self),) + tuple(sorted((k, v) for k, v in vars(self).items()
                                            if isinstance(v, simple) and not k.startswith("_") and k != "training"))

    def __eq__(self, other) -> bool:
        """Same type and settings. geoopt's ``ManifoldParameter(data, manifold=m)`` compares ``data.manifold != m``;
        with equality by settings ``ManifoldParameter(Simplex().random(4), manifold=Simplex())`` works now that
        ``random`` returns a ``ManifoldTensor``."""
        if not isinstance(other, ZooManifold):
            return NotImplemented
        return self._settings() == other._settings()

    def __hash__(self) -> int:
        return hash(self._settings())

    def expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The retraction (no manifold here implements the exact exponential map)."""
        return self.retr(x, u)

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Vector transport by projection onto the tangent space at ``y``."""
        return self.proju(y, v)

    def ehess2rhess(self, x: torch.Tensor, egrad: torch.Tensor, ehess: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Riemannian Hessian applied to tangent ``u`` from the Euclidean gradient and Hessian-vector product."""
        raise NotImplementedError

    def norm(self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        return self.inner(x, u, keepdim=keepdim).clamp_min(0).sqrt()

    def _point_dims(self) -> tuple[int, ...]:
        return tuple(range(-self.ndim, 0))
