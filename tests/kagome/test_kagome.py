"""zoo.kagome: NN identities, flat band, renormalisation, Fermi cut-off, fit and tiny recipe."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoo.fitting import fit
from zoo.kagome import arpes_map, kagome_bands, renormalized_hamiltonian, two_orbital_hamiltonian
from zoo.kagome.data import TRUTH, SyntheticArpesData
from zoo.kagome.module import KagomeFitter

T = 0.3


def test_bands_at_gamma_k_m():
    q = torch.tensor([[0.0, 0.0], [2 / 3, 1 / 3], [0.5, 0.0]], dtype=torch.float64)
    bands = kagome_bands(q, T) / T
    np.testing.assert_allclose(bands.numpy(), [[-4, 2, 2], [-1, -1, 2], [-2, 0, 2]], atol=1e-12)


def test_flat_band_and_closed_form_at_random_q():
    q = torch.as_tensor(np.random.default_rng(0).uniform(-2, 2, size=(2000, 2)))
    bands = kagome_bands(q, T, eps0=0.1)
    assert (bands[:, 2] - (0.1 + 2 * T)).abs().max() < 1e-12
    c1, c2, c3 = torch.cos(math.pi * q[:, 0]), torch.cos(math.pi * q[:, 1]), torch.cos(math.pi * (q[:, 1] - q[:, 0]))
    root = torch.sqrt(1 + 8 * c1 * c2 * c3)
    assert (bands[:, 0] - (0.1 - T * (1 + root))).abs().max() < 1e-12
    assert (bands[:, 1] - (0.1 - T * (1 - root))).abs().max() < 1e-12
    with pytest.raises(ValueError, match=r"q must have shape \[N, 2\]"):
        kagome_bands(torch.zeros(4), T)


def test_identity_renormalisation_returns_dft_bands():
    q = torch.rand(10, 2, dtype=torch.float64)
    h = two_orbital_hamiltonian(q, 0.3, 0.5, 0.05)
    same = renormalized_hamiltonian(h, torch.ones(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64))
    torch.testing.assert_close(same, h, rtol=0, atol=0)


def test_edc_peak_is_pulled_by_the_fermi_cutoff():
    """A flat band 10 meV below E_F: the EDC maximum of Lorentzian x Fermi sits below the band energy."""
    w = torch.linspace(-0.1, 0.05, 1501, dtype=torch.float64)
    h = torch.full((1, 1, 1), -0.01, dtype=torch.float64)
    cold = arpes_map(h, w, orbital_weights=torch.ones(1, dtype=torch.float64), gamma0=0.02, alpha=0.0, temperature=80.0)
    peak = float(w[cold[0].argmax()])
    assert peak < -0.012


def test_noiseless_map_fit_returns_truth():
    data = SyntheticArpesData(points_per_segment=3, energy_step=0.01, seed=None)
    module = KagomeFitter()
    start = module.parameter_set
    result = fit(lambda p: module.expected(data.batch, p), data.batch["counts"], start)
    for name, value in TRUTH.items():
        assert result.values[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name


def test_tiny_recipe_runs_and_pushes(tmp_path):
    from zoo._core.runner import run_recipe
    from zoo.hub import LocalHub

    result = run_recipe("recipes/kagome/arpes_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    m = result.metrics
    assert m["converged"] == 1.0 and abs(m["Z1_pull"]) < 4 and abs(m["delta1_pull"]) < 4
    card = (LocalHub().snapshot("paperzoo/kagome-arpes-tiny") / "README.md").read_text()
    assert f"| Z1 | {m['Z1']:.4f} | {m['Z1_error']:.4f} |" in card


def test_band_dispersion_fit_recovers_renormalisation():
    from zoo.kagome import fit_band_dispersion
    from zoo.kagome.data import kagome_path

    q = kagome_path(8)[1:-1]  # off Gamma (band touching)
    q = q[(q - torch.tensor([2 / 3, 1 / 3], dtype=torch.float64)).norm(dim=1) > 1e-6]  # and off K (Dirac point)
    h = two_orbital_hamiltonian(q, 0.3, 0.5, 0.05, -0.6, -1.2)
    Z = torch.tensor([0.3] * 3 + [0.8] * 3, dtype=torch.float64)
    delta = torch.tensor([-0.03] * 3 + [0.0] * 3, dtype=torch.float64)
    bands = torch.linalg.eigvalsh(renormalized_hamiltonian(h, Z, delta))
    index = torch.tensor([0, 2, 3, 5]).repeat(q.shape[0])
    hs = h.repeat_interleave(4, 0)
    energies = bands.gather(1, index.view(-1, 4)).reshape(-1)
    errors = torch.full_like(energies, 0.005)
    result = fit_band_dispersion(hs, index, energies, errors, [0, 0, 0, 1, 1, 1], fix_delta=[1])
    assert result.values["Z0"] == pytest.approx(0.3, rel=1e-7) and result.values["Z1"] == pytest.approx(0.8, rel=1e-7)
    assert result.values["delta0"] == pytest.approx(-0.03, abs=1e-9)
    # both deltas free plus a free common shift is fine here (mu fixed); with mu free it would be degenerate.
    assert result.hessian_condition < 1e6


def test_arc_length_metric_at_high_symmetry_points():
    """|Gamma-M| = 2 pi / (sqrt3 a) and |Gamma-K| = 4 pi / (3 a) in 1/A for the issue's basis."""
    from zoo.kagome.momentum import arc_length

    a = 5.49
    s = arc_length(torch.tensor([[0.0, 0.0], [0.5, 0.0], [2 / 3, 1 / 3], [0.0, 0.0]], dtype=torch.float64), a)
    gm, mk, kg = 2 * math.pi / (math.sqrt(3) * a), 2 * math.pi / (3 * a), 4 * math.pi / (3 * a)
    np.testing.assert_allclose(s.numpy(), np.cumsum([0, gm, mk, kg]), rtol=1e-14)


