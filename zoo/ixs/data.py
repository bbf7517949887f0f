"""Synthetic IXS temperature series for CsCr3Sb5 (placeholder truths [U], T* = 55 K [S], ixs.md section 8)."""

from __future__ import annotations

import numpy as np
import torch

from zoo.fitting.module import SingleBatchData
from zoo.ixs.module import IxsConfig, expected_series

__all__ = ["TRUTH", "SyntheticIxsSeries"]

TRUTH = {"omega": 6.0, "gamma": 0.8, "phonon_amplitude": 400.0, "incoherent_elastic": 300.0, "superlattice_intensity": 800.0,
         "T_star": 55.0, "E0": 0.0, "background": 2.0}


class SyntheticIxsSeries(SingleBatchData):
    """Poisson counts at several temperatures, E from -12 to 16 meV (``seed=None``: noiseless); ``a_omega``, ``a_gamma``
    inject a phonon anomaly ``Omega(T) = omega + a_omega m(T)^2`` (default none, as the paper reports).

    The resolution arguments have the meaning of the ``IxsConfig`` fields of the same names (the fitter's preset must
    match them: ``ixs_cscr3sb5`` uses ``resolution_kernel="voigt"``, 1.30 / 0.36 meV; the defaults here are the
    pseudo-Voigt of ``IxsConfig()``)."""

    def __init__(self, temperatures: tuple[float, ...] = (20.0, 40.0, 55.0, 70.0, 100.0, 300.0), energy_step: float = 0.25,
                 seed: int | None = 0, a_omega: float = 0.0, a_gamma: float = 0.0, resolution_kernel: str = "pseudo_voigt",
                 resolution_fwhm: float = 1.5, resolution_eta: float = 0.3, resolution_lorentzian_fwhm: float = 0.0) -> None:
        super().__init__()
        energies = torch.arange(-12.0, 16.0 + 1e-9, energy_step, dtype=torch.float64)
        temps = torch.tensor(temperatures, dtype=torch.float64)
        params = {k: torch.tensor(v, dtype=torch.float64) for k, v in {**TRUTH, "a_omega": a_omega, "a_gamma": a_gamma}.items()}
        config = IxsConfig(resolution_kernel=resolution_kernel, resolution_fwhm=resolution_fwhm, resolution_eta=resolution_eta,
                           resolution_lorentzian_fwhm=resolution_lorentzian_fwhm)
        expected = expected_series(config, energies, temps, params)
        counts = expected.clone() if seed is None else torch.as_tensor(np.random.default_rng(seed).poisson(expected.numpy()), dtype=torch.float64)
        self.batch = {"energies": energies, "temperatures": temps, "expected": expected, "counts": counts}
        self.truth = dict(TRUTH)
