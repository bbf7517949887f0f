"""Config dataclasses of the space-decoupling applications (presets are registered in ``zoo.space_decoupling.module``).

Every fit shares :class:`SolverFields` (the manifold's metric and retraction, the optimizer, the stop rule); each
problem adds its instance fields. Validation raises ``ValueError`` naming the field and the value.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["GraphSimilarityConfig", "LowRankClassifierConfig", "MaxCutConfig", "SolverFields", "SphericalFittingConfig"]

_OPTIMIZERS = ("rgd", "rcg", "newton", "trust_region", "hybrid")
_INITS = ("continuation", "random", "spectral", "planted_columns")  # SphericalFitting.initial_point


def _positive_int(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _in_open_unit(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value < 1):
            raise ValueError(f"{name} must be in (0, 1), got {value!r}")


@dataclasses.dataclass
class SolverFields:
    """Fields every fit on the manifold M_h shares."""

    omega: float = 0.5  # metric weight of the slack variable G (paper default 1/2)
    retraction: str = "second_order"  # second_order | first_order
    optimizer: str = "rgd"  # rgd | rcg | newton | trust_region | hybrid (zoo.optim)
    gradient_tolerance: float = 1e-10  # stop when |grad f| <= this (absolute, in the manifold's metric)
    max_iterations: int = 3000  # optimizer iterations at most
    seed: int = 0  # seeds the starting point

    def __post_init__(self) -> None:
        if not (math.isfinite(self.omega) and self.omega > 0):
            raise ValueError(f"omega must be finite and > 0, got {self.omega!r}")
        if self.retraction not in ("second_order", "first_order"):
            raise ValueError(f"retraction must be 'second_order' or 'first_order', got {self.retraction!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if not (math.isfinite(self.gradient_tolerance) and self.gradient_tolerance >= 0):
            raise ValueError(f"gradient_tolerance must be finite and >= 0, got {self.gradient_tolerance!r}")
        _positive_int(self, "max_iterations")


@dataclasses.dataclass
class SphericalFittingConfig(SolverFields):
    """Spherical data fitting on planted data (the official experiment: 5000 x 6000, r = r* = 6, 1 % samples)."""

    rows: int = 5000  # m
    columns: int = 6000  # n
    rank: int = 6  # r, the rank bound of M_h (may over-estimate true_rank)
    true_rank: int = 6  # r*, rank of the planted unit-row matrix A
    sample_rate: float = 0.01  # |Omega| / (m n), training entries
    test_rate: float = 0.01  # disjoint test entries / (m n)
    data_seed: int = 0  # seeds A and the masks
    init: str = "continuation"  # continuation (rank continuation from the observed entries) | random | spectral (top-r SVD
    # of the observed entries) | planted_columns (the official experiments' warm start: an oracle, it reads all of A)
    target_test_error: float = 0.0  # > 0: stop once the relative test error is below it (benchmark protocol)

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_int(self, "rows", "columns", "rank", "true_rank")
        for name in ("rank", "true_rank"):
            if getattr(self, name) > min(self.rows, self.columns):
                raise ValueError(f"{name} must be <= min(rows, columns) = {min(self.rows, self.columns)}, got {getattr(self, name)}")
        _in_open_unit(self, "sample_rate", "test_rate")
        if self.sample_rate + self.test_rate > 1:
            raise ValueError(f"sample_rate + test_rate must be <= 1, got {self.sample_rate} + {self.test_rate}")
        if self.init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {self.init!r}")
        if not (math.isfinite(self.target_test_error) and self.target_test_error >= 0):
            raise ValueError(f"target_test_error must be finite and >= 0, got {self.target_test_error!r}")


@dataclasses.dataclass
class GraphSimilarityConfig(SolverFields):
    """Low-rank graph similarity of two seeded undirected Erdos-Renyi graphs (optimum 2 lambda_1(A) lambda_1(B))."""

    nodes_a: int = 80  # graph A (X has nodes_a columns)
    nodes_b: int = 60  # graph B (X has nodes_b rows)
    edge_probability: float = 0.1  # Erdos-Renyi p of both graphs
    graph_seed: int = 0  # seeds both graphs
    rank: int = 3  # r (the optimum has rank 1)
    optimizer: str = "rgd"  # trust regions can stop at rank-deficient stationary points here (see the card)

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_int(self, "nodes_a", "nodes_b", "rank")
        if min(self.nodes_a, self.nodes_b) < 2:
            raise ValueError(f"nodes_a and nodes_b must be >= 2, got {self.nodes_a}, {self.nodes_b}")
        if self.rank > min(self.nodes_a, self.nodes_b):
            raise ValueError(f"rank must be <= min(nodes_a, nodes_b) = {min(self.nodes_a, self.nodes_b)}, got {self.rank}")
        if not 0 < self.edge_probability <= 1:
            raise ValueError(f"edge_probability must be in (0, 1], got {self.edge_probability!r}")


@dataclasses.dataclass
class MaxCutConfig(SolverFields):
    """Burer-Monteiro Max-Cut SDP relaxation of a seeded Erdos-Renyi graph (compared with a convex solver)."""

    nodes: int = 40  # graph size n (X is n x n)
    edge_probability: float = 0.3  # Erdos-Renyi p
    graph_seed: int = 0  # seeds the graph
    rank: int = 0  # r; 0 = the smallest r with r(r+1)/2 > n
    optimizer: str = "trust_region"

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_int(self, "nodes")
        if self.nodes < 2:
            raise ValueError(f"nodes must be >= 2, got {self.nodes}")
        if not isinstance(self.rank, int) or not 0 <= self.rank <= self.nodes:
            raise ValueError(f"rank must be an int in [0, nodes = {self.nodes}] (0 = automatic), got {self.rank!r}")
        if not 0 < self.edge_probability <= 1:
            raise ValueError(f"edge_probability must be in (0, 1], got {self.edge_probability!r}")


@dataclasses.dataclass
class LowRankClassifierConfig:
    """A digits classifier whose hidden layer W = H V^T lives on M_h (rank <= r, rows of norm row_norm), or the same
    layer unconstrained (a plain dense weight) for comparison; both trained full-batch by the same zoo optimizer."""

    layer: str = "space_decoupling"  # space_decoupling | unconstrained
    hidden: int = 64  # hidden units (rows of W)
    rank: int = 8  # r of the constrained layer
    row_norm: float = 1.0  # norm of every row of the constrained W (and of the unconstrained W at initialisation)
    omega: float = 0.5  # metric weight of M_h
    optimizer: str = "rgd"  # rgd | rcg (first order, full batch)
    iterations: int = 300  # optimizer iterations (one per training step)
    test_fraction: float = 0.3  # held-out share of the 1797 digits
    split_seed: int = 0  # seeds the train/test split
    seed: int = 0  # seeds the initial weights

    def __post_init__(self) -> None:
        if self.layer not in ("space_decoupling", "unconstrained"):
            raise ValueError(f"layer must be 'space_decoupling' or 'unconstrained', got {self.layer!r}")
        _positive_int(self, "hidden", "rank", "iterations")
        if self.rank > min(self.hidden, 64):
            raise ValueError(f"rank must be <= min(hidden, 64) = {min(self.hidden, 64)}, got {self.rank}")
        if not (math.isfinite(self.row_norm) and self.row_norm > 0):
            raise ValueError(f"row_norm must be finite and > 0, got {self.row_norm!r}")
        if not (math.isfinite(self.omega) and self.omega > 0):
            raise ValueError(f"omega must be finite and > 0, got {self.omega!r}")
        if self.optimizer not in ("rgd", "rcg"):
            raise ValueError(f"optimizer must be 'rgd' or 'rcg', got {self.optimizer!r}")
        _in_open_unit(self, "test_fraction")
