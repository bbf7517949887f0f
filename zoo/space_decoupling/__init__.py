"""Space decoupling: bounded rank plus an orthogonally invariant constraint (Yang, Gao, Yuan, arXiv 2501.13830).

The manifold itself is :class:`zoo.manifolds.SpaceDecoupling` (points ``(H, V)``, constraints
:class:`zoo.manifolds.InvariantConstraint`); this package holds its applications with known optima:

* spherical data fitting on planted data (:func:`planted_spherical_data`, :class:`SphericalFitting`), the
  paper's experiment, with a sparse cost that never forms the m x n matrix;
* graph similarity with the closed-form optimum :math:`2\\lambda_1(A)\\lambda_1(B)` (:class:`GraphSimilarity`);
* the Max-Cut SDP by Burer-Monteiro with unit rows (:class:`MaxCutSDP`), against cvxpy
  (:func:`maxcut_sdp_reference`);
* a low-rank, norm-constrained layer on the digits data set (``module.LowRankClassifierModule``).

:func:`solve` runs any :mod:`zoo.optim` optimizer on a problem. Lightning: ``zoo.space_decoupling.module``
(presets ``space_decoupling_*``; recipes under ``recipes/space_decoupling/``).
"""

from zoo.space_decoupling.config import (GraphSimilarityConfig, LowRankClassifierConfig, MaxCutConfig, SolverFields,
                                         SphericalFittingConfig)
from zoo.space_decoupling.data import SphericalData, load_digits_split, planted_spherical_data, random_graph, sample_positions
from zoo.space_decoupling.problems import (FitResult, GraphSimilarity, MaxCutSDP, SamplingPattern, SphericalFitting,
                                           burer_monteiro_rank, maxcut_sdp_reference, solve)

__all__ = ["FitResult", "GraphSimilarity", "GraphSimilarityConfig", "LowRankClassifierConfig", "MaxCutConfig", "MaxCutSDP",
           "SamplingPattern", "SolverFields", "SphericalData", "SphericalFitting", "SphericalFittingConfig", "burer_monteiro_rank",
           "load_digits_split", "maxcut_sdp_reference", "planted_spherical_data", "random_graph", "sample_positions", "solve"]
