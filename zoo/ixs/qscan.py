"""Elastic superlattice Q-scans: Lorentzian (x) Gaussian Q resolution (a Voigt built with the resolution operator)
and the correlation length with a stated convention (docs/methods/ixs.md).

    I(q) = [I0 / (1 + ((q - q0)/HWHM)^2)] (x) R_q + b,    xi = 1/HWHM  ("lorentzian" convention, q in 1/A)

The Lorentzian is evaluated on a fine grid padded by ``padding_hwhm`` widths and multiplied into the Gaussian
resolution operator (rows normalised), so the Voigt is differentiable with no Faddeeva function.
"""

from __future__ import annotations

import math

import torch

from zoo.fitting import FitResult, Parameter, ResolutionOperator, fit
from zoo.ixs.model import superlattice_lorentzian

__all__ = ["fit_superlattice_scan", "rlu_to_inverse_angstrom"]


def rlu_to_inverse_angstrom(width_rlu: float, a: float) -> float:
    """A width along a hexagonal a* in r.l.u. -> 1/A: ``|a*| = 4 pi / (sqrt(3) a)`` (a in A)."""
    if a <= 0:
        raise ValueError(f"lattice constant a must be > 0 A, got {a}")
    return width_rlu * 4 * math.pi / (math.sqrt(3) * a)


def fit_superlattice_scan(
    q,
    counts,
    *,
    resolution_fwhm: float,
    q0: float,
    hwhm: float,
    amplitude: float,
    background: float = 1.0,
    fine_points: int = 4001,
    padding: float | None = None,
) -> tuple[FitResult, float, float]:
    """Poisson fit of a Lorentzian superlattice peak with a fixed Gaussian Q resolution (FWHM, 1/A).

    Returns ``(result, xi, xi_error)`` with ``xi = 1/HWHM`` (A) and its error propagated from the HWHM error.
    """
    q = torch.as_tensor(q, dtype=torch.float64)
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if q.ndim != 1 or q.shape != counts.shape:
        raise ValueError(f"q {tuple(q.shape)} and counts {tuple(counts.shape)} must be 1-D of the same length")
    span = float(q.max() - q.min())
    pad = padding if padding is not None else max(4 * resolution_fwhm, span)
    fine = torch.linspace(float(q.min()) - pad, float(q.max()) + pad, fine_points, dtype=torch.float64)
    operator = ResolutionOperator.build(q, fine, fwhm=resolution_fwhm)

    def model(p):
        return operator(superlattice_lorentzian(fine, p["q0"], p["hwhm"], p["amplitude"])) + p["background"]

    parameters = [
        Parameter("q0", q0, "1/A", lower=float(q.min()), upper=float(q.max())),
        Parameter("hwhm", hwhm, "1/A", lower=1e-6, upper=span),
        Parameter("amplitude", amplitude, "counts", lower=0.0),
        Parameter("background", background, "counts", lower=0.0),
    ]
    result = fit(model, counts, parameters)
    width, error = result.values["hwhm"], result.errors["hwhm"]
    return result, 1.0 / width, error / width**2
