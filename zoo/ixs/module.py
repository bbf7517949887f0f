"""``IxsFitter``: joint Poisson fit of an IXS temperature series (arXiv 2410.16465, ixs.md sections 4 and 6).

Per temperature ``T``:  ``I(E) = scale [S_DHO(T) (x) R](E) + [A_inc + I0 m(T)^2] R(E - E0) + b``
with shared phonon ``Omega``, ``Gamma`` (the paper's "no anomaly" hypothesis: a_Omega = a_Gamma = 0), the superlattice
elastic intensity ``I0 m(T)^2`` with ``m(T)`` from ``order_parameter`` (smoothing ``tau``, exponent ``beta`` fixed),
and a pseudo-Voigt resolution ``R`` (FWHM, eta fixed) applied by a ``ResolutionOperator`` from a padded fine grid.
"""

from __future__ import annotations

import dataclasses

from zoo.fitting.parameters import check_fit_options
from typing import Any, Mapping

import torch

from zoo import register_model
from zoo.fitting.module import FitModule
from zoo.fitting.parameters import Parameter
from zoo.fitting.resolution import ResolutionOperator, pseudo_voigt_kernel
from zoo.ixs.model import dho, order_parameter

__all__ = ["IxsConfig", "IxsFitter", "expected_series", "ixs_cscr3sb5", "ixs_cscr3sb5_tiny", "phonon_anomaly_test"]


