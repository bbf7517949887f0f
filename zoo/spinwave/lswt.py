"""Generic linear spin-wave theory (LSWT) on the triangular lattice, for single-k structures.

Hamiltonian (spinwave.md section 3; our reading of arXiv 2408.15957's symbols, see the note there):

    H = sum_<ij> [ J_perp (S^x_i S^x_j + S^y_i S^y_j) + J_z S^z_i S^z_j ] - sum_i h . S_i     (bonds counted once)

Magnetic cell: 1 sublattice (ferromagnet / field-polarised) or the sqrt3 x sqrt3 3-sublattice cell of the
120-degree umbrella states. Site ``n1 a1 + n2 a2`` belongs to sublattice ``(n2 - n1) mod 3`` (phase of the K point);
sublattice positions 0, a2, a1. Holstein-Primakoff in the local frame ``(e1, e2, n)`` of each spin, with
``u = e1 + i e2``: ``S_i = n_i (S - a_i^dag a_i) + sqrt(S/2) (conj(u_i) a_i + u_i a_i^dag)``. Per bond ``(i, j, d)``:

    A_ij(k) += (S/2) u_i^T J conj(u_j) e^{ik.d}   (+ Hermitian partner),   B_ij(k) += (S/2) u_i^T J u_j e^{ik.d}  (+ B_ji(k) at -d)
    A_ii    -= S n_i^T J n_j  (both ends),     A_ii += h . n_i          (Zeeman)
    H = (1/2) sum_k x_k^dag M(k) x_k,   x_k = (a_k, a^dag_{-k}),   M = [[A(k), B(k)], [B(k)^dag, A(-k)^T]]

Energies: Colpa's method (J. H. P. Colpa, Physica A 93, 327 (1978)): ``M + tol I = K^dag K`` (Cholesky), ``eigh(K eta K^dag)``;
the positive eigenvalues are the magnon energies. A small ``tol`` regularises the zero modes of the solvable point
(SpinW does the same); it moves energies by O(tol). Spin correlations (one-magnon weights) follow from the
Bogoliubov matrix ``T = K^{-1} U sqrt(E)`` (Toth & Lake, J. Phys.: Condens. Matter 27, 166002 (2015), formula read,
code written here).
"""

from __future__ import annotations

import math

import torch

from zoo.spinwave.lattice import A1, A2, bond_vectors, check_q, to_cartesian

__all__ = ["classical_energy", "lswt", "umbrella_directions", "umbrella_energy_closed_form"]


def _sublattice_bonds() -> list[tuple[int, int, int]]:
    """``(i, j, bond index)`` for the 3-sublattice cell: bond d = c1 a1 + c2 a2 shifts the sublattice by c2 - c1."""
    shifts = [(1, 0), (0, 1), (-1, 1)]  # a1, a2, a2 - a1
    return [(i, (i + c2 - c1) % 3, b) for i in range(3) for b, (c1, c2) in enumerate(shifts)]


def umbrella_directions(theta: torch.Tensor | float, chirality: int = 1, phi0: float = 0.0) -> torch.Tensor:
    """Unit spin directions ``[3, 3]`` of the umbrella state: cone angle ``theta`` from z, in-plane angles
    ``phi0 + chirality * 2 pi alpha / 3`` (spinwave.md section 5)."""
    if chirality not in (1, -1):
        raise ValueError(f"chirality must be +1 or -1, got {chirality}")
    theta = torch.as_tensor(theta, dtype=torch.float64)
    phi = phi0 + chirality * 2 * math.pi * torch.arange(3, dtype=torch.float64) / 3
    return torch.stack([torch.sin(theta) * torch.cos(phi), torch.sin(theta) * torch.sin(phi), torch.cos(theta).expand(3)], -1)


def _exchange(J_perp, J_z) -> torch.Tensor:
    J_perp, J_z = torch.as_tensor(J_perp, dtype=torch.float64), torch.as_tensor(J_z, dtype=torch.float64)
    return torch.diag_embed(torch.stack([J_perp, J_perp, J_z]))


def classical_energy(directions: torch.Tensor, J_perp, J_z, field=(0.0, 0.0, 0.0), S: float = 0.5) -> torch.Tensor:
    """Classical energy per site of a 1- or 3-sublattice structure, summed bond by bond (no closed form used)."""
    n_sub = directions.shape[0]
    J = _exchange(J_perp, J_z)
    spins = S * directions
    if n_sub == 1:
        bonds = [(0, 0, b) for b in range(3)]
    elif n_sub == 3:
        bonds = _sublattice_bonds()
    else:
        raise ValueError(f"directions must have 1 or 3 sublattices, got {n_sub}")
    energy = sum(spins[i] @ J @ spins[j] for i, j, _ in bonds)
    h = torch.as_tensor(field, dtype=torch.float64)
    return (energy - (spins @ h).sum()) / n_sub


