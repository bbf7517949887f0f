"""Synthetic IXS temperature series for CsCr3Sb5 (placeholder truths [U], T* = 55 K [S], docs/methods/ixs.md)."""

from __future__ import annotations

import numpy as np
import torch

from zoo._core.registry import preset_config
from zoo.fitting.module import SingleBatchData
from zoo.ixs.module import IxsConfig, expected_series

__all__ = ["TRUTH", "SyntheticIxsSeries"]

TRUTH = {"omega": 6.0, "gamma": 0.8, "phonon_amplitude": 400.0, "incoherent_elastic": 300.0, "superlattice_intensity": 800.0,
         "T_star": 55.0, "E0": 0.0, "background": 2.0}


class SyntheticIxsSeries(SingleBatchData):
    """Poisson counts at several temperatures, E from -12 to 16 meV (``seed=None``: noiseless); ``a_omega``, ``a_gamma``
    inject a phonon anomaly ``Omega(T) = omega + a_omega m(T)^2`` (default none, as the paper reports).

    The resolution is that of the preset named by ``resolution_from`` (e.g. ``"ixs_cscr3sb5"``, so that data and fitter
    share one definition), else of ``IxsConfig()`` (the pseudo-Voigt default); the ``resolution_*`` arguments, where
    given, override it field by field (same meaning as the ``IxsConfig`` fields)."""

    def __init__(self, temperatures: tuple[float, ...] = (20.0, 40.0, 55.0, 70.0, 100.0, 300.0), energy_step: float = 0.25,
                 seed: int | None = 0, a_omega: float = 0.0, a_gamma: float = 0.0, resolution_from: str | None = None,
                 resolution_kernel: str | None = None, resolution_fwhm: float | None = None, resolution_eta: float | None = None,
                 resolution_lorentzian_fwhm: float | None = None) -> None:
        super().__init__()
        energies = torch.arange(-12.0, 16.0 + 1e-9, energy_step, dtype=torch.float64)
        temps = torch.tensor(temperatures, dtype=torch.float64)
        params = {k: torch.tensor(v, dtype=torch.float64) for k, v in {**TRUTH, "a_omega": a_omega, "a_gamma": a_gamma}.items()}
        base = preset_config(resolution_from) if resolution_from is not None else IxsConfig()
        given = {"resolution_kernel": resolution_kernel, "resolution_fwhm": resolution_fwhm, "resolution_eta": resolution_eta,
                 "resolution_lorentzian_fwhm": resolution_lorentzian_fwhm}
        config = IxsConfig(**{name: getattr(base, name) if value is None else value for name, value in given.items()})
        expected = expected_series(config, energies, temps, params)
        counts = expected.clone() if seed is None else torch.as_tensor(np.random.default_rng(seed).poisson(expected.numpy()), dtype=torch.float64)
        self.batch = {"energies": energies, "temperatures": temps, "expected": expected, "counts": counts}
        self.truth = dict(TRUTH)