@dataclasses.dataclass
class IxsConfig:
    """Start values and fixed settings of the temperature-series fit (placeholders [U], ixs.md section 8)."""

    omega: float = 5.5  # start value of the DHO energy Omega (meV)
    gamma: float = 0.8  # start value of the DHO HWHM Gamma (meV)
    phonon_amplitude: float = 300.0  # start value of the DHO amplitude (counts meV)
    incoherent_elastic: float = 200.0  # start value of the T-independent elastic intensity (counts meV)
    superlattice_intensity: float = 600.0  # start value of I0, the superlattice elastic intensity at T = 0 (counts meV)
    T_star: float = 50.0  # start value of the ordering temperature T* (K)
    beta: float = 0.3  # order-parameter exponent (fixed)
    smoothing: float = 0.5  # softplus width tau of m(T) near T* (K)
    background: float = 3.0  # start value of the flat background (counts per bin)
    resolution_fwhm: float = 1.5  # pseudo-Voigt resolution FWHM (meV), fixed
    resolution_eta: float = 0.3  # Lorentzian fraction of the resolution, fixed
    phonon_anomaly: bool = False  # add a_omega, a_gamma: Omega(T) = omega + a_omega m(T)^2, Gamma(T) = gamma + a_gamma m(T)^2
    padding: float = 30.0  # fine-grid padding beyond the data range (meV)
    fine_step: float = 0.05  # fine-grid step (meV)
    loss: str = "poisson"  # "poisson" or "gaussian"
    error_method: str = "hessian"  # "hessian" or "fisher"
    scale_covariance: bool = False  # lmfit-style rescaling
    max_iterations: int = 300  # LBFGS iterations per training step

    def __post_init__(self) -> None:
        for name in ("omega", "gamma", "phonon_amplitude", "incoherent_elastic", "superlattice_intensity", "T_star", "beta",
                     "background", "resolution_fwhm", "padding", "fine_step"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.resolution_eta <= 1:
            raise ValueError(f"resolution_eta must lie in [0, 1], got {self.resolution_eta}")
        if self.smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {self.smoothing}")
        check_fit_options(self)


def expected_series(config: IxsConfig, energies: torch.Tensor, temperatures: torch.Tensor, params: Mapping[str, torch.Tensor],
                    operator: ResolutionOperator | None = None) -> torch.Tensor:
    """Expected counts ``[n_T, n_E]``."""
    if operator is None:
        fine = torch.arange(float(energies.min()) - config.padding, float(energies.max()) + config.padding, config.fine_step, dtype=torch.float64)
        operator = ResolutionOperator.build(energies, fine, fwhm=config.resolution_fwhm, kernel="pseudo_voigt", eta=config.resolution_eta)
    fine = operator.fine_grid
    T = temperatures[:, None]
    m = order_parameter(temperatures, params["T_star"], config.beta, config.smoothing)
    omega = params["omega"] + params.get("a_omega", 0.0) * m[:, None] ** 2  # [n_T, 1]; the hypothesis model of ixs.md section 6
    gamma = params["gamma"] + params.get("a_gamma", 0.0) * m[:, None] ** 2
    phonon = operator(dho(fine[None, :], omega, gamma, params["phonon_amplitude"], T))  # [n_T, n_E]
    elastic = (params["incoherent_elastic"] + params["superlattice_intensity"] * m**2)[:, None]
    line = pseudo_voigt_kernel(energies - params["E0"], config.resolution_fwhm, config.resolution_eta)[None, :]
    return phonon + elastic * line + params["background"]


class IxsFitter(FitModule):
    config_class = IxsConfig
    card_template = "ixs"

    def parameter_specs(self) -> list[Parameter]:
        c = self.config
        return [
            Parameter("omega", c.omega, "meV", lower=0.5, upper=20.0),
            Parameter("gamma", c.gamma, "meV", lower=0.01, upper=10.0),
            Parameter("phonon_amplitude", c.phonon_amplitude, "counts meV", lower=0.0),
            Parameter("incoherent_elastic", c.incoherent_elastic, "counts meV", lower=0.0),
            Parameter("superlattice_intensity", c.superlattice_intensity, "counts meV", lower=0.0),
            Parameter("T_star", c.T_star, "K", lower=5.0, upper=300.0),
            Parameter("E0", 0.0, "meV", lower=-2.0, upper=2.0),
            Parameter("background", c.background, "counts", lower=0.0),
        ] + ([Parameter("a_omega", 0.0, "meV", lower=-3.0, upper=3.0), Parameter("a_gamma", 0.0, "meV", lower=-3.0, upper=3.0)]
             if c.phonon_anomaly else [])

    def expected(self, batch: Mapping[str, Any], params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if getattr(self, "_operator", None) is None:
            c, energies = self.config, batch["energies"]
            fine = torch.arange(float(energies.min()) - c.padding, float(energies.max()) + c.padding, c.fine_step, dtype=torch.float64)
            self._operator = ResolutionOperator.build(energies, fine, fwhm=c.resolution_fwhm, kernel="pseudo_voigt", eta=c.resolution_eta)
        return expected_series(self.config, batch["energies"], batch["temperatures"], params, self._operator)


def phonon_anomaly_test(batch: Mapping[str, Any], config: IxsConfig | None = None) -> dict[str, float]:
    """Likelihood-ratio test of "no phonon anomaly" (``a_omega = a_gamma = 0``) on a temperature series.

    Fits the series with and without the anomaly terms (Poisson); ``statistic = 2 (NLL_null - NLL_alt)`` is
    compared with a chi-square of 2 degrees of freedom (Wilks; ixs.md section 6, our protocol). Returns the
    statistic, its p-value, and ``a_omega``, ``a_gamma`` with errors from the alternative fit.
    """
    from scipy.stats import chi2

    from zoo.fitting import fit

    config = config or IxsConfig()
    null_module = IxsFitter(dataclasses.replace(config, phonon_anomaly=False))
    alt_module = IxsFitter(dataclasses.replace(config, phonon_anomaly=True))
    null = fit(lambda p: null_module.expected(batch, p), batch["counts"], null_module.parameter_set)
    start = alt_module.parameter_set.with_values(null.values)  # nested models: start the alternative at the null optimum
    alt = fit(lambda p: alt_module.expected(batch, p), batch["counts"], start)
    statistic = max(0.0, 2 * (null.nll - alt.nll))
    return {
        "statistic": statistic, "p_value": float(chi2.sf(statistic, 2)),
        "a_omega": alt.values["a_omega"], "a_omega_error": alt.errors["a_omega"],
        "a_gamma": alt.values["a_gamma"], "a_gamma_error": alt.errors["a_gamma"],
    }


@register_model("ixs_cscr3sb5")
def ixs_cscr3sb5() -> IxsConfig:
    """Temperature-series defaults of ixs.md section 8 (placeholders)."""
    return IxsConfig()


@register_model("ixs_cscr3sb5_tiny")
def ixs_cscr3sb5_tiny() -> IxsConfig:
    return IxsConfig(fine_step=0.1, padding=15.0, max_iterations=150)