def test_momentum_resolution_zero_leaves_the_old_map_unchanged():
    from zoo.fitting import ResolutionOperator
    from zoo.kagome.config import KagomeConfig
    from zoo.kagome.data import kagome_path
    from zoo.kagome.module import expected_map

    q, E = kagome_path(4), torch.arange(-0.3, 0.05, 0.005, dtype=torch.float64)
    params = {k: torch.tensor(v, dtype=torch.float64) for k, v in TRUTH.items()}
    config = KagomeConfig(momentum_resolution=0.0)
    # the model as it was before momentum resolution existed, spelled out
    ones = torch.ones(3, dtype=torch.float64)
    h = renormalized_hamiltonian(two_orbital_hamiltonian(q, 0.3, 0.5, 0.05, -0.6, -1.2), torch.cat([0.3 * ones, 0.8 * ones]),
                                 torch.cat([-0.03 * ones, 0.0 * ones]))
    old = 10.0 * arpes_map(h, E, orbital_weights=torch.ones(6, dtype=torch.float64), gamma0=0.01, alpha=0.2, temperature=20.0,
                           energy_operator=ResolutionOperator.build(E, E, fwhm=0.015)) + 0.5
    torch.testing.assert_close(expected_map(config, q, E, params), old, rtol=0, atol=0)
    blurred = expected_map(KagomeConfig(momentum_resolution=0.05), q, E, params)
    assert blurred.shape == old.shape and float((blurred - old).abs().max()) > 1.0  # and a real resolution changes it


def _half_maximum_width(x: np.ndarray, y: np.ndarray) -> float:
    """FWHM of a single peak sampled at ``x``, half-maximum crossings by linear interpolation."""
    half = y.max() / 2
    above = np.flatnonzero(y >= half)
    i, j = above[0], above[-1]
    left = x[i - 1] + (half - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1])
    right = x[j] + (half - y[j]) * (x[j + 1] - x[j]) / (y[j + 1] - y[j])
    return float(right - left)


