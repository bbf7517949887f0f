"""zoo.fitting.voigt_profile: exact values, exact derivatives (first, second, forward mode, vmap), limits, area."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.special import voigt_profile as scipy_voigt

from zoo.fitting.resolution import gaussian_kernel, lorentzian_kernel, voigt_profile


@pytest.mark.parametrize("sigma, gamma", [(0.7, 0.3), (0.05, 2.0), (3.0, 0.01), (1.0, 0.0)])
def test_values_match_scipy(sigma, gamma):
    x = torch.linspace(-30, 30, 1201, dtype=torch.float64)
    ours = voigt_profile(x, sigma, gamma).numpy()
    reference = scipy_voigt(x.numpy(), sigma, gamma)
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12 * reference.max())


def test_gradcheck_in_x_sigma_gamma_first_and_second_order():
    generator = torch.Generator().manual_seed(0)
    x = (4 * torch.rand(9, dtype=torch.float64, generator=generator) - 2).requires_grad_()
    sigma = (0.2 + torch.rand(9, dtype=torch.float64, generator=generator)).requires_grad_()
    gamma = (0.05 + torch.rand(9, dtype=torch.float64, generator=generator)).requires_grad_()
    assert torch.autograd.gradcheck(voigt_profile, (x, sigma, gamma), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(voigt_profile, (x, sigma, gamma))
    # broadcast scalars (a fitted width shared by all points): gradients summed back to the scalar's shape
    s0 = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    g0 = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(voigt_profile, (x, s0, g0), check_forward_ad=True)


def test_func_jvp_under_vmap_matches_reverse_mode():
    """The path ``fit_batched`` takes: vmapped forward-mode JVPs of a batched model."""
    x = torch.linspace(-4, 4, 41, dtype=torch.float64)
    model = lambda p: voigt_profile(x[None, :] - p[:, :1], p[:, 1:2], p[:, 2:3])  # noqa: E731
    p = torch.tensor([[0.1, 0.7, 0.3], [-0.2, 0.5, 0.1]], dtype=torch.float64)
    tangents = torch.eye(3, dtype=torch.float64)[:, None, :].expand(3, 2, 3).contiguous()
    _, columns = torch.func.vmap(lambda t: torch.func.jvp(model, (p,), (t,)), out_dims=(None, 0))(tangents)  # [3, 2, 41]
    full = torch.autograd.functional.jacobian(model, p)  # [2, 41, 2, 3]
    for b in range(2):
        torch.testing.assert_close(columns[:, b].T, full[b, :, b], rtol=1e-12, atol=1e-14)


def test_unit_area_and_gaussian_lorentzian_limits():
    for sigma, gamma in [(0.5, 0.2), (0.1, 1.0), (2.0, 0.05)]:
        area, _ = quad(lambda t: float(voigt_profile(torch.tensor(t, dtype=torch.float64), sigma, gamma)), -np.inf, np.inf,
                       epsabs=1e-12, epsrel=1e-12, limit=500)
        assert area == pytest.approx(1.0, abs=1e-8)
    x = torch.linspace(-6, 6, 241, dtype=torch.float64)
    fwhm = 1.3
    gaussian = gaussian_kernel(x, fwhm)
    torch.testing.assert_close(voigt_profile(x, fwhm / (2 * math.sqrt(2 * math.log(2))), 0.0), gaussian, rtol=1e-13, atol=1e-16)
    far = x[x.abs() > 0.5]  # sigma -> 0: the Lorentzian, with a relative correction ~ 3 sigma^2 / x^2
    np.testing.assert_allclose(voigt_profile(far, 1e-4, 0.4).numpy(), lorentzian_kernel(far, 0.8).numpy(), rtol=1e-6)


def test_bad_widths_give_clear_errors():
    x = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        voigt_profile(x, 0.0, 0.1)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        voigt_profile(x, 1.0, -0.1)


@pytest.mark.parametrize("kernel, fwhm, eta, lorentzian_fwhm", [
    ("gaussian", 1.5, 0.0, 0.0), ("lorentzian", 0.8, 0.0, 0.0), ("pseudo_voigt", 1.5, 0.3, 0.0),
    ("voigt", 1.3, 0.0, 0.36), ("voigt", 0.2, 0.0, 3.0), ("voigt", 1.0, 0.0, 0.0)])
def test_kernel_mass_matches_quadrature(kernel, fwhm, eta, lorentzian_fwhm):
    from zoo.fitting.resolution import kernel_mass, resolution_kernel

    bounds = [(-42.0, 58.0), (-30.0, 0.3), (-0.2, 0.1), (2.0, 9.0)]
    lower = torch.tensor([b[0] for b in bounds], dtype=torch.float64)
    upper = torch.tensor([b[1] for b in bounds], dtype=torch.float64)
    mass = kernel_mass(lower, upper, fwhm, kernel, eta, lorentzian_fwhm)
    line = lambda x: float(resolution_kernel(torch.tensor(x, dtype=torch.float64), fwhm, kernel, eta, lorentzian_fwhm))  # noqa: E731
    for (a, b), m in zip(bounds, mass.tolist()):
        points = [p for p in (-1.0, 0.0, 1.0) if a < p < b]
        exact = quad(line, a, b, points=points or None, limit=500, epsabs=1e-14, epsrel=1e-12)[0]
        assert m == pytest.approx(exact, rel=1e-10, abs=1e-13), (a, b)
