"""Fitting per-orbital renormalisations and shifts to a band-dispersion peak table (docs/methods/kagome.md).

Peak positions from EDC/MDC fits (energy and error at each k, with a band index assigned once at the start and
then frozen) are compared with the eigenvalues of ``H_qp = Z^1/2 H_DFT Z^1/2 + diag(delta)`` by a Gaussian
chi-square. ``orbital_groups`` maps each orbital to the index of its (Z, delta) pair.
"""

from __future__ import annotations

from typing import Sequence

import torch

from zoo.fitting import FitResult, Parameter, fit
from zoo.kagome.model import renormalized_hamiltonian

__all__ = ["fit_band_dispersion"]


def fit_band_dispersion(
    hamiltonian_dft: torch.Tensor,
    band_index,
    energies,
    errors,
    orbital_groups: Sequence[int],
    *,
    Z_start: float = 0.5,
    delta_start: float = 0.0,
    fix_delta: Sequence[int] = (),
    mu: float = 0.0,
) -> FitResult:
    """Fit ``Z_g`` and ``delta_g`` per orbital group to peak energies.

    Args:
        hamiltonian_dft: ``[N, n, n]`` H_DFT at the k of each peak (eV).
        band_index: ``[N]`` index (ascending order) of the band each peak belongs to (frozen assignment).
        energies, errors: ``[N]`` peak energies and their errors (eV).
        orbital_groups: ``n`` group indices; groups share Z and delta.
        fix_delta: groups whose delta stays at ``delta_start`` (a common shift of all deltas is degenerate with mu).
    """
    hamiltonian_dft = torch.as_tensor(hamiltonian_dft, dtype=torch.float64)
    band_index = torch.as_tensor(band_index, dtype=torch.long)
    energies = torch.as_tensor(energies, dtype=torch.float64)
    errors = torch.as_tensor(errors, dtype=torch.float64)
    n_peaks, n_orb = hamiltonian_dft.shape[0], hamiltonian_dft.shape[-1]
    if not (band_index.shape == energies.shape == errors.shape == (n_peaks,)):
        raise ValueError(f"band_index, energies and errors must all have shape [{n_peaks}], got "
                         f"{tuple(band_index.shape)}, {tuple(energies.shape)}, {tuple(errors.shape)}")
    if len(orbital_groups) != n_orb:
        raise ValueError(f"orbital_groups needs one entry per orbital ({n_orb}), got {len(orbital_groups)}")
    if bool((band_index < 0).any()) or bool((band_index >= n_orb).any()):
        raise ValueError(f"band_index must lie in [0, {n_orb - 1}]")
    groups = sorted(set(orbital_groups))
    which = torch.tensor([groups.index(g) for g in orbital_groups])
    parameters = [Parameter(f"Z{g}", Z_start, "", lower=0.0, upper=1.0) for g in groups]
    parameters += [Parameter(f"delta{g}", delta_start, "eV", lower=-2.0, upper=2.0, fixed=g in set(fix_delta)) for g in groups]

    def model(p):
        Z = torch.stack([p[f"Z{g}"] for g in groups])[which]
        delta = torch.stack([p[f"delta{g}"] for g in groups])[which]
        bands = torch.linalg.eigvalsh(renormalized_hamiltonian(hamiltonian_dft, Z, delta, mu))
        return bands.gather(1, band_index[:, None])[:, 0]

    return fit(model, energies, parameters, loss="gaussian", sigma=errors)
