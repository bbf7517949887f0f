"""Kagome tight binding and simulated ARPES for the Cr-based kagome metal CsCr3Sb5.

Paper: "Ubiquitous Flat Bands in a Cr-based Kagome Superconductor", arXiv 2406.05293 (Nat. Commun., DOI
10.1038/s41467-025-62298-5); theory companion arXiv 2403.03911 (orbital-selective renormalisation, d_xz-dominated).
Only the abstracts were read: the flat band near E_F and orbital-selective renormalisation are [S]; every number here
(hoppings, Z, shifts, widths, resolutions) is a placeholder [U] (docs/methods/kagome.md).

Conventions (the issue's): a1 = (1, 0), a2 = (1/2, sqrt3/2); q = (h, k) in r.l.u. means q = h b1 + k b2 with
a_i . b_j = 2 pi delta_ij; sites A, B, C at 0, a1/2, a2/2; Gamma = (0, 0), M = (1/2, 0), K = (2/3, 1/3).
Nearest-neighbour hopping -t, gauge with the real site positions (docs/methods/kagome.md, derived there and tested):

    H(k) = eps0 - 2t [[0, c1, c2], [c1, 0, c3], [c2, c3, 0]],   c1 = cos(k.a1/2) = cos(pi h), c2 = cos(pi k), c3 = cos(pi (k - h))
    E_flat = eps0 + 2t,   E_pm = eps0 - t [1 +- sqrt(1 + 8 c1 c2 c3)]

Multi-orbital quasiparticle Hamiltonian (docs/methods/kagome.md, our design): ``H_qp = Z^1/2 (H_DFT - mu) Z^1/2 + diag(delta)``.
ARPES (section 4): ``I(k, w) = I0 [sum_n M_n(k) A_n(k, w) f(w, T)] (x) R_E (x) R_k + B`` with Lorentzian
``A_n`` of half width ``Gamma0 + alpha |w|``, orbital weights ``M_n = sum_alpha m_alpha |<alpha|psi_n>|^2``.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "K_BOLTZMANN_EV",
    "arpes_map",
    "fermi_dirac",
    "kagome_bands",
    "kagome_hamiltonian",
    "renormalized_hamiltonian",
    "symmetric_eigh",
    "two_orbital_hamiltonian",
]

K_BOLTZMANN_EV = 8.617333262e-5  # eV/K


def _check_q(q) -> torch.Tensor:
    q = torch.as_tensor(q, dtype=torch.float64) if not torch.is_tensor(q) else q.to(torch.float64)
    if q.ndim != 2 or q.shape[-1] != 2 or q.shape[0] == 0:
        raise ValueError(f"q must have shape [N, 2] with N >= 1 (h, k in r.l.u.), got {tuple(q.shape)}")
    return q


def kagome_hamiltonian(q, t, eps0=0.0) -> torch.Tensor:
    """``[N, 3, 3]`` nearest-neighbour kagome Hamiltonian (hopping ``-t``) at ``q [N, 2]`` r.l.u."""
    q = _check_q(q)
    c1, c2, c3 = torch.cos(math.pi * q[:, 0]), torch.cos(math.pi * q[:, 1]), torch.cos(math.pi * (q[:, 1] - q[:, 0]))
    zero = torch.zeros_like(c1)
    offdiag = torch.stack([torch.stack([zero, c1, c2], -1), torch.stack([c1, zero, c3], -1), torch.stack([c2, c3, zero], -1)], -2)
    return eps0 * torch.eye(3, dtype=torch.float64) - 2 * t * offdiag


def kagome_bands(q, t, eps0=0.0) -> torch.Tensor:
    """``[N, 3]`` ascending band energies; with ``t > 0`` the flat band ``eps0 + 2t`` is the top band."""
    return torch.linalg.eigvalsh(kagome_hamiltonian(q, t, eps0))


def two_orbital_hamiltonian(q, t1, t2, hybridization, eps1=0.0, eps2=0.0) -> torch.Tensor:
    """``[N, 6, 6]`` toy "DFT" model: two NN kagome copies (orbitals 0-2: t1, 3-5: t2) hybridised on site by ``v``."""
    h1, h2 = kagome_hamiltonian(q, t1, eps1), kagome_hamiltonian(q, t2, eps2)
    v = hybridization * torch.eye(3, dtype=torch.float64).expand_as(h1)
    return torch.cat([torch.cat([h1, v], -1), torch.cat([v, h2], -1)], -2)


def renormalized_hamiltonian(h_dft: torch.Tensor, Z: torch.Tensor, delta: torch.Tensor, mu: float = 0.0) -> torch.Tensor:
    """``Z^1/2 (H_DFT - mu) Z^1/2 + diag(delta)``; ``Z``, ``delta`` per orbital ``[n_orb]``."""
    n = h_dft.shape[-1]
    if Z.shape[-1] != n or delta.shape[-1] != n:
        raise ValueError(f"Z {tuple(Z.shape)} and delta {tuple(delta.shape)} need {n} orbitals")
    root = torch.sqrt(Z)
    shifted = h_dft - mu * torch.eye(n, dtype=h_dft.dtype)
    return root[..., :, None] * shifted * root[..., None, :] + torch.diag_embed(delta)


def _degenerate_safe_inverse_gaps(values: torch.Tensor) -> torch.Tensor:
    """``F_ij = 1 / (lambda_j - lambda_i)`` for ``i != j``, 0 on the diagonal and inside degenerate pairs."""
    gaps = values[..., None, :] - values[..., :, None]  # [..., n, n], lambda_j - lambda_i
    scale = values.abs().amax(-1, keepdim=True)[..., None].clamp_min(1.0)
    degenerate = gaps.abs() <= 1e-10 * scale
    return torch.where(degenerate, torch.zeros_like(gaps), 1.0 / torch.where(degenerate, torch.ones_like(gaps), gaps))


class _SymmetricEigh(torch.autograd.Function):
    """``torch.linalg.eigh`` of real symmetric matrices with degenerate-safe derivatives of every order (our choice).

    Standard perturbation theory (e.g. Giles, "An extended collection of matrix derivative results", 2008, sec. 3.1):
    ``dL = diag(V^T dA V)``, ``dV = V (F o (V^T dA V))`` with ``F_ij = 1/(lambda_j - lambda_i)``; reverse mode
    ``gA = V (diag(gL) + F o (V^T gV)) V^T`` (symmetrised). Inside a degenerate pair ``F_ij`` is set to 0, which is exact
    for families of Hamiltonians that keep the degeneracy (the symmetry-protected touchings of the kagome bands at
    Gamma under per-copy ``Z``, ``delta``): torch's own formula gives ``inf * 0 = nan`` there in second derivatives
    (Hessian errors). Backward and jvp use the saved outputs, so double backward goes through this rule again.
    """

    @staticmethod
    def forward(matrix):
        values, vectors = torch.linalg.eigh(matrix)
        return values, vectors

    @staticmethod
    def setup_context(ctx, inputs, output):
        values, vectors = output
        ctx.save_for_backward(values, vectors)
        ctx.save_for_forward(values, vectors)

    @staticmethod
    def backward(ctx, grad_values, grad_vectors):
        values, vectors = ctx.saved_tensors
        inner = torch.diag_embed(grad_values) if grad_values is not None else torch.zeros_like(vectors)
        if grad_vectors is not None:
            inner = inner + _degenerate_safe_inverse_gaps(values) * (vectors.transpose(-1, -2) @ grad_vectors)
        grad = vectors @ inner @ vectors.transpose(-1, -2)
        return 0.5 * (grad + grad.transpose(-1, -2))

    @staticmethod
    def jvp(ctx, tangent):
        values, vectors = ctx.saved_tensors
        rotated = vectors.transpose(-1, -2) @ tangent @ vectors
        return rotated.diagonal(dim1=-2, dim2=-1), vectors @ (_degenerate_safe_inverse_gaps(values) * rotated)

    @staticmethod
    def vmap(info, in_dims, matrix):  # eigh is batched over leading dims already: move the vmapped dim to the front
        return _SymmetricEigh.apply(matrix.movedim(in_dims[0], 0)), (0, 0)


def symmetric_eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ascending eigenvalues and eigenvectors of real symmetric ``matrix [..., n, n]``, with derivatives (first,
    second, forward mode) that stay finite at symmetry-protected degeneracies (``_SymmetricEigh``)."""
    return _SymmetricEigh.apply(matrix)


