"""Benchmark of the zoo.fitting core against lmfit, iminuit and scipy least_squares on the fitting.md section 3 problem.

Problem: DHO (A = 400, Omega = 6, Gamma = 0.8 meV, 60 K) + elastic line (A_el = 300, E0 = 0) + background 2 counts/bin,
Gaussian resolution FWHM 1.5 meV (matrix operator from a padded fine grid), 113 points from -12 to 16 meV, Poisson
counts; the same forward model in numpy for the reference fitters; the same poor start for every fitter.

    /work/venvs/zoo/bin/python tools/bench/physics.py --replicas 1000 --reference-replicas 200

writes benchmarks/physics.json and benchmarks/physics.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from zoo.fitting import Parameter, ResolutionOperator, fit_batched
from zoo.ixs.model import K_BOLTZMANN_MEV

NAMES = ["A", "omega", "gamma", "A_el", "E0", "bkg"]
TRUTH = np.array([400.0, 6.0, 0.8, 300.0, 0.0, 2.0])
START = np.array([400 * 0.7, 6 * 1.15, 0.8 * 1.5, 300 * 1.3, 0.2, 2 * 1.5])
BOUNDS = [(0, None), (0.5, 20), (0.05, 10), (0, None), (-2, 2), (0, None)]
T = 60.0
E = np.linspace(-12, 16, 113)
FINE = np.linspace(-20, 24, 1761)
OP = ResolutionOperator.build(torch.tensor(E), torch.tensor(FINE), fwhm=1.5)
R = OP.matrix.numpy()
SIG = 1.5 / 2.3548200450309493  # elastic line: the Gaussian resolution evaluated analytically


def dho_np(x, A, W, G):
    kT = K_BOLTZMANN_MEV * T
    chi_e = A / math.pi * 4 * G * W / ((x**2 - W**2) ** 2 + 4 * G**2 * x**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        bose = np.where(np.abs(x) < 1e-9, kT, x / -np.expm1(-x / kT))
    return chi_e * bose


def model_np(p):
    A, W, G, Ael, E0, b = p
    line = Ael * np.exp(-0.5 * ((E - E0) / SIG) ** 2) / (SIG * math.sqrt(2 * math.pi))
    return R @ dho_np(FINE, A, W, G) + line + b


GRIDS: dict[str, torch.Tensor] = {}


def set_device(device: str) -> None:
    GRIDS["fine"] = torch.tensor(FINE, device=device)[None, :]
    GRIDS["data"] = torch.tensor(E, device=device)[None, :]


def model_torch(p):
    kT = K_BOLTZMANN_MEV * T
    if "fine" not in GRIDS:
        set_device("cpu")
    x = GRIDS["fine"]
    A, W, G = p["A"][:, None], p["omega"][:, None], p["gamma"][:, None]
    chi_e = A / math.pi * 4 * G * W / ((x**2 - W**2) ** 2 + 4 * G**2 * x**2)
    bose = torch.where(x.abs() < 1e-9, torch.full_like(x, kT), x / -torch.expm1(-x / kT))
    e = GRIDS["data"]
    line = p["A_el"][:, None] * torch.exp(-0.5 * ((e - p["E0"][:, None]) / SIG) ** 2) / (SIG * math.sqrt(2 * math.pi))
    return OP(chi_e * bose) + line + p["bkg"][:, None]


def parameters():
    return [Parameter(n, s, lower=lo, upper=hi) for n, s, (lo, hi) in zip(NAMES, START, BOUNDS)]


def summarise(values, errors, ok, seconds):
    values, errors = values[ok], errors[ok]
    n = len(values)
    pulls = (values - TRUTH) / errors
    out = {"replicas": int(ok.size), "failures": int((~ok).sum()), "seconds_per_fit": seconds}
    for i, name in enumerate(NAMES):
        bias = values[:, i].mean() - TRUTH[i]
        out[name] = {
            "bias": float(bias), "relative_bias": float(bias / TRUTH[i]) if TRUTH[i] else None,
            "spread_over_mean_error": float(values[:, i].std(ddof=1) / errors[:, i].mean()),
            "pull_mean": float(pulls[:, i].mean()), "pull_std": float(pulls[:, i].std(ddof=1)),
            "coverage_1sigma": float((np.abs(pulls[:, i]) < 1).mean()), "coverage_2sigma": float((np.abs(pulls[:, i]) < 2).mean()),
        }
    out["coverage_standard_error"] = [math.sqrt(0.6827 * 0.3173 / n), math.sqrt(0.9545 * 0.0455 / n)]
    return out


def run_ours(counts, device="cpu"):
    start = time.perf_counter()
    result = fit_batched(model_torch, torch.tensor(counts, device=device), parameters())
    seconds = time.perf_counter() - start
    return summarise(result.values, result.errors, result.converged, seconds / len(counts)), seconds


def run_scipy(counts):
    from scipy.optimize import least_squares

    lo = [b[0] if b[0] is not None else -np.inf for b in BOUNDS]
    hi = [b[1] if b[1] is not None else np.inf for b in BOUNDS]
    vals, errs, ok = [], [], []
    start = time.perf_counter()
    for y in tqdm(counts, desc="scipy least_squares", leave=False):
        s = np.sqrt(np.maximum(y, 1))
        r = least_squares(lambda p: (y - model_np(p)) / s, START, bounds=(lo, hi), method="trf")
        cov = np.linalg.pinv(r.jac.T @ r.jac)
        vals.append(r.x), errs.append(np.sqrt(np.diag(cov))), ok.append(r.success)
    seconds = (time.perf_counter() - start) / len(counts)
    return summarise(np.array(vals), np.array(errs), np.array(ok), seconds)


def run_lmfit(counts):
    import lmfit

    vals, errs, ok = [], [], []
    start = time.perf_counter()
    for y in tqdm(counts, desc="lmfit", leave=False):
        s = np.sqrt(np.maximum(y, 1))
        params = lmfit.Parameters()
        for n, v, (lo, hi) in zip(NAMES, START, BOUNDS):
            params.add(n, value=v, min=-np.inf if lo is None else lo, max=np.inf if hi is None else hi)
        r = lmfit.minimize(lambda p: (y - model_np([p[n].value for n in NAMES])) / s, params, method="leastsq")
        good = r.success and r.errorbars
        vals.append([r.params[n].value for n in NAMES])
        errs.append([r.params[n].stderr if good else np.nan for n in NAMES])
        ok.append(bool(good))
    seconds = (time.perf_counter() - start) / len(counts)
    return summarise(np.array(vals), np.array(errs, dtype=float), np.array(ok), seconds)


def run_iminuit(counts):
    from iminuit import Minuit

    vals, errs, ok = [], [], []
    start = time.perf_counter()
    for y in tqdm(counts, desc="iminuit", leave=False):
        def nll(*p):
            mu = model_np(np.array(p))
            return float(np.sum(mu - y * np.log(np.maximum(mu, 1e-300))))

        m = Minuit(nll, *START, name=NAMES)
        m.errordef = Minuit.LIKELIHOOD
        m.limits = BOUNDS
        m.migrad()
        m.hesse()
        vals.append(np.array(m.values)), errs.append(np.array(m.errors)), ok.append(m.valid)
    seconds = (time.perf_counter() - start) / len(counts)
    return summarise(np.array(vals), np.array(errs), np.array(ok), seconds)


# -- spin waves: two fields along c, J_perp, J_z, g_z, scale, background (spinwave.md section 9 protocol, reduced) ----
SW_NAMES = ["J_perp", "J_z", "g_z", "scale", "background"]
SW_TRUTH = np.array([0.056, -0.024, 2.0, 10.0, 0.5])
SW_START = np.array([0.05, -0.02, 2.2, 8.0, 1.0])
SW_BOUNDS = [(0.0, 0.3), (-0.3, 0.3), (0.1, 10.0), (0.0, None), (0.0, None)]
SW_FIELDS = (1.0, 4.0)


def _sw_setup():
    from zoo.spinwave import gamma, high_symmetry_path

    q, _ = high_symmetry_path(6)
    energies = np.arange(0.0, 0.75 + 1e-9, 0.02)
    return gamma(q).numpy(), energies


SW_GAMMA, SW_E = _sw_setup()


def sw_model_np(p):
    from scipy.special import erf

    jp, jz, g, scale, bkg = p
    sigma = 0.025 / 2.3548200450309493
    out = []
    for field in SW_FIELDS:
        omega = g * 0.057883818060 * field + 3 * (jp * SW_GAMMA - jz)  # 6S = 3
        up = (SW_E[None, :] + 0.01 - omega[:, None]) / (sigma * math.sqrt(2))
        lo = (SW_E[None, :] - 0.01 - omega[:, None]) / (sigma * math.sqrt(2))
        out.append(scale * 0.25 * 0.5 * (erf(up) - erf(lo)) / 0.02 + bkg)
    return np.stack(out)


def sw_model_torch(p):
    from zoo.spinwave import MU_B_MEV_PER_T, binned_gaussian

    gamma_q = torch.as_tensor(SW_GAMMA, device=p["J_perp"].device)
    energies = torch.as_tensor(SW_E, device=p["J_perp"].device)
    out = []
    for field in SW_FIELDS:
        omega = p["g_z"][:, None] * MU_B_MEV_PER_T * field + 3 * (p["J_perp"][:, None] * gamma_q - p["J_z"][:, None])  # [B, N]
        lines = binned_gaussian(energies, omega, 0.025, 0.02)  # [B, N, n_E]
        out.append(p["scale"][:, None, None] * 0.25 * lines + p["background"][:, None, None])
    return torch.stack(out, 1)  # [B, fields, N, n_E]


def sw_summary(values, errors, ok, seconds):
    values, errors = values[ok], errors[ok]
    pulls = (values - SW_TRUTH) / errors
    out = {"replicas": int(ok.size), "failures": int((~ok).sum()), "seconds_per_fit": seconds}
    for i, name in enumerate(SW_NAMES):
        out[name] = {"relative_bias": float((values[:, i].mean() - SW_TRUTH[i]) / SW_TRUTH[i]),
                     "spread_over_mean_error": float(values[:, i].std(ddof=1) / errors[:, i].mean()),
                     "coverage_1sigma": float((np.abs(pulls[:, i]) < 1).mean()), "coverage_2sigma": float((np.abs(pulls[:, i]) < 2).mean())}
    return out


def run_spinwave(replicas: int, reference_replicas: int, seed: int, device: str, skip_reference: bool) -> dict:
    rng = np.random.default_rng(seed + 1)
    counts = rng.poisson(sw_model_np(SW_TRUTH), size=(replicas, *sw_model_np(SW_TRUTH).shape)).astype(float)
    params = [Parameter(n, v, lower=lo, upper=hi) for n, v, (lo, hi) in zip(SW_NAMES, SW_START, SW_BOUNDS)]
    fit_batched(sw_model_torch, torch.tensor(counts[:2], device=device), params)  # warm-up
    t0 = time.perf_counter()
    result = fit_batched(sw_model_torch, torch.tensor(counts, device=device), params)
    out = {"zoo_lm_batched_poisson": sw_summary(result.values, result.errors, result.converged, (time.perf_counter() - t0) / replicas)}
    if skip_reference:
        return out
    from iminuit import Minuit

    vals, errs, ok = [], [], []
    t0 = time.perf_counter()
    for y in tqdm(counts[:reference_replicas], desc="iminuit (spin waves)", leave=False):
        def nll(*p):
            mu = sw_model_np(np.array(p))
            return float(np.sum(mu - y * np.log(np.maximum(mu, 1e-300))))

        m = Minuit(nll, *SW_START, name=SW_NAMES)
        m.errordef = Minuit.LIKELIHOOD
        m.limits = SW_BOUNDS
        m.migrad()
        m.hesse()
        vals.append(np.array(m.values)), errs.append(np.array(m.errors)), ok.append(m.valid)
    out["iminuit_poisson"] = sw_summary(np.array(vals), np.array(errs), np.array(ok), (time.perf_counter() - t0) / reference_replicas)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=1000, help="replicas for the batched zoo fit")
    parser.add_argument("--reference-replicas", type=int, default=200, help="replicas for lmfit / iminuit / scipy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids thrashing on a shared CPU)")
    parser.add_argument("--device", default="cpu", help="device of the zoo batched fit (cpu or cuda)")
    parser.add_argument("--skip-reference", action="store_true", help="only the zoo fitter (e.g. on a GPU machine)")
    parser.add_argument("--out", default="benchmarks/physics")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_device(args.device)
    expected = model_np(TRUTH)
    rng = np.random.default_rng(args.seed)
    counts = rng.poisson(expected, size=(args.replicas, E.size)).astype(float)
    report = {"problem": "fitting.md section 3 (DHO + elastic + background, 113 points)", "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "device": args.device, "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
              "command": f"python tools/bench/physics.py --replicas {args.replicas} --reference-replicas {args.reference_replicas} "
                         f"--threads {args.threads} --device {args.device}" + (" --skip-reference" if args.skip_reference else "")}
    warm = time.perf_counter()
    fit_batched(model_torch, torch.tensor(counts[:2], device=args.device), parameters())
    report["zoo_warmup_seconds"] = time.perf_counter() - warm
    report["zoo_lm_batched_poisson"], total = run_ours(counts, args.device)
    report["zoo_lm_batched_total_seconds"] = total
    reference = counts[: args.reference_replicas]
    fitters = ["zoo_lm_batched_poisson"]
    if not args.skip_reference:
        report["iminuit_poisson"] = run_iminuit(reference)
        report["scipy_least_squares_chi2_neyman"] = run_scipy(reference)
        report["lmfit_leastsq_chi2_neyman_scaled"] = run_lmfit(reference)
        fitters += ["iminuit_poisson", "scipy_least_squares_chi2_neyman", "lmfit_leastsq_chi2_neyman_scaled"]
    # 64 spectra: batched vs an lmfit loop
    t0 = time.perf_counter()
    fit_batched(model_torch, torch.tensor(counts[:64], device=args.device), parameters())
    batched64 = time.perf_counter() - t0
    if args.skip_reference:
        report["batch64"] = {"zoo_batched_seconds": batched64}
        for size in (1024, 4096):
            t0 = time.perf_counter()
            fit_batched(model_torch, torch.tensor(rng.poisson(expected, size=(size, E.size)).astype(float), device=args.device), parameters())
            report[f"batch{size}"] = {"zoo_batched_seconds": time.perf_counter() - t0}
    else:
        t0 = time.perf_counter()
        run_lmfit(counts[:64])
        loop64 = time.perf_counter() - t0
        report["batch64"] = {"zoo_batched_seconds": batched64, "lmfit_loop_seconds": loop64, "speedup": loop64 / batched64}
    report["spinwave"] = run_spinwave(args.replicas, args.reference_replicas, args.seed, args.device, args.skip_reference)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(report, indent=2))
    lines = [f"# physics fitters benchmark\n\n`{report['command']}` ({report['threads']} threads, torch {report['torch']}, "
             f"zoo fit on {report['device_name']})\n",
             "| fitter | replicas | failures | ms/fit | rel. bias Omega / Gamma / bkg | 1-sigma coverage A, Omega, Gamma, A_el, E0, bkg | 2-sigma coverage | spread/mean error (range) |",
             "|---|---|---|---|---|---|---|---|"]
    for key in fitters:
        r = report[key]
        ratio = [r[n]["spread_over_mean_error"] for n in NAMES]
        lines.append(
            f"| {key} | {r['replicas']} | {r['failures']} | {1000 * r['seconds_per_fit']:.2f} | "
            + " / ".join(f"{r[n]['relative_bias']:+.4f}" for n in ("omega", "gamma", "bkg")) + " | "
            + " ".join(f"{r[n]['coverage_1sigma']:.3f}" for n in NAMES) + " | "
            + " ".join(f"{r[n]['coverage_2sigma']:.3f}" for n in NAMES) + f" | {min(ratio):.2f}-{max(ratio):.2f} |"
        )
    b = report["batch64"]
    if "lmfit_loop_seconds" in b:
        lines.append(f"\n64 spectra: zoo batched LM {b['zoo_batched_seconds']:.3f} s vs lmfit loop {b['lmfit_loop_seconds']:.3f} s "
                     f"(speed-up {b['speedup']:.1f}x); one-off zoo warm-up {report['zoo_warmup_seconds']:.3f} s.\n")
    else:
        sizes = ", ".join(f"{k[5:]} spectra {v['zoo_batched_seconds']:.3f} s" for k, v in report.items() if k.startswith("batch"))
        lines.append(f"\nzoo batched LM: {sizes}; one-off warm-up {report['zoo_warmup_seconds']:.3f} s.\n")
    lines += ["## Spin waves (CeMgAl11O19 polarised S(Q, E), fields 1 and 4 T along c; J_perp, J_z, g_z, scale, background)\n",
              "| fitter | replicas | failures | ms/fit | rel. bias J_perp / J_z / g_z | 1-sigma coverage | 2-sigma coverage | spread/mean error |",
              "|---|---|---|---|---|---|---|---|"]
    for key, r in report["spinwave"].items():
        lines.append(
            f"| {key} | {r['replicas']} | {r['failures']} | {1000 * r['seconds_per_fit']:.2f} | "
            + " / ".join(f"{r[n]['relative_bias']:+.5f}" for n in ("J_perp", "J_z", "g_z")) + " | "
            + " ".join(f"{r[n]['coverage_1sigma']:.3f}" for n in SW_NAMES) + " | "
            + " ".join(f"{r[n]['coverage_2sigma']:.3f}" for n in SW_NAMES) + " | "
            + " ".join(f"{r[n]['spread_over_mean_error']:.2f}" for n in SW_NAMES) + " |"
        )
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
