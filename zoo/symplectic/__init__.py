"""Symplectic eigenvalues and the symplectic Stiefel manifold (Gao, Son, Stykel, arXiv 2406.14299).

Plain API: :func:`symplectic_eigenvalues` (direct), :func:`min_trace` (Riemannian), :func:`nearest_symplectic`,
:func:`planted_spd_matrix`. Lightning: ``zoo.symplectic.module.SymplecticModule`` (presets ``symplectic_*``).
"""

from zoo.symplectic.data import planted_banded_sparse, planted_spd_matrix
from zoo.symplectic.model import (MinTraceResult, check_spd, min_trace, nearest_symplectic, symplectic_eigenvalues,
                                  symplectic_gram_schmidt)
from zoo.symplectic.sparse import SymmetricOperator, as_symmetric_operator

__all__ = ["MinTraceResult", "SymmetricOperator", "as_symmetric_operator", "check_spd", "min_trace", "nearest_symplectic", "planted_banded_sparse", "planted_spd_matrix", "symplectic_eigenvalues",
           "symplectic_gram_schmidt"]
