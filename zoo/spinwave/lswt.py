"""Generic linear spin-wave theory (LSWT) on the triangular lattice, for single-k structures.

Hamiltonian (docs/methods/spinwave.md; our reading of arXiv 2408.15957's symbols, see the note there):

    H = sum_<ij> [ J_perp (S^x_i S^x_j + S^y_i S^y_j) + J_z S^z_i S^z_j ] - sum_i h . S_i     (bonds counted once)

Magnetic cell (``lswt``): 1 sublattice (ferromagnet / field-polarised) or the sqrt3 x sqrt3 3-sublattice cell of the
120-degree umbrella states. Any single-k cone or spiral (incommensurate too): ``single_k_lswt``, in the rotating frame. Site ``n1 a1 + n2 a2`` belongs to sublattice ``(n2 - n1) mod 3`` (phase of the K point);
sublattice positions 0, a2, a1. Holstein-Primakoff in the local frame ``(e1, e2, n)`` of each spin, with
``u = e1 + i e2``: ``S_i = n_i (S - a_i^dag a_i) + sqrt(S/2) (conj(u_i) a_i + u_i a_i^dag)``; Fourier with the real site
positions, ``a_ik = sum_R e^{-ik.(R + r_i)} a_iR / sqrt(N_cells)``. Per bond ``(i, j, d)`` (exchange ``J_ij``, 3x3):

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

from zoo.spinwave.lattice import bond_vectors, check_q, gamma, to_cartesian

__all__ = ["classical_energy", "cone_angle", "lswt", "single_k_energy", "single_k_lswt", "umbrella_directions", "umbrella_energy_closed_form"]


def _sublattice_bonds() -> list[tuple[int, int, int]]:
    """``(i, j, bond index)`` for the 3-sublattice cell: bond d = c1 a1 + c2 a2 shifts the sublattice by c2 - c1."""
    shifts = [(1, 0), (0, 1), (-1, 1)]  # a1, a2, a2 - a1
    return [(i, (i + c2 - c1) % 3, b) for i in range(3) for b, (c1, c2) in enumerate(shifts)]


def umbrella_directions(theta: torch.Tensor | float, chirality: int = 1, phi0: float = 0.0) -> torch.Tensor:
    """Unit spin directions ``[3, 3]`` of the umbrella state: cone angle ``theta`` from z, in-plane angles
    ``phi0 + chirality * 2 pi alpha / 3`` (docs/methods/spinwave.md)."""
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
    """``E(theta)/N = 3 S^2 [J_z cos^2 theta - (J_perp/2) sin^2 theta]`` (docs/methods/spinwave.md, derived there)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    return 3 * S**2 * (J_z * torch.cos(theta) ** 2 - 0.5 * J_perp * torch.sin(theta) ** 2)


def _local_frame(n: torch.Tensor) -> torch.Tensor:
    """``u = e1 + i e2`` with ``(e1, e2, n)`` right-handed, ``[n_sub, 3]`` complex."""
    theta = torch.arccos(n[:, 2].clamp(-1, 1))
    phi = torch.atan2(n[:, 1], n[:, 0])
    e1 = torch.stack([torch.cos(theta) * torch.cos(phi), torch.cos(theta) * torch.sin(phi), -torch.sin(theta)], -1)
    e2 = torch.stack([-torch.sin(phi), torch.cos(phi), torch.zeros_like(phi)], -1)
    return torch.complex(e1, e2)


def _structure(n_sub: int) -> list[tuple[int, int, int]]:
    if n_sub == 1:
        return [(0, 0, b) for b in range(3)]
    if n_sub == 3:
        return _sublattice_bonds()
    raise ValueError(f"directions must have 1 or 3 sublattices, got {n_sub}")


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
    bonds = _structure(directions.shape[0])
    J = _exchange(J_perp, J_z).to(torch.complex128)
    energies, amplitude = _colpa(q, directions.to(torch.float64), bonds, [J] * len(bonds),
                                 torch.as_tensor(field, dtype=torch.float64), S, tolerance, correlations)
    if not correlations:
        return energies
    return energies, _weights(amplitude)


def _weights(amplitude: torch.Tensor) -> torch.Tensor:
    """``Re conj(a_a) a_b`` from creation amplitudes ``[..., 3]`` -> ``[..., 3, 3]``."""
    return (amplitude.conj()[..., :, None] * amplitude[..., None, :]).real


