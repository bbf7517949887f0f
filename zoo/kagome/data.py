"""Synthetic ARPES maps of the two-orbital kagome toy (placeholder truths [U], docs/methods/kagome.md)."""

from __future__ import annotations

import numpy as np
import torch

from zoo.fitting.module import SingleBatchData
from zoo.kagome.config import KagomeConfig

__all__ = ["SyntheticArpesData", "kagome_path"]

TRUTH = {"Z1": 0.3, "Z2": 0.8, "delta1": -0.03, "delta2": 0.0, "gamma0": 0.01, "alpha": 0.2, "intensity": 10.0, "background": 0.5}


def kagome_path(points_per_segment: int) -> torch.Tensor:
    """Gamma-K-M-Gamma in r.l.u. (Gamma = (0, 0), K = (2/3, 1/3), M = (1/2, 0)), ``[3 n + 1, 2]``."""
    corners = torch.tensor([[0.0, 0.0], [2 / 3, 1 / 3], [0.5, 0.0], [0.0, 0.0]], dtype=torch.float64)
    t = torch.linspace(0, 1, points_per_segment + 1, dtype=torch.float64)[:-1, None]
    return torch.cat([corners[i] + t * (corners[i + 1] - corners[i]) for i in range(3)] + [corners[-1:]])


class SyntheticArpesData(SingleBatchData):
    """Poisson ARPES counts along Gamma-K-M-Gamma from the toy truths (``seed=None``: noiseless), with the energy and
    momentum resolutions of ``KagomeConfig`` (``momentum_resolution`` in 1/A FWHM, default that of ``KagomeConfig``;
    the fitter's config must match)."""

    def __init__(self, points_per_segment: int = 10, energy_min: float = -0.5, energy_max: float = 0.05,
                 energy_step: float = 0.002, seed: int | None = 0, momentum_resolution: float | None = None) -> None:
        super().__init__()
        from zoo.kagome.module import expected_map

        q = kagome_path(points_per_segment)
        energies = torch.arange(energy_min, energy_max + 0.5 * energy_step, energy_step, dtype=torch.float64)
        params = {k: torch.tensor(v, dtype=torch.float64) for k, v in TRUTH.items()}
        config = KagomeConfig() if momentum_resolution is None else KagomeConfig(momentum_resolution=momentum_resolution)
        expected = expected_map(config, q, energies, params)
        counts = expected.clone() if seed is None else torch.as_tensor(np.random.default_rng(seed).poisson(expected.numpy()), dtype=torch.float64)
        self.batch = {"q": q, "energies": energies, "expected": expected, "counts": counts}
        self.truth = dict(TRUTH)
