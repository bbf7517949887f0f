"""Tensor completion on the desingularised manifolds: sparse evaluation against the dense tensor, chunked
derivatives against plain autograd, planted recovery (true and over-estimated ranks; Tucker orders 3 and 4, TT
order 5), one-line errors for bad input, the fixed-rank references, and the tiny recipes pushed and loaded back."""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.manifolds._tensor_algebra import multi_mode_product
from zoo.manifolds.tt_desingularization import tt_full
from zoo.tensor_completion import (CompletionProblem, check_observations, complete, core_singular_values, entries,
                                   planted_tt, planted_tucker, sample_entries, sample_floor, sample_image)
from zoo.tensor_completion.model import spectral_start
from zoo.tensor_completion.fixed_rank import FixedRankTT, FixedRankTucker

from tests.manifolds.structured_contract import StructuredContract


def _planted(format, shape, ranks, seed=0):
    if format == "tucker":
        core, factors = planted_tucker(shape, ranks, seed)
        return (core, *factors)
    return tuple(planted_tt(shape, ranks, seed))


def test_sparse_entries_match_the_dense_tensor():
    point = _planted("tucker", (5, 6, 7, 3), (2, 3, 2, 2))
    dense = multi_mode_product(point[0], point[1:])
    idx, _ = sample_entries((5, 6, 7, 3), 200, 0, seed=0)
    assert torch.allclose(entries("tucker", point, idx), dense[tuple(idx.T)], atol=1e-15)
    assert abs(float(dense.norm()) - 1) < 1e-12
    cores = _planted("tt", (3, 4, 5, 3, 2), (2, 3, 3, 2))
    dense = tt_full(cores)
    idx, _ = sample_entries((3, 4, 5, 3, 2), 200, 0, seed=1)
    assert torch.allclose(entries("tt", cores, idx), dense[tuple(idx.T)], atol=1e-15)
    assert abs(float(dense.norm()) - 1) < 1e-12


def test_masks_are_disjoint_uniform_and_cover_every_index():
    train, test = sample_entries((6, 7, 8), 150, 100, seed=3)
    flat = lambda idx: set((idx[:, 0] * 56 + idx[:, 1] * 8 + idx[:, 2]).tolist())  # noqa: E731
    assert len(flat(train)) == 150 and len(flat(test)) == 100 and not flat(train) & flat(test)
    assert all(int(train[:, k].unique().numel()) == n for k, n in enumerate((6, 7, 8)))
    assert sample_floor("tucker", (100, 150, 200), (2, 3, 4)) == 1445  # 24 + (200-4) + (450-9) + (800-16)
    assert sample_floor("tt", (10,) * 5, (3, 3, 3, 3)) == 294


def test_chunked_cost_gradient_and_hessian_match_plain_autograd():
    shape, ranks = (6, 7, 8), (2, 3, 2)
    truth = _planted("tucker", shape, ranks)
    idx, _ = sample_entries(shape, 120, 0, seed=0)
    values = entries("tucker", truth, idx)
    point = [p + 0.1 for p in _planted("tucker", shape, ranks, seed=1)]
    direction = [torch.randn_like(p) for p in point]
    chunked, whole = CompletionProblem("tucker", shape, idx, values, chunk_size=7), CompletionProblem("tucker", shape, idx, values)
    params = [p.clone().requires_grad_(True) for p in point]
    cost = chunked.cost(params, backward=lambda piece: piece.backward())
    reference = [p.clone().requires_grad_(True) for p in point]
    expected = whole.cost(reference)
    grads = torch.autograd.grad(expected, reference, create_graph=True)
    assert abs(float(cost) - float(expected.detach())) < 1e-14
    assert all(torch.allclose(p.grad, g, atol=1e-14) for p, g in zip(params, grads))
    hvp = torch.autograd.grad(sum((g * d).sum() for g, d in zip(grads, direction)), reference)
    assert all(torch.allclose(a, b, atol=1e-13) for a, b in zip(chunked.hessian_vector_product(point, direction), hvp))


