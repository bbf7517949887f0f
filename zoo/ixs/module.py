"""``IxsFitter``: joint Poisson fit of an IXS temperature series (arXiv 2410.16465, docs/methods/ixs.md).

Per temperature ``T``:  ``I(E) = scale [S_DHO(T) (x) R](E) + [A_inc + I0 m(T)^2] R(E - E0) + b``
with shared phonon ``Omega``, ``Gamma`` (the paper's "no anomaly" hypothesis: a_Omega = a_Gamma = 0), the superlattice
elastic intensity ``I0 m(T)^2`` with ``m(T)`` from ``order_parameter`` (smoothing ``tau``, exponent ``beta`` fixed),
and a fixed resolution ``R`` applied by a ``ResolutionOperator`` from a padded fine grid to the phonon and evaluated
analytically at ``E - E0`` for the elastic line. ``resolution_kernel`` selects ``R``:

- ``"voigt"`` (the ``ixs_cscr3sb5`` preset): a true Voigt, Gaussian FWHM ``resolution_fwhm`` convolved with a Lorentzian
  of FWHM ``resolution_lorentzian_fwhm``, ``R(x) = Re w(z) / (sigma sqrt(2 pi))`` with the Faddeeva function ``w``
  (``zoo.fitting.resolution.voigt_profile``: exact, with exact derivatives in E0 for the gradient and the Hessian).
- ``"pseudo_voigt"`` (the dataclass default, for backward compatibility): ``eta L + (1 - eta) G`` with both parts of
  FWHM ``resolution_fwhm`` (docs/methods/ixs.md).

Both terms use one normalisation: the phonon operator is built with ``normalise="exact"``, so row ``i`` sums to the
kernel's mass inside the fine window, ``int_{E_0 - p}^{E_N + p} R(E_i - y) dy`` (``p = padding``), and
``[S (x) R](E_i)`` is the exact convolution of ``S`` on that window, like the analytic elastic line ``R(E_i - E0)`` (the
convolution of ``delta(E - E0)``). Rows that summed to 1 instead scaled the phonon up by ``1 / (1 - tail mass)`` against
the elastic line: 0.26-0.29 % with the ``ixs_cscr3sb5`` Voigt, 0.33-0.36 % with the pseudo-Voigt default (30 meV padding).

The placeholder Voigt widths of the preset (Gaussian 1.30 meV, Lorentzian 0.36 meV [U]) give a total FWHM of 1.503 meV
(measured on ``scipy.special.voigt_profile``) and a Lorentzian fraction 0.30 by Ida's pseudo-Voigt mixing formula, i.e.
about the line of the pseudo-Voigt default (FWHM 1.5 meV, eta 0.3); our choice, as the paper's analyser resolution is
not known (docs/methods/ixs.md).
"""

from __future__ import annotations

import dataclasses

from zoo.fitting.parameters import FIT_OPTION_FIELDS, check_fit_options
from typing import Any, ClassVar, Mapping

import torch

from zoo import register_model
from zoo.fitting.module import FitModule
from zoo.fitting.parameters import Parameter
from zoo.fitting.resolution import ResolutionOperator, resolution_kernel
from zoo.ixs.model import dho, order_parameter

__all__ = ["IxsConfig", "IxsFitter", "expected_series", "ixs_cscr3sb5", "ixs_cscr3sb5_tiny", "phonon_anomaly_test", "resolution_line",
           "resolution_operator"]

RESOLUTION_KERNELS = ("pseudo_voigt", "voigt")
VOIGT_GAUSSIAN_FWHM = 1.30  # meV, placeholder [U]: with the Lorentzian below, total FWHM ~1.5 meV, Lorentzian fraction ~0.3
VOIGT_LORENTZIAN_FWHM = 0.36  # meV, placeholder [U]


