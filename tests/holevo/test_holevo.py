"""Holevo capacity: closed forms to 1e-8, Blahut-Arimoto on cq channels, channels, errors, module + recipe."""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.holevo import (amplitude_damping, apply_channel, blahut_arimoto, cq_channel, dephasing, depolarizing, erasure,
                        from_choi, holevo_capacity, holevo_quantity, kraus_operators, pauli_channel, random_channel,
                        von_neumann_entropy)
from zoo.holevo.reference import (amplitude_damping_chi, binary_entropy, depolarizing_chi, erasure_chi,
                                  unital_qubit_chi)


@pytest.mark.parametrize("q", [0.1, 0.3, 0.6])
def test_qubit_depolarizing_closed_form(q):
    assert abs(depolarizing_chi(2, q) - (1 - binary_entropy(q / 2))) < 1e-14  # two closed forms agree
    result = holevo_capacity(depolarizing(2, q))
    assert result.converged
    assert abs(result.capacity - (1 - binary_entropy(q / 2))) < 1e-8


def test_notes_example_values():
    """Values recorded in the method notes (independent prototype)."""
    assert abs(depolarizing_chi(2, 0.1) - 0.7136030429) < 1e-10
    assert abs(amplitude_damping_chi(0.2)[0] - 0.7316454580) < 1e-9
    assert abs(amplitude_damping_chi(0.8)[0] - 0.2267422751) < 1e-9


@pytest.mark.parametrize("d, q", [(3, 0.5), (4, 0.2)])
def test_qudit_depolarizing_closed_form(d, q):
    if (d, q) == (3, 0.5):
        assert abs(depolarizing_chi(3, 0.5) - 1 / 3) < 1e-14
    result = holevo_capacity(depolarizing(d, q))
    assert abs(result.capacity - depolarizing_chi(d, q)) < 1e-8


@pytest.mark.parametrize("lambdas", [(0.3, -0.6, 0.1), (0.7, 0.2, -0.1), (0.0, 0.0, 0.5)])
def test_unital_qubit_closed_form(lambdas):
    assert abs(holevo_capacity(pauli_channel(*lambdas)).capacity - unital_qubit_chi(*lambdas)) < 1e-8


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5])
def test_dephasing_capacity_is_one_bit_with_exact_zero_log_zero(p):
    result = holevo_capacity(dephasing(p))
    assert abs(result.capacity - 1.0) < 1e-8  # outputs of the optimal inputs are pure: 0 log 0 handled exactly


@pytest.mark.parametrize("d, epsilon", [(2, 0.3), (3, 0.25)])
def test_erasure_closed_form(d, epsilon):
    assert abs(holevo_capacity(erasure(d, epsilon)).capacity - erasure_chi(d, epsilon)) < 1e-8


@pytest.mark.parametrize("gamma", [0.2, 0.5, 0.8])
def test_amplitude_damping_one_dimensional_maximisation(gamma):
    truth, t_star = amplitude_damping_chi(gamma)
    assert 0 < t_star < 1
    result = holevo_capacity(amplitude_damping(gamma))
    assert abs(result.capacity - truth) < 1e-8
    # the optimal ensemble reaches the value it reports
    assert abs(holevo_quantity(amplitude_damping(gamma), result.probabilities, result.states) - result.capacity) < 1e-12


def _random_cq_states(letters, d, seed):
    generator = torch.Generator().manual_seed(seed)
    g = torch.randn(letters, d, d, dtype=torch.complex128, generator=generator)
    rho = g @ g.mH
    return rho / rho.diagonal(dim1=-2, dim2=-1).sum(-1).real[:, None, None]


@pytest.mark.parametrize("letters, d, seed", [(2, 2, 0), (2, 3, 1), (3, 3, 2)])
def test_blahut_arimoto_matches_riemannian_on_cq_channels(letters, d, seed):
    """Random cq channels whose optimal input distribution has full support (asserted).

    Letters that go unused (optimal p_x = 0 on the simplex boundary) are covered by test_boundary.py (active set)."""
    states = _random_cq_states(letters, d, seed)
    ba = blahut_arimoto(states, tol=1e-12)
    assert ba.converged and ba.upper_bound - ba.capacity <= 1e-12
    assert ba.probabilities.min() > 1e-3  # interior optimum
    riemannian = holevo_capacity(cq_channel(states), restarts=2, tol=1e-10)
    assert abs(riemannian.capacity - ba.capacity) < 1e-8


def test_blahut_arimoto_on_a_classical_channel():
    """Commuting outputs = a classical channel: the binary symmetric channel has capacity 1 - h2(0.1)."""
    flip = 0.1
    states = torch.stack([torch.diag(torch.tensor([1 - flip, flip], dtype=torch.float64)),
                          torch.diag(torch.tensor([flip, 1 - flip], dtype=torch.float64))])
    assert abs(blahut_arimoto(states).capacity - (1 - binary_entropy(flip))) < 1e-10


def test_second_order_methods_agree():
    kraus = amplitude_damping(0.5)
    truth = amplitude_damping_chi(0.5)[0]
    for method in ("trust_region", "rcg"):
        assert abs(holevo_capacity(kraus, method=method, tol=1e-9).capacity - truth) < 1e-8


