"""Likelihoods for counts and for data with known error bars, with input checks.

Poisson (counts ``y``, model ``mu > 0``; ``docs/cores/fitting.md``, standard result, Baker & Cousins,
Nucl. Instrum. Meth. 221, 437 (1984)):

    NLL = sum_i [mu_i - y_i log mu_i]                                 (constant sum log y_i! dropped)
    D   = 2 sum_i [y_i log(y_i / mu_i) - (y_i - mu_i)],  y log y = 0 at y = 0   (D = 2 NLL + const)

Gaussian with known ``sigma``: ``chi2 = sum_i ((y_i - mu_i) / sigma_i)^2`` and ``NLL = chi2 / 2``.
One internal loss (the NLL, errordef 0.5) is used everywhere; covariance = inverse Hessian of the NLL.
"""

from __future__ import annotations

import torch

__all__ = ["LOSSES", "check_data", "check_model_output", "gaussian_chi2", "negative_log_likelihood", "poisson_deviance", "poisson_nll"]

LOSSES = ("poisson", "gaussian")


def _first_bad(mask: torch.Tensor) -> tuple[int, ...]:
    index = torch.nonzero(mask)[0]
    return tuple(int(i) for i in index)


def check_data(data: torch.Tensor, loss: str, sigma: torch.Tensor | None = None) -> None:
    """Raise ``ValueError`` naming the value for empty, non-finite or (Poisson) negative data and bad sigma."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if data.numel() == 0:
        raise ValueError(f"data is empty (shape {tuple(data.shape)}); nothing to fit")
    bad = ~torch.isfinite(data)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"data must be finite; data{list(i)} = {data[i].item()} ({int(bad.sum())} non-finite values)")
    if loss == "poisson":
        negative = data < 0
        if negative.any():
            i = _first_bad(negative)
            raise ValueError(f"Poisson counts must be >= 0; data{list(i)} = {data[i].item()} ({int(negative.sum())} negative values)")
    if loss == "gaussian":
        if sigma is None:
            raise ValueError("loss='gaussian' needs sigma (the known error bars of the data)")
        if sigma.shape != data.shape:
            raise ValueError(f"sigma has shape {tuple(sigma.shape)} but data has shape {tuple(data.shape)}")
        bad = ~(torch.isfinite(sigma) & (sigma > 0))
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(f"sigma must be finite and > 0; sigma{list(i)} = {sigma[i].item()}")


def check_model_output(mu: torch.Tensor, data: torch.Tensor, loss: str) -> None:
    """Raise ``ValueError`` if the model's expected values do not match the data or are not usable."""
    if mu.shape != data.shape:
        raise ValueError(f"the model returned shape {tuple(mu.shape)} but the data has shape {tuple(data.shape)}")
    bad = ~torch.isfinite(mu)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"the model returned a non-finite value at the start: model{list(i)} = {mu[i].item()}")
    if loss == "poisson" and (mu <= 0).any():
        i = _first_bad(mu <= 0)
        raise ValueError(
            f"a Poisson fit needs expected counts > 0 everywhere; model{list(i)} = {mu[i].item()} at the start "
            "(add a background or change the start values)"
        )


def poisson_nll(mu: torch.Tensor, y: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """``sum (mu - y log mu)`` over ``dim`` (all by default); ``y log mu`` is 0 where ``y = 0``."""
    term = mu - torch.xlogy(y, mu)
    return term.sum() if dim is None else term.sum(dim)


def poisson_deviance(mu: torch.Tensor, y: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """``2 sum [y log(y/mu) - (y - mu)]`` with ``y log y = 0`` at ``y = 0``."""
    term = 2 * (torch.xlogy(y, y) - torch.xlogy(y, mu) - (y - mu))
    return term.sum() if dim is None else term.sum(dim)


def gaussian_chi2(mu: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """``sum ((y - mu) / sigma)^2``."""
    term = ((y - mu) / sigma) ** 2
    return term.sum() if dim is None else term.sum(dim)


def negative_log_likelihood(
    mu: torch.Tensor, y: torch.Tensor, loss: str, sigma: torch.Tensor | None = None, dim=None
) -> torch.Tensor:
    """Poisson NLL or ``chi2 / 2``: the one internal loss (errordef 0.5)."""
    if loss == "poisson":
        return poisson_nll(mu, y, dim)
    return 0.5 * gaussian_chi2(mu, y, sigma, dim)


def goodness(mu: torch.Tensor, y: torch.Tensor, loss: str, sigma: torch.Tensor | None = None, dim=None) -> torch.Tensor:
    """Poisson deviance or Gaussian chi-square (the number compared with the degrees of freedom)."""
    return poisson_deviance(mu, y, dim) if loss == "poisson" else gaussian_chi2(mu, y, sigma, dim)
