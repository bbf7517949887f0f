"""Riemannian manifolds for the zoo, as geoopt ``Manifold`` subclasses with a Riemannian Hessian.

Single-tensor points: :class:`Simplex`, :class:`ComplexSphere`, :class:`SymplecticStiefel`. Points made of
several tensors (a factorisation, a tensor format) implement :class:`StructuredManifold`, which works on tuples:
:class:`TuckerDesingularization` and :class:`TTDesingularization` (bounded-rank tensors, arXiv 2411.14093);
the optimizers in :mod:`zoo.optim` drive both kinds.
"""

from zoo.manifolds.base import ZooManifold
from zoo.manifolds.complex_sphere import ComplexSphere
from zoo.manifolds.simplex import Simplex
from zoo.manifolds.structured import StructuredManifold
from zoo.manifolds.symplectic_stiefel import SymplecticStiefel, symplectic_feasibility
from zoo.manifolds.tt_desingularization import TTDesingularization
from zoo.manifolds.tucker_desingularization import TuckerDesingularization

__all__ = ["ComplexSphere", "Simplex", "StructuredManifold", "SymplecticStiefel", "TTDesingularization", "TuckerDesingularization", "ZooManifold", "symplectic_feasibility"]
