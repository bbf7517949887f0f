"""Kagome flat-band tight binding and ARPES fitting (CsCr3Sb5, arXiv 2406.05293). Docs: ``docs/methods/kagome.md``."""

from zoo.kagome.config import KagomeConfig
from zoo.kagome.dispersion_fit import fit_band_dispersion
from zoo.kagome.model import (
    K_BOLTZMANN_EV,
    arpes_map,
    fermi_dirac,
    kagome_bands,
    kagome_hamiltonian,
    renormalized_hamiltonian,
    symmetric_eigh,
    two_orbital_hamiltonian,
)
from zoo.kagome.momentum import arc_length, momentum_resolution_grid

__all__ = [
    "K_BOLTZMANN_EV", "KagomeConfig", "KagomeFitter", "arc_length", "arpes_map", "momentum_resolution_grid", "symmetric_eigh", "fermi_dirac", "fit_band_dispersion", "kagome_bands", "kagome_hamiltonian",
    "renormalized_hamiltonian", "two_orbital_hamiltonian",
]


def __getattr__(name: str):
    if name == "KagomeFitter":
        from zoo.kagome.module import KagomeFitter

        return KagomeFitter
    raise AttributeError(f"module 'zoo.kagome' has no attribute {name!r}")
