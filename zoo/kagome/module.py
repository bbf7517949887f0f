"""``KagomeFitter``: Poisson fit of per-orbital renormalisations and shifts to an ARPES map (arXiv 2406.05293).

Model (``zoo.kagome.model``): two-orbital kagome toy ``H_DFT`` (hoppings fixed), ``H_qp = Z^1/2 H_DFT Z^1/2 + diag(delta)``
with one ``Z`` and one ``delta`` per kagome copy, ``mu = 0`` fixed (a common shift of all deltas is degenerate
with mu, kagome.md section 3), Lorentzian width ``gamma0 + alpha |w|``, Fermi function, Gaussian energy resolution,
scale and flat background. Momentum resolution is not modelled here (our simplification; ``arpes_map`` accepts one).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from zoo import register_model
from zoo.fitting.module import FitModule
from zoo.fitting.parameters import Parameter
from zoo.fitting.resolution import ResolutionOperator
from zoo.kagome.config import KagomeConfig
from zoo.kagome.model import arpes_map, renormalized_hamiltonian, two_orbital_hamiltonian

__all__ = ["KagomeFitter", "expected_map", "kagome_two_orbital", "kagome_two_orbital_tiny"]


def expected_map(config: KagomeConfig, q: torch.Tensor, energies: torch.Tensor, params: Mapping[str, torch.Tensor], operator=None) -> torch.Tensor:
    """Expected counts ``[N_k, N_w]`` for physical ``params`` (Z1, Z2, delta1, delta2, gamma0, alpha, intensity, background)."""
    h_dft = two_orbital_hamiltonian(q, config.t1, config.t2, config.hybridization, config.eps1, config.eps2)
    ones = torch.ones(3, dtype=torch.float64)
    Z = torch.cat([params["Z1"] * ones, params["Z2"] * ones])
    delta = torch.cat([params["delta1"] * ones, params["delta2"] * ones])
    h_qp = renormalized_hamiltonian(h_dft, Z, delta)
    if operator is None:
        operator = ResolutionOperator.build(energies, energies, fwhm=config.energy_resolution)
    intensity = arpes_map(h_qp, energies, orbital_weights=torch.ones(6, dtype=torch.float64), gamma0=params["gamma0"],
                          alpha=params["alpha"], temperature=config.temperature, energy_operator=operator)
    return params["intensity"] * intensity + params["background"]


class KagomeFitter(FitModule):
    config_class = KagomeConfig
    card_template = "kagome"

    def parameter_specs(self) -> list[Parameter]:
        c = self.config
        return [
            Parameter("Z1", c.Z1, "", lower=0.0, upper=1.0),
            Parameter("Z2", c.Z2, "", lower=0.0, upper=1.0),
            Parameter("delta1", c.delta1, "eV", lower=-0.5, upper=0.5),
            Parameter("delta2", c.delta2, "eV", lower=-0.5, upper=0.5),
            Parameter("gamma0", c.gamma0, "eV", lower=0.0, upper=0.5),
            Parameter("alpha", c.alpha, "", lower=0.0, upper=2.0),
            Parameter("intensity", c.intensity, "counts eV", lower=0.0),
            Parameter("background", c.background, "counts", lower=0.0),
        ]

    def expected(self, batch: Mapping[str, Any], params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if getattr(self, "_operator", None) is None or self._operator.data_grid.numel() != batch["energies"].numel():
            self._operator = ResolutionOperator.build(batch["energies"], batch["energies"], fwhm=self.config.energy_resolution)
        return expected_map(self.config, batch["q"], batch["energies"], params, self._operator)


@register_model("kagome_two_orbital")
def kagome_two_orbital() -> KagomeConfig:
    """Two-orbital toy of kagome.md section 6 (placeholders): t = 0.3 / 0.5 eV, v = 0.05 eV, 20 K, 15 meV resolution."""
    return KagomeConfig()


@register_model("kagome_two_orbital_tiny")
def kagome_two_orbital_tiny() -> KagomeConfig:
    return KagomeConfig(max_iterations=100)
