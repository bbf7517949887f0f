"""``KagomeFitter``: Poisson fit of per-orbital renormalisations and shifts to an ARPES map (arXiv 2406.05293).

Model (``zoo.kagome.model``): two-orbital kagome toy ``H_DFT`` (hoppings fixed), ``H_qp = Z^1/2 H_DFT Z^1/2 + diag(delta)``
with one ``Z`` and one ``delta`` per kagome copy, ``mu = 0`` fixed (a common shift of all deltas is degenerate
with mu, docs/methods/kagome.md), Lorentzian width ``gamma0 + alpha |w|``, Fermi function, Gaussian energy resolution,
Gaussian momentum resolution along the cut (``momentum_resolution`` FWHM in 1/A, 0 disables; the model is evaluated on
a fine k grid along the cut padded beyond its ends and mapped to the data k points, ``zoo.kagome.momentum``), scale
and flat background.
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
from zoo.kagome.momentum import momentum_resolution_grid

__all__ = ["KagomeFitter", "expected_map", "kagome_two_orbital", "kagome_two_orbital_tiny", "momentum_grid"]


def momentum_grid(config: KagomeConfig, q: torch.Tensor) -> tuple[torch.Tensor, ResolutionOperator | None]:
    """``(q_model, momentum_operator)``: the k points where the model is evaluated and the operator to the data k
    points; ``(q, None)`` when ``config.momentum_resolution == 0``."""
    if config.momentum_resolution == 0:
        return q, None
    return momentum_resolution_grid(q, config.momentum_resolution, config.lattice_constant,
                                    oversampling=config.momentum_oversampling, padding=config.momentum_padding)


def expected_map(config: KagomeConfig, q: torch.Tensor, energies: torch.Tensor, params: Mapping[str, torch.Tensor], operator=None,
                 momentum: tuple[torch.Tensor, ResolutionOperator | None] | None = None) -> torch.Tensor:
    """Expected counts ``[N_k, N_w]`` for physical ``params`` (Z1, Z2, delta1, delta2, gamma0, alpha, intensity, background).

    ``q [N_k, 2]`` (r.l.u.) are ordered along the cut; ``operator`` is the energy-resolution operator and ``momentum``
    the output of ``momentum_grid`` (both built here when not given; pass them to reuse them across calls).
    """
    q_model, momentum_operator = momentum_grid(config, q) if momentum is None else momentum
    q = q_model
    h_dft = two_orbital_hamiltonian(q, config.t1, config.t2, config.hybridization, config.eps1, config.eps2)
    ones = torch.ones(3, dtype=torch.float64)
    Z = torch.cat([params["Z1"] * ones, params["Z2"] * ones])
    delta = torch.cat([params["delta1"] * ones, params["delta2"] * ones])
    h_qp = renormalized_hamiltonian(h_dft, Z, delta)
    if operator is None:
        operator = ResolutionOperator.build(energies, energies, fwhm=config.energy_resolution)
    intensity = arpes_map(h_qp, energies, orbital_weights=torch.ones(6, dtype=torch.float64), gamma0=params["gamma0"],
                          alpha=params["alpha"], temperature=config.temperature, energy_operator=operator,
                          momentum_operator=momentum_operator)
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
        if getattr(self, "_operator", None) is None or not torch.equal(self._operator.data_grid, batch["energies"]):
            self._operator = ResolutionOperator.build(batch["energies"], batch["energies"], fwhm=self.config.energy_resolution)
        if getattr(self, "_momentum_q", None) is None or not torch.equal(self._momentum_q, batch["q"]):
            self._momentum_q, self._momentum = batch["q"], momentum_grid(self.config, batch["q"])
        return expected_map(self.config, batch["q"], batch["energies"], params, self._operator, self._momentum)


@register_model("kagome_two_orbital")
def kagome_two_orbital() -> KagomeConfig:
    """Two-orbital toy of docs/methods/kagome.md (placeholders): t = 0.3 / 0.5 eV, v = 0.05 eV, 20 K, 15 meV and 0.01 1/A
    resolution, a = 5.49 A."""
    return KagomeConfig()


@register_model("kagome_two_orbital_tiny")
def kagome_two_orbital_tiny() -> KagomeConfig:
    return KagomeConfig(max_iterations=100)
