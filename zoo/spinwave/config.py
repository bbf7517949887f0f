"""Config and presets of the CeMgAl11O19 spin-wave fitter (arXiv 2408.15957)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from zoo.fitting.parameters import FIT_OPTION_FIELDS, check_fit_options

__all__ = ["SpinWaveConfig"]

_LOSSES = ("poisson", "gaussian")


@dataclasses.dataclass
class SpinWaveConfig:
    """Fit of J_perp, J_z and g-factors to field-polarised S(Q, E) at several fields (start values and bounds)."""

    J_perp: float = 0.05  # start value of J_perp (meV), coefficient of SxSx + SySy per bond
    J_z: float = -0.02  # start value of J_z (meV), coefficient of SzSz per bond
    g_z: float = 2.2  # start value of the g-factor along c [U]
    g_perp: float = 2.2  # start value of the in-plane g-factor [U]
    fit_g_perp: bool = False  # fit g_perp (needs an in-plane field in the data); else fixed at g_perp
    scale: float = 8.0  # start value of the intensity scale (counts per unit S(Q, E) per meV)
    background: float = 1.0  # start value of the flat background (counts per bin)
    spin: float = 0.5  # effective spin S of the Ce3+ doublet
    resolution_fwhm: float = 0.025  # Gaussian energy resolution, FWHM (meV) [U]
    exchange_bound: float = 0.3  # |J| bound (meV) of both exchanges
    loss: str = "poisson"  # "poisson" (raw counts) or "gaussian"
    error_method: str = "hessian"  # "hessian" (observed) or "fisher" (expected information)
    scale_covariance: bool = False  # multiply the covariance by deviance/dof (lmfit's scale_covar)
    max_iterations: int = 200  # LBFGS iterations per training step

    # a refit at new fields (zoo.init_from) may change the fit options and the instrument resolution of the new data
    finetune_safe_fields: ClassVar[tuple[str, ...]] = (*FIT_OPTION_FIELDS, "resolution_fwhm")

    def __post_init__(self) -> None:
        if not 0 < self.J_perp < self.exchange_bound:
            raise ValueError(f"J_perp must lie in (0, exchange_bound={self.exchange_bound}) meV, got {self.J_perp}")
        if not abs(self.J_z) < self.exchange_bound:
            raise ValueError(f"J_z must satisfy |J_z| < exchange_bound={self.exchange_bound} meV, got {self.J_z}")
        for name in ("g_z", "g_perp"):
            if not 0.1 < getattr(self, name) < 10:
                raise ValueError(f"{name} must lie in (0.1, 10), got {getattr(self, name)}")
        for name in ("scale", "spin", "resolution_fwhm", "exchange_bound"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.background > 0:
            raise ValueError(f"background must be > 0 (the Poisson model needs expected counts > 0), got {self.background}")
        check_fit_options(self, _LOSSES)