def test_momentum_resolution_turns_an_mdc_lorentzian_into_the_exact_voigt():
    """A linear band E = v (s - s_c) on a straight cut: the MDC at energy w is a Lorentzian in s of HWHM Gamma/v;
    convolved with a Gaussian of FWHM dk along the cut it must be (1/v) Voigt(s - s_c - w/v; dk/2.3548, Gamma/v)."""
    from scipy.special import voigt_profile

    from zoo.kagome import fermi_dirac
    from zoo.kagome.momentum import arc_length, momentum_resolution_grid

    a, v, gamma, dk = 5.49, 2.0, 0.02, 0.03  # eV A, eV, 1/A: HWHM Gamma/v = 0.01 1/A, sigma_k = 0.0127 1/A
    q = torch.stack([torch.linspace(0.0, 0.5, 121, dtype=torch.float64), torch.zeros(121, dtype=torch.float64)], 1)  # Gamma-M
    s = arc_length(q, a)
    s_c = float(s[60])
    q_fine, operator = momentum_resolution_grid(q, dk, a, oversampling=16)
    assert float(q_fine[0, 0]) < 0 and float(q_fine[-1, 0]) > 0.5  # padded beyond both ends by extrapolation
    s_fine = (2 * math.pi / a) * (2 / math.sqrt(3)) * q_fine[:, 0]  # signed arc length along Gamma-M, also beyond the ends
    h = (v * (s_fine - s_c))[:, None, None]  # [M, 1, 1]
    w = torch.tensor([-0.06, -0.02, 0.0], dtype=torch.float64)
    sharp = arpes_map(h, w, orbital_weights=torch.ones(1, dtype=torch.float64), gamma0=gamma, alpha=0.0, temperature=20.0)
    blurred = arpes_map(h, w, orbital_weights=torch.ones(1, dtype=torch.float64), gamma0=gamma, alpha=0.0, temperature=20.0,
                        momentum_operator=operator)
    assert blurred.shape == (121, 3)
    sigma = dk / (2 * math.sqrt(2 * math.log(2)))
    for j in range(3):
        exact = voigt_profile(s.numpy() - s_c - float(w[j]) / v, sigma, gamma / v) / v * float(fermi_dirac(w[j], 20.0))
        np.testing.assert_allclose(blurred[:, j].numpy(), exact, rtol=1e-5, atol=1e-8 * exact.max())
    # smoother: the MDC peak is lower and wider; its FWHM is the Voigt FWHM, not the Lorentzian's 2 Gamma/v
    fine_s = torch.linspace(float(s[0]), float(s[-1]), 20001, dtype=torch.float64).numpy()
    voigt = voigt_profile(fine_s - s_c, sigma, gamma / v)
    expected_fwhm = np.ptp(fine_s[voigt >= voigt.max() / 2])
    assert expected_fwhm > 1.5 * (2 * gamma / v)
    assert _half_maximum_width(s.numpy(), blurred[:, 2].numpy()) == pytest.approx(expected_fwhm, rel=0.02)  # linear interp.
    assert _half_maximum_width(s_fine.numpy(), sharp[:, 2].numpy()) == pytest.approx(2 * gamma / v, rel=0.05)  # on the fine k
    assert float(blurred[:, 2].max()) < 0.7 * float(sharp[:, 2].max())
    # the default 4 points per FWHM: rectangle-rule error ~1e-3 when Gamma/v is below the step (here 0.01 vs 0.0075 1/A)
    q_fine, operator = momentum_resolution_grid(q, dk, a)
    h = (v * ((2 * math.pi / a) * (2 / math.sqrt(3)) * q_fine[:, 0] - s_c))[:, None, None]
    coarse = arpes_map(h, w, orbital_weights=torch.ones(1, dtype=torch.float64), gamma0=gamma, alpha=0.0, temperature=20.0,
                       momentum_operator=operator)
    assert float(((coarse - blurred).abs() / blurred.abs().max()).max()) < 2e-3


@pytest.mark.parametrize("kwargs, match", [
    ({"momentum_resolution": -0.01}, "momentum_resolution must be >= 0"),
    ({"momentum_resolution": float("nan")}, "momentum_resolution must be >= 0"),
    ({"lattice_constant": 0.0}, "lattice_constant must be > 0"),
    ({"momentum_oversampling": 0.5}, "momentum_oversampling must be >= 1"),
    ({"momentum_padding": 0.2}, "momentum_padding must be >= 1"),
])
def test_bad_momentum_settings_give_clear_errors(kwargs, match):
    from zoo.kagome.config import KagomeConfig

    with pytest.raises(ValueError, match=match):
        KagomeConfig(**kwargs)


def test_momentum_grid_needs_a_cut():
    from zoo.kagome.momentum import momentum_resolution_grid

    with pytest.raises(ValueError, match="N >= 2"):
        momentum_resolution_grid(torch.zeros(1, 2, dtype=torch.float64), 0.01, 5.49)
    with pytest.raises(ValueError, match="two distinct k points"):
        momentum_resolution_grid(torch.zeros(3, 2, dtype=torch.float64), 0.01, 5.49)