@pytest.mark.parametrize("shape, ranks, count", [((6, 7, 8), (2, 3, 2), 200), ((4, 5, 3, 6), (2, 2, 2, 3), 300)])
def test_dense_partial_path_matches_the_per_entry_path(shape, ranks, count):
    """Tucker with ``prod_(k != s) n_k <= |Omega|`` goes through the dense partial product (hand-written backward):
    cost, gradient, residuals and the directional derivative of the entries equal the per-entry path, the latter
    also a central difference; ``exact_step`` is the minimiser of the cost along the ambient line X + t Xdot."""
    truth = _planted("tucker", shape, ranks)
    idx, _ = sample_entries(shape, count, 0, seed=0)
    values = entries("tucker", truth, idx)
    point = [p + 0.1 for p in _planted("tucker", shape, ranks, seed=1)]
    fast, slow = CompletionProblem("tucker", shape, idx, values, chunk_size=7), CompletionProblem("tucker", shape, idx, values, chunk_size=7)
    slow._partial_mode = None
    assert fast._partial_mode == max(range(len(shape)), key=lambda k: shape[k])
    a, b = [p.clone().requires_grad_(True) for p in point], [p.clone().requires_grad_(True) for p in point]
    cost_a, cost_b = fast.cost(a, backward=lambda c: c.backward()), slow.cost(b, backward=lambda c: c.backward())
    assert abs(float(cost_a - cost_b)) < 1e-14
    assert all(torch.allclose(x.grad, y.grad, atol=1e-14) for x, y in zip(a, b))
    direction = [torch.randn_like(p) for p in point]
    assert torch.allclose(fast.residuals(point), slow.residuals(point), atol=1e-14)
    velocity = fast.directional_entries(point, direction)
    assert torch.allclose(velocity, slow.directional_entries(point, direction), atol=1e-13)
    h = 1e-6
    difference = (entries("tucker", [p + h * u for p, u in zip(point, direction)], idx)
                  - entries("tucker", [p - h * u for p, u in zip(point, direction)], idx)) / (2 * h)
    assert torch.allclose(velocity, difference, atol=1e-8)
    residual = fast.residuals(point)
    sign = 1.0 if float((residual * velocity).sum()) < 0 else -1.0  # a descent direction
    step = fast.exact_step(point, [sign * u for u in direction])
    line = lambda t: float((residual + t * sign * velocity).pow(2).sum())  # noqa: E731  (2 |P_Omega A|^2 f along the line)
    assert step > 0 and line(step) < min(line(0.99 * step), line(1.01 * step))


@pytest.mark.parametrize("format", ["tucker", "tt"])
def test_spectral_start_is_chunked_and_complete_forwards_chunk_size(format, monkeypatch):
    """The start accumulates its per-entry products ``chunk_size`` entries at a time in both formats (same point as
    one chunk), and ``complete`` hands its ``chunk_size`` to the start (before, the start always used its own
    default, and the TT branch ignored the argument)."""
    import zoo.tensor_completion.model as model_file
    shape = (6, 7, 8) if format == "tucker" else (4, 5, 4, 5)
    ranks = (2, 3, 2) if format == "tucker" else (2, 2, 2)
    truth = _planted(format, shape, ranks)
    idx, _ = sample_entries(shape, 300, 0, seed=2)
    values = entries(format, truth, idx)
    whole = spectral_start(format, shape, idx, values, ranks)
    chunked = spectral_start(format, shape, idx, values, ranks, chunk_size=7)
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(whole, chunked))
    with pytest.raises(ValueError, match="chunk_size must be >= 1, got 0"):
        spectral_start(format, shape, idx, values, ranks, chunk_size=0)
    seen = []
    original = model_file.spectral_start
    monkeypatch.setattr(model_file, "spectral_start", lambda *a, **k: seen.append(a[5:] + tuple(k.values())) or original(*a, **k))
    complete(shape, idx, values, ranks, format=format, chunk_size=11, max_iterations=1, track_singular_values=False)
    assert seen == [(11,)]


