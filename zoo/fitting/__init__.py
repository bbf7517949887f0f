"""Differentiable physics fitting: parameters with bounds, likelihoods, batched optimisers, uncertainties.

Shared by ``zoo.spinwave``, ``zoo.ixs`` and ``zoo.kagome``. Design: ``docs/cores/fitting.md``.

- ``Parameter`` / ``ParameterSet``: bounds, fixed flags, transforms; everything reported in physical units.
- ``poisson_nll``, ``poisson_deviance``, ``gaussian_chi2``: the likelihoods (Poisson default for counts).
- ``fit`` (LBFGS or Levenberg-Marquardt), ``fit_batched`` (many spectra at once), ``profile_interval``.
- ``ResolutionOperator`` (precomputed matrix) and ``fft_convolve``.
- ``FitResult`` / ``BatchFitResult``: values, errors, covariance, goodness of fit, ``report()``, ``plot()``.
- ``FitModule``: the ZooModule base of the fitters, so a fit runs under ``zoo run`` and goes to the hub.
"""

from zoo.fitting.fit import covariance_from_hessian, fit, fit_batched, profile_interval, uncertainties
from zoo.fitting.losses import gaussian_chi2, negative_log_likelihood, poisson_deviance, poisson_nll
from zoo.fitting.parameters import Parameter, ParameterSet, check_fit_options
from zoo.fitting.resolution import (
    ResolutionOperator,
    fft_convolve,
    gaussian_kernel,
    kernel_mass,
    lorentzian_kernel,
    pseudo_voigt_kernel,
    resolution_kernel,
    voigt_profile,
)
from zoo.fitting.result import BatchFitResult, FitResult

__all__ = [
    "BatchFitResult",
    "FitModule",
    "FitResult",
    "Parameter",
    "ParameterSet",
    "ResolutionOperator",
    "covariance_from_hessian",
    "fft_convolve",
    "fit",
    "fit_batched",
    "gaussian_chi2",
    "gaussian_kernel",
    "kernel_mass",
    "lorentzian_kernel",
    "negative_log_likelihood",
    "poisson_deviance",
    "poisson_nll",
    "profile_interval",
    "pseudo_voigt_kernel",
    "resolution_kernel",
    "voigt_profile",
    "uncertainties",
]


def __getattr__(name: str):
    if name == "FitModule":  # lightning is imported only when the Lightning fitter is used
        from zoo.fitting.module import FitModule

        return FitModule
    raise AttributeError(f"module 'zoo.fitting' has no attribute {name!r}")
