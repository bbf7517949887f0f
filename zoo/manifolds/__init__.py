"""Riemannian manifolds for the zoo, as geoopt ``Manifold`` subclasses with a Riemannian Hessian.

Single-tensor points: :class:`Simplex`, :class:`ComplexSphere`, :class:`SymplecticStiefel`. Points made of
several tensors (a factorisation, a tensor format) implement :class:`StructuredManifold`, which works on tuples:
:class:`SpaceDecoupling` (bounded rank plus an orthogonally invariant constraint, points ``(H, V)``; its
constraints are :class:`InvariantConstraint` objects, arXiv 2501.13830), :class:`TuckerDesingularization` and
:class:`TTDesingularization` (bounded-rank tensors, arXiv 2411.14093); the optimizers in :mod:`zoo.optim` drive both kinds.
"""

from zoo.manifolds.base import ZooManifold
from zoo.manifolds.complex_sphere import ComplexSphere
from zoo.manifolds.invariant_constraints import FixedRowNorms, InvariantConstraint, Unconstrained, UnitFrobenius, UnitRows
from zoo.manifolds.simplex import Simplex
from zoo.manifolds.space_decoupling import SpaceDecoupling
from zoo.manifolds.structured import StructuredManifold
from zoo.manifolds.symplectic_stiefel import SymplecticStiefel, symplectic_feasibility
from zoo.manifolds.tt_desingularization import TTDesingularization
from zoo.manifolds.tucker_desingularization import TuckerDesingularization

__all__ = ["ComplexSphere", "FixedRowNorms", "InvariantConstraint", "Simplex", "SpaceDecoupling", "StructuredManifold",
           "SymplecticStiefel", "TTDesingularization", "TuckerDesingularization", "Unconstrained", "UnitFrobenius", "UnitRows",
           "ZooManifold", "symplectic_feasibility"]
