"""Synthetic CeMgAl11O19 data: field-polarised S(Q, E) from the published exchanges, resolution, Poisson counts.

Truth [S]: J_z = -0.024 meV, J_perp = 0.056 meV (arXiv 2408.15957 abstract). Placeholders [U]: g_z = g_perp = 2,
fields, Q path Gamma-K-M-Gamma, energy grid, resolution, count level and background (docs/methods/spinwave.md).
"""

from __future__ import annotations

import numpy as np
import torch

from zoo.fitting.module import SingleBatchData
from zoo.spinwave.lattice import high_symmetry_path
from zoo.spinwave.model import MU_B_MEV_PER_T, polarized_spectrum

__all__ = ["SyntheticPolarizedData", "make_polarized_data"]


def make_polarized_data(
    *,
    J_perp: float = 0.056,
    J_z: float = -0.024,
    g_z: float = 2.0,
    g_perp: float = 2.0,
    scale: float = 10.0,
    background: float = 0.5,
    fields_tesla=(1.0, 2.0, 4.0),
    directions=("z", "z", "z"),
    points_per_segment: int = 10,
    energy_min: float = 0.0,
    energy_max: float = 0.8,
    energy_step: float = 0.01,
    resolution_fwhm: float = 0.025,
    spin: float = 0.5,
    seed: int | None = 0,
) -> dict:
    """A batch dict (``q``, ``path_length``, ``energies``, ``fields_tesla``, ``directions``, ``expected``, ``counts``).

    ``seed=None`` returns the noiseless expected counts as ``counts``.
    """
    if len(fields_tesla) != len(directions) or not fields_tesla:
        raise ValueError(f"fields_tesla {fields_tesla} and directions {directions} must be non-empty and of equal length")
    q, path_length = high_symmetry_path(points_per_segment)
    energies = torch.arange(energy_min, energy_max + 0.5 * energy_step, energy_step, dtype=torch.float64)
    expected = []
    for field, direction in zip(fields_tesla, directions):
        g = g_z if direction == "z" else g_perp
        spectrum = polarized_spectrum(q, energies, J_perp, J_z, g * MU_B_MEV_PER_T * field, resolution_fwhm=resolution_fwhm, S=spin, direction=direction)
        expected.append(scale * spectrum + background)
    expected = torch.stack(expected)
    counts = expected.clone() if seed is None else torch.as_tensor(np.random.default_rng(seed).poisson(expected.numpy()), dtype=torch.float64)
    return {
        "q": q, "path_length": path_length, "energies": energies, "fields_tesla": torch.tensor(fields_tesla, dtype=torch.float64),
        "directions": list(directions), "expected": expected, "counts": counts,
    }


class SyntheticPolarizedData(SingleBatchData):
    """One batch of synthetic polarised-state spectra; ``truth`` holds the generating parameters."""

    def __init__(
        self,
        J_perp: float = 0.056,
        J_z: float = -0.024,
        g_z: float = 2.0,
        g_perp: float = 2.0,
        scale: float = 10.0,
        background: float = 0.5,
        fields_tesla: tuple[float, ...] = (1.0, 2.0, 4.0),
        directions: tuple[str, ...] = ("z", "z", "z"),
        points_per_segment: int = 10,
        energy_min: float = 0.0,
        energy_max: float = 0.8,
        energy_step: float = 0.01,
        resolution_fwhm: float = 0.025,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.batch = make_polarized_data(
            J_perp=J_perp, J_z=J_z, g_z=g_z, g_perp=g_perp, scale=scale, background=background, fields_tesla=tuple(fields_tesla),
            directions=tuple(directions), points_per_segment=points_per_segment, energy_min=energy_min, energy_max=energy_max,
            energy_step=energy_step, resolution_fwhm=resolution_fwhm, seed=seed,
        )
        self.truth = {"J_perp": J_perp, "J_z": J_z, "g_z": g_z, "scale": scale, "background": background}
        if "x" in directions:
            self.truth["g_perp"] = g_perp
