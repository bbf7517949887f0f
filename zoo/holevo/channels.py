r"""Quantum channels as stacked Kraus operators ``[k, d_out, d_in]`` (complex128).

:math:`\mathcal{N}(\rho) = \sum_k K_k \rho K_k^H` with :math:`\sum_k K_k^H K_k = I` (completely positive and
trace preserving, CPTP). Every constructor returns a validated stack; :func:`kraus_operators` validates what a
user passes (a sequence of ``[d_out, d_in]`` matrices, a stacked tensor, or NumPy arrays) and
:func:`from_choi` converts a Choi matrix :math:`C = \sum_{ij} |i\rangle\langle j| \otimes \mathcal{N}(|i\rangle\langle j|)`.
The channel formulas are textbook ones (Nielsen and Chuang, ch. 8; Wilde, *Quantum Information Theory*, ch. 4).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = [
    "amplitude_damping", "apply_channel", "cq_channel", "dephasing", "depolarizing", "erasure", "from_choi",
    "kraus_operators", "pauli_channel", "random_channel",
]

DTYPE = torch.complex128


def kraus_operators(kraus, *, atol: float = 1e-10) -> torch.Tensor:
    """Validate a Kraus set and return it stacked as a ``[k, d_out, d_in]`` complex128 tensor.

    Raises:
        ValueError: wrong shapes, non-finite entries, or :math:`\\lVert\\sum_k K_k^H K_k - I\\rVert > ` ``atol``
            (the message gives the deviation).
    """
    if isinstance(kraus, torch.Tensor):
        stack = kraus
    else:
        items = list(kraus) if isinstance(kraus, Sequence) or hasattr(kraus, "__iter__") else None
        if not items:
            raise ValueError(f"kraus must be a non-empty sequence of [d_out, d_in] matrices or a [k, d_out, d_in] tensor, got {kraus!r}")
        shapes = {tuple(torch.as_tensor(k).shape) for k in items}
        if len(shapes) != 1:
            raise ValueError(f"Kraus operators must all have the same shape, got {sorted(shapes)}")
        stack = torch.stack([torch.as_tensor(k) for k in items])
    stack = torch.as_tensor(stack)
    if stack.dim() == 2:
        stack = stack.unsqueeze(0)
    if stack.dim() != 3 or stack.shape[0] < 1 or stack.shape[1] < 1 or stack.shape[2] < 1:
        raise ValueError(f"kraus must have shape [k, d_out, d_in], got {tuple(stack.shape)}")
    stack = stack.to(DTYPE)
    if not torch.isfinite(torch.view_as_real(stack)).all():
        raise ValueError("kraus operators contain non-finite entries")
    d_in = stack.shape[2]
    gram = torch.einsum("kai,kaj->ij", stack.conj(), stack)
    deviation = torch.linalg.matrix_norm(gram - torch.eye(d_in, dtype=DTYPE)).item()
    if deviation > atol:
        raise ValueError(f"kraus operators are not trace preserving: |sum_k K_k^H K_k - I| = {deviation:.3g} > atol {atol:.1g} "
                         "(the channel must be CPTP)")
    return stack


def apply_channel(kraus: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """:math:`\\mathcal{N}(\\rho)` for ``rho`` of shape ``[..., d_in, d_in]``."""
    return torch.einsum("kai,...ij,kbj->...ab", kraus, rho.to(kraus.dtype), kraus.conj())


def _check_probability(name: str, value: float, high: float = 1.0) -> float:
    if not (isinstance(value, (int, float)) and 0 <= value <= high):
        raise ValueError(f"{name} must be a number in [0, {high:g}], got {value!r}")
    return float(value)


def _weyl(d: int) -> list[torch.Tensor]:
    """The d^2 Weyl (clock-and-shift) unitaries X^a Z^b; the first is the identity."""
    omega = torch.exp(2j * math.pi * torch.arange(d, dtype=torch.float64) / d).to(DTYPE)
    shift = torch.roll(torch.eye(d, dtype=DTYPE), 1, dims=0)
    clock = torch.diag(omega)
    return [torch.matrix_power(shift, a) @ torch.matrix_power(clock, b) for a in range(d) for b in range(d)]


def depolarizing(d: int, q: float) -> torch.Tensor:
    """:math:`\\rho \\mapsto (1 - q)\\rho + q\\, I/d`, for ``0 <= q <= d^2/(d^2-1)`` (the CP range).

    Kraus form: :math:`\\sqrt{1 - q + q/d^2}\\, I` and :math:`\\sqrt{q}/d\\; W_{ab}` for the :math:`d^2 - 1` non-identity
    Weyl operators, because :math:`\\sum_{ab} W_{ab}\\rho W_{ab}^H = d\\,\\mathrm{tr}(\\rho) I`.
    """
    if not isinstance(d, int) or d < 2:
        raise ValueError(f"depolarizing d must be an int >= 2, got {d!r}")
    q = _check_probability("depolarizing q", q, d * d / (d * d - 1))
    weyl = _weyl(d)
    ops = [math.sqrt(max(1 - q + q / d**2, 0.0)) * weyl[0]] + [math.sqrt(q) / d * w for w in weyl[1:]]
    return kraus_operators(ops)


def pauli_channel(l1: float, l2: float, l3: float) -> torch.Tensor:
    """Unital qubit channel, diagonal in the Pauli basis: Bloch vector :math:`(r_1, r_2, r_3) \\mapsto (l_1 r_1, l_2 r_2, l_3 r_3)`.

    Kraus :math:`\\sqrt{p_k}\\sigma_k` with :math:`p = \\tfrac14(1 + l_1 + l_2 + l_3, 1 + l_1 - l_2 - l_3, 1 - l_1 + l_2 - l_3, 1 - l_1 - l_2 + l_3)`;
    CP iff every :math:`p_k \\ge 0` (the Fujiwara-Algoet tetrahedron).
    """
    probabilities = [(1 + l1 + l2 + l3) / 4, (1 + l1 - l2 - l3) / 4, (1 - l1 + l2 - l3) / 4, (1 - l1 - l2 + l3) / 4]
    if min(probabilities) < -1e-12:
        raise ValueError(f"pauli_channel({l1}, {l2}, {l3}) is not completely positive (Pauli weights {probabilities})")
    paulis = [torch.eye(2, dtype=DTYPE), torch.tensor([[0, 1], [1, 0]], dtype=DTYPE),
              torch.tensor([[0, -1j], [1j, 0]], dtype=DTYPE), torch.tensor([[1, 0], [0, -1]], dtype=DTYPE)]
    return kraus_operators([math.sqrt(max(w, 0.0)) * s for w, s in zip(probabilities, paulis)])


def dephasing(p: float) -> torch.Tensor:
    """Qubit dephasing :math:`\\rho \\mapsto (1 - p)\\rho + p Z\\rho Z` (Pauli channel with :math:`l = (1-2p, 1-2p, 1)`)."""
    p = _check_probability("dephasing p", p)
    return pauli_channel(1 - 2 * p, 1 - 2 * p, 1.0)


def amplitude_damping(gamma: float) -> torch.Tensor:
    """Qubit amplitude damping: :math:`K_0 = |0\\rangle\\langle 0| + \\sqrt{1-\\gamma}|1\\rangle\\langle 1|`, :math:`K_1 = \\sqrt{\\gamma}|0\\rangle\\langle 1|`."""
    gamma = _check_probability("amplitude_damping gamma", gamma)
    k0 = torch.tensor([[1, 0], [0, math.sqrt(1 - gamma)]], dtype=DTYPE)
    k1 = torch.tensor([[0, math.sqrt(gamma)], [0, 0]], dtype=DTYPE)
    return kraus_operators([k0, k1])


def erasure(d: int, epsilon: float) -> torch.Tensor:
    """Erasure channel :math:`\\rho \\mapsto (1 - \\epsilon)\\rho \\oplus \\epsilon |e\\rangle\\langle e|` (output dimension d + 1)."""
    if not isinstance(d, int) or d < 2:
        raise ValueError(f"erasure d must be an int >= 2, got {d!r}")
    epsilon = _check_probability("erasure epsilon", epsilon)
    keep = torch.zeros(d + 1, d, dtype=DTYPE)
    keep[:d, :d] = torch.eye(d, dtype=DTYPE) * math.sqrt(1 - epsilon)
    ops = [keep]
    for j in range(d):
        flag = torch.zeros(d + 1, d, dtype=DTYPE)
        flag[d, j] = math.sqrt(epsilon)
        ops.append(flag)
    return kraus_operators(ops)


def random_channel(d_in: int, d_out: int, kraus_rank: int, seed: int = 0) -> torch.Tensor:
    """A random channel: the blocks of a Haar-random isometry :math:`V: \\mathbb{C}^{d_{in}} \\to \\mathbb{C}^{r d_{out}}`."""
    for name, value in (("d_in", d_in), ("d_out", d_out), ("kraus_rank", kraus_rank)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"random_channel {name} must be a positive int, got {value!r}")
    if kraus_rank * d_out < d_in:
        raise ValueError(f"random_channel needs kraus_rank * d_out >= d_in for an isometry, got {kraus_rank} * {d_out} < {d_in}")
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(kraus_rank * d_out, d_in, dtype=DTYPE, generator=generator)
    isometry, r = torch.linalg.qr(gaussian)
    isometry = isometry * (r.diagonal() / r.diagonal().abs()).unsqueeze(0)  # Haar: fix the phases of R
    return kraus_operators(isometry.reshape(kraus_rank, d_out, d_in))


def from_choi(choi: torch.Tensor, d_in: int, d_out: int, *, atol: float = 1e-10) -> torch.Tensor:
    """Kraus operators of the channel with Choi matrix ``choi`` (``[d_in d_out, d_in d_out]``, input index first).

    Raises ValueError if ``choi`` is not Hermitian positive semidefinite or its output partial trace is not I.
    """
    choi = torch.as_tensor(choi).to(DTYPE)
    size = d_in * d_out
    if choi.shape != (size, size):
        raise ValueError(f"choi must have shape ({size}, {size}) for d_in={d_in}, d_out={d_out}, got {tuple(choi.shape)}")
    if torch.linalg.matrix_norm(choi - choi.mH).item() > atol:
        raise ValueError("choi matrix is not Hermitian")
    values, vectors = torch.linalg.eigh(choi)
    if values.min().item() < -atol:
        raise ValueError(f"choi matrix is not positive semidefinite (smallest eigenvalue {values.min().item():.3g}): the map is not CP")
    keep = values > atol
    # column v of C = sum |i><j| (x) N(|i><j|) reshapes to K^T: v[i * d_out + a] = K[a, i]
    ops = (vectors[:, keep] * values[keep].sqrt()).T.reshape(-1, d_in, d_out).transpose(1, 2)
    return kraus_operators(ops, atol=max(atol, 1e-9))


def cq_channel(states: torch.Tensor) -> torch.Tensor:
    """The classical-quantum channel :math:`\\rho \\mapsto \\sum_x \\langle x|\\rho|x\\rangle \\sigma_x` for states ``[n, d, d]``."""
    states = torch.as_tensor(states).to(DTYPE)
    if states.dim() != 3 or states.shape[1] != states.shape[2]:
        raise ValueError(f"cq_channel states must have shape [letters, d, d], got {tuple(states.shape)}")
    letters, d = states.shape[0], states.shape[1]
    ops = []
    for x in range(letters):
        values, vectors = torch.linalg.eigh(states[x])
        if values.min().item() < -1e-10 or abs(values.sum().item() - 1) > 1e-10:
            raise ValueError(f"cq_channel state {x} is not a density matrix (eigenvalues {values.tolist()})")
        for j in range(d):
            if values[j] > 0:
                op = torch.zeros(d, letters, dtype=DTYPE)
                op[:, x] = values[j].clamp_min(0).sqrt() * vectors[:, j]
                ops.append(op)
    return kraus_operators(ops)


def rank_deficient_cq_states(seed: int, d_range: tuple[int, int] = (2, 5), letter_range: tuple[int, int] = (3, 6)) -> torch.Tensor:
    """Seeded letter states ``[letters, d, d]`` of a classical-quantum channel whose optimum may sit on the boundary.

    ``d`` and the number of letters are drawn uniformly from the half-open ranges (seeded by ``1000 + seed``); each
    letter state is :math:`A A^\dagger / \mathrm{tr}(A A^\dagger)` with ``A`` a complex Gaussian ``d x k``, ``k`` drawn
    from ``1 .. d - 1`` (seeded by ``seed``), so every state is rank-deficient and some letters typically get zero
    weight at the optimal input distribution. The family of the Holevo tests and benchmark (``cq_channel`` of it)."""
    sizes = torch.Generator().manual_seed(1000 + seed)
    d = int(torch.randint(*d_range, (1,), generator=sizes))
    letters = int(torch.randint(*letter_range, (1,), generator=sizes))
    generator = torch.Generator().manual_seed(seed)
    states = []
    for _ in range(letters):
        rank = int(torch.randint(1, d, (1,), generator=generator))
        a = torch.randn(d, rank, dtype=torch.complex128, generator=generator)
        rho = a @ a.mH
        states.append(rho / rho.diagonal().sum().real)
    return torch.stack(states)