# -- planted recovery ------------------------------------------------------------------------------------------------
def _failing(seed, fit, reason):
    return pytest.param(*fit, seed, marks=[pytest.mark.slow, pytest.mark.xfail(strict=True, reason=reason)],
                        id=f"{fit[0]}{len(fit[1])}-over-{fit[4]}-seed{seed}-fails")


_T3_OVER = ("tucker", (16, 18, 20), (2, 3, 2), (3, 4, 3), "rgd")
_T4_OVER = ("tucker", (8, 9, 10, 11), (2, 2, 2, 2), (3, 3, 3, 3), "rgd")
_TT5_OVER = ("tt", (5, 5, 5, 5, 5), (2, 2, 2, 2), (3, 3, 3, 3), "rgd")
RECOVERY = [
    # format, shape, true ranks, working ranks, optimizer, seed (planted tensor ``seed``, mask ``seed + 1``);
    # |Omega| = 5 x the sample floor of the TRUE ranks
    *(pytest.param("tucker", (16, 18, 20), (2, 3, 2), (2, 3, 2), "rgd", s, id=f"tucker3-true-rgd-seed{s}") for s in range(3)),
    *(pytest.param(*_T3_OVER, s, id=f"tucker3-over-rgd-seed{s}") for s in (0, 2)),
    _failing(1, _T3_OVER, "measured: an exact fit of the samples (training error 1e-12 at 3500 iterations) with test "
             "error 0.13, the extra mode-3 singular value stuck at 0.022: exact fits are not unique at this sampling"),
    *(pytest.param("tucker", (8, 9, 10, 11), (2, 2, 2, 2), (2, 2, 2, 2), "rgd", s, id=f"tucker4-true-rgd-seed{s}") for s in range(3)),
    *(pytest.param(*_T4_OVER, s, id=f"tucker4-over-rgd-seed{s}") for s in (0, 2)),
    _failing(1, _T4_OVER, "measured: an exact fit that is not the tensor (run to 8000 iterations: training error "
             "5e-11 and falling, test error 0.589 from iteration 2000 on, the extra mode-4 singular value at 0.22)"),
    pytest.param("tucker", (8, 9, 10, 11), (2, 2, 2, 2), (2, 2, 2, 2), "trust_region", 0, id="tucker4-true-rtr"),
    *(pytest.param("tt", (5, 5, 5, 5, 5), (2, 2, 2, 2), (2, 2, 2, 2), "rgd", s, id=f"tt5-true-rgd-seed{s}") for s in range(3)),
    *(pytest.param(*_TT5_OVER, s, id=f"tt5-over-rgd-seed{s}") for s in (0, 1)),
    _failing(2, _TT5_OVER, "measured: test error 0.4 at the 3000-iteration cap (not run longer)"),
    pytest.param("tt", (6, 6, 6, 6, 6), (2, 3, 3, 2), (2, 3, 3, 2), "trust_region", 0, id="tt5-true-rtr"),
]