def test_noiseless_map_with_momentum_resolution_fits_back_to_truth():
    from zoo.kagome.config import KagomeConfig

    data = SyntheticArpesData(points_per_segment=3, energy_step=0.01, seed=None, momentum_resolution=0.04)
    module = KagomeFitter(KagomeConfig(momentum_resolution=0.04))
    result = fit(lambda p: module.expected(data.batch, p), data.batch["counts"], module.parameter_set)
    assert result.converged and result.goodness < 1e-8
    for name, value in TRUTH.items():
        assert result.values[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    blind = KagomeFitter(KagomeConfig(momentum_resolution=0.0))  # the same data without the resolution in the model
    mismatch = fit(lambda p: blind.expected(data.batch, p), data.batch["counts"], blind.parameter_set)
    assert mismatch.goodness > 1.0


def test_symmetric_eigh_derivatives_match_torch_and_stay_finite_at_gamma():
    from zoo.kagome.model import symmetric_eigh

    generator = torch.Generator().manual_seed(1)
    a = torch.randn(4, 5, 5, dtype=torch.float64, generator=generator)
    sym = lambda m: 0.5 * (m + m.transpose(-1, -2))  # noqa: E731
    weights = torch.randn(4, 5, dtype=torch.float64, generator=generator)
    ours = lambda m: (weights * symmetric_eigh(sym(m))[0]).sum()  # noqa: E731
    theirs = lambda m: (weights * torch.linalg.eigvalsh(sym(m))).sum()  # noqa: E731
    torch.testing.assert_close(torch.autograd.functional.hessian(ours, a), torch.autograd.functional.hessian(theirs, a), rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda m: symmetric_eigh(sym(m))[0], (a.clone().requires_grad_(),), check_forward_ad=True)
    # at Gamma the NN kagome bands touch (2t, 2t): the Hessian in (Z, delta) is finite and equals finite differences
    q = torch.zeros(1, 2, dtype=torch.float64)
    h = two_orbital_hamiltonian(q, 0.3, 0.5, 0.05, -0.6, -1.2)
    E = torch.linspace(-0.5, 0.05, 56, dtype=torch.float64)

    def objective(p):
        ones = torch.ones(3, dtype=torch.float64)
        hqp = renormalized_hamiltonian(h, torch.cat([p[0] * ones, p[1] * ones]), torch.cat([p[2] * ones, p[3] * ones]))
        return (arpes_map(hqp, E, orbital_weights=torch.ones(6, dtype=torch.float64), gamma0=0.02, alpha=0.1, temperature=20.0) ** 2).sum()

    p0 = torch.tensor([0.3, 0.8, -0.03, 0.0], dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(objective, p0)
    assert torch.isfinite(hessian).all()
    grad = lambda p: torch.autograd.functional.jacobian(objective, p)  # noqa: E731
    step = 1e-6
    numeric = torch.stack([(grad(p0 + step * e) - grad(p0 - step * e)) / (2 * step) for e in torch.eye(4, dtype=torch.float64)])
    torch.testing.assert_close(hessian, numeric, rtol=1e-5, atol=1e-6 * float(hessian.abs().max()))


def test_batched_lm_through_vmap_recovers_truth_with_momentum_resolution():
    """The benchmark's path: ``fit_batched`` on ``torch.func.vmap`` of ``expected_map`` (forward-mode JVPs through the
    degenerate-safe eigh and the momentum-resolution operator)."""
    from zoo.fitting import ResolutionOperator, fit_batched
    from zoo.kagome.config import KagomeConfig
    from zoo.kagome.data import kagome_path
    from zoo.kagome.module import expected_map, momentum_grid

    config = KagomeConfig(momentum_resolution=0.03, momentum_oversampling=2.0)
    q, E = kagome_path(2), torch.arange(-0.3, 0.05, 0.01, dtype=torch.float64)
    operator, momentum = ResolutionOperator.build(E, E, fwhm=config.energy_resolution), momentum_grid(config, q)
    model = torch.func.vmap(lambda p: expected_map(config, q, E, p, operator, momentum))
    truth = {k: torch.tensor(v, dtype=torch.float64) for k, v in TRUTH.items()}
    expected = expected_map(config, q, E, truth, operator, momentum)
    specs = KagomeFitter(config).parameter_specs()
    start = torch.tensor([[0.33, 0.75, -0.02, 0.01, 0.015, 0.25, 8.0, 0.7], [0.28, 0.85, -0.04, -0.01, 0.012, 0.15, 12.0, 0.4]],
                         dtype=torch.float64)
    result = fit_batched(model, expected.expand(2, *expected.shape), specs, start=start)
    assert result.converged.all()
    np.testing.assert_allclose(result.values, np.tile([TRUTH[n] for n in result.free_names], (2, 1)), rtol=1e-5, atol=1e-7)