def _colpa(q, n, bonds, exchanges, h, S, tolerance, amplitudes: bool):
    """Bosonic Bogoliubov problem of the module docstring for bonds ``(i, j, b)`` with exchange matrices
    ``exchanges[index of the bond]`` (3x3, need not be symmetric: ``S_i^T J S_j``). Returns energies ``[N, n_sub]``
    ascending and, if asked, the creation amplitudes ``[N, n_sub, 3]`` of each positive mode in ``S^a(q)``."""
    n_sub = n.shape[0]
    u = _local_frame(n)
    d = bond_vectors()
    k = to_cartesian(q)  # [N, 2]
    N = q.shape[0]
    A = torch.zeros(N, n_sub, n_sub, dtype=torch.complex128)
    Am = torch.zeros_like(A)  # A(-k)
    B = torch.zeros_like(A)
    diag = (n @ h).to(torch.complex128)
    for (i, j, b), J in zip(bonds, exchanges):
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
    if not amplitudes:
        return energies, None
    E = (eta.real * L.real).clamp_min(1e-300)
    T = torch.linalg.solve_triangular(K, U, upper=True) * E.sqrt().to(M.dtype)[:, None, :]  # x = T y
    # S^perp_alpha(k) = sqrt(S/2) sum_i [conj(u_i^a) a_ik + u_i^a a^dag_{i,-k}] / sqrt(n_sub): the bond phases e^{ik.d} use
    # the real bond vectors, so a_ik = sum_R e^{-ik.(R + r_i)} a_iR / sqrt(N) already carries each site's position phase
    # (an extra e^{-ik.r_i} here counted it twice: found by the rotating-frame cross-check in tests/spinwave)
    Y = math.sqrt(S / 2) * torch.cat([u.conj(), u], 0)[None] / math.sqrt(n_sub)  # [1, 2n, 3]
    return energies, torch.einsum("nia,nim->nma", Y.expand(q.shape[0], -1, -1), T)[:, :n_sub]  # creation amplitudes, [N, n_sub, 3]


# -- general single-k structures: cones and spirals in the rotating frame ----------------------------------------------


