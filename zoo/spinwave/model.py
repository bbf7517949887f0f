"""Spin waves of the triangular XXZ magnet CeMgAl11O19: closed forms, S(Q, w) with resolution, umbrella ensemble.

Paper: "Spin Excitation Continuum in the Exactly Solvable Triangular-Lattice Spin Liquid CeMgAl11O19",
arXiv 2408.15957 (Science Advances, DOI 10.1126/sciadv.aed7778). From the paper [S]: the XXZ Hamiltonian,
J_z = -0.024(5) meV, J_perp = 0.056(3) meV, the umbrella-manifold ensemble for the zero-field continuum.
Derived here [I/V] (docs/methods/spinwave.md), and tested against the generic LSWT in ``lswt.py``:

Field along z, ``h = g_z mu_B B`` above ``h_sat,z = 6S (J_perp/2 + J_z)``:

    omega(q) = h + 6S [J_perp gamma(q) - J_z],      S^xx = S^yy = S/2 (one mode), S^zz = 0

Field in plane (along x), ``h = g_perp mu_B B`` above ``h_sat,x = 9 S J_perp`` (for J_perp > 0):

    A = h - 6S J_perp + 3S (J_perp + J_z) gamma,   B = 3S (J_perp - J_z) gamma,   omega = sqrt(A^2 - B^2)
    S^yy = (S/2)(A - B)/omega,   S^zz = (S/2)(A + B)/omega,   S^xx = 0

Neutron intensity for in-plane Q (Q_z = 0): ``sum_ab (delta_ab - Qhat_a Qhat_b) S^ab``; the magnetic form factor
is left to the overall scale (our choice; the Ce3+ form factor of the doublet is not modelled). Energy resolution:
Gaussian of FWHM ``resolution_fwhm``, integrated exactly over each energy bin (erf differences), so a sharp mode
becomes a bin-averaged Gaussian with no grid error.
"""

from __future__ import annotations

import math

import torch

from zoo.spinwave.lattice import check_q, gamma, to_cartesian
from zoo.spinwave.lswt import lswt, umbrella_directions

__all__ = [
    "MU_B_MEV_PER_T",
    "binned_gaussian",
    "ensemble_weights",
    "polarized_dispersion",
    "polarized_intensity",
    "polarized_spectrum",
    "saturation_field",
    "umbrella_ensemble_spectrum",
]

MU_B_MEV_PER_T = 0.057883818060  # Bohr magneton in meV/T (CODATA 2018)
DIRECTIONS = ("z", "x")


