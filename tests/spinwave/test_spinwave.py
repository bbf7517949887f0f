"""zoo.spinwave: closed forms vs generic LSWT, umbrella degeneracy, S(Q, w), fitting and the tiny recipe."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import zoo
from zoo.fitting import Parameter, fit
from zoo.spinwave import (
    GAMMA,
    K_POINT,
    M_POINT,
    MU_B_MEV_PER_T,
    classical_energy,
    cone_angle,
    ensemble_weights,
    gamma,
    lswt,
    polarized_dispersion,
    polarized_intensity,
    polarized_spectrum,
    single_k_energy,
    single_k_lswt,
    umbrella_directions,
    umbrella_energy_closed_form,
    umbrella_ensemble_spectrum,
)
from zoo.spinwave.data import make_polarized_data

J_PERP, J_Z, S = 0.056, -0.024, 0.5
Q_RANDOM = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, size=(200, 2)))


def test_high_symmetry_points_in_the_60_degree_basis():
    q = torch.tensor([GAMMA, K_POINT, M_POINT, (1 / 3, 1 / 3)], dtype=torch.float64)
    np.testing.assert_allclose(gamma(q).numpy(), [1.0, -0.5, -1 / 3, 0.0], atol=1e-15)


@pytest.mark.parametrize("h", [0.05, 0.2])
def test_field_along_z_closed_form_matches_generic_lswt(h):
    closed = polarized_dispersion(Q_RANDOM, J_PERP, J_Z, h)
    generic, weights = lswt(Q_RANDOM, torch.tensor([[0.0, 0.0, 1.0]]), J_PERP, J_Z, (0, 0, h), S=S, tolerance=0.0, correlations=True)
    assert (closed - generic[:, 0]).abs().max() < 1e-12
    # published-J table of docs/methods/spinwave.md: omega - h at Gamma, M, K = 0.240, 0.016, -0.012 meV
    sym = polarized_dispersion(torch.tensor([GAMMA, M_POINT, K_POINT]), J_PERP, J_Z, h) - h
    np.testing.assert_allclose(sym.numpy(), [0.240, 0.016, -0.012], atol=1e-12)
    np.testing.assert_allclose(weights[:, 0, 0, 0].numpy(), S / 2, atol=1e-12)
    np.testing.assert_allclose(weights[:, 0, 2, 2].numpy(), 0.0, atol=1e-12)


@pytest.mark.parametrize("h", [0.3, 0.5])
def test_in_plane_field_closed_form_matches_generic_lswt(h):
    closed = polarized_dispersion(Q_RANDOM, J_PERP, J_Z, h, direction="x")
    generic, weights = lswt(Q_RANDOM, torch.tensor([[1.0, 0.0, 0.0]]), J_PERP, J_Z, (h, 0, 0), S=S, tolerance=0.0, correlations=True)
    assert (closed - generic[:, 0]).abs().max() < 1e-12
    g = gamma(Q_RANDOM)
    A = h - 6 * S * J_PERP + 3 * S * (J_PERP + J_Z) * g
    B = 3 * S * (J_PERP - J_Z) * g
    np.testing.assert_allclose(weights[:, 0, 1, 1].numpy(), (S / 2 * (A - B) / closed).numpy(), atol=1e-12)
    np.testing.assert_allclose(weights[:, 0, 2, 2].numpy(), (S / 2 * (A + B) / closed).numpy(), atol=1e-12)
    # docs/methods/spinwave.md table: omega at Gamma, K, M for h = 0.3 / 0.5 meV
    sym = polarized_dispersion(torch.tensor([GAMMA, K_POINT, M_POINT]), J_PERP, J_Z, h, direction="x")
    expected = [math.sqrt(h * (h - 0.240)), math.sqrt((h - 0.252) * (h - 0.132)), math.sqrt((h - 0.224) * (h - 0.144))]
    np.testing.assert_allclose(sym.numpy(), expected, atol=1e-12)


def test_three_sublattice_cell_folds_the_ferromagnet():
    h = 0.2
    folded = lswt(Q_RANDOM[:20], torch.tensor([[0.0, 0.0, 1.0]] * 3), J_PERP, J_Z, (0, 0, h), tolerance=0.0)
    shifts = torch.tensor([[0.0, 0.0], [2 / 3, 1 / 3], [1 / 3, 2 / 3]], dtype=torch.float64)  # q + n K, n = 0, 1, 2
    unfolded = torch.stack([polarized_dispersion(Q_RANDOM[:20] + s, J_PERP, J_Z, h) for s in shifts], -1).sort(-1).values
    assert (folded - unfolded).abs().max() < 1e-12


def test_below_saturation_raises():
    with pytest.raises(ValueError, match="below the saturation field 0.252"):
        polarized_dispersion(Q_RANDOM, J_PERP, J_Z, 0.2, direction="x")
    with pytest.raises(ValueError, match="below the saturation field 0.012"):
        polarized_dispersion(Q_RANDOM, J_PERP, J_Z, 0.01)
    with pytest.raises(ValueError, match=r"q must have shape \[N, 2\]"):
        polarized_dispersion(torch.zeros(3, 3), J_PERP, J_Z, 0.2)
    with pytest.raises(ValueError, match="direction must be 'z' or 'x'"):
        polarized_dispersion(Q_RANDOM, J_PERP, J_Z, 0.2, direction="y")


def test_umbrella_energy_flat_exactly_at_the_solvable_point():
    thetas = torch.linspace(0, math.pi / 2, 9, dtype=torch.float64)
    solvable = torch.stack([classical_energy(umbrella_directions(t), J_PERP, -J_PERP / 2) for t in thetas])
    assert (solvable - solvable[0]).abs().max() < 1e-15
    assert solvable[0].item() == pytest.approx(-3 * S**2 * J_PERP / 2, abs=1e-15)  # -0.021 meV
    published = torch.stack([classical_energy(umbrella_directions(t), J_PERP, J_Z) for t in thetas])
    np.testing.assert_allclose(published.numpy(), umbrella_energy_closed_form(thetas, J_PERP, J_Z).numpy(), atol=1e-15)
    assert published[0] - published[-1] == pytest.approx(3 * S**2 * (J_Z + J_PERP / 2), abs=1e-15)  # split by 0.003 meV
    for offset in (1e-3, -1e-3):  # any departure from J_z = -J_perp/2 makes it theta-dependent
        off = torch.stack([classical_energy(umbrella_directions(t), J_PERP, -J_PERP / 2 + offset) for t in thetas])
        assert (off - off[0]).abs().max() > 1e-4


def test_umbrella_spin_waves_are_real_and_gapless_at_the_solvable_point():
    q = torch.as_tensor(np.random.default_rng(1).uniform(0, 1, size=(300, 2)))
    maxima = []
    for theta in (0.3, math.pi / 2):
        energies = lswt(torch.cat([q, torch.tensor([[0.0, 0.0]], dtype=torch.float64)]), umbrella_directions(theta), J_PERP, -J_PERP / 2, tolerance=1e-10)
        assert torch.isfinite(energies).all() and energies.min() > -1e-6
        assert energies[-1, 0] < 1e-3  # Goldstone mode at Gamma
        maxima.append(energies.max().item())
    assert maxima[0] == pytest.approx(0.246, abs=0.002) and maxima[1] == pytest.approx(0.126, abs=0.002)


def test_spectrum_has_unit_weight_per_mode_and_ensemble_runs():
    energies = torch.arange(-0.5, 1.5, 0.005, dtype=torch.float64)
    spectrum = polarized_spectrum(Q_RANDOM[:5], energies, J_PERP, J_Z, 0.3, resolution_fwhm=0.03)
    np.testing.assert_allclose((spectrum.sum(1) * 0.005).numpy(), polarized_intensity(Q_RANDOM[:5], J_PERP, J_Z, 0.3).numpy(), rtol=1e-10)
    theta = torch.linspace(0.1, math.pi / 2, 4, dtype=torch.float64)
    w = ensemble_weights(theta, "uniform_cos_theta")
    assert w.sum().item() == pytest.approx(1.0)
    cont = umbrella_ensemble_spectrum(Q_RANDOM[:4], energies, J_PERP, theta, w, resolution_fwhm=0.02, omega_min=0.02)
    assert cont.shape == (4, energies.numel()) and torch.isfinite(cont).all() and (cont >= 0).all() and cont.sum() > 0


def test_dispersion_gradient_taylor_slope():
    J = torch.tensor([J_PERP, J_Z], dtype=torch.float64, requires_grad=True)
    f = lambda v: polarized_dispersion(Q_RANDOM, v[0], v[1], 0.5, direction="x").sum()  # noqa: E731
    value = f(J)
    (grad,) = torch.autograd.grad(value, J)
    d = torch.tensor([0.3, -0.8], dtype=torch.float64)
    err = [abs(float(f(J.detach() + t * d) - value.detach() - t * grad @ d)) for t in (1e-3, 1e-4)]
    assert math.log10(err[0] / err[1]) == pytest.approx(2.0, abs=0.1)


def _poisson_fit(batch):
    def model(p):
        out = []
        for field, direction in zip(batch["fields_tesla"], batch["directions"]):
            g = p["g_z"] if direction == "z" else p["g_perp"]
            s = polarized_spectrum(batch["q"], batch["energies"], p["J_perp"], p["J_z"], g * MU_B_MEV_PER_T * float(field),
                                   resolution_fwhm=0.025, direction=direction, check=False)
            out.append(p["scale"] * s + p["background"])
        return torch.stack(out)

    start = [Parameter("J_perp", 0.05, "meV", 0, 0.3), Parameter("J_z", -0.02, "meV", -0.3, 0.3), Parameter("g_z", 2.2, "", 0.1, 10),
             Parameter("g_perp", 2.2, "", 0.1, 10), Parameter("scale", 8.0, "", 0), Parameter("background", 1.0, "", 0)]
    return fit(model, batch["counts"], start)


def test_noiseless_polarized_fit_returns_the_published_exchanges():
    batch = make_polarized_data(fields_tesla=(1.0, 4.0, 6.0), directions=("z", "z", "x"), points_per_segment=5, energy_step=0.02, seed=None)
    result = _poisson_fit(batch)
    assert result.converged
    truth = {"J_perp": 0.056, "J_z": -0.024, "g_z": 2.0, "g_perp": 2.0, "scale": 10.0, "background": 0.5}
    for name, value in truth.items():
        assert result.values[name] == pytest.approx(value, rel=1e-6), name


def test_tiny_recipe_fits_pushes_a_card_and_loads_back(tmp_path):
    from zoo._core.runner import run_recipe
    from zoo.hub import LocalHub

    result = run_recipe("recipes/spinwave/polarized_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    m = result.metrics
    assert m["converged"] == 1.0 and abs(m["J_perp_pull"]) < 4 and abs(m["J_z_pull"]) < 4
    assert 0.8 < m["reduced_deviance"] < 1.2
    card = (LocalHub().snapshot("paperzoo/spinwave-polarized-tiny") / "README.md").read_text()
    assert f"| J_perp | {m['J_perp']:.6g} |" in card and f"| {m['J_perp']:.6f} | {m['J_perp_error']:.6f} | meV |" in card
    assert "arxiv:2408.15957" in card
    assert (tmp_path / "dispersion.png").exists() and (tmp_path / "fit.png").exists()
    loaded = zoo.from_pretrained("paperzoo/spinwave-polarized-tiny")
    assert loaded.fitted()["J_perp"][0] == pytest.approx(m["J_perp"], rel=1e-12)
    assert loaded.fitted()["J_z"][1] == pytest.approx(m["J_z_error"], rel=1e-12)


def test_config_validation():
    from zoo.spinwave import SpinWaveConfig

    with pytest.raises(ValueError, match="resolution_fwhm must be > 0, got 0"):
        SpinWaveConfig(resolution_fwhm=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        SpinWaveConfig(loss="cauchy")
    assert type(zoo.create("spinwave_cemgal11o19_tiny")).__name__ == "SpinWaveFitter"


def test_dispersion_point_fit_recovers_exchanges_with_calibrated_errors():
    from zoo.spinwave import fit_dispersion_points, high_symmetry_path

    q, _ = high_symmetry_path(6)
    fields = [1.0, 3.0, 6.0]
    directions = ["z", "z", "x"]
    qs = torch.cat([q] * 3)
    B = torch.cat([torch.full((q.shape[0],), f, dtype=torch.float64) for f in fields])
    dirs = [d for d in directions for _ in range(q.shape[0])]
    exact = torch.cat([
        polarized_dispersion(q, J_PERP, J_Z, 2.0 * MU_B_MEV_PER_T * f, direction=d) for f, d in zip(fields, directions)
    ])
    errors = torch.full_like(exact, 0.003)
    noiseless = fit_dispersion_points(qs, exact, errors, B, dirs)
    for name, value in {"J_perp": J_PERP, "J_z": J_Z, "g_z": 2.0, "g_perp": 2.0}.items():
        assert noiseless.values[name] == pytest.approx(value, rel=1e-8)
    rng = np.random.default_rng(5)
    pulls = []
    for _ in range(20):
        noisy = exact + errors * torch.as_tensor(rng.normal(size=exact.numel()))
        r = fit_dispersion_points(qs, noisy, errors, B, dirs)
        pulls += [(r.values["J_perp"] - J_PERP) / r.errors["J_perp"], (r.values["J_z"] - J_Z) / r.errors["J_z"]]
    pulls = np.array(pulls)
    assert abs(pulls.mean()) < 0.6 and 0.6 < pulls.std(ddof=1) < 1.5
    with pytest.raises(ValueError, match="one field only"):
        fit_dispersion_points(q, exact[: q.shape[0]], errors[: q.shape[0]], B[: q.shape[0]], ["z"] * q.shape[0])


def test_zero_field_ensemble_fit_recovers_j_perp_and_boltzmann_weight():
    """Noiseless zero-field continuum (Boltzmann weights over the umbrella manifold): the fit through Colpa LSWT
    returns J_perp and beta_splitting. Q points avoid high-symmetry degeneracies (eigh gradients)."""
    q = torch.tensor([[0.1, 0.23], [0.31, 0.07], [0.2, 0.4]], dtype=torch.float64)
    energies = torch.arange(0.0, 0.3, 0.01, dtype=torch.float64)
    theta = torch.linspace(0.1, math.pi / 2 - 0.05, 4, dtype=torch.float64)

    def model(p):
        w = ensemble_weights(theta, "boltzmann", beta_splitting=p["beta"])
        return p["scale"] * umbrella_ensemble_spectrum(q, energies, p["J_perp"], theta, w, resolution_fwhm=0.02, omega_min=0.01) + 0.5

    truth = {"J_perp": 0.056, "beta": 2.0, "scale": 5.0}
    y = model({k: torch.tensor(v, dtype=torch.float64) for k, v in truth.items()})
    result = fit(model, y, [Parameter("J_perp", 0.05, "meV", 0, 0.2), Parameter("beta", 0.5, "", -20, 20), Parameter("scale", 4.0, "", 0)])
    assert result.converged
    for name, value in truth.items():
        assert result.values[name] == pytest.approx(value, rel=1e-5), name


# -- general single-k structures (rotating frame) ---------------------------------------------------------------------


@pytest.mark.parametrize("h,chirality", [(0.0, 1), (0.004, 1), (0.009, -1)])
def test_single_k_rotating_frame_matches_the_three_sublattice_cell(h, chirality):
    """Two independent formulations (rotating frame, one site; 3-sublattice supercell) agree on energies and lab-frame
    correlations of the umbrella / 120-degree states, mode by mode (a phase bug in the supercell weights was found so)."""
    Q = K_POINT if chirality == 1 else (-K_POINT[0], -K_POINT[1])
    theta = cone_angle(Q, J_PERP, J_Z, h)
    assert abs(math.cos(float(theta)) - h / (6 * S * (J_Z + J_PERP / 2))) < 1e-14  # cos theta = h / h_sat,z at Q = K
    q = Q_RANDOM[:60]
    single, w1 = single_k_lswt(q, Q, J_PERP, J_Z, h, tolerance=0.0, correlations=True)
    cell, w3 = lswt(q, umbrella_directions(theta, chirality), J_PERP, J_Z, (0, 0, h), tolerance=0.0, correlations=True)
    order = single.argsort(-1)
    assert (single.gather(1, order) - cell).abs().max() < 1e-12
    assert (w1[torch.arange(q.shape[0])[:, None], order] - w3).abs().max() < 1e-12
    assert abs(float(single_k_energy(Q, theta, J_PERP, J_Z, h) - classical_energy(umbrella_directions(theta, chirality), J_PERP, J_Z, (0, 0, h)))) < 1e-15


def test_single_k_with_any_wavevector_reduces_to_the_polarised_closed_form():
    """theta = 0: the cone is the polarised state for every Q; its lab-frame S^+ branch (rotating momentum q - Q)
    carries all transverse weight at the closed-form energy, incommensurate Q included."""
    h = 0.3
    for Q in [(0.0, 0.0), (0.2317, 0.1049), (-0.41, 0.77)]:
        energies, weights = single_k_lswt(Q_RANDOM, Q, J_PERP, J_Z, h, tolerance=0.0, correlations=True)
        closed = polarized_dispersion(Q_RANDOM, J_PERP, J_Z, h)
        assert (energies[:, 1] - closed).abs().max() < 1e-12
        np.testing.assert_allclose(weights[:, 1, 0, 0].numpy(), S / 2, atol=1e-12)
        np.testing.assert_allclose(weights[:, 1, 1, 1].numpy(), S / 2, atol=1e-12)
        assert weights[:, 0].abs().max() < 1e-12 and weights[:, 2].abs().max() < 1e-12


def test_single_k_classical_minimum_is_at_k_and_bad_structures_are_refused():
    grid = torch.as_tensor(np.random.default_rng(3).uniform(-1, 1, size=(300, 2)))
    h = 0.004
    best = single_k_energy(K_POINT, cone_angle(K_POINT, J_PERP, J_Z, h), J_PERP, J_Z, h)
    others = torch.stack([single_k_energy(Q, cone_angle(Q, J_PERP, J_Z, h), J_PERP, J_Z, h) for Q in grid])
    assert bool((others >= best - 1e-15).all())
    with pytest.raises(ValueError, match="not a stationary cone angle"):
        single_k_lswt(Q_RANDOM[:4], K_POINT, J_PERP, J_Z, h, theta=0.3)
    with pytest.raises(ValueError, match="2Q is a reciprocal lattice vector"):
        single_k_lswt(Q_RANDOM[:4], M_POINT, J_PERP, J_Z, 0.0, correlations=True)
    with pytest.raises(ValueError, match="not positive definite"):  # a stationary spiral that is not a minimum
        single_k_lswt(Q_RANDOM[:40], (0.21, 0.05), J_PERP, J_Z, 0.0)
    with pytest.raises(ValueError, match="ordering_q"):
        single_k_lswt(Q_RANDOM[:4], (0.1, 0.2, 0.3), J_PERP, J_Z, 0.0)


def test_refit_at_new_fields_starts_from_the_pushed_fit(tmp_path):
    from huggingface_hub import ModelCard

    from zoo._core.errors import ZooError
    from zoo._core.runner import run_recipe
    from zoo.hub import LocalHub

    parent = run_recipe("recipes/spinwave/polarized_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path / "p")])
    child = run_recipe("recipes/spinwave/polarized_refine_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path / "c")])
    values, errors = child.module.fitted(), parent.module.fitted()
    for name, truth in (("J_perp", 0.056), ("J_z", -0.024)):  # new fields, new noise: both fits agree with the truth
        assert abs(values[name][0] - truth) < 4 * values[name][1] and abs(values[name][0] - errors[name][0]) < 4 * math.hypot(values[name][1], errors[name][1])
    card_path = LocalHub().snapshot("paperzoo/spinwave-polarized-refined-tiny") / "README.md"
    assert ModelCard.load(card_path).data.base_model_revision == parent.commit_id
    text = card_path.read_text()
    assert "| parameter | fitted | error | parent fitted | parent error | unit |" in text
    assert f"| J_perp | {values['J_perp'][0]:.6f} | {values['J_perp'][1]:.6f} | {errors['J_perp'][0]:.6f} | {errors['J_perp'][1]:.6f} | meV |" in text
    freed = tmp_path / "freed.yaml"  # (FitModule's init takes `config: Any`, so dotted CLI overrides do not parse)
    freed.write_text(open("recipes/spinwave/polarized_refine_tiny.yaml").read() + "model:\n  init_args:\n    config: {fit_g_perp: true}\n")
    with pytest.raises(ZooError, match=r"fit_g_perp: False -> True"):  # a refit may not free a parameter
        run_recipe(freed, ["--trainer.default_root_dir", str(tmp_path / "x")])
    with pytest.raises(ZooError, match="cannot train data-parallel"):
        run_recipe("recipes/spinwave/polarized_refine_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path / "y"),
                                                                   "--trainer.devices", "2", "--trainer.strategy", "ddp"])