@pytest.mark.parametrize("format, shape, ranks, working, optimizer, seed", RECOVERY)
def test_planted_completion_recovers_the_tensor(format, shape, ranks, working, optimizer, seed):
    """5x the sample floor of the *true* ranks (the dimension of the fixed-rank model of the planted tensor, the
    identifiability floor), also when the working rank is over-estimated (then the samples are only 2 to 3x the
    dimension of the working manifold). From the default spectral start and the default (scale-free) omega.

    Seeds 0, 1, 2 of every RGD case were run (cap 3000 iterations): at the true rank 3 of 3 recover in each format
    (Tucker order 3 and 4, TT order 5), all in the fast tier. With the rank over-estimated 2 of 3 recover in each
    format. The third seed (Tucker: 1, TT: 2) fails: on Tucker order 3 it ends at an exact fit of the samples that
    is not the tensor (training error 1e-12 at 3500 iterations, test error 0.13, the extra singular value of mode 3
    stuck at 0.022), the non-uniqueness of exact fits at this sampling (docs/tensor_completion.md, "Over-estimated
    ranks"), not a slow convergence; Tucker order 4 likewise (run to 8000 iterations: training error 5e-11 and
    falling, test error fixed at 0.589 from iteration 2000, the extra mode-4 singular value at 0.22). TT (test
    error 0.4 at the 3000-iteration cap) was not run longer, so its cause is open. They are strict xfails in the
    slow tier (15 to 70 s wall each on the shared machine). Smaller omega, which converges faster, failed more
    seeds (see ``complete``)."""
    truth = _planted(format, shape, ranks, seed)
    count = math.ceil(5 * sample_floor(format, shape, ranks))
    train, test = sample_entries(shape, count, 2000, seed=seed + 1)
    result = complete(shape, train, entries(format, truth, train), working, format=format, optimizer=optimizer,
                      test_indices=test, test_values=entries(format, truth, test), max_iterations=3000,
                      track_singular_values=False)
    assert result.converged, (result.stop_reason, result.train_error)
    assert result.test_error < 1e-8, result.test_error


def test_spectral_start_recovers_where_the_random_start_stalls():
    """Order 4 at the true rank, 5x the floor: from a random start RGD is still above a relative training error of
    1e-2 after 400 iterations (it stalled at 0.44 to 0.48 for RGD, RCG and RTR in runs of up to 3000); from the
    spectral start the same solver, with the same cap, recovers the tensor."""
    shape, ranks = (8, 9, 10, 11), (2, 2, 2, 2)
    truth = _planted("tucker", shape, ranks)
    train, test = sample_entries(shape, 5 * sample_floor("tucker", shape, ranks), 2000, seed=1)
    runs = {init: complete(shape, train, entries("tucker", truth, train), ranks, optimizer="rgd", init=init,
                           test_indices=test, test_values=entries("tucker", truth, test), max_iterations=400,
                           track_singular_values=False) for init in ("random", "spectral")}
    assert runs["random"].train_error > 1e-2 and runs["random"].test_error > 1e-1, runs["random"].train_error
    assert runs["spectral"].converged and runs["spectral"].test_error < 1e-8, runs["spectral"].test_error


def test_omega_is_relative_to_the_tensor_scale():
    """Scaling the data by 1000 scales the result by 1000 and changes nothing else (omega is scale-free)."""
    shape, ranks = (10, 11, 12), (2, 2, 2)
    truth = _planted("tucker", shape, ranks)
    train, _ = sample_entries(shape, 400, 0, seed=1)
    values = entries("tucker", truth, train)
    small = complete(shape, train, values, ranks, optimizer="rgd", max_iterations=30, tolerance=1e-30, stagnation=0)
    large = complete(shape, train, 1000 * values, ranks, optimizer="rgd", max_iterations=30, tolerance=1e-30, stagnation=0)
    assert small.iterations == large.iterations == 30
    assert max(abs(a - b) for a, b in zip(small.train_errors, large.train_errors)) < 1e-9