def test_random_channel_respects_bounds_and_restarts():
    kraus = random_channel(3, 3, 2, seed=4)
    best = holevo_capacity(kraus, restarts=3, tol=1e-8)
    single = holevo_capacity(kraus, seed=0, tol=1e-8)
    assert 0 <= best.capacity <= math.log2(3) + 1e-12
    assert best.capacity >= single.capacity - 1e-12
    assert abs(best.probabilities.sum().item() - 1) < 1e-12 and (best.probabilities > 0).all()
    assert torch.allclose(best.states.abs().pow(2).sum(-1), torch.ones(9, dtype=torch.float64), atol=1e-10)


def test_channels_are_cptp_and_act_as_documented():
    rho = torch.tensor([[0.7, 0.2 - 0.1j], [0.2 + 0.1j, 0.3]], dtype=torch.complex128)
    q = 0.4
    out = apply_channel(depolarizing(2, q), rho)
    assert torch.allclose(out, (1 - q) * rho + q * torch.eye(2, dtype=torch.complex128) / 2, atol=1e-14)
    out = apply_channel(amplitude_damping(0.3), rho)
    assert abs(out[1, 1].real.item() - 0.7 * 0.3) < 1e-14 and abs(out[0, 1] - math.sqrt(0.7) * rho[0, 1]) < 1e-14
    out = apply_channel(erasure(2, 0.25), rho)
    assert out.shape == (3, 3) and abs(out[2, 2].real.item() - 0.25) < 1e-14
    for kraus in (random_channel(4, 3, 5, seed=1), dephasing(0.1), pauli_channel(0.1, 0.2, 0.3)):
        kraus_operators(kraus)


def test_choi_round_trip():
    kraus = random_channel(2, 3, 2, seed=3)
    d_in, d_out = 2, 3
    choi = torch.zeros(d_in * d_out, d_in * d_out, dtype=torch.complex128)
    for i in range(d_in):
        for j in range(d_in):
            unit = torch.zeros(d_in, d_in, dtype=torch.complex128)
            unit[i, j] = 1
            choi[i * d_out:(i + 1) * d_out, j * d_out:(j + 1) * d_out] = apply_channel(kraus, unit)
    rebuilt = from_choi(choi, d_in, d_out)
    rho = _random_cq_states(1, 2, 5)[0]
    assert torch.allclose(apply_channel(rebuilt, rho), apply_channel(kraus, rho), atol=1e-12)
    assert abs(holevo_capacity(rebuilt, tol=1e-9).capacity - holevo_capacity(kraus, tol=1e-9).capacity) < 1e-7


@pytest.mark.parametrize("bad, match", [
    (lambda: kraus_operators([torch.eye(2) * 0.9]), "not trace preserving"),
    (lambda: kraus_operators(torch.zeros(2, 2, 2, 2)), "shape"),
    (lambda: kraus_operators([torch.eye(2), torch.eye(3)]), "same shape"),
    (lambda: depolarizing(2, 1.5), "depolarizing q"),
    (lambda: amplitude_damping(-0.1), "gamma"),
    (lambda: pauli_channel(1, 1, -1), "not completely positive"),
    (lambda: from_choi(-torch.eye(4), 2, 2), "not positive semidefinite"),
    (lambda: holevo_capacity(depolarizing(2, 0.1), method="adam"), "method"),
    (lambda: von_neumann_entropy(torch.zeros(3)), "shape"),
])
def test_invalid_input_gives_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_entropy_gradient_is_finite_on_rank_deficient_and_degenerate_states():
    for rho in (torch.diag(torch.tensor([1.0, 0.0], dtype=torch.complex128)), torch.eye(2, dtype=torch.complex128) / 2):
        rho = rho.clone().requires_grad_(True)
        value = von_neumann_entropy(rho)
        value.backward()
        assert torch.isfinite(torch.view_as_real(rho.grad)).all()
    assert abs(von_neumann_entropy(torch.eye(4, dtype=torch.complex128) / 4).item() - 2) < 1e-14


def test_module_recipe_pushes_measured_card(tmp_path):
    from zoo._core.runner import run_recipe
    from zoo.hub import LocalHub

    result = run_recipe("recipes/holevo/depolarizing_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    assert result.loaded_back_equal is True
    assert result.metrics["abs_error_bits"] < 1e-8 and result.metrics["converged"] == 1.0
    card = (LocalHub().snapshot("paperzoo/holevo-depolarizing-tiny") / "README.md").read_text()
    assert f"| holevo_chi_bits | {result.metrics['holevo_chi_bits']:.6g} |" in card
    assert "arxiv:2501.11576" in card
    loaded = zoo.from_pretrained("paperzoo/holevo-depolarizing-tiny")
    assert abs(float(loaded()) - result.metrics["holevo_chi_bits"]) < 1e-14
    assert type(loaded.states.manifold).__name__ == "ComplexSphere"


def test_config_validation_names_field_and_value():
    from zoo.holevo.module import HolevoConfig

    with pytest.raises(ValueError, match="channel must be one of"):
        HolevoConfig(channel="bitflip")
    with pytest.raises(ValueError, match="qubit channel"):
        HolevoConfig(channel="amplitude_damping", dimension=3, parameters=(0.2,))
    with pytest.raises(ValueError, match="optimizer"):
        HolevoConfig(optimizer="newton")
    with pytest.raises(ValueError, match="parameters"):
        HolevoConfig(channel="pauli", parameters=(0.1,))
