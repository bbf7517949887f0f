"""Resolution convolution as a precomputed linear operator (or an FFT on a uniform grid).

``docs/cores/fitting.md`` (our design): the model is evaluated on a fine grid padded well beyond the data
range; ``mu = R @ s_fine`` with ``R`` of shape ``[n_data, n_fine]`` built once. Each row holds the kernel
``k(x_data_i - x_fine_j)`` times the trapezoid weight of fine point ``j`` and is then rescaled to a target sum
(``normalise``): ``"window"`` (default) makes every row sum to 1, so the edges keep their weight and ``R``
applied to a constant returns that constant; ``"exact"`` makes row ``i`` sum to the kernel's exact mass inside
the fine window, ``int_{x_0}^{x_N} k(x_i - y) dy``, so that ``R s`` is the exact convolution of ``s`` restricted to
the fine grid (the Lorentzian tails cut by the window are lost, not redistributed; use it when other terms of the
model are the analytic kernel itself, e.g. an elastic line ``k(x - E0)``). Bin integration averages the
kernel over ``subsamples`` points inside each data bin. ``fwhm`` may be a callable of the data position
(energy-dependent resolution). Kernels: Gaussian, Lorentzian, pseudo-Voigt (fixed mixing ``eta``) and Voigt
(exact Faddeeva form, ``voigt_profile``).

``voigt_profile(x, sigma, gamma)`` is also a differentiable function on its own (first and higher derivatives in
``x``, ``sigma`` and ``gamma``), for line shapes whose position or widths are fitted (e.g. an elastic line).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = ["KERNELS", "NORMALISATIONS", "ResolutionOperator", "fft_convolve", "gaussian_kernel", "kernel_mass", "lorentzian_kernel",
           "pseudo_voigt_kernel", "resolution_kernel", "voigt_profile"]

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


_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)
_TWO_OVER_SQRTPI = 2.0 / math.sqrt(math.pi)


def _voigt_pair_numpy(x: torch.Tensor, sigma: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Re w(z), Im w(z)) / (sigma sqrt(2 pi))`` by ``scipy.special.wofz`` on the CPU, back on the input device."""
    from scipy.special import wofz

    if not bool((sigma > 0).all()):  # checked here, on plain tensors (the inputs may be vmap/jvp wrappers outside)
        raise ValueError(f"voigt_profile: sigma must be > 0, got min {float(sigma.min())}")
    if not bool((gamma >= 0).all()):
        raise ValueError(f"voigt_profile: gamma must be >= 0, got min {float(gamma.min())}")
    x, sigma, gamma = torch.broadcast_tensors(x, sigma, gamma)
    xs, ss, gs = (t.detach().cpu().numpy() for t in (x, sigma, gamma))
    z = (xs + 1j * gs) / (ss * _SQRT2)
    w = wofz(z) / (ss * _SQRT2PI)
    real = torch.as_tensor(w.real.copy(), dtype=x.dtype, device=x.device)
    imag = torch.as_tensor(w.imag.copy(), dtype=x.dtype, device=x.device)
    return real, imag


def _voigt_pair_tangents(x, sigma, gamma, real, imag):
    """Partial derivatives of ``(V, W) = (Re, Im) w(z) / (sigma sqrt(2 pi))`` (see ``_VoigtPair``).

    With ``a + i b = z``, ``c = 1 / (sigma sqrt(2 pi))`` and ``P = c w'(z) = -2 z (V + i W) + 2 i c / sqrt(pi)``:
    ``d(V + iW)/dx = P / (sigma sqrt2)``, ``d(V + iW)/dgamma = i P / (sigma sqrt2)``,
    ``d(V + iW)/dsigma = -(V + iW)/sigma - z P / sigma`` (``dz/dsigma = -z/sigma``, ``dc/dsigma = -c/sigma``).
    Only torch operations on inputs and outputs, so autograd can differentiate this again (Hessians).
    """
    root = sigma * _SQRT2
    a, b = x / root, gamma / root
    c = 1.0 / (sigma * _SQRT2PI)
    p_re = -2.0 * (a * real - b * imag)
    p_im = -2.0 * (a * imag + b * real) + _TWO_OVER_SQRTPI * c
    zp_re = a * p_re - b * p_im  # Re(z P)
    zp_im = a * p_im + b * p_re  # Im(z P)
    d_real = {"x": p_re / root, "gamma": -p_im / root, "sigma": -(real + zp_re) / sigma}
    d_imag = {"x": p_im / root, "gamma": p_re / root, "sigma": -(imag + zp_im) / sigma}
    return d_real, d_imag


