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
