r"""Seeded instances with known optima for the space-decoupling applications, and the digits data set.

* :func:`planted_spherical_data`: the official spherical-data-fitting experiment's generator (read in
  ``spherical_data_fitting/experiment_exact.m`` of the official code, our own code): :math:`A = \mathrm{projH}(U S) V^T`
  with U, V Haar-random orthonormal ``[m, r*]``, ``[n, r*]``, S = diag(uniform(0, 1)) and projH the row
  normalisation, so A has rank r* and unit rows. A training mask of ``round(rate m n)`` distinct entries and a
  disjoint test mask of the same size (the official ``test_ratio = 1``) are drawn uniformly.
* :func:`random_graph`: an Erdos-Renyi adjacency matrix (undirected, no loops), for graph similarity and Max-Cut.
* :func:`load_digits_split`: scikit-learn's bundled 8 x 8 handwritten digits (1797 images, 10 classes; the UCI
  "Optical Recognition of Handwritten Digits" test set, CC BY 4.0), standardised, split by a seed. Offline.
"""

from __future__ import annotations

import dataclasses
import math

import torch

__all__ = ["SphericalData", "load_digits_split", "planted_spherical_data", "random_graph", "sample_positions"]


@dataclasses.dataclass
class SphericalData:
    """A planted spherical-data-fitting instance: observed entries (train and a disjoint test set) of A."""

    m: int
    n: int
    true_rank: int
    rows: torch.Tensor  # [k] int64 row indices of the training entries
    cols: torch.Tensor  # [k] int64 column indices
    values: torch.Tensor  # [k] A[rows, cols]
    test_rows: torch.Tensor  # [k_test] disjoint from the training entries
    test_cols: torch.Tensor
    test_values: torch.Tensor
    planted: tuple[torch.Tensor, torch.Tensor]  # (H*, V*): A = H* V*^T, H* unit rows, V* orthonormal

    @property
    def sample_rate(self) -> float:
        return self.rows.numel() / (self.m * self.n)


def sample_positions(m: int, n: int, count: int, *, generator: torch.Generator, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``count`` distinct linear positions ``i n + j`` of an ``m x n`` matrix, a uniform random subset avoiding
    ``exclude``, sorted (row-major). Draws with replacement and removes repeats (memory O(count), not O(m n)); by
    symmetry the distinct values are a uniform subset of their size, and a random sub-subset of it is uniform too."""
    available = m * n - (0 if exclude is None else exclude.numel())
    if not 0 < count <= available:
        raise ValueError(f"cannot draw {count} distinct entries from a {m} x {n} matrix ({available} available)")
    chosen = torch.empty(0, dtype=torch.int64)
    while chosen.numel() < count:
        draw = torch.randint(0, m * n, (int(1.2 * (count - chosen.numel())) + 16,), generator=generator)
        chosen = torch.unique(torch.cat([chosen, draw]))
        if exclude is not None:
            chosen = chosen[~torch.isin(chosen, exclude)]
    if chosen.numel() > count:
        chosen = chosen[torch.randperm(chosen.numel(), generator=generator)[:count]]
    return chosen.sort().values


def planted_spherical_data(m: int, n: int, true_rank: int, sample_rate: float, *, test_rate: float | None = None,
                           seed: int = 0, dtype: torch.dtype = torch.float64) -> SphericalData:
    """A planted instance (module docstring). ``test_rate`` defaults to ``sample_rate`` (disjoint entries)."""
    for label, value in (("m", m), ("n", n), ("true_rank", true_rank)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    if true_rank > min(m, n):
        raise ValueError(f"true_rank = {true_rank} exceeds min(m, n) = {min(m, n)}")
    test_rate = sample_rate if test_rate is None else test_rate
    for label, value in (("sample_rate", sample_rate), ("test_rate", test_rate)):
        if not (math.isfinite(value) and 0 < value < 1):
            raise ValueError(f"{label} must be in (0, 1), got {value!r}")
    if sample_rate + test_rate > 1:
        raise ValueError(f"sample_rate + test_rate must be <= 1, got {sample_rate} + {test_rate}")
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, true_rank, dtype=torch.float64, generator=generator))
    scales = torch.rand(true_rank, dtype=torch.float64, generator=generator)
    h = u * scales
    h = h / torch.linalg.vector_norm(h, dim=1, keepdim=True)  # projH: unit rows
    v, _ = torch.linalg.qr(torch.randn(n, true_rank, dtype=torch.float64, generator=generator))
    train = sample_positions(m, n, max(1, round(sample_rate * m * n)), generator=generator)
    test = sample_positions(m, n, max(1, round(test_rate * m * n)), generator=generator, exclude=train)

    def entries(positions):
        rows, cols = positions // n, positions % n
        return rows, cols, (h[rows] * v[cols]).sum(1).to(dtype)

    rows, cols, values = entries(train)
    test_rows, test_cols, test_values = entries(test)
    return SphericalData(m, n, true_rank, rows, cols, values, test_rows, test_cols, test_values, (h.to(dtype), v.to(dtype)))


def random_graph(nodes: int, edge_probability: float, *, seed: int = 0, connected: bool = True) -> torch.Tensor:
    """Adjacency ``[nodes, nodes]`` (float64, symmetric, zero diagonal) of an Erdos-Renyi graph G(nodes, p).

    With ``connected`` a spanning path is added (so the Perron vector is positive and unique)."""
    if not isinstance(nodes, int) or nodes < 2:
        raise ValueError(f"nodes must be an int >= 2, got {nodes!r}")
    if not 0 < edge_probability <= 1:
        raise ValueError(f"edge_probability must be in (0, 1], got {edge_probability!r}")
    generator = torch.Generator().manual_seed(seed)
    upper = (torch.rand(nodes, nodes, generator=generator) < edge_probability).triu(1)
    if connected:
        order = torch.randperm(nodes, generator=generator)
        a, b = torch.minimum(order[:-1], order[1:]), torch.maximum(order[:-1], order[1:])
        upper[a, b] = True
    adjacency = upper.to(torch.float64)
    return adjacency + adjacency.T


def load_digits_split(test_fraction: float = 0.3, *, seed: int = 0, dtype: torch.dtype = torch.float32):
    """``(x_train, y_train, x_test, y_test)`` from scikit-learn's bundled digits (offline), standardised with the
    training split's mean and deviation; a seeded stratified-by-chance split (``torch.randperm``)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # pragma: no cover - an extra
        raise ImportError("the digits data set ships with scikit-learn: pip install 'paperzoo[space_decoupling]'") from error
    digits = load_digits()
    x = torch.as_tensor(digits.data, dtype=torch.float64)
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(round(len(y) * (1 - test_fraction)))
    train, test = order[:cut], order[cut:]
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
    x = (x - mean) / std
    return x[train].to(dtype), y[train], x[test].to(dtype), y[test]
