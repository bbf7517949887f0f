"""``FitResult`` and ``BatchFitResult``: what a fit returns, printable and plottable.

Conventions (``docs/cores/fitting.md``): ``errors`` are the parabolic (HESSE-like) errors, square
roots of the covariance diagonal, in physical units; ``intervals`` are profile-likelihood (MINOS-like)
intervals when requested; ``covariance_scaled`` says whether the covariance was multiplied by the reduced
deviance / chi-square (lmfit's ``scale_covar``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BatchFitResult", "FitResult"]


def _format(value: float, error: float | None) -> tuple[str, str]:
    if error is None or not math.isfinite(error) or error <= 0:
        return f"{value:.6g}", "-" if error is None else f"{error:.3g}"
    digits = max(0, 2 - int(math.floor(math.log10(error))))
    return f"{value:.{digits}f}", f"{error:.{digits}f}"


@dataclasses.dataclass
class FitResult:
    """The outcome of one fit (all values in physical units)."""

    names: list[str]  # every parameter, free and fixed, in order
    values: dict[str, float]  # best-fit (or fixed) values
    errors: dict[str, float]  # parabolic errors of free parameters (0 for fixed ones)
    covariance: np.ndarray  # [n_free, n_free] over free_names
    free_names: list[str]
    units: dict[str, str]
    at_bound: dict[str, bool]
    loss_kind: str  # "poisson" or "gaussian"
    nll: float  # Poisson NLL (constant dropped) or chi2 / 2
    goodness: float  # Poisson deviance D or Gaussian chi2
    dof: int  # data points minus free parameters
    converged: bool
    stop_reason: str
    iterations: int
    function_evaluations: int
    wall_time_s: float
    method: str
    error_method: str  # "hessian" or "fisher"
    covariance_scaled: bool
    hessian_condition: float
    intervals: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    interval_level: float | None = None  # delta(2 NLL) used for the intervals (1 = 68.3 %, 4 = 95.4 %)
    data: np.ndarray | None = None
    model: np.ndarray | None = None
    sigma: np.ndarray | None = None
    device: str = "cpu"

    @property
    def reduced(self) -> float:
        """Deviance / dof (Poisson) or chi2 / dof (Gaussian)."""
        return self.goodness / self.dof if self.dof > 0 else float("nan")

    @property
    def correlation(self) -> np.ndarray:
        d = np.sqrt(np.clip(np.diag(self.covariance), 1e-300, None))
        return self.covariance / np.outer(d, d)

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def report(self) -> str:
        """An lmfit-style text table: parameters with errors and units, then goodness of fit."""
        goodness_name = "deviance" if self.loss_kind == "poisson" else "chi2"
        lines = [
            f"[[Fit]] method={self.method} loss={self.loss_kind} converged={self.converged} ({self.stop_reason})",
            f"    iterations={self.iterations} evaluations={self.function_evaluations} time={self.wall_time_s:.3g} s device={self.device}",
            f"    {goodness_name}={self.goodness:.6g} dof={self.dof} {goodness_name}/dof={self.reduced:.4g} nll={self.nll:.8g}",
            f"    errors from {self.error_method}" + (", scaled by the reduced " + goodness_name if self.covariance_scaled else ", not rescaled")
            + f"; Hessian condition number {self.hessian_condition:.3g}",
            "[[Parameters]]",
            f"    {'name':<24} {'value':>14} {'error':>12}  {'unit':<8} note",
        ]
        for name in self.names:
            fixed = name not in self.free_names
            value, error = _format(self.values[name], None if fixed else self.errors[name])
            note = "fixed" if fixed else ("AT BOUND" if self.at_bound.get(name) else "")
            if name in self.intervals:
                lo, hi = self.intervals[name]
                note += f" profile [{lo:.6g}, {hi:.6g}]"
            lines.append(f"    {name:<24} {value:>14} {error if not fixed else '':>12}  {self.units.get(name, ''):<8} {note}")
        if len(self.free_names) > 1:
            corr = self.correlation
            pairs = [(abs(corr[i, j]), self.free_names[i], self.free_names[j], corr[i, j])
                     for i in range(len(corr)) for j in range(i + 1, len(corr))]
            strong = [p for p in sorted(pairs, reverse=True) if p[0] > 0.5]
            if strong:
                lines.append("[[Correlations]] (|C| > 0.5)")
                lines += [f"    C({a}, {b}) = {c:+.3f}" for _, a, b, c in strong]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()

    def to_dict(self) -> dict[str, float]:
        """Flat numbers for a model card: ``<name>``, ``<name>_error``, goodness of fit, convergence."""
        out: dict[str, float] = {}
        for name in self.free_names:
            out[name] = float(self.values[name])
            out[f"{name}_error"] = float(self.errors[name])
        out["deviance" if self.loss_kind == "poisson" else "chi2"] = float(self.goodness)
        out["dof"] = float(self.dof)
        out["reduced_" + ("deviance" if self.loss_kind == "poisson" else "chi2")] = float(self.reduced)
        out["converged"] = float(self.converged)
        out["iterations"] = float(self.iterations)
        return out

    def plot(self, x: Any = None, path: str | Path | None = None, title: str | None = None, xlabel: str = "x"):
        """Data (with sqrt-N or sigma error bars), model, and normalised residuals; saved as PNG if ``path``."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        if self.data is None or self.model is None:
            raise ValueError("this FitResult holds no data/model arrays to plot")
        data, model = np.ravel(self.data), np.ravel(self.model)
        x = np.arange(data.size) if x is None else np.ravel(np.asarray(x))
        if x.size != data.size:
            raise ValueError(f"x has {x.size} points, the data {data.size}")
        err = np.ravel(self.sigma) if self.sigma is not None else np.sqrt(np.maximum(data, 1.0))
        residual = (data - model) / (np.ravel(self.sigma) if self.sigma is not None else np.sqrt(np.maximum(model, 1e-12)))
        figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 5), gridspec_kw={"height_ratios": [3, 1]})
        top.errorbar(x, data, yerr=err, fmt=".", ms=3, color="k", label="data", lw=0.6)
        top.plot(x, model, "-", color="C3", label="model")
        top.legend()
        top.set_ylabel("counts" if self.loss_kind == "poisson" else "intensity")
        top.set_title(title or f"{self.loss_kind} fit, {'deviance' if self.loss_kind == 'poisson' else 'chi2'}/dof = {self.reduced:.3f}")
        bottom.plot(x, residual, ".", ms=3, color="k")
        bottom.axhline(0, color="C3", lw=0.8)
        bottom.set_ylabel("residual / sd")
        bottom.set_xlabel(xlabel)
        figure.tight_layout()
        if path is not None:
            figure.savefig(path, dpi=120)
        return figure


