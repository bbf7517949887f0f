"""``SpinWaveFitter``: a joint maximum-likelihood fit of field-polarised S(Q, E) at several fields (arXiv 2408.15957).

Parameters (physical units): J_perp, J_z (meV), g_z, g_perp (fixed when no in-plane field is in the data), scale,
background. Model per field ``f`` (Zeeman energy ``h_f = g mu_B B_f``, direction z or x):

    mu_f(Q, E) = scale * [S_f (x) R](Q, E) + background        (``polarized_spectrum``; R = Gaussian resolution)

With one field, g_z and J_z enter only through ``h - 6S J_z`` (docs/methods/spinwave.md): fit two or more fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from zoo.fitting.module import FitModule
from zoo.fitting.parameters import Parameter
from zoo import register_model
from zoo.spinwave.config import SpinWaveConfig
from zoo.spinwave.model import MU_B_MEV_PER_T, polarized_dispersion, polarized_spectrum

__all__ = ["SpinWaveFitter", "spinwave_cemgal11o19", "spinwave_cemgal11o19_tiny"]


class SpinWaveFitter(FitModule):
    config_class = SpinWaveConfig
    card_template = "spinwave"

    def parameter_specs(self) -> list[Parameter]:
        c = self.config
        bound = c.exchange_bound
        return [
            Parameter("J_perp", c.J_perp, "meV", lower=0.0, upper=bound),
            Parameter("J_z", c.J_z, "meV", lower=-bound, upper=bound),
            Parameter("g_z", c.g_z, "", lower=0.1, upper=10.0),
            Parameter("g_perp", c.g_perp, "", lower=0.1, upper=10.0, fixed=not c.fit_g_perp),
            Parameter("scale", c.scale, "counts meV", lower=0.0),
            Parameter("background", c.background, "counts", lower=0.0),
        ]

    def expected(self, batch: Mapping[str, Any], params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[n_fields, n_q, n_E]`` expected counts; ``batch`` holds ``q``, ``energies``, ``fields_tesla``, ``directions``."""
        spectra = []
        for field, direction in zip(batch["fields_tesla"], batch["directions"]):
            g = params["g_z"] if direction == "z" else params["g_perp"]
            h = g * MU_B_MEV_PER_T * float(field)
            spectrum = polarized_spectrum(
                batch["q"], batch["energies"], params["J_perp"], params["J_z"], h,
                resolution_fwhm=self.config.resolution_fwhm, S=self.config.spin, direction=direction, check=False,
            )
            spectra.append(params["scale"] * spectrum + params["background"])
        return torch.stack(spectra)

    def on_fit_start(self) -> None:
        batch = getattr(self.trainer.datamodule, "batch", None) if self.trainer is not None else None
        if batch is not None and "x" in list(batch["directions"]) and not self.config.fit_g_perp:
            raise ValueError("the data hold an in-plane field but fit_g_perp=False: set fit_g_perp=True to fit g_perp")

    def save_plots(self, folder: Path, datamodule: Any = None) -> list[Path]:
        """``fit.png`` (all bins, data vs model, residuals) and ``dispersion.png`` (count maps with fitted and true modes)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        paths = super().save_plots(folder, datamodule)
        batch = datamodule.batch
        counts = batch["counts"].numpy()
        n_fields = counts.shape[0]
        figure, axes = plt.subplots(1, n_fields, figsize=(4 * n_fields, 3.6), squeeze=False)
        values = self.fit_result.values
        x = batch["path_length"].numpy()
        energies = batch["energies"].numpy()
        for ax, f, field, direction in zip(axes[0], range(n_fields), batch["fields_tesla"], batch["directions"]):
            ax.pcolormesh(x, energies, counts[f].T, shading="nearest", cmap="viridis")
            g = values["g_z"] if direction == "z" else values["g_perp"]
            omega = polarized_dispersion(batch["q"], values["J_perp"], values["J_z"], g * MU_B_MEV_PER_T * float(field),
                                         S=self.config.spin, direction=direction, check=False)
            ax.plot(x, omega.numpy(), "w-", lw=1.2, label="fit")
            truth = getattr(datamodule, "truth", {})
            if truth:
                g_true = truth["g_z"] if direction == "z" else truth.get("g_perp", g)
                omega_true = polarized_dispersion(batch["q"], truth["J_perp"], truth["J_z"], g_true * MU_B_MEV_PER_T * float(field),
                                                  S=self.config.spin, direction=direction, check=False)
                ax.plot(x, omega_true.numpy(), "r--", lw=0.8, label="truth")
            ax.set_title(f"B = {float(field):g} T along {direction}")
            ax.set_xlabel("Gamma - K - M - Gamma")
            ax.set_ylabel("E (meV)")
            ax.legend(loc="upper right", fontsize=7)
        figure.tight_layout()
        path = folder / "dispersion.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        return paths + [path]


@register_model("spinwave_cemgal11o19")
def spinwave_cemgal11o19() -> SpinWaveConfig:
    """Start values away from the published J's; resolution 0.025 meV FWHM (placeholder)."""
    return SpinWaveConfig(fit_g_perp=True)


@register_model("spinwave_cemgal11o19_tiny")
def spinwave_cemgal11o19_tiny() -> SpinWaveConfig:
    return SpinWaveConfig(max_iterations=100)