def fermi_dirac(w: torch.Tensor, temperature: float) -> torch.Tensor:
    """``1 / (exp(w / k_B T) + 1)``, w in eV from E_F (``sigmoid(-w / k_B T)``: no overflow)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 K, got {temperature}")
    return torch.sigmoid(-w / (K_BOLTZMANN_EV * temperature))


def arpes_map(
    hamiltonian: torch.Tensor,
    energies: torch.Tensor,
    *,
    orbital_weights: torch.Tensor,
    gamma0,
    alpha,
    temperature: float,
    energy_operator=None,
    momentum_operator=None,
) -> torch.Tensor:
    """Simulated ARPES intensity ``[N_k, N_w]`` (``[N_data_k, N_w]`` with a momentum operator; before scale and background).

    Args:
        hamiltonian: ``[N_k, n, n]`` quasiparticle Hamiltonian along a cut (eV).
        energies: ``[N_w]`` binding-energy axis ``w`` (eV, 0 = E_F).
        orbital_weights: ``[n]`` matrix-element factors ``m_alpha``.
        gamma0, alpha: Lorentzian half width ``Gamma(w) = gamma0 + alpha |w|`` (eV).
        energy_operator: ``ResolutionOperator`` along w (fine grid = ``energies``).
        momentum_operator: ``ResolutionOperator`` along the cut whose fine grid is the ``N_k`` k points of
            ``hamiltonian``; the output then has its data points (``zoo.kagome.momentum.momentum_resolution_grid``).
    """
    if bool((orbital_weights == orbital_weights[0]).all()):
        # equal factors: M_n = m (eigenvectors are normalised); symmetric_eigh keeps first and second derivatives finite
        # at the band touchings (torch's eigvalsh gives nan Hessians where two eigenvalues are bitwise equal, e.g. at Gamma)
        values = symmetric_eigh(hamiltonian)[0]
        weight = orbital_weights[0] * torch.ones_like(values)
    else:  # eigenvector gradients diverge at degeneracies (docs/methods/kagome.md): keep cuts off band crossings
        values, vectors = torch.linalg.eigh(hamiltonian)  # [N_k, n], [N_k, n, n]
        weight = torch.einsum("kan,a->kn", vectors.abs() ** 2, orbital_weights)  # M_n(k)
    width = gamma0 + alpha * energies.abs()  # [N_w]
    lorentz = width / math.pi / ((energies[None, None, :] - values[..., None]) ** 2 + width**2)  # [N_k, n, N_w]
    intensity = (weight[..., None] * lorentz).sum(1) * fermi_dirac(energies, temperature)  # Fermi function first
    if energy_operator is not None:
        intensity = energy_operator(intensity)
    if momentum_operator is not None:
        intensity = momentum_operator(intensity.T).T
    return intensity