class _VoigtPair(torch.autograd.Function):
    """``(V, W)``: real and imaginary parts of ``w(z) / (sigma sqrt(2 pi))``, ``z = (x + i gamma) / (sigma sqrt2)``.

    Forward: ``scipy.special.wofz`` (Faddeeva function, CPU). Backward and forward-mode (``jvp``) use
    ``w'(z) = -2 z w(z) + 2i / sqrt(pi)`` (Abramowitz & Stegun 7.1.20) with the chain rule in
    ``_voigt_pair_tangents``. The outputs are saved and reused, so double backward (Hessians) is exact; ``vmap``
    is elementwise (batch dims moved to the front and broadcast).
    """

    @staticmethod
    def forward(x, sigma, gamma):
        return _voigt_pair_numpy(x, sigma, gamma)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, sigma, gamma = inputs
        real, imag = output
        ctx.save_for_backward(x, sigma, gamma, real, imag)
        ctx.save_for_forward(x, sigma, gamma, real, imag)
        ctx.shapes = (x.shape, sigma.shape, gamma.shape)

    @staticmethod
    def backward(ctx, grad_real, grad_imag):
        x, sigma, gamma, real, imag = ctx.saved_tensors
        d_real, d_imag = _voigt_pair_tangents(x, sigma, gamma, real, imag)
        grads = []
        for name, shape, needed in zip(("x", "sigma", "gamma"), ctx.shapes, ctx.needs_input_grad):
            grads.append((grad_real * d_real[name] + grad_imag * d_imag[name]).sum_to_size(shape) if needed else None)
        return tuple(grads)

    @staticmethod
    def jvp(ctx, tangent_x, tangent_sigma, tangent_gamma):
        x, sigma, gamma, real, imag = ctx.saved_tensors
        d_real, d_imag = _voigt_pair_tangents(x, sigma, gamma, real, imag)
        out_real = torch.zeros_like(real)
        out_imag = torch.zeros_like(imag)
        for name, tangent in (("x", tangent_x), ("sigma", tangent_sigma), ("gamma", tangent_gamma)):
            if tangent is not None:
                out_real = out_real + d_real[name] * tangent
                out_imag = out_imag + d_imag[name] * tangent
        return out_real, out_imag

    @staticmethod
    def vmap(info, in_dims, x, sigma, gamma):
        def front(t, dim):  # batch dim first, size-1 batch dim for unbatched inputs so that broadcasting lines up
            if dim is None:
                return t.unsqueeze(0) if t.ndim else t.reshape(1)
            return t.movedim(dim, 0)

        tensors = [front(t, d) for t, d in zip((x, sigma, gamma), in_dims)]
        rank = max(t.ndim for t in tensors)
        tensors = [t.reshape(t.shape[:1] + (1,) * (rank - t.ndim) + t.shape[1:]) for t in tensors]
        return _VoigtPair.apply(*tensors), (0, 0)


def voigt_profile(x, sigma, gamma) -> torch.Tensor:
    """Unit-area Voigt profile (Gaussian ``sigma`` convolved with Lorentzian half width ``gamma``), differentiable.

        V(x; sigma, gamma) = Re w(z) / (sigma sqrt(2 pi)),   z = (x + i gamma) / (sigma sqrt 2)

    with ``w(z) = exp(-z^2) erfc(-i z)`` the Faddeeva function (Abramowitz & Stegun 7.1.3; evaluated by
    ``scipy.special.wofz``, i.e. the Faddeeva package of S. G. Johnson). Derivatives are exact, from
    ``w'(z) = -2 z w(z) + 2i / sqrt(pi)`` (A&S 7.1.20) and ``dw/dx = w'/(sigma sqrt2)``, ``dw/dgamma = i w'/(sigma sqrt2)``,
    ``dw/dsigma = -z w'/sigma``; writing ``w / (sigma sqrt(2 pi)) = V + i W`` and ``P = -2 z (V + i W) + 2i/(sigma sqrt(2) pi)``:

        dV/dx = Re P / (sigma sqrt2),   dV/dgamma = -Im P / (sigma sqrt2),   dV/dsigma = -(V + Re(z P)) / sigma

    The backward uses ``V`` and ``W`` saved from the forward, so second derivatives (Hessian errors) are exact
    as well; forward mode (``torch.func.jvp``) and ``torch.func.vmap`` are supported.

    The forward runs in numpy on the CPU (float64); the result returns to the input's device and dtype, so on a
    GPU each call costs a host round trip (cheap for elastic lines of a few hundred points).

    Args:
        x: offsets from the line centre (any shape).
        sigma: Gaussian standard deviation (``FWHM_G / 2.3548``), > 0; broadcastable to ``x``.
        gamma: Lorentzian half width at half maximum (``FWHM_L / 2``), >= 0; broadcastable to ``x``.

    Returns:
        ``V`` with the broadcast shape; equals ``scipy.special.voigt_profile(x, sigma, gamma)``.

    Example::

        E = torch.linspace(-5, 5, 101, dtype=torch.float64)
        line = voigt_profile(E - E0, 1.3 / 2.3548, 0.18)    # Gaussian FWHM 1.3, Lorentzian FWHM 0.36

    References: M. Abramowitz & I. A. Stegun, Handbook of Mathematical Functions, 7.1.3 and 7.1.20;
    Faddeeva package (S. G. Johnson, http://ab-initio.mit.edu/Faddeeva) as wrapped by ``scipy.special.wofz``.
    """
    x = x if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float64)
    sigma = sigma if torch.is_tensor(sigma) else torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    gamma = gamma if torch.is_tensor(gamma) else torch.as_tensor(gamma, dtype=x.dtype, device=x.device)
    return _VoigtPair.apply(x, sigma, gamma)[0]