@dataclasses.dataclass
class BatchFitResult:
    """Many independent fits of the same model at once; arrays have a leading batch axis ``B``."""

    free_names: list[str]
    units: dict[str, str]
    values: np.ndarray  # [B, n_free]
    errors: np.ndarray  # [B, n_free]
    covariance: np.ndarray  # [B, n_free, n_free]
    nll: np.ndarray  # [B]
    goodness: np.ndarray  # [B] deviance or chi2
    dof: int
    converged: np.ndarray  # [B] bool
    iterations: np.ndarray  # [B]
    wall_time_s: float
    loss_kind: str
    method: str = "levenberg_marquardt_batched"
    covariance_scaled: bool = False

    def __len__(self) -> int:
        return self.values.shape[0]

    def value(self, name: str) -> np.ndarray:
        return self.values[:, self.free_names.index(name)]

    def error(self, name: str) -> np.ndarray:
        return self.errors[:, self.free_names.index(name)]

    def report(self) -> str:
        lines = [
            f"[[Batch fit]] {len(self)} problems, method={self.method}, loss={self.loss_kind}, time={self.wall_time_s:.3g} s",
            f"    converged {int(self.converged.sum())}/{len(self)}, iterations median {np.median(self.iterations):.0f} max {self.iterations.max()}",
            f"    {'name':<14} {'mean value':>14} {'sd of values':>14} {'mean error':>12}  unit",
        ]
        for i, name in enumerate(self.free_names):
            lines.append(
                f"    {name:<14} {self.values[:, i].mean():>14.6g} {self.values[:, i].std(ddof=1) if len(self) > 1 else 0:>14.4g}"
                f" {self.errors[:, i].mean():>12.4g}  {self.units.get(name, '')}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()
