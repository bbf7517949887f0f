"""Spin waves of triangular-lattice XXZ magnets (CeMgAl11O19, arXiv 2408.15957): closed forms, generic LSWT,
the umbrella-manifold ensemble, and the Lightning fitter. Docs: ``docs/methods/spinwave.md``."""

from zoo.spinwave.config import SpinWaveConfig
from zoo.spinwave.dispersion_fit import fit_dispersion_points
from zoo.spinwave.lattice import GAMMA, K_POINT, M_POINT, gamma, high_symmetry_path, to_cartesian
from zoo.spinwave.lswt import (
    classical_energy,
    cone_angle,
    lswt,
    single_k_energy,
    single_k_lswt,
    umbrella_directions,
    umbrella_energy_closed_form,
)
from zoo.spinwave.model import (
    MU_B_MEV_PER_T,
    binned_gaussian,
    ensemble_weights,
    polarized_dispersion,
    polarized_intensity,
    polarized_spectrum,
    saturation_field,
    umbrella_ensemble_spectrum,
)

__all__ = [
    "GAMMA", "K_POINT", "MU_B_MEV_PER_T", "M_POINT", "SpinWaveConfig", "SpinWaveFitter", "SyntheticPolarizedData",
    "binned_gaussian", "classical_energy", "cone_angle", "ensemble_weights", "fit_dispersion_points", "gamma", "high_symmetry_path", "lswt", "make_polarized_data",
    "polarized_dispersion", "polarized_intensity", "polarized_spectrum", "saturation_field", "single_k_energy", "single_k_lswt", "to_cartesian",
    "umbrella_directions", "umbrella_energy_closed_form", "umbrella_ensemble_spectrum",
]


def __getattr__(name: str):
    if name == "SpinWaveFitter":
        from zoo.spinwave.module import SpinWaveFitter

        return SpinWaveFitter
    if name in ("SyntheticPolarizedData", "make_polarized_data"):
        from zoo.spinwave import data

        return getattr(data, name)
    raise AttributeError(f"module 'zoo.spinwave' has no attribute {name!r}")
