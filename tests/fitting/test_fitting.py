"""zoo.fitting: transforms, likelihoods, optimisers, uncertainties, profile intervals, resolution, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from zoo.fitting import (
    Parameter,
    ParameterSet,
    ResolutionOperator,
    fft_convolve,
    fit,
    fit_batched,
    gaussian_chi2,
    gaussian_kernel,
    poisson_deviance,
    poisson_nll,
)

X = torch.linspace(0, 10, 120, dtype=torch.float64)
TRUTH = {"a": 50.0, "tau": 2.0, "b": 3.0}


def decay(p):
    return p["a"] * torch.exp(-X / p["tau"]) + p["b"]


def decay_batched(p):
    return p["a"][:, None] * torch.exp(-X / p["tau"][:, None]) + p["b"][:, None]


def params():
    return [Parameter("a", 30.0, "counts", lower=0), Parameter("tau", 3.0, "s", lower=0.1, upper=10), Parameter("b", 1.0, "counts", lower=0)]


def truth_expected():
    return decay({k: torch.tensor(v, dtype=torch.float64) for k, v in TRUTH.items()})


def test_transforms_round_trip_and_bound_flags():
    ps = ParameterSet([Parameter("free", -3.0), Parameter("low", 2.0, lower=1.0), Parameter("up", -2.0, upper=5.0),
                       Parameter("both", 0.3, lower=0.0, upper=1.0), Parameter("fix", 7.0, fixed=True)])
    p = torch.tensor([-3.0, 2.0, -2.0, 0.3], dtype=torch.float64)
    u = ps.to_unconstrained(p)
    torch.testing.assert_close(ps.to_physical(u), p, rtol=1e-14, atol=1e-14)
    # jacobian diagonal against autograd
    uu = u.clone().requires_grad_(True)
    jac = torch.autograd.functional.jacobian(ps.to_physical, uu).diagonal()
    torch.testing.assert_close(ps.jacobian_diagonal(u), jac, rtol=1e-12, atol=1e-14)
    # any u maps inside the bounds
    wild = torch.tensor([50.0, -50.0, 50.0, -50.0], dtype=torch.float64)
    q = ps.to_physical(wild)
    assert q[1] >= 1.0 and q[2] <= 5.0 and 0.0 <= q[3] <= 1.0
    assert ps.at_bound(torch.tensor([0.0, 1.0 + 1e-9, 0.0, 0.5], dtype=torch.float64)).tolist() == [False, True, False, False]
    assert ps.as_dict(p)["fix"].item() == 7.0 and ps.free_names == ["free", "low", "up", "both"]


def test_losses_against_closed_forms():
    y = torch.tensor([0.0, 1.0, 4.0, 10.0], dtype=torch.float64)
    mu = torch.tensor([0.5, 2.0, 3.0, 12.0], dtype=torch.float64)
    nll = sum(m - (yy * math.log(m) if yy > 0 else 0.0) for yy, m in zip(y.tolist(), mu.tolist()))
    dev = 2 * sum((yy * math.log(yy / m) if yy > 0 else 0.0) - (yy - m) for yy, m in zip(y.tolist(), mu.tolist()))
    assert poisson_nll(mu, y).item() == pytest.approx(nll, rel=1e-14)
    assert poisson_deviance(mu, y).item() == pytest.approx(dev, rel=1e-14)
    const = sum((yy * math.log(yy) if yy > 0 else 0.0) - yy for yy in y.tolist())
    assert poisson_deviance(mu, y).item() == pytest.approx(2 * (nll + const), rel=1e-13)  # D = 2 NLL + const
    sigma = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    assert gaussian_chi2(mu, y, sigma).item() == pytest.approx(float((((y - mu) / sigma) ** 2).sum()), rel=1e-14)


@pytest.mark.parametrize("method", ["lbfgs", "levenberg_marquardt"])
def test_noiseless_fit_returns_truth(method):
    result = fit(decay, truth_expected(), params(), method=method)
    assert result.converged
    for name, value in TRUTH.items():
        assert result.values[name] == pytest.approx(value, rel=1e-7, abs=1e-9)
    assert result.goodness < 1e-8 and result.dof == 117
    assert "tau" in result.report() and result.to_dict()["tau_error"] > 0


def test_linear_gaussian_covariance_is_exact():
    rng = np.random.default_rng(1)
    design = torch.as_tensor(rng.normal(size=(40, 3)))
    sigma = torch.as_tensor(rng.uniform(0.5, 2.0, size=40))
    y = design @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + sigma * torch.as_tensor(rng.normal(size=40))

    def model(p):
        return design @ torch.stack([p["c0"], p["c1"], p["c2"]])

    result = fit(model, y, [Parameter(f"c{i}", 0.0) for i in range(3)], loss="gaussian", sigma=sigma)
    weight = torch.diag(1 / sigma**2)
    exact_cov = torch.linalg.inv(design.T @ weight @ design)
    exact = exact_cov @ design.T @ weight @ y
    np.testing.assert_allclose(result.covariance, exact_cov.numpy(), rtol=1e-8)
    np.testing.assert_allclose([result.values[f"c{i}"] for i in range(3)], exact.numpy(), rtol=1e-8, atol=1e-10)
    fisher = fit(model, y, [Parameter(f"c{i}", 0.0) for i in range(3)], loss="gaussian", sigma=sigma, error_method="fisher")
    np.testing.assert_allclose(fisher.covariance, exact_cov.numpy(), rtol=1e-8)
    scaled = fit(model, y, [Parameter(f"c{i}", 0.0) for i in range(3)], loss="gaussian", sigma=sigma, scale_covariance=True)
    np.testing.assert_allclose(scaled.covariance, exact_cov.numpy() * scaled.reduced, rtol=1e-8)
    assert scaled.covariance_scaled and not result.covariance_scaled


def test_hessian_and_fisher_agree_at_optimum_on_poisson_data():
    y = torch.as_tensor(np.random.default_rng(3).poisson(truth_expected().numpy() * 20), dtype=torch.float64)
    model = lambda p: 20 * decay(p)  # noqa: E731
    hessian = fit(model, y, params())
    fisher = fit(model, y, params(), error_method="fisher")
    for name in TRUTH:
        assert fisher.errors[name] == pytest.approx(hessian.errors[name], rel=0.05)


def test_profile_interval_of_poisson_mean_matches_exact_likelihood_ratio():
    y = torch.tensor([3.0, 5.0, 4.0, 0.0, 7.0], dtype=torch.float64)
    n, total = y.numel(), float(y.sum())
    result = fit(lambda p: p["m"].expand(n), y, [Parameter("m", 2.0, lower=0)], profile=True)
    best = total / n

    def excess(m):
        return 2 * ((n * m - total * math.log(m)) - (n * best - total * math.log(best))) - 1

    exact = (brentq(excess, 1e-6, best), brentq(excess, best, 50))
    assert result.intervals["m"][0] == pytest.approx(exact[0], rel=1e-8)
    assert result.intervals["m"][1] == pytest.approx(exact[1], rel=1e-8)
    assert result.intervals["m"][1] - best > best - result.intervals["m"][0]  # asymmetric, as for a Poisson mean


def test_profile_with_nuisance_parameters_brackets_the_estimate():
    y = torch.as_tensor(np.random.default_rng(0).poisson(truth_expected().numpy()), dtype=torch.float64)
    result = fit(decay, y, params(), profile=["tau"])
    lo, hi = result.intervals["tau"]
    assert lo < result.values["tau"] < hi
    assert (hi - lo) / 2 == pytest.approx(result.errors["tau"], rel=0.15)


def test_gradient_taylor_slope_float64():
    y = torch.as_tensor(np.random.default_rng(0).poisson(truth_expected().numpy()), dtype=torch.float64)
    ps = ParameterSet(params())
    u = ps.to_unconstrained(ps.start()).requires_grad_(True)

    def nll(v):
        return poisson_nll(decay(ps.as_dict(ps.to_physical(v))), y)

    value = nll(u)
    (grad,) = torch.autograd.grad(value, u)
    direction = torch.tensor([0.3, -0.7, 0.5], dtype=torch.float64)
    errors = [abs(float(nll(u.detach() + t * direction) - value.detach() - t * grad @ direction)) for t in (1e-2, 1e-3)]
    assert math.log10(errors[0] / errors[1]) == pytest.approx(2.0, abs=0.1)  # second-order remainder


def test_batched_lm_matches_single_fits_and_pulls_are_calibrated():
    """Pooled pull test over 20 seeded replicas (fast tier): pulls have mean ~0 and sd ~1."""
    rng = np.random.default_rng(7)
    counts = torch.as_tensor(rng.poisson(truth_expected().numpy(), size=(20, X.numel())), dtype=torch.float64)
    batch = fit_batched(decay_batched, counts, params())
    assert batch.converged.all() and batch.iterations.max() < 30
    single = fit(decay, counts[4], params())
    for i, name in enumerate(batch.free_names):
        assert batch.values[4, i] == pytest.approx(single.values[name], abs=1e-4 * single.errors[name])
        assert batch.errors[4, i] == pytest.approx(single.errors[name], rel=0.05)
    pulls = (batch.values - np.array([TRUTH[n] for n in batch.free_names])) / batch.errors
    pooled = pulls.ravel()  # 60 pulls
    assert abs(pooled.mean()) < 3 / math.sqrt(pooled.size) + 0.1
    assert 0.7 < pooled.std(ddof=1) < 1.35
    assert 0.5 < np.mean(np.abs(pooled) < 1) < 0.85


def test_batched_lm_drop_converged_is_the_same_fit_and_refuses_a_fixed_batch_model():
    """``drop_converged=True`` evaluates only the problems still iterating: the same fit as the full batch (flags and
    iteration counts equal, values and errors to rounding: vectorised kernels may round differently at another batch
    size), and the problems differ in their iteration counts here, so the batch does shrink; a model holding
    per-problem arrays cannot be called on a subset and is refused in one line."""
    rng = np.random.default_rng(11)
    counts = torch.as_tensor(rng.poisson(truth_expected().numpy(), size=(24, X.numel())), dtype=torch.float64)
    full = fit_batched(decay_batched, counts, params())
    shrunk = fit_batched(decay_batched, counts, params(), drop_converged=True)
    assert len(set(full.iterations.tolist())) > 1
    for name in ("converged", "iterations"):
        assert np.array_equal(getattr(full, name), getattr(shrunk, name)), name
    assert np.abs((full.values - shrunk.values) / full.errors).max() < 1e-12
    assert np.abs(full.errors / shrunk.errors - 1).max() < 1e-12
    offsets = torch.linspace(0.0, 1.0, 24, dtype=torch.float64)[:, None]  # one per problem: a fixed batch of 24

    def fixed_batch(p):
        return decay_batched(p) + offsets

    assert fit_batched(fixed_batch, counts, params()).converged.all()
    with pytest.raises(ValueError, match=r"the model failed on \d+ of 24 problems \(.*\); drop_converged=True .*drop_converged=False"):
        fit_batched(fixed_batch, counts, params(), drop_converged=True)

    def ignores_the_batch(p):  # one curve broadcast to 24 rows whatever the parameters' batch: a silent misfit
        return decay_batched({k: v[:1].expand(24) for k, v in p.items()})

    with pytest.raises(ValueError, match=r"the model returned shape \(24, 120\) for \d+ problems"):
        fit_batched(ignores_the_batch, counts, params(), drop_converged=True)


def test_resolution_operator_rows_fft_and_voigt():
    fine = torch.linspace(-20, 20, 4001, dtype=torch.float64)
    data = torch.linspace(-10, 10, 81, dtype=torch.float64)
    R = ResolutionOperator.build(data, fine, fwhm=1.5)
    torch.testing.assert_close(R.matrix.sum(1), torch.ones(81, dtype=torch.float64), rtol=0, atol=1e-13)
    torch.testing.assert_close(R(torch.full((2, 4001), 3.0, dtype=torch.float64)), torch.full((2, 81), 3.0, dtype=torch.float64))
    # FFT convolution = direct matrix convolution on a uniform grid (interior, kernel fully inside)
    step = float(fine[1] - fine[0])
    offsets = torch.arange(-1000, 1001, dtype=torch.float64) * step  # 15 sigma: truncation below 1e-40
    kernel = gaussian_kernel(offsets, 1.5) * step
    kernel = kernel / kernel.sum()
    signal = torch.exp(-((fine - 2) ** 2)) + 0.1 * torch.sin(fine)
    by_fft = fft_convolve(signal, kernel)
    same = ResolutionOperator.build(fine[1000:3001], fine, fwhm=1.5)
    np.testing.assert_allclose(by_fft[1000:3001].numpy(), same(signal).numpy(), rtol=0, atol=1e-12)
    # direct sum for a few points
    direct = torch.stack([(kernel * signal[i + 1000 - torch.arange(2001)]).sum() for i in (1500, 2000, 2700)])
    np.testing.assert_allclose(by_fft[[1500, 2000, 2700]].numpy(), direct.numpy(), atol=1e-13)
    # Voigt = Lorentzian on a fine grid through a Gaussian operator, vs scipy.special.voigt_profile
    from scipy.special import voigt_profile

    lorentz = 0.4 / (math.pi * (fine**2 + 0.4**2))
    voigt = ResolutionOperator.build(data, fine, fwhm=1.0)(lorentz)
    exact = voigt_profile(data.numpy(), 1.0 / 2.3548200450309493, 0.4)
    centre = slice(20, 61)
    np.testing.assert_allclose(voigt.numpy()[centre], exact[centre], rtol=2e-3)
    kernel_op = ResolutionOperator.build(data, fine, fwhm=1.0, kernel="voigt", lorentzian_fwhm=0.8)
    delta_like = torch.zeros(4001, dtype=torch.float64)
    delta_like[2000] = 1.0
    assert kernel_op.matrix.shape == (81, 4001) and torch.isfinite(kernel_op(delta_like)).all()
    # normalise="exact": rows sum to the kernel mass inside the window (the Lorentzian tails it cuts are lost, not
    # put back), so R applied to a delta function on the fine grid is the analytic line; "window" rows sum to 1
    from zoo.fitting.resolution import kernel_mass, resolution_kernel

    for kernel, kwargs in (("voigt", {"lorentzian_fwhm": 0.8}), ("pseudo_voigt", {"eta": 0.3}), ("gaussian", {})):
        exact_op = ResolutionOperator.build(data, fine, fwhm=1.0, kernel=kernel, normalise="exact", **kwargs)
        mass = kernel_mass(fine[0] - data, fine[-1] - data, 1.0, kernel, **kwargs)
        np.testing.assert_allclose(exact_op.matrix.sum(1).numpy(), mass.numpy(), rtol=1e-14)
        step = float(fine[1] - fine[0])
        line = resolution_kernel(data - fine[2000], 1.0, kernel, **kwargs)
        np.testing.assert_allclose(exact_op(delta_like / step).numpy(), line.numpy(), rtol=1e-6)  # measured <= 4e-9
        window_op = ResolutionOperator.build(data, fine, fwhm=1.0, kernel=kernel, **kwargs)
        np.testing.assert_allclose(window_op.matrix.sum(1).numpy(), 1.0, rtol=1e-14)
    with pytest.raises(ValueError, match="normalise must be one of"):
        ResolutionOperator.build(data, fine, fwhm=1.0, normalise="rows")
    with pytest.raises(ValueError, match="fwhm must be > 0"):
        ResolutionOperator.build(data, fine, fwhm=0.0)
    with pytest.raises(ValueError, match="cover the data grid"):
        ResolutionOperator.build(torch.tensor([30.0]), fine, fwhm=1.0)


def test_plot_and_report(tmp_path):
    y = torch.as_tensor(np.random.default_rng(0).poisson(truth_expected().numpy()), dtype=torch.float64)
    result = fit(decay, y, params())
    figure = result.plot(x=X.numpy(), path=tmp_path / "fit.png")
    assert (tmp_path / "fit.png").stat().st_size > 1000 and len(figure.axes) == 2
    text = result.report()
    assert "deviance/dof" in text and "counts" in text and "converged=True" in text


@pytest.mark.parametrize(
    "data, match",
    [
        (torch.tensor([1.0, float("nan"), 3.0]), r"data must be finite; data\[1\] = nan"),
        (torch.tensor([1.0, -2.0, 3.0]), r"counts must be >= 0; data\[1\] = -2"),
        (torch.tensor([]), "data is empty"),
    ],
)
def test_bad_data_gives_clear_errors(data, match):
    with pytest.raises(ValueError, match=match):
        fit(lambda p: p["m"].expand(3), data, [Parameter("m", 2.0, lower=0)])


def test_bad_setup_gives_clear_errors():
    with pytest.raises(ValueError, match="start value 5.0 lies outside its bounds"):
        Parameter("m", 5.0, lower=0.0, upper=2.0)
    with pytest.raises(ValueError, match=r"model returned shape \(4,\) but the data has shape \(3,\)"):
        fit(lambda p: p["m"].expand(4), torch.ones(3), [Parameter("m", 2.0, lower=0)])
    with pytest.raises(ValueError, match="expected counts > 0"):
        fit(lambda p: p["m"] * torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64), torch.ones(3), [Parameter("m", 2.0)])
    with pytest.raises(ValueError, match="batch axis"):
        fit_batched(decay_batched, torch.ones(120), params())
    with pytest.raises(ValueError, match="needs sigma"):
        fit(decay, truth_expected(), params(), loss="gaussian")
    with pytest.raises(ValueError, match=r"sigma must be finite and > 0; sigma\[0\] = 0"):
        fit(decay, truth_expected(), params(), loss="gaussian", sigma=torch.zeros(120))
    with pytest.raises(ValueError, match="method must be one of"):
        fit(decay, truth_expected(), params(), method="newton")
    with pytest.raises(ValueError, match="unique"):
        ParameterSet([Parameter("a", 1.0), Parameter("a", 2.0)])


@pytest.mark.slow
def test_coverage_over_1000_batched_replicas():
    """Slow tier: 1- and 2-sigma coverage over 1000 replicas within 3 binomial standard errors of nominal."""
    rng = np.random.default_rng(2024)
    counts = torch.as_tensor(rng.poisson(truth_expected().numpy(), size=(1000, X.numel())), dtype=torch.float64)
    batch = fit_batched(decay_batched, counts, params())
    assert batch.converged.mean() > 0.99
    ok = batch.converged
    pulls = np.abs((batch.values[ok] - np.array([TRUTH[n] for n in batch.free_names])) / batch.errors[ok])
    for k, nominal in ((1, 0.6827), (2, 0.9545)):
        coverage = (pulls < k).mean(0)
        se = math.sqrt(nominal * (1 - nominal) / ok.sum())
        assert np.all(np.abs(coverage - nominal) < 3 * se + 0.01), (k, coverage)


def test_condition_number_flags_inseparable_parameters():
    """A shift that enters only as (delta - mu) cannot be separated from mu: huge normalised condition number."""
    y = truth_expected()
    separable = fit(decay, y, params())
    assert separable.hessian_condition < 1e3

    def degenerate(p):
        return p["a"] * torch.exp(-(X - (p["shift"] - p["mu"])) / 2.0) * 1e-3 + 3.0

    result = fit(degenerate, y, [Parameter("a", 30.0, lower=0), Parameter("shift", 0.5), Parameter("mu", 0.1)])
    assert result.hessian_condition > 1e12 or not result.converged


@pytest.mark.gpu
def test_batched_fit_on_cuda_matches_cpu():
    rng = np.random.default_rng(11)
    counts = torch.as_tensor(rng.poisson(truth_expected().numpy(), size=(16, X.numel())), dtype=torch.float64)
    x_cuda = X.cuda()

    def on_cuda(p):
        return p["a"][:, None] * torch.exp(-x_cuda / p["tau"][:, None]) + p["b"][:, None]

    cpu = fit_batched(decay_batched, counts, params())
    gpu = fit_batched(on_cuda, counts.cuda(), params())
    assert gpu.converged.all()
    np.testing.assert_allclose(gpu.values, cpu.values, rtol=1e-8)
    np.testing.assert_allclose(gpu.errors, cpu.errors, rtol=1e-6)
