"""X-ray phonon line shapes and short-range order in CsCr3Sb5.

Paper: "Absence of Acoustic Phonon Anomaly in a Kagome Metal with Short-ranged Structural Modulation",
arXiv 2410.16465. From the paper [S]: T* ~ 55 K, a short-ranged 4x1x1 superlattice below T*, no significant
acoustic-phonon anomaly. Everything else (widths, energies, resolution) is a placeholder [U] (docs/methods/ixs.md).

Damped harmonic oscillator with detailed balance (Fak & Dorner, Physica B 234-236, 1107 (1997); docs/methods/ixs.md):

    chi''(E) = (A/pi) 4 Gamma Omega E / [(E^2 - Omega^2)^2 + 4 Gamma^2 E^2]
    S(E)     = chi''(E) / (1 - exp(-E / k_B T))      evaluated as  [chi''(E)/E] * [E / -expm1(-E / k_B T)]

(regular at E = 0, where the second factor is k_B T). Sum rules: int chi''/E dE = 2A/Omega; int E S(E) dE = A Omega.
Gamma is the HWHM of each Lorentzian component (centred at +-sqrt(Omega^2 - Gamma^2)).

Order parameter (docs/methods/ixs.md): ``m(T) = max(0, 1 - T/T*)^beta``; ``smoothing > 0`` replaces the kink by
``(tau softplus((T* - T)/tau) / T*)^beta`` so that gradients in T* stay finite (our choice).
Correlation length conventions (section 5): Lorentzian ``xi = 1/HWHM``; squared Lorentzian ``xi = sqrt(sqrt2 - 1)/HWHM``;
Gaussian ``xi = 1/sigma`` ("inverse_sigma") or domain size ``L = 2 pi / FWHM`` ("domain_size").
"""

from __future__ import annotations

import math

import torch

__all__ = ["K_BOLTZMANN_MEV", "XI_CONVENTIONS", "correlation_length", "dho", "dho_chi", "order_parameter", "superlattice_lorentzian"]

K_BOLTZMANN_MEV = 0.08617333262  # meV/K
XI_CONVENTIONS = ("lorentzian", "lorentzian_squared", "gaussian_inverse_sigma", "gaussian_domain_size")


def _t(x) -> torch.Tensor:
    return x if torch.is_tensor(x) else torch.tensor(x, dtype=torch.float64)


def dho_chi(E, omega, gamma, amplitude) -> torch.Tensor:
    """``chi''(E)`` of the damped harmonic oscillator (odd in E)."""
    E = _t(E)
    return amplitude / math.pi * 4 * gamma * omega * E / ((E**2 - omega**2) ** 2 + 4 * gamma**2 * E**2)


def dho(E, omega, gamma, amplitude, temperature) -> torch.Tensor:
    """``S(E)`` with detailed balance ``S(-E) = exp(-E / k_B T) S(E)``; E in meV (energy loss > 0), T in K."""
    E = _t(E)
    if torch.is_tensor(temperature) and bool((temperature <= 0).any()) or (not torch.is_tensor(temperature) and temperature <= 0):
        raise ValueError(f"temperature must be > 0 K, got {temperature}")
    kT = K_BOLTZMANN_MEV * temperature
    chi_over_E = amplitude / math.pi * 4 * gamma * omega / ((E**2 - omega**2) ** 2 + 4 * gamma**2 * E**2)
    x = E / kT
    safe = torch.where(x.abs() < 1e-8, torch.ones_like(x), x)
    bose = torch.where(x.abs() < 1e-8, kT * (1 + x / 2), E / -torch.expm1(-safe))  # E (n + 1), -> k_B T at E = 0
    return chi_over_E * bose


def order_parameter(temperature, T_star, beta, smoothing: float = 0.0) -> torch.Tensor:
    """``m(T)``: ``max(0, 1 - T/T*)^beta`` (exactly 0 at and above T*), or its softplus-smoothed form."""
    T = _t(temperature)
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0 K, got {smoothing}")
    if smoothing == 0:
        return torch.clamp(1 - T / T_star, min=0.0) ** beta
    z = (T_star - T) / smoothing
    # log softplus(z), = z for z << 0 (no underflow to 0, so all derivatives stay finite far above T*)
    log_softplus = torch.where(z < -30, z, torch.log(torch.nn.functional.softplus(torch.clamp(z, min=-30))))
    return torch.exp(beta * (math.log(smoothing) + log_softplus - torch.log(torch.as_tensor(T_star, dtype=torch.float64))))


def superlattice_lorentzian(q, q0, hwhm, amplitude) -> torch.Tensor:
    """Ornstein-Zernike ``I0 / (1 + ((q - q0)/HWHM)^2)`` (q in 1/A)."""
    q = _t(q)
    return amplitude / (1 + ((q - q0) / hwhm) ** 2)


def correlation_length(width: float, convention: str) -> float:
    """Correlation length (A) from a fitted width (1/A): HWHM for the Lorentzian conventions, FWHM for the Gaussian ones."""
    if convention not in XI_CONVENTIONS:
        raise ValueError(f"convention must be one of {XI_CONVENTIONS}, got {convention!r}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    if convention == "lorentzian":
        return 1.0 / width
    if convention == "lorentzian_squared":
        return math.sqrt(math.sqrt(2) - 1) / width
    if convention == "gaussian_inverse_sigma":
        return 2 * math.sqrt(2 * math.log(2)) / width
    return 2 * math.pi / width