def _rotation_z(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([torch.stack([c, -s, zero]), torch.stack([s, c, zero]), torch.stack([zero, zero, one])])


def _ordering_q(ordering_q) -> torch.Tensor:
    Q = torch.as_tensor(ordering_q, dtype=torch.float64)
    if Q.numel() != 2:
        raise ValueError(f"ordering_q must be one wavevector (h, k) in r.l.u., got shape {tuple(Q.shape)}")
    return check_q(Q.reshape(1, 2), "ordering_q")


def _ordering_phases(Q: torch.Tensor) -> torch.Tensor:
    """``Q . d`` for the three bonds, ``Q`` as returned by ``_ordering_q``."""
    return (to_cartesian(Q) @ bond_vectors().T)[0]


def _cone_stiffness(Q: torch.Tensor, J_perp, J_z, S: float) -> torch.Tensor:
    """``2S (3 J_z - J_perp Gamma_Q)`` with ``Gamma_Q = sum_d cos(Q.d) = 3 gamma(Q)``: the curvature of
    ``single_k_energy`` in ``cos theta`` over S (its stationary point is ``cos theta = h / stiffness``)."""
    return 2 * S * (3 * torch.as_tensor(J_z, dtype=torch.float64) - J_perp * 3 * gamma(Q)[0])


def single_k_energy(ordering_q, cone_angle, J_perp, J_z, field=0.0, S: float = 0.5) -> torch.Tensor:
    """Classical energy per site of the cone ``n_r = R_z(Q.r) (sin theta, 0, cos theta)`` in a field along z:

        E/N = S^2 [J_perp sin^2(theta) Gamma_Q + 3 J_z cos^2(theta)] - h S cos(theta),   Gamma_Q = sum_d cos(Q.d)

    (three bonds d counted once; derived here from the Hamiltonian of the module docstring)."""
    gamma_q = 3 * gamma(_ordering_q(ordering_q))[0]
    theta = torch.as_tensor(cone_angle, dtype=torch.float64)
    return S**2 * (J_perp * torch.sin(theta) ** 2 * gamma_q + 3 * J_z * torch.cos(theta) ** 2) - field * S * torch.cos(theta)


def cone_angle(ordering_q, J_perp, J_z, field=0.0, S: float = 0.5) -> torch.Tensor:
    """Stationary cone angle of a single-k structure: ``cos theta = h / (2S (3 J_z - J_perp Gamma_Q))`` clipped to
    ``[-1, 1]`` (``dE/d cos theta = 0`` in ``single_k_energy``; at ``Q = K`` this is ``h / h_sat,z``). A planar spiral
    (theta = pi/2) at zero field; the polarised state (theta = 0) above saturation."""
    stiffness = _cone_stiffness(_ordering_q(ordering_q), J_perp, J_z, S)
    field = torch.as_tensor(field, dtype=torch.float64)
    if float(stiffness) <= 0:  # the cone energy is concave in cos theta: only the polarised state is stationary and stable
        return torch.zeros((), dtype=torch.float64)
    return torch.arccos((field / stiffness).clamp(-1.0, 1.0))


def single_k_lswt(
    q,
    ordering_q,
    J_perp,
    J_z,
    field=0.0,
    S: float = 0.5,
    *,
    theta=None,
    tolerance: float = 1e-9,
    correlations: bool = False,
):
    """Spin waves of a general single-k structure on the triangular XXZ lattice, in the rotating frame.

    The structure is the cone ``n_r = R_z(Q.r) (sin theta, 0, cos theta)`` with ordering wavevector ``Q`` (any value,
    commensurate or not) in a field ``h`` along z; it contains the ferromagnet and polarised state (theta = 0), the
    120-degree state (Q = K, theta = pi/2) and the umbrella states (Q = K), and incommensurate spirals.
    Because ``J = diag(J_perp, J_perp, J_z)`` commutes with ``R_z``, rotating each spin back by ``R_z(Q.r)`` turns the
    bond ``S_r^T J S_{r+d}`` into ``S'^T J R_z(Q.d) S'``: a one-sublattice problem with bond-dependent (non-symmetric)
    exchange, solved by the same Colpa diagonalisation as ``lswt`` (the rotating-frame method of Toth & Lake, J. Phys.:
    Condens. Matter 27, 166002 (2015), section 4; formulas read, code written here).

    Lab-frame correlations at momentum ``q`` come from three rotating-frame modes (the Fourier convention of
    ``lswt``): ``S^z(q) = S'^z(q)`` (mode at ``q``), ``S^+(q) = S'^+(q - Q)`` and ``S^-(q) = S'^-(q + Q)``, with
    ``S^x = (S^+ + S^-)/2``, ``S^y = (S^+ - S^-)/(2i)``. This holds when ``2Q`` is not a reciprocal lattice vector
    (otherwise ``S'^+ S'^+`` terms survive: use a magnetic supercell); then a ``ValueError`` is raised if asked.

    Args:
        q: ``[N, 2]`` r.l.u. wavevectors.
        ordering_q: ``Q = (h, k)`` in r.l.u.
        field: Zeeman energy along z (meV).
        theta: cone angle; default ``cone_angle(Q, ...)``. A non-stationary angle raises ``ValueError``.
        correlations: also return lab-frame ``S^{ab}`` weights ``[N, 3, 3, 3]``.

    Returns:
        energies ``[N, 3]`` of the modes at rotating-frame momenta ``q``, ``q - Q``, ``q + Q`` (in that order, not
        sorted; only the first is a distinct branch when Q = 0); with ``correlations`` also their weights.
    """
    q = check_q(q)
    Q = _ordering_q(ordering_q)
    phases = _ordering_phases(Q)
    if S <= 0:
        raise ValueError(f"S must be > 0, got {S}")
    theta = cone_angle(Q, J_perp, J_z, field, S) if theta is None else torch.as_tensor(theta, dtype=torch.float64)
    # stationarity: dE/dtheta = sin(theta) S (h - cos(theta) stiffness) = 0 (else the Holstein-Primakoff linear terms survive)
    slope = torch.sin(theta) * S * (torch.cos(theta) * _cone_stiffness(Q, J_perp, J_z, S) - field)
    scale = S**2 * (abs(float(J_perp)) + abs(float(J_z))) + abs(float(field)) * S
    if abs(float(slope)) > 1e-9 * max(scale, 1e-300):
        raise ValueError(f"theta = {float(theta):.6g} is not a stationary cone angle for Q = {Q[0].tolist()} and field {float(field):.6g} "
                         f"(dE/dtheta = {float(slope):.3g} meV); use theta=None for the stationary one")
    if correlations:
        twice = 2 * Q[0]
        if bool((twice - twice.round()).abs().max() < 1e-12) and bool((Q[0] - Q[0].round()).abs().max() > 1e-12):
            raise ValueError(f"2Q is a reciprocal lattice vector for Q = {Q[0].tolist()}: the rotating-frame correlations do not apply; use a magnetic supercell")
    n = torch.stack([torch.sin(theta), torch.zeros_like(theta), torch.cos(theta)])[None]
    J = _exchange(J_perp, J_z)
    exchanges = [(J @ _rotation_z(phases[b])).to(torch.complex128) for b in range(3)]
    h = torch.stack([torch.zeros(()), torch.zeros(()), torch.as_tensor(field, dtype=torch.float64)]).to(torch.float64)
    bonds = _structure(1)
    momenta = torch.stack([q, q - Q, q + Q])  # [3, N, 2]
    energies, amplitude = _colpa(momenta.reshape(-1, 2), n, bonds, exchanges, h, S, tolerance, correlations)
    energies = energies.reshape(3, -1).T  # [N, 3]
    if not correlations:
        return energies
    a = amplitude.reshape(3, -1, 3)  # [branch, N, xyz] in the rotating frame
    zero = torch.zeros_like(a[0, :, 0])
    plus = a[1, :, 0] + 1j * a[1, :, 1]  # S'^+ at q - Q
    minus = a[2, :, 0] - 1j * a[2, :, 1]  # S'^- at q + Q
    lab = torch.stack([
        torch.stack([zero, zero, a[0, :, 2]], -1),
        torch.stack([plus / 2, plus / 2j, zero], -1),
        torch.stack([minus / 2, -minus / 2j, zero], -1),
    ], 1)  # [N, branch, xyz]
    return energies, _weights(lab)