@dataclasses.dataclass
class IxsConfig:
    """Start values and fixed settings of the temperature-series fit (placeholders [U], docs/methods/ixs.md)."""

    omega: float = 5.5  # start value of the DHO energy Omega (meV)
    gamma: float = 0.8  # start value of the DHO HWHM Gamma (meV)
    phonon_amplitude: float = 300.0  # start value of the DHO amplitude (counts meV)
    incoherent_elastic: float = 200.0  # start value of the T-independent elastic intensity (counts meV)
    superlattice_intensity: float = 600.0  # start value of I0, the superlattice elastic intensity at T = 0 (counts meV)
    T_star: float = 50.0  # start value of the ordering temperature T* (K)
    beta: float = 0.3  # order-parameter exponent (fixed)
    smoothing: float = 0.5  # softplus width tau of m(T) near T* (K)
    background: float = 3.0  # start value of the flat background (counts per bin)
    resolution_kernel: str = "pseudo_voigt"  # resolution shape: "pseudo_voigt" or "voigt" (exact Faddeeva form)
    resolution_fwhm: float = 1.5  # resolution FWHM (meV), fixed: the full line for "pseudo_voigt", the Gaussian part for "voigt"
    resolution_eta: float = 0.3  # Lorentzian fraction of the pseudo-Voigt, fixed (unused by "voigt")
    resolution_lorentzian_fwhm: float = 0.0  # Lorentzian FWHM (meV) of the "voigt" kernel, fixed (unused by "pseudo_voigt")
    phonon_anomaly: bool = False  # add a_omega, a_gamma: Omega(T) = omega + a_omega m(T)^2, Gamma(T) = gamma + a_gamma m(T)^2
    padding: float = 30.0  # fine-grid padding beyond the data range (meV)
    fine_step: float = 0.05  # fine-grid step (meV)
    loss: str = "poisson"  # "poisson" or "gaussian"
    error_method: str = "hessian"  # "hessian" or "fisher"
    scale_covariance: bool = False  # lmfit-style rescaling
    max_iterations: int = 300  # LBFGS iterations per training step

    # a refit at new temperatures (zoo.init_from) may change the fit options, the numerics of the resolution grid and
    # the resolution of the new data; not beta, the smoothing or the anomaly terms (they change the model)
    finetune_safe_fields: ClassVar[tuple[str, ...]] = (*FIT_OPTION_FIELDS, "resolution_*",
                                                       "padding", "fine_step")

    def __post_init__(self) -> None:
        for name in ("omega", "gamma", "phonon_amplitude", "incoherent_elastic", "superlattice_intensity", "T_star", "beta",
                     "background", "resolution_fwhm", "padding", "fine_step"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.resolution_kernel not in RESOLUTION_KERNELS:
            raise ValueError(f"resolution_kernel must be one of {RESOLUTION_KERNELS}, got {self.resolution_kernel!r}")
        if not self.resolution_lorentzian_fwhm >= 0:
            raise ValueError(f"resolution_lorentzian_fwhm must be >= 0 meV, got {self.resolution_lorentzian_fwhm}")
        if self.resolution_kernel == "pseudo_voigt" and self.resolution_lorentzian_fwhm != 0:
            raise ValueError(f"resolution_lorentzian_fwhm={self.resolution_lorentzian_fwhm} is used only with resolution_kernel='voigt' "
                             f"(the pseudo-Voigt takes resolution_fwhm and resolution_eta)")
        if not 0 <= self.resolution_eta <= 1:
            raise ValueError(f"resolution_eta must lie in [0, 1], got {self.resolution_eta}")
        if self.smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {self.smoothing}")
        check_fit_options(self)


def resolution_operator(config: IxsConfig, energies: torch.Tensor) -> ResolutionOperator:
    """The phonon's resolution matrix from a fine grid padded by ``config.padding`` to the data ``energies``; rows sum to
    the kernel's exact mass inside the fine grid (``normalise="exact"``), the normalisation of the elastic line."""
    fine = torch.arange(float(energies.min()) - config.padding, float(energies.max()) + config.padding, config.fine_step, dtype=torch.float64)
    return ResolutionOperator.build(energies, fine, fwhm=config.resolution_fwhm, kernel=config.resolution_kernel,
                                    eta=config.resolution_eta, lorentzian_fwhm=config.resolution_lorentzian_fwhm, normalise="exact")


def resolution_line(config: IxsConfig, offset: torch.Tensor) -> torch.Tensor:
    """Unit-area resolution ``R(offset)`` (1/meV), differentiable in ``offset`` (the elastic line ``R(E - E0)``)."""
    return resolution_kernel(offset, config.resolution_fwhm, config.resolution_kernel, config.resolution_eta,
                             config.resolution_lorentzian_fwhm)


def expected_series(config: IxsConfig, energies: torch.Tensor, temperatures: torch.Tensor, params: Mapping[str, torch.Tensor],
                    operator: ResolutionOperator | None = None) -> torch.Tensor:
    """Expected counts ``[n_T, n_E]``."""
    if operator is None:
        operator = resolution_operator(config, energies)
    fine = operator.fine_grid
    T = temperatures[:, None]
    m = order_parameter(temperatures, params["T_star"], config.beta, config.smoothing)
    omega = params["omega"] + params.get("a_omega", 0.0) * m[:, None] ** 2  # [n_T, 1]; the hypothesis model of docs/methods/ixs.md
    gamma = params["gamma"] + params.get("a_gamma", 0.0) * m[:, None] ** 2
    phonon = operator(dho(fine[None, :], omega, gamma, params["phonon_amplitude"], T))  # [n_T, n_E]
    elastic = (params["incoherent_elastic"] + params["superlattice_intensity"] * m**2)[:, None]
    line = resolution_line(config, energies - params["E0"])[None, :]
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
        if getattr(self, "_operator", None) is None or not torch.equal(self._operator.data_grid, batch["energies"].to(self._operator.data_grid)):
            self._operator = resolution_operator(self.config, batch["energies"])
        return expected_series(self.config, batch["energies"], batch["temperatures"], params, self._operator)


def phonon_anomaly_test(batch: Mapping[str, Any], config: IxsConfig | None = None) -> dict[str, float]:
    """Likelihood-ratio test of "no phonon anomaly" (``a_omega = a_gamma = 0``) on a temperature series.

    Fits the series with and without the anomaly terms (Poisson); ``statistic = 2 (NLL_null - NLL_alt)`` is
    compared with a chi-square of 2 degrees of freedom (Wilks; docs/methods/ixs.md, our protocol). Returns the
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
    """Temperature-series defaults of docs/methods/ixs.md (placeholders) with a true Voigt resolution (Gaussian 1.30 meV,
    Lorentzian 0.36 meV FWHM [U])."""
    return IxsConfig(resolution_kernel="voigt", resolution_fwhm=VOIGT_GAUSSIAN_FWHM, resolution_lorentzian_fwhm=VOIGT_LORENTZIAN_FWHM)


@register_model("ixs_cscr3sb5_tiny")
def ixs_cscr3sb5_tiny() -> IxsConfig:
    return IxsConfig(resolution_kernel="voigt", resolution_fwhm=VOIGT_GAUSSIAN_FWHM, resolution_lorentzian_fwhm=VOIGT_LORENTZIAN_FWHM,
                     fine_step=0.1, padding=15.0, max_iterations=150)
