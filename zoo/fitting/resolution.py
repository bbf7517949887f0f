"""Resolution convolution as a precomputed linear operator (or an FFT on a uniform grid).

``fitting.md`` section 6 (our design): the model is evaluated on a fine grid padded well beyond the data
range; ``mu = R @ s_fine`` with ``R`` of shape ``[n_data, n_fine]`` built once. Each row holds the kernel
``k(x_data_i - x_fine_j)`` times the trapezoid weight of fine point ``j`` and is normalised to sum 1, so the
edges keep their weight and ``R`` applied to a constant returns that constant. Bin integration averages the
kernel over ``subsamples`` points inside each data bin. ``fwhm`` may be a callable of the data position
(energy-dependent resolution). Kernels: Gaussian, Lorentzian, pseudo-Voigt (fixed mixing ``eta``) and Voigt
(``scipy.special.voigt_profile``, exact Faddeeva form; built once, not differentiated).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = ["ResolutionOperator", "fft_convolve", "gaussian_kernel", "lorentzian_kernel", "pseudo_voigt_kernel"]

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))  # sigma = FWHM / 2.3548


def gaussian_kernel(x: torch.Tensor, fwhm: torch.Tensor | float) -> torch.Tensor:
    """Unit-area Gaussian of full width at half maximum ``fwhm`` at offsets ``x``."""
    sigma = fwhm * FWHM_TO_SIGMA
    return torch.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def lorentzian_kernel(x: torch.Tensor, fwhm: torch.Tensor | float) -> torch.Tensor:
    """Unit-area Lorentzian of full width ``fwhm`` (half width ``fwhm/2``)."""
    half = fwhm / 2
    return half / (math.pi * (x**2 + half**2))


def pseudo_voigt_kernel(x: torch.Tensor, fwhm: torch.Tensor | float, eta: float) -> torch.Tensor:
    """``eta * Lorentzian + (1 - eta) * Gaussian``, both of full width ``fwhm``."""
    return eta * lorentzian_kernel(x, fwhm) + (1 - eta) * gaussian_kernel(x, fwhm)


def _voigt_kernel(x: torch.Tensor, gaussian_fwhm: float, lorentzian_fwhm: float) -> torch.Tensor:
    from scipy.special import voigt_profile

    values = voigt_profile(x.detach().cpu().numpy(), gaussian_fwhm * FWHM_TO_SIGMA, lorentzian_fwhm / 2)
    return torch.as_tensor(values, dtype=x.dtype, device=x.device)


def _trapezoid_weights(grid: torch.Tensor) -> torch.Tensor:
    diffs = grid[1:] - grid[:-1]
    weights = torch.zeros_like(grid)
    weights[:-1] += diffs / 2
    weights[1:] += diffs / 2
    return weights


class ResolutionOperator:
    """``mu = R @ s``: a fixed, row-normalised resolution matrix from a fine model grid to the data grid.

    Args:
        data_grid: ``[n_data]`` centres of the data points (need not be uniform).
        fine_grid: ``[n_fine]`` increasing grid on which the model is evaluated (pad >= 4 widths beyond the
            data; more for Lorentzian tails).
        kernel: ``"gaussian"``, ``"lorentzian"``, ``"pseudo_voigt"`` or ``"voigt"``.
        fwhm: full width at half maximum; a number or a callable ``fwhm(data_grid) -> [n_data]``.
        eta: Lorentzian fraction of the pseudo-Voigt.
        lorentzian_fwhm: the Lorentzian width of a Voigt kernel (``fwhm`` is then its Gaussian width).
        bin_width: if given, average the kernel over the bin ``[x - w/2, x + w/2]`` of each data point.
        subsamples: points per bin for the bin average.

    Example::

        R = ResolutionOperator.build(torch.linspace(-5, 5, 41), torch.linspace(-10, 10, 801), fwhm=1.0)
        mu = R(model_on_fine_grid)      # [..., 801] -> [..., 41]
    """

    def __init__(self, matrix: torch.Tensor, data_grid: torch.Tensor, fine_grid: torch.Tensor) -> None:
        if matrix.shape != (data_grid.numel(), fine_grid.numel()):
            raise ValueError(f"matrix shape {tuple(matrix.shape)} != (n_data, n_fine) = ({data_grid.numel()}, {fine_grid.numel()})")
        self.matrix = matrix
        self.data_grid = data_grid
        self.fine_grid = fine_grid

    @classmethod
    def build(
        cls,
        data_grid: torch.Tensor,
        fine_grid: torch.Tensor,
        fwhm: float | Callable[[torch.Tensor], torch.Tensor],
        *,
        kernel: str = "gaussian",
        eta: float = 0.0,
        lorentzian_fwhm: float = 0.0,
        bin_width: float | None = None,
        subsamples: int = 5,
    ) -> "ResolutionOperator":
        data_grid = torch.as_tensor(data_grid, dtype=torch.float64).flatten()
        fine_grid = torch.as_tensor(fine_grid, dtype=data_grid.dtype).flatten()
        if data_grid.numel() == 0 or fine_grid.numel() < 2:
            raise ValueError(f"data_grid needs >= 1 point and fine_grid >= 2, got {data_grid.numel()} and {fine_grid.numel()}")
        if not bool((fine_grid[1:] > fine_grid[:-1]).all()):
            raise ValueError("fine_grid must be strictly increasing")
        if kernel not in ("gaussian", "lorentzian", "pseudo_voigt", "voigt"):
            raise ValueError(f"kernel must be gaussian, lorentzian, pseudo_voigt or voigt, got {kernel!r}")
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {eta}")
        widths = fwhm(data_grid) if callable(fwhm) else torch.full_like(data_grid, float(fwhm))
        widths = torch.as_tensor(widths, dtype=data_grid.dtype).expand_as(data_grid)
        if not bool((widths > 0).all()):
            raise ValueError(f"fwhm must be > 0 everywhere, got min {float(widths.min())}")
        if kernel == "voigt" and lorentzian_fwhm < 0:
            raise ValueError(f"lorentzian_fwhm must be >= 0, got {lorentzian_fwhm}")
        if data_grid.min() < fine_grid[0] or data_grid.max() > fine_grid[-1]:
            raise ValueError("fine_grid must cover the data grid (pad it by several resolution widths)")
        if bin_width is not None and subsamples >= 2:
            offsets = (torch.arange(subsamples, dtype=data_grid.dtype) + 0.5) / subsamples - 0.5  # inside the bin
            centres = data_grid[:, None] + bin_width * offsets[None, :]  # [n_data, subsamples]
        else:
            centres = data_grid[:, None]
        delta = centres[:, :, None] - fine_grid[None, None, :]  # [n_data, subsamples, n_fine]
        w = widths[:, None, None]
        if kernel == "gaussian":
            values = gaussian_kernel(delta, w)
        elif kernel == "lorentzian":
            values = lorentzian_kernel(delta, w)
        elif kernel == "pseudo_voigt":
            values = pseudo_voigt_kernel(delta, w, eta)
        else:
            if callable(fwhm):
                raise ValueError("kernel='voigt' needs a constant fwhm")
            values = _voigt_kernel(delta, float(widths[0]), float(lorentzian_fwhm))
        matrix = values.mean(1) * _trapezoid_weights(fine_grid)[None, :]  # [n_data, n_fine]
        matrix = matrix / matrix.sum(1, keepdim=True)  # rows sum to 1: edges keep their weight
        return cls(matrix, data_grid, fine_grid)

    def __call__(self, signal: torch.Tensor) -> torch.Tensor:
        """Apply to ``signal [..., n_fine]`` -> ``[..., n_data]`` (one matmul for a batch of spectra)."""
        if signal.shape[-1] != self.fine_grid.numel():
            raise ValueError(f"signal has {signal.shape[-1]} points on its last axis, the fine grid has {self.fine_grid.numel()}")
        if self.matrix.device != signal.device or self.matrix.dtype != signal.dtype:
            self.matrix = self.matrix.to(device=signal.device, dtype=signal.dtype)  # moved once, then cached
        return signal @ self.matrix.T

    def to(self, *args, **kwargs) -> "ResolutionOperator":
        return ResolutionOperator(self.matrix.to(*args, **kwargs), self.data_grid.to(*args, **kwargs), self.fine_grid.to(*args, **kwargs))


def fft_convolve(signal: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Linear convolution along the last axis, same length as ``signal``, zero-padded (no wrap-around).

    ``kernel`` has odd length ``2m + 1`` and is centred on its middle sample; sample spacing must equal the
    signal's. Equals ``sum_j kernel[j] signal[i + m - j]`` for every ``i`` (direct convolution).
    """
    n, k = signal.shape[-1], kernel.numel()
    if k % 2 == 0:
        raise ValueError(f"kernel length must be odd (centred), got {k}")
    size = n + k - 1
    spectrum = torch.fft.rfft(signal, n=size) * torch.fft.rfft(kernel.to(signal), n=size)
    full = torch.fft.irfft(spectrum, n=size)
    m = k // 2
    return full[..., m : m + n]
