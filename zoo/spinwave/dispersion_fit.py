"""Fitting exchanges and g-factors to measured magnon peak positions at several fields (Gaussian chi-square).

A peak table (one energy with its error per Q point and field, from fits of constant-Q cuts) is compared with
``polarized_dispersion``; J_perp, J_z are shared across fields, g_z (and g_perp) are shared across fields of that
direction. With fields along one direction only, at least two distinct fields are needed to separate g from J_z
(docs/methods/spinwave.md). Loss: ``chi2 / 2`` with the given errors (the raw counts are gone: docs/cores/fitting.md).
"""

from __future__ import annotations

from typing import Sequence

import torch

from zoo.fitting import FitResult, Parameter, fit
from zoo.spinwave.lattice import check_q
from zoo.spinwave.model import MU_B_MEV_PER_T, polarized_dispersion

__all__ = ["fit_dispersion_points"]


def fit_dispersion_points(
    q,
    energies,
    errors,
    fields_tesla,
    directions: Sequence[str],
    *,
    J_perp: float = 0.05,
    J_z: float = -0.02,
    g_z: float = 2.2,
    g_perp: float = 2.2,
    spin: float = 0.5,
    profile: bool = False,
) -> FitResult:
    """Fit J_perp, J_z, g_z (and g_perp if an in-plane field is present) to peak energies.

    Args:
        q: ``[N, 2]`` r.l.u. of each peak; energies, errors: ``[N]`` meV; fields_tesla: ``[N]`` T; directions: ``N`` of "z"/"x".
    """
    q = check_q(q)
    energies = torch.as_tensor(energies, dtype=torch.float64)
    errors = torch.as_tensor(errors, dtype=torch.float64)
    fields = torch.as_tensor(fields_tesla, dtype=torch.float64)
    directions = list(directions)
    n = q.shape[0]
    if not (energies.shape == errors.shape == fields.shape == (n,)) or len(directions) != n:
        raise ValueError(
            f"q [{n}, 2], energies {tuple(energies.shape)}, errors {tuple(errors.shape)}, fields {tuple(fields.shape)} "
            f"and {len(directions)} directions must all describe the same {n} peaks"
        )
    bad = sorted(set(directions) - {"z", "x"})
    if bad:
        raise ValueError(f"directions must be 'z' or 'x', got {bad}")
    along_z = torch.tensor([d == "z" for d in directions])
    has_x = bool((~along_z).any())
    if len(set(fields[along_z].tolist())) == 1 and not has_x:
        raise ValueError("one field only: g_z and J_z enter through h - 6S J_z together; give peaks at two or more fields")

    def model(p):
        out = torch.zeros(n, dtype=torch.float64) * p["J_perp"]
        if bool(along_z.any()):
            h = p["g_z"] * MU_B_MEV_PER_T * fields[along_z]
            out = out.index_put((along_z,), polarized_dispersion(q[along_z], p["J_perp"], p["J_z"], h, S=spin, direction="z", check=False))
        if has_x:
            h = p["g_perp"] * MU_B_MEV_PER_T * fields[~along_z]
            out = out.index_put((~along_z,), polarized_dispersion(q[~along_z], p["J_perp"], p["J_z"], h, S=spin, direction="x", check=False))
        return out

    parameters = [
        Parameter("J_perp", J_perp, "meV", lower=0.0, upper=1.0),
        Parameter("J_z", J_z, "meV", lower=-1.0, upper=1.0),
        Parameter("g_z", g_z, "", lower=0.1, upper=10.0, fixed=not bool(along_z.any())),
        Parameter("g_perp", g_perp, "", lower=0.1, upper=10.0, fixed=not has_x),
    ]
    return fit(model, energies, parameters, loss="gaussian", sigma=errors, profile=profile)
