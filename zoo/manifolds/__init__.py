"""Riemannian manifolds for the zoo, as geoopt ``Manifold`` subclasses with a Riemannian Hessian.

Single-tensor points: :class:`Simplex`, :class:`ComplexSphere`, :class:`SymplecticStiefel`. Points made of
several tensors (a factorisation, a tensor format) implement :class:`StructuredManifold`, which works on tuples;
the optimizers in :mod:`zoo.optim` drive both kinds. :class:`SpaceDecoupling` (bounded rank plus an orthogonally
invariant constraint, points ``(H, V)``) is structured; its constraints are :class:`InvariantConstraint` objects.
"""

from zoo.manifolds.base import ZooManifold
from zoo.manifolds.complex_sphere import ComplexSphere
from zoo.manifolds.invariant_constraints import FixedRowNorms, InvariantConstraint, Unconstrained, UnitFrobenius, UnitRows
from zoo.manifolds.simplex import Simplex
from zoo.manifolds.space_decoupling import SpaceDecoupling
from zoo.manifolds.structured import StructuredManifold
from zoo.manifolds.symplectic_stiefel import SymplecticStiefel, symplectic_feasibility

__all__ = ["ComplexSphere", "FixedRowNorms", "InvariantConstraint", "Simplex", "SpaceDecoupling", "StructuredManifold",
           "SymplecticStiefel", "Unconstrained", "UnitFrobenius", "UnitRows", "ZooManifold", "symplectic_feasibility"]
