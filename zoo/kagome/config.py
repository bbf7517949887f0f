"""Config of the kagome ARPES fitter (arXiv 2406.05293); every default is a placeholder [U] (docs/methods/kagome.md)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from zoo.fitting.parameters import FIT_OPTION_FIELDS, check_fit_options

__all__ = ["KagomeConfig"]


@dataclasses.dataclass
class KagomeConfig:
    """Fit of per-orbital renormalisations Z and shifts delta of a two-orbital kagome toy to an ARPES map."""

    t1: float = 0.3  # DFT hopping of the "xz-like" kagome copy (eV), fixed
    t2: float = 0.5  # DFT hopping of the "xy-like" copy (eV), fixed
    hybridization: float = 0.05  # on-site hybridisation v between the copies (eV), fixed
    eps1: float = -0.6  # DFT on-site energy of copy 1 (eV), fixed
    eps2: float = -1.2  # DFT on-site energy of copy 2 (eV), fixed
    temperature: float = 20.0  # sample temperature (K)
    energy_resolution: float = 0.015  # Gaussian FWHM along w (eV)
    momentum_resolution: float = 0.01  # Gaussian FWHM along the cut (1/A), docs/methods/kagome.md; 0 disables
    lattice_constant: float = 5.49  # in-plane a of CsCr3Sb5 (A) [U, ~5.49 A as recalled from Liu et al. 2024; verify], for 1/A
    momentum_oversampling: float = 4.0  # fine k points per momentum-resolution FWHM along the cut
    momentum_padding: float = 3.0  # fine k window around each data k point, in FWHM (beyond the cut's ends too)
    Z1: float = 0.5  # start value of Z of copy 1
    Z2: float = 0.6  # start value of Z of copy 2
    delta1: float = 0.0  # start value of the shift of copy 1 (eV)
    delta2: float = 0.0  # start value of the shift of copy 2 (eV)
    gamma0: float = 0.02  # start value of the Lorentzian half width at E_F (eV)
    alpha: float = 0.2  # start value of the width slope d Gamma / d|w|
    intensity: float = 8.0  # start value of the overall scale (counts eV)
    background: float = 1.0  # start value of the flat background (counts)
    loss: str = "poisson"  # "poisson" or "gaussian"
    error_method: str = "hessian"  # "hessian" or "fisher"
    scale_covariance: bool = False  # lmfit-style rescaling by deviance/dof
    max_iterations: int = 200  # LBFGS iterations per training step

    # a refit (zoo.init_from) may change the fit options and the resolutions of the new data
    finetune_safe_fields: ClassVar[tuple[str, ...]] = (*FIT_OPTION_FIELDS, "temperature", "energy_resolution", "momentum_resolution")

    def __post_init__(self) -> None:
        for name in ("Z1", "Z2"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in (0, 1) (start value strictly inside the bounds), got {getattr(self, name)}")
        for name in ("t1", "t2", "temperature", "energy_resolution", "gamma0", "intensity", "background"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.momentum_resolution >= 0:
            raise ValueError(f"momentum_resolution must be >= 0 1/A (0 disables it), got {self.momentum_resolution}")
        if not self.lattice_constant > 0:
            raise ValueError(f"lattice_constant must be > 0 A, got {self.lattice_constant}")
        if not self.momentum_oversampling >= 1:
            raise ValueError(f"momentum_oversampling must be >= 1 (fine points per FWHM), got {self.momentum_oversampling}")
        if not self.momentum_padding >= 1:
            raise ValueError(f"momentum_padding must be >= 1 FWHM, got {self.momentum_padding}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        check_fit_options(self)