@pytest.mark.parametrize("bad, match", [
    (lambda: check_observations((4, 5, 6), torch.zeros(0, 3, dtype=torch.int64), torch.zeros(0)), "mask is empty"),
    (lambda: check_observations((4, 5, 6), torch.tensor([[0, 5, 0]]), torch.zeros(1)), "index 5 out of range for mode 1 of size 5"),
    (lambda: check_observations((4, 5, 6), torch.tensor([[-1, 0, 0]]), torch.zeros(1)), "index -1 out of range for mode 0"),
    (lambda: check_observations((4, 5, 6), torch.tensor([[0, 0, 0], [1, 1, 1]]), torch.tensor([1.0, math.nan])), "1 non-finite"),
    (lambda: check_observations((4, 5, 6), torch.tensor([[0, 0]]), torch.zeros(1)), r"shape \[m, 3\]"),
    (lambda: check_observations((4, 5, 6), torch.tensor([[0.0, 0, 0]]), torch.zeros(1)), "integer tensor"),
    (lambda: complete((4, 5, 6), torch.tensor([[0, 0, 0]]), torch.tensor([math.inf]), (2, 2, 2)), "non-finite"),
    (lambda: complete((4, 5, 6), torch.tensor([[0, 0, 0]]), torch.ones(1), (5, 2, 2)), r"ranks\[0\] = 5 exceeds"),
    (lambda: complete((4, 5, 6), torch.tensor([[0, 0, 0]]), torch.ones(1), (2, 11), format="tt"), r"r_2 = 11 violates"),
    (lambda: complete((4, 5, 6), torch.tensor([[0, 0, 0]]), torch.ones(1), (2, 2, 2), format="cp"), "format"),
    (lambda: complete((4, 5, 6), torch.tensor([[0, 0, 0]]), torch.ones(1), (2, 2, 2), optimizer="adam"), "optimizer"),
    (lambda: complete((4, 5, 6), torch.tensor([[0, 0, 0]]), torch.ones(1), (2, 2, 2), optimizer="trust_region", exact_step=True),
     "exact_step applies to optimizer='rgd' or 'rcg'"),  # was silently ignored
    (lambda: sample_entries((4, 5, 6), 0), "empty mask"),
    (lambda: sample_image("lena.png"), "china.jpg"),
])
def test_invalid_input_gives_one_line_errors(bad, match):
    with pytest.raises(ValueError, match=match) as error:
        bad()
    assert "\n" not in str(error.value)


def test_config_validation_names_the_field():
    from zoo.tensor_completion.config import TTCompletionConfig, TuckerCompletionConfig

    with pytest.raises(ValueError, match="optimizer"):
        TuckerCompletionConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="omega"):
        TuckerCompletionConfig(omega=0.0)
    with pytest.raises(ValueError, match=r"r_1 = 9 violates"):
        TTCompletionConfig(ranks=(9, 3, 3, 2))
    with pytest.raises(ValueError, match="sample_fraction"):
        TuckerCompletionConfig(data="image")


def test_sample_image_is_a_real_offline_colour_tensor():
    image = sample_image("china.jpg", block=8)
    assert image.shape == (53, 80, 3) and image.dtype == torch.float64
    assert 0 <= float(image.min()) and float(image.max()) <= 1 and float(image.std()) > 0.1


# -- fixed-rank references -------------------------------------------------------------------------------------------
class TestFixedRankContract(StructuredContract):
    @pytest.fixture(params=["tucker", "tt"])
    def manifold(self, request):
        return FixedRankTucker((4, 5, 6), (2, 3, 2)) if request.param == "tucker" else FixedRankTT((3, 4, 5), (2, 3))


@pytest.mark.parametrize("format", ["tucker", "tt"])
def test_fixed_rank_reference_recovers_at_the_true_rank(format):
    shape, ranks = ((20, 22, 24), (2, 3, 2)) if format == "tucker" else ((6,) * 5, (2, 3, 3, 2))
    truth = _planted(format, shape, ranks)
    train, test = sample_entries(shape, 5 * sample_floor(format, shape, ranks), 2000, seed=1)
    manifold = FixedRankTucker(shape, ranks) if format == "tucker" else FixedRankTT(shape, ranks)
    result = complete(shape, train, entries(format, truth, train), ranks, format=format, optimizer="rcg", manifold=manifold,
                      test_indices=test, test_values=entries(format, truth, test), max_iterations=3000)
    assert result.test_error < 1e-8, (result.stop_reason, result.test_error)