def saturation_field(J_perp, J_z, S: float = 0.5, direction: str = "z"):
    """Zeeman energy (meV) above which the polarised state is stable: ``6S(J_perp/2 + J_z)`` (z) or the
    largest field where ``A - |B|`` touches zero over the zone (x; ``9 S J_perp`` for the published signs)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'z' or 'x', got {direction!r}")
    J_perp, J_z = torch.as_tensor(J_perp, dtype=torch.float64), torch.as_tensor(J_z, dtype=torch.float64)
    ends = torch.tensor([1.0, -0.5], dtype=torch.float64)  # gamma spans [-1/2, 1]
    if direction == "z":
        return (6 * S * (J_z - J_perp * ends)).amax()  # omega = h + 6S(J_perp gamma - J_z) > 0 at both ends
    # both factors h - 6S J_perp + 6S J gamma must be > 0 for gamma in [-1/2, 1]
    return torch.stack([(6 * S * J_perp - 6 * S * J_perp * ends).amax(), (6 * S * J_perp - 6 * S * J_z * ends).amax()]).amax()


def _check_direction_and_field(field, J_perp, J_z, S, direction) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'z' or 'x', got {direction!r}")
    if S <= 0:
        raise ValueError(f"S must be > 0, got {S}")
    h = torch.as_tensor(field, dtype=torch.float64)
    h_sat = saturation_field(J_perp, J_z, S, direction)
    if bool((h.detach() <= h_sat.detach()).any()):
        raise ValueError(
            f"field {h.detach().min().item():.6g} meV along {direction} is at or below the saturation field "
            f"{h_sat.detach().item():.6g} meV: the polarised state is unstable there (omega would be complex)"
        )


def polarized_dispersion(q, J_perp, J_z, field, *, S: float = 0.5, direction: str = "z", check: bool = True) -> torch.Tensor:
    """Magnon energy ``[N]`` (meV) of the field-polarised state; closed forms in the module docstring.

    Args:
        q: ``[N, 2]`` (h, k) in r.l.u. of the triangular lattice (a1 = (1, 0), a2 = (1/2, sqrt3/2);
            Gamma = (0, 0), M = (1/2, 0), K = (2/3, 1/3)).
        J_perp, J_z: exchange (meV), each bond counted once; tensors keep gradients.
        field: Zeeman energy ``g mu_B B`` (meV), scalar or ``[N]``.
        direction: ``"z"`` (c axis) or ``"x"`` (in plane).
        check: raise ``ValueError`` at or below the saturation field (``False`` inside fits: NaN instead).

    Example::

        polarized_dispersion(torch.tensor([[0.0, 0.0], [2/3, 1/3]]), 0.056, -0.024, 0.2)  # Gamma, K
    """
    q = check_q(q)
    if check:
        _check_direction_and_field(field, J_perp, J_z, S, direction)
    elif direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'z' or 'x', got {direction!r}")
    g = gamma(q)
    if direction == "z":
        return field + 6 * S * (J_perp * g - J_z)
    A = field - 6 * S * J_perp + 3 * S * (J_perp + J_z) * g
    B = 3 * S * (J_perp - J_z) * g
    return torch.sqrt((A - B) * (A + B))


def polarized_intensity(q, J_perp, J_z, field, *, S: float = 0.5, direction: str = "z", check: bool = True) -> torch.Tensor:
    """Unpolarised one-magnon weight ``[N]`` for in-plane Q: ``sum_ab (delta_ab - Qhat_a Qhat_b) S^ab``."""
    q = check_q(q)
    if check:
        _check_direction_and_field(field, J_perp, J_z, S, direction)
    if direction == "z":
        return torch.full((q.shape[0],), S / 2, dtype=torch.float64)  # (S/2)(1 - Qx^2) + (S/2)(1 - Qy^2), Qx^2 + Qy^2 = 1
    g = gamma(q)
    A = field - 6 * S * J_perp + 3 * S * (J_perp + J_z) * g
    B = 3 * S * (J_perp - J_z) * g
    omega = torch.sqrt((A - B) * (A + B))
    k = to_cartesian(q)
    norm = k.norm(dim=-1)
    qy2 = torch.where(norm > 0, k[:, 1] ** 2 / norm.clamp_min(1e-300) ** 2, torch.zeros_like(norm))  # Gamma: orientation average 1/2
    qy2 = torch.where(norm > 0, qy2, torch.full_like(norm, 0.5))
    return (S / 2) * ((A - B) * (1 - qy2) + (A + B)) / omega


def binned_gaussian(energies: torch.Tensor, centres: torch.Tensor, fwhm: float, bin_width: float) -> torch.Tensor:
    """Gaussian of ``fwhm`` centred at ``centres [..., M]`` averaged over bins ``[E - w/2, E + w/2]``: ``[..., M, n_E]``."""
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
    upper = (energies + bin_width / 2 - centres[..., None]) / (sigma * math.sqrt(2))
    lower = (energies - bin_width / 2 - centres[..., None]) / (sigma * math.sqrt(2))
    return 0.5 * (torch.erf(upper) - torch.erf(lower)) / bin_width


def polarized_spectrum(
    q, energies, J_perp, J_z, field, *, resolution_fwhm: float, S: float = 0.5, direction: str = "z", check: bool = True
) -> torch.Tensor:
    """``S(Q, E)`` ``[N, n_E]`` (per meV) of the polarised state, convolved with the Gaussian energy resolution."""
    energies = torch.as_tensor(energies, dtype=torch.float64)
    if energies.ndim != 1 or energies.numel() < 2:
        raise ValueError(f"energies must be a 1-D grid with >= 2 points, got shape {tuple(energies.shape)}")
    if resolution_fwhm <= 0:
        raise ValueError(f"resolution_fwhm must be > 0, got {resolution_fwhm}")
    omega = polarized_dispersion(q, J_perp, J_z, field, S=S, direction=direction, check=check)
    weight = polarized_intensity(q, J_perp, J_z, field, S=S, direction=direction, check=check)
    bin_width = float(energies[1] - energies[0])
    return weight[:, None] * binned_gaussian(energies, omega[:, None], resolution_fwhm, bin_width)[:, 0]


def ensemble_weights(theta: torch.Tensor, kind: str = "uniform_cos_theta", beta_splitting: float = 0.0, logits=None) -> torch.Tensor:
    """Weights over the cone-angle grid (docs/methods/spinwave.md; the paper's exact choice is unknown [U]).

    ``uniform_theta``; ``uniform_cos_theta`` (sin theta measure); ``boltzmann``: ``sin theta exp(-beta_splitting cos^2 theta)``
    with ``beta_splitting = beta_eff * 3 S^2 (J_z + J_perp/2)``; ``learnable``: ``softmax(logits)``.
    """
    theta = torch.as_tensor(theta, dtype=torch.float64)
    if kind == "uniform_theta":
        w = torch.ones_like(theta)
    elif kind == "uniform_cos_theta":
        w = torch.sin(theta).clamp_min(0)
    elif kind == "boltzmann":
        w = torch.sin(theta).clamp_min(0) * torch.exp(-beta_splitting * torch.cos(theta) ** 2)
    elif kind == "learnable":
        if logits is None or torch.as_tensor(logits).shape != theta.shape:
            raise ValueError("kind='learnable' needs logits with the shape of theta")
        return torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 0)
    else:
        raise ValueError(f"kind must be uniform_theta, uniform_cos_theta, boltzmann or learnable, got {kind!r}")
    return w / w.sum()


def umbrella_ensemble_spectrum(
    q, energies, J_perp, theta, weights, *, resolution_fwhm: float, S: float = 0.5, omega_min: float = 0.0, tolerance: float = 1e-9
) -> torch.Tensor:
    """Zero-field continuum ``S_ens(Q, E)`` ``[N, n_E]``: weighted average over cone angles and both chiralities of
    the LSWT spectra of umbrella states, computed at the solvable point ``J_z' = -J_perp/2`` (docs/methods/spinwave.md,
    our default: away from it only theta = 0, pi/2 are stationary). Modes below ``omega_min`` are masked (Goldstone
    modes, intensity ~ 1/omega). Intensity: ``sum_ab (delta_ab - Qhat_a Qhat_b) S^ab`` for in-plane Q."""
    q = check_q(q)
    energies = torch.as_tensor(energies, dtype=torch.float64)
    theta = torch.as_tensor(theta, dtype=torch.float64).flatten()
    weights = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if theta.shape != weights.shape:
        raise ValueError(f"theta {tuple(theta.shape)} and weights {tuple(weights.shape)} must have the same shape")
    k = to_cartesian(q)
    qhat = torch.cat([k / k.norm(dim=-1, keepdim=True).clamp_min(1e-300), torch.zeros(q.shape[0], 1, dtype=k.dtype)], -1)
    projector = torch.eye(3, dtype=torch.float64) - qhat[:, :, None] * qhat[:, None, :]  # [N, 3, 3]
    bin_width = float(energies[1] - energies[0])
    total = torch.zeros(q.shape[0], energies.numel(), dtype=torch.float64)
    for t, w in zip(theta, weights):
        for chirality in (1, -1):
            omega, corr = lswt(q, umbrella_directions(t, chirality), J_perp, -0.5 * J_perp, S=S, tolerance=tolerance, correlations=True)
            intensity = torch.einsum("nab,nmab->nm", projector, corr)  # [N, modes]
            intensity = torch.where(omega > omega_min, intensity, torch.zeros_like(intensity))
            lines = binned_gaussian(energies, omega, resolution_fwhm, bin_width)  # [N, modes, n_E]
            total = total + 0.5 * w * (intensity[..., None] * lines).sum(1)
    return total