KERNELS = ("gaussian", "lorentzian", "pseudo_voigt", "voigt")


def resolution_kernel(x: torch.Tensor, fwhm: torch.Tensor | float, kernel: str = "gaussian", eta: float = 0.0,
                      lorentzian_fwhm: float = 0.0) -> torch.Tensor:
    """Unit-area resolution line ``R(x)`` by name, differentiable in ``x``: ``fwhm`` is the Gaussian (or Lorentzian)
    FWHM; ``eta`` is used by ``pseudo_voigt`` only, ``lorentzian_fwhm`` by ``voigt`` only (a Gaussian of FWHM ``fwhm``
    convolved with a Lorentzian of FWHM ``lorentzian_fwhm``, ``voigt_profile``)."""
    if kernel == "gaussian":
        return gaussian_kernel(x, fwhm)
    if kernel == "lorentzian":
        return lorentzian_kernel(x, fwhm)
    if kernel == "pseudo_voigt":
        return pseudo_voigt_kernel(x, fwhm, eta)
    if kernel == "voigt":
        return voigt_profile(x, fwhm * FWHM_TO_SIGMA, lorentzian_fwhm / 2)
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


def _gaussian_mass(lower: torch.Tensor, upper: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    root = sigma * _SQRT2
    return 0.5 * (torch.erf(upper / root) - torch.erf(lower / root))


def _lorentzian_mass(lower: torch.Tensor, upper: torch.Tensor, half: float | torch.Tensor) -> torch.Tensor:
    return (torch.atan(upper / half) - torch.atan(lower / half)) / math.pi


def kernel_mass(lower: torch.Tensor, upper: torch.Tensor, fwhm: torch.Tensor | float, kernel: str = "gaussian",
                eta: float = 0.0, lorentzian_fwhm: float = 0.0) -> torch.Tensor:
    """``int_lower^upper R(x) dx`` of the unit-area line ``resolution_kernel(x, ...)`` (same arguments), elementwise.

    Gaussian ``(erf(u / sigma sqrt2) - erf(l / sigma sqrt2)) / 2``; Lorentzian ``(atan(u / h) - atan(l / h)) / pi``
    (``h = fwhm / 2``); pseudo-Voigt their mixture. Voigt (Gaussian ``sigma`` convolved with Lorentzian ``gamma``):
    the Lorentzian mass averaged over the Gaussian shift ``t``,

        int_l^u V dx = int G(t; sigma) [atan((u - t)/gamma) - atan((l - t)/gamma)] / pi dt,

    by the trapezoid rule on ``|t| <= 12 sigma`` with step ``min(sigma, gamma) / 8`` (at most 20001 nodes): the
    integrand is analytic in a strip of half width ``gamma`` about the real axis and the Gaussian weight is smooth,
    so the error falls like ``exp(-2 pi gamma / step)`` (< 1e-20 here) plus the Gaussian mass beyond 12 sigma
    (~ 1e-32). Not differentiable (used to build fixed operators).
    """
    lower, upper = torch.broadcast_tensors(torch.as_tensor(lower, dtype=torch.float64), torch.as_tensor(upper, dtype=torch.float64))
    if kernel == "gaussian":
        return _gaussian_mass(lower, upper, fwhm * FWHM_TO_SIGMA)
    if kernel == "lorentzian":
        return _lorentzian_mass(lower, upper, fwhm / 2)
    if kernel == "pseudo_voigt":
        return eta * _lorentzian_mass(lower, upper, fwhm / 2) + (1 - eta) * _gaussian_mass(lower, upper, fwhm * FWHM_TO_SIGMA)
    if kernel != "voigt":
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    sigma, gamma = float(fwhm) * FWHM_TO_SIGMA, lorentzian_fwhm / 2
    if gamma == 0:
        return _gaussian_mass(lower, upper, sigma)
    nodes = min(20001, 2 * math.ceil(12 * sigma / (min(sigma, gamma) / 8)) + 1)
    t = torch.linspace(-12 * sigma, 12 * sigma, nodes, dtype=torch.float64)
    weights = gaussian_kernel(t, float(fwhm)) * (t[1] - t[0])  # trapezoid: the end weights (~1e-32) do not matter
    flat_l, flat_u = lower.reshape(-1, 1), upper.reshape(-1, 1)
    mass = torch.cat([(_lorentzian_mass(flat_l[k:k + 256] - t, flat_u[k:k + 256] - t, gamma) * weights).sum(1)
                      for k in range(0, max(flat_l.shape[0], 1), 256)]) if flat_l.numel() else flat_l.reshape(-1)
    return mass.reshape(lower.shape)


NORMALISATIONS = ("window", "exact")


def _trapezoid_weights(grid: torch.Tensor) -> torch.Tensor:
    diffs = grid[1:] - grid[:-1]
    weights = torch.zeros_like(grid)
    weights[:-1] += diffs / 2
    weights[1:] += diffs / 2
    return weights


class ResolutionOperator:
    """``mu = R @ s``: a fixed, row-normalised resolution matrix from a fine model grid to the data grid.

    Row ``i`` is ``R_ij = c_i <k(x_i - y_j)> w_j`` (``w_j`` trapezoid weights of the fine grid, ``<.>`` the bin
    average when ``bin_width`` is given) with ``c_i`` chosen so that ``sum_j R_ij`` equals a target ``M_i``:

    - ``normalise="window"`` (default): ``M_i = 1``. A constant passes unchanged, but the kernel mass outside the
      fine window is put back inside it: with Lorentzian tails (``lorentzian``, ``pseudo_voigt``, ``voigt``) every
      row is scaled up by ``1 / (1 - tail mass)``, about ``gamma / (pi d)`` per side for a window edge at distance
      ``d`` (0.26-0.29 % for the ``ixs_cscr3sb5`` preset: Lorentzian FWHM 0.36 meV, 30 meV padding).
    - ``normalise="exact"``: ``M_i = <int_{y_0}^{y_N} k(x_i - y) dy>`` (``kernel_mass``), so ``R s`` is the exact
      convolution ``int k(x_i - y) s(y) dy`` of ``s`` on the window (zero outside it); ``c_i`` only removes the
      quadrature error of the trapezoid sum. A line that is the analytic kernel itself (an elastic line
      ``A k(x - E0)``, i.e. ``s = A delta(y - E0)``) then agrees with ``R`` applied to that delta function.

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
        normalise: ``"window"`` (rows sum to 1) or ``"exact"`` (rows sum to the kernel mass inside the window).

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
        normalise: str = "window",
    ) -> "ResolutionOperator":
        data_grid = torch.as_tensor(data_grid, dtype=torch.float64).flatten()
        fine_grid = torch.as_tensor(fine_grid, dtype=data_grid.dtype).flatten()
        if data_grid.numel() == 0 or fine_grid.numel() < 2:
            raise ValueError(f"data_grid needs >= 1 point and fine_grid >= 2, got {data_grid.numel()} and {fine_grid.numel()}")
        if not bool((fine_grid[1:] > fine_grid[:-1]).all()):
            raise ValueError("fine_grid must be strictly increasing")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
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
        if kernel == "voigt" and callable(fwhm):
            raise ValueError("kernel='voigt' needs a constant fwhm")
        w = float(widths[0]) if kernel == "voigt" else widths[:, None, None]
        with torch.no_grad():
            values = resolution_kernel(delta, w, kernel, eta, lorentzian_fwhm)
        matrix = values.mean(1) * _trapezoid_weights(fine_grid)[None, :]  # [n_data, n_fine]
        if normalise == "window":
            target = torch.ones_like(data_grid)[:, None]  # rows sum to 1: edges keep their weight
        else:  # the kernel's exact mass inside the fine window: R s is the exact convolution of s on the window
            target = kernel_mass(fine_grid[0] - centres, fine_grid[-1] - centres, w[:, :, 0] if torch.is_tensor(w) else w,
                                 kernel, eta, lorentzian_fwhm).mean(1, keepdim=True)
        matrix = matrix * (target / matrix.sum(1, keepdim=True))
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