def test_true_rank_emerges_in_the_singular_values_when_over_estimated():
    shape, ranks, working = (30, 32, 34), (2, 3, 2), (3, 4, 3)
    truth = _planted("tucker", shape, ranks)
    train, test = sample_entries(shape, round(0.2 * math.prod(shape)), 2000, seed=1)
    result = complete(shape, train, entries("tucker", truth, train), working, optimizer="rgd",
                      test_indices=test, test_values=entries("tucker", truth, test), max_iterations=3000)
    assert result.test_error < 1e-8, (result.stop_reason, result.test_error)
    for k, values in enumerate(core_singular_values("tucker", result.point)):
        assert float(values[ranks[k]] / values[0]) < 1e-8  # the extra singular value went to 0
        assert float(values[ranks[k] - 1] / values[0]) > 1e-3


# -- Lightning modules, recipes, hub -------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe, repo", [("tucker_tiny", "paperzoo/tensor-completion-tucker-tiny"),
                                          ("tt_tiny", "paperzoo/tensor-completion-tt-tiny")])
def test_tiny_recipe_completes_pushes_a_measured_card_and_loads_back(tmp_path, recipe, repo):
    from zoo._core.runner import run_recipe
    from zoo.hub import LocalHub

    result = run_recipe(f"recipes/tensor_completion/{recipe}.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    assert result.loaded_back_equal is True
    assert result.metrics["test_relative_error"] < 1e-8 and result.metrics["feasibility"] < 1e-12
    snapshot = LocalHub().snapshot(repo)
    card = (snapshot / "README.md").read_text()
    assert f"| test_relative_error | {result.metrics['test_relative_error']:.6g} |" in card and "arxiv:2411.14093" in card
    assert (snapshot / "errors.png").is_file() and (snapshot / "singular_values.png").is_file()
    assert "![singular_values.png](singular_values.png)" in card
    import zoo.tensor_completion.module as module_file

    calls = []
    original = module_file.spectral_start
    module_file.spectral_start = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        loaded = zoo.from_pretrained(repo)
    finally:
        module_file.spectral_start = original
    assert calls == [] or result.module.config.init != "spectral"  # loading skips the start it would overwrite
    assert type(loaded).__name__ == type(result.module).__name__
    idx = result.module.test_indices[:50]
    assert torch.equal(loaded(idx), result.module(idx).detach())


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_official_tucker_setting_recovers_with_the_over_estimated_rank():
    """The official example: 100 x 150 x 200, true rank (2, 3, 4), working rank (5, 6, 7), 5 % samples, from the
    default start (spectral) with the default solver and omega. Stopped at a relative training error of 1e-10 (RGD
    reached 4e-8 train, 7e-8 test in 1000 iterations, about 28 CPU s with the dense-partial cost; a decade takes
    about 110 iterations)."""
    shape, ranks, working = (100, 150, 200), (2, 3, 4), (5, 6, 7)
    truth = _planted("tucker", shape, ranks)
    train, test = sample_entries(shape, round(0.05 * math.prod(shape)), 10000, seed=0)
    result = complete(shape, train, entries("tucker", truth, train), working, test_indices=test,
                      test_values=entries("tucker", truth, test), tolerance=1e-10, max_iterations=3000,
                      track_singular_values=False)
    assert result.converged and result.test_error < 1e-8, (result.stop_reason, result.test_error)
    for k, values in enumerate(core_singular_values("tucker", result.point)):
        assert float(values[ranks[k]] / values[0]) < 1e-8


@pytest.mark.gpu
@pytest.mark.parametrize("format", ["tucker", "tt"])
def test_completion_runs_on_cuda(format):
    shape, ranks = ((20, 22, 24), (2, 3, 2)) if format == "tucker" else ((6,) * 5, (2, 3, 3, 2))
    truth = [p.cuda() for p in _planted(format, shape, ranks)]
    train, test = sample_entries(shape, 5 * sample_floor(format, shape, ranks), 2000, seed=1)
    train, test = train.cuda(), test.cuda()
    start = [p.cuda() for p in _planted(format, shape, ranks, seed=7)]
    result = complete(shape, train, entries(format, truth, train), ranks, format=format, optimizer="trust_region",
                      start=start, test_indices=test, test_values=entries(format, truth, test), max_iterations=500)
    assert result.point[0].is_cuda and result.test_error < 1e-8