def umbrella_energy_closed_form(theta, J_perp, J_z, S: float = 0.5) -> torch.Tensor:
    """``E(theta)/N = 3 S^2 [J_z cos^2 theta - (J_perp/2) sin^2 theta]`` (spinwave.md section 5, derived there)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    return 3 * S**2 * (J_z * torch.cos(theta) ** 2 - 0.5 * J_perp * torch.sin(theta) ** 2)


def _local_frame(n: torch.Tensor) -> torch.Tensor:
    """``u = e1 + i e2`` with ``(e1, e2, n)`` right-handed, ``[n_sub, 3]`` complex."""
    theta = torch.arccos(n[:, 2].clamp(-1, 1))
    phi = torch.atan2(n[:, 1], n[:, 0])
    e1 = torch.stack([torch.cos(theta) * torch.cos(phi), torch.cos(theta) * torch.sin(phi), -torch.sin(theta)], -1)
    e2 = torch.stack([-torch.sin(phi), torch.cos(phi), torch.zeros_like(phi)], -1)
    return torch.complex(e1, e2)


def lswt(
    q,
    directions: torch.Tensor,
    J_perp,
    J_z,
    field=(0.0, 0.0, 0.0),
    S: float = 0.5,
    *,
    tolerance: float = 1e-9,
    correlations: bool = False,
):
    """Magnon energies (and optionally spin correlations) of a 1- or 3-sublattice structure.

    Args:
        q: ``[N, 2]`` wavevectors in r.l.u. of the triangular lattice (extended zone).
        directions: ``[n_sub, 3]`` unit spin directions (n_sub = 1 or 3); must be a stationary state.
        field: Zeeman field ``h`` in meV (``-h . S``), 3-vector.
        tolerance: ``tol`` added to ``M`` before the Cholesky factorisation (meV).
        correlations: also return ``S^{ab}(q, mode)`` ``[N, n_sub, 3, 3]`` (one-magnon weights, per site).

    Returns:
        energies ``[N, n_sub]`` ascending (meV); with ``correlations`` a tuple ``(energies, weights)``.
    """
    q = check_q(q)
    n_sub = directions.shape[0]
    if n_sub == 1:
        bonds = [(0, 0, b) for b in range(3)]
        positions = torch.zeros(1, 2, dtype=torch.float64)
    elif n_sub == 3:
        bonds = _sublattice_bonds()
        positions = torch.tensor([[0.0, 0.0], list(A2), list(A1)], dtype=torch.float64)
    else:
        raise ValueError(f"directions must have 1 or 3 sublattices, got {n_sub}")
    J = _exchange(J_perp, J_z).to(torch.complex128)
    h = torch.as_tensor(field, dtype=torch.float64)
    n = directions.to(torch.float64)
    u = _local_frame(n)
    d = bond_vectors()
    k = to_cartesian(q)  # [N, 2]
    N = q.shape[0]
    A = torch.zeros(N, n_sub, n_sub, dtype=torch.complex128)
    Am = torch.zeros_like(A)  # A(-k)
    B = torch.zeros_like(A)
    diag = (n @ h).to(torch.complex128)
    for i, j, b in bonds:
        phase = torch.exp(1j * (k @ d[b]).to(torch.complex128))  # e^{ik.d}
        c1 = 0.5 * S * (u[i] @ J @ u[j].conj())
        c2 = 0.5 * S * (u[i] @ J @ u[j])
        A[:, i, j] += c1 * phase
        A[:, j, i] += c1.conj() * phase.conj()
        Am[:, i, j] += c1 * phase.conj()
        Am[:, j, i] += c1.conj() * phase
        B[:, i, j] += c2 * phase
        B[:, j, i] += c2 * phase.conj()
        nn = S * (n[i].to(torch.complex128) @ J @ n[j].to(torch.complex128))
        diag = diag - nn * torch.nn.functional.one_hot(torch.tensor(i), n_sub) - nn * torch.nn.functional.one_hot(torch.tensor(j), n_sub)
    A = A + torch.diag_embed(diag).expand(N, -1, -1)
    Am = Am + torch.diag_embed(diag).expand(N, -1, -1)
    M = torch.cat([torch.cat([A, B], -1), torch.cat([B.conj().transpose(-1, -2), Am.transpose(-1, -2)], -1)], -2)
    M = 0.5 * (M + M.conj().transpose(-1, -2)) + tolerance * torch.eye(2 * n_sub, dtype=M.dtype)
    K, info = torch.linalg.cholesky_ex(M, upper=True)  # M = K^dag K
    if bool((info != 0).any()):
        bad = int(torch.nonzero(info)[0])
        raise ValueError(
            f"the spin-wave matrix is not positive definite at q = {q[bad].tolist()}: the reference state is not a "
            "(local) minimum for these couplings and field (below saturation, or a wrong structure)"
        )
    eta = torch.cat([torch.ones(n_sub), -torch.ones(n_sub)]).to(M.dtype)
    W = K @ (eta[:, None] * K.conj().transpose(-1, -2))
    L, U = torch.linalg.eigh(0.5 * (W + W.conj().transpose(-1, -2)))  # ascending: n_sub negative, n_sub positive
    order = torch.cat([torch.arange(n_sub, 2 * n_sub), torch.arange(n_sub - 1, -1, -1)])  # positives ascending, then negatives
    L, U = L[:, order], U[:, :, order]
    energies = L[:, :n_sub].real  # ascending
    if not correlations:
        return energies
    E = (eta.real * L.real).clamp_min(1e-300)
    T = torch.linalg.solve_triangular(K, U, upper=True) * E.sqrt().to(M.dtype)[:, None, :]  # x = T y
    # S^perp_alpha(k) = sqrt(S/2) sum_i e^{-ik.r_i} [conj(u_i^a) a_ik + u_i^a a^dag_{i,-k}] / sqrt(n_sub)
    phase = torch.exp(-1j * (k @ positions.T).to(torch.complex128))  # [N, n_sub]
    Y = math.sqrt(S / 2) * torch.cat([phase[:, :, None] * u.conj()[None], phase[:, :, None] * u[None]], 1) / math.sqrt(n_sub)  # [N, 2n, 3]
    amplitude = torch.einsum("nia,nim->nma", Y, T)[:, :n_sub]  # creation amplitude of each positive mode, [N, n_sub, 3]
    weights = (amplitude.conj()[..., :, None] * amplitude[..., None, :]).real  # [N, mode, 3, 3] (real part of S^ab)
    return energies, weights
