"""Symplectic eigenvalues and trace minimisation: ground truth, Newton's quadratic rate, errors, module + recipe."""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.manifolds import SymplecticStiefel, symplectic_feasibility
from zoo.manifolds.symplectic_stiefel import apply_j
from zoo.symplectic import (min_trace, nearest_symplectic, planted_spd_matrix, symplectic_eigenvalues,
                            symplectic_gram_schmidt)


def test_generator_is_symplectic_and_plants_the_spectrum():
    m, d, s = planted_spd_matrix(12, seed=0)
    j = apply_j(torch.eye(24, dtype=torch.float64))
    assert torch.allclose(s.T @ j @ s, j, atol=1e-12)
    assert torch.allclose(d, torch.arange(1, 13, dtype=torch.float64))
    assert torch.allclose(symplectic_eigenvalues(m), d, atol=1e-11)
    # independent route: the eigenvalues of J M are +-i d
    eigenvalues = torch.linalg.eigvals(j @ m).imag
    assert torch.allclose(eigenvalues[eigenvalues > 0].sort().values, d, atol=1e-9)


@pytest.mark.parametrize("n, p, method, metric", [
    (20, 3, "newton", "euclidean"),
    (20, 3, "trust_region", "euclidean"),
    (20, 3, "newton", "canonical_like"),
    (20, 3, "newton", "tractable"),
    (15, 2, "rgd", "euclidean"),
    (50, 5, "newton", "euclidean"),
])
def test_min_trace_reaches_twice_the_sum_of_the_smallest_symplectic_eigenvalues(n, p, method, metric):
    m, _, _ = planted_spd_matrix(n, seed=n + p)
    m = m + 0.1 * torch.eye(2 * n, dtype=torch.float64)  # a non-planted spectrum: the oracle is the eigen-solve
    target = 2 * symplectic_eigenvalues(m)[:p].sum().item()
    result = min_trace(m, p, method=method, metric=metric, seed=1)
    assert abs(result.value - target) / target < 1e-8
    assert result.feasibility < 1e-10
    assert result.point.shape == (2 * n, 2 * p)


def _assert_quadratic_tail(norms):
    """log g_{k+1} / log g_k >= ~1.8 on the last Newton steps above round-off (quadratic: ratio 2)."""
    tail = [g for g in norms if g > 1e-11]
    small = [g for g in tail if g < 1e-1]
    assert len(small) >= 2, norms
    ratios = [math.log(b) / math.log(a) for a, b in zip(small, small[1:]) if a < 0.5]
    assert max(ratios) > 1.8, (norms, ratios)
    # superlinear: each step at least squares away the previous error, up to a constant
    constants = [b / (a * a) for a, b in zip(small, small[1:])]
    assert min(constants) < 50, constants


def test_newton_converges_quadratically_on_the_iterates():
    m, d, _ = planted_spd_matrix(30, seed=3)
    result = min_trace(m, 3, method="newton", tol=1e-13, seed=2)
    _assert_quadratic_tail(result.gradient_norms)
    assert abs(result.value - 2 * d[:3].sum().item()) / (2 * d[:3].sum().item()) < 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("n", [100, 200])
def test_min_trace_large_n(n):
    m, d, _ = planted_spd_matrix(n, seed=7)
    result = min_trace(m, 5, method="newton", seed=0)
    target = 2 * d[:5].sum().item()
    assert abs(result.value - target) / target < 1e-8 and result.feasibility < 1e-10
    _assert_quadratic_tail(result.gradient_norms)


def test_min_trace_point_spans_a_symplectic_eigenspace():
    m, d, s = planted_spd_matrix(8, seed=5)
    result = min_trace(m, 2)
    x = result.point
    # X^T M X is then 2x2-block "Williamson" similar to diag(d1, d2, d1, d2): its symplectic eigenvalues are d1, d2
    assert torch.allclose(symplectic_eigenvalues(x.T @ m @ x), d[:2], atol=1e-8)


def test_nearest_symplectic():
    manifold = SymplecticStiefel(6, 2)
    planted = manifold.random(dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(symplectic_gram_schmidt(planted), planted, atol=1e-12)
    exact = nearest_symplectic(planted)
    assert exact.value < 1e-20
    noise = 1e-2 * torch.randn(12, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    perturbed = nearest_symplectic(planted + noise)
    assert perturbed.feasibility < 1e-10 and perturbed.converged
    assert perturbed.value <= ((planted - planted - noise) ** 2).sum().item() + 1e-12  # no worse than the planted point
    by_rgd = nearest_symplectic(planted + noise, method="rgd")
    assert abs(by_rgd.value - perturbed.value) < 1e-10


@pytest.mark.parametrize("bad, match", [
    (lambda: symplectic_eigenvalues(torch.randn(4, 4, dtype=torch.float64)), "symmetric"),
    (lambda: symplectic_eigenvalues(-torch.eye(4, dtype=torch.float64)), "positive definite"),
    (lambda: symplectic_eigenvalues(torch.eye(3, dtype=torch.float64)), r"\[2n, 2n\]"),
    (lambda: min_trace(torch.eye(6, dtype=torch.float64), 4), "p must be <= n"),
    (lambda: min_trace(torch.eye(6, dtype=torch.float64), 1, method="lbfgs"), "method"),
    (lambda: nearest_symplectic(torch.zeros(5, 2)), r"\[2n, 2p\]"),
])
def test_invalid_input_gives_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_module_recipe_pushes_measured_card(tmp_path):
    from zoo._core.runner import run_recipe
    from zoo.hub import LocalHub

    result = run_recipe("recipes/symplectic/min_trace_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    assert result.loaded_back_equal is True
    assert result.metrics["relative_gap"] < 1e-8 and result.metrics["feasibility"] < 1e-10
    card = (LocalHub().snapshot("paperzoo/symplectic-min-trace-tiny") / "README.md").read_text()
    assert f"| relative_gap | {result.metrics['relative_gap']:.6g} |" in card and "arxiv:2406.14299" in card
    loaded = zoo.from_pretrained("paperzoo/symplectic-min-trace-tiny")
    assert torch.equal(loaded.point, result.module.point.detach())
    assert float(symplectic_feasibility(loaded.point.detach())) < 1e-10


def test_config_validation():
    from zoo.symplectic.module import SymplecticConfig

    with pytest.raises(ValueError, match="p must satisfy"):
        SymplecticConfig(n=3, p=4)
    with pytest.raises(ValueError, match="metric"):
        SymplecticConfig(metric="riemann")


def test_min_trace_takes_a_float32_start_from_random_and_checks_x0_absolutely():
    """random() follows torch's default dtype (float32): min_trace takes it as a start in m's dtype (it raised a dtype
    mismatch); and the start check is absolute, 1e-8 (geoopt's default rtol 1e-5 let a start off by 1e-6 through)."""
    m, d, _ = planted_spd_matrix(8, seed=0)
    manifold = SymplecticStiefel(8, 2)
    x0 = manifold.random(generator=torch.Generator().manual_seed(1))
    assert x0.dtype == torch.get_default_dtype()
    result = min_trace(m, 2, x0=x0)
    assert abs(result.value - 2 * d[:2].sum().item()) < 1e-8
    good = manifold.random(dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    off = good * (1 + 1e-6)  # |X^T J X - J| about 2e-6 |X|^2: outside 1e-8, inside geoopt's rtol
    with pytest.raises(ValueError, match="x0 is not on Sp"):
        min_trace(m, 2, x0=off)
