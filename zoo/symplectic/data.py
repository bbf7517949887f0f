"""Seeded test matrices with a known symplectic spectrum (float64).

:math:`M = S\\,\\mathrm{diag}(D, D)\\,S^T` with :math:`S = K L`: :math:`K = \\begin{pmatrix}\\mathrm{Re}\\,U & -\\mathrm{Im}\\,U\\\\
\\mathrm{Im}\\,U & \\mathrm{Re}\\,U\\end{pmatrix}` orthosymplectic for a Haar unitary U, and the shear
:math:`L = \\begin{pmatrix} I & B\\\\ 0 & I\\end{pmatrix}` with B symmetric (symplectic). Then the symplectic
eigenvalues of M are exactly D (Williamson), and :math:`S^{-T}` is a Williamson matrix (our generator, after the
``test_cookup.m`` idea of Gao et al.'s ``speig``, not its code).
"""

from __future__ import annotations

import torch

__all__ = ["planted_banded_sparse", "planted_spd_matrix"]


def planted_spd_matrix(n: int, *, seed: int = 0, spectrum: torch.Tensor | None = None, shear: float = 0.3):
    """``(M, D, S)``: a ``[2n, 2n]`` SPD matrix, its symplectic eigenvalues D (default 1..n) and S (M = S diag(D, D) S^T)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    generator = torch.Generator().manual_seed(seed)
    d = torch.arange(1, n + 1, dtype=torch.float64) if spectrum is None else torch.as_tensor(spectrum, dtype=torch.float64)
    if d.shape != (n,) or (d <= 0).any():
        raise ValueError(f"spectrum must be {n} positive numbers, got {spectrum}")
    gaussian = torch.randn(n, n, dtype=torch.complex128, generator=generator)
    unitary, r = torch.linalg.qr(gaussian)
    unitary = unitary * (r.diagonal() / r.diagonal().abs())
    k = torch.cat([torch.cat([unitary.real, -unitary.imag], 1), torch.cat([unitary.imag, unitary.real], 1)], 0)
    b = shear * torch.randn(n, n, dtype=torch.float64, generator=generator)
    b = 0.5 * (b + b.T)
    eye, zero = torch.eye(n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
    shear_matrix = torch.cat([torch.cat([eye, b], 1), torch.cat([zero, eye], 1)], 0)
    s = k @ shear_matrix
    m = s @ torch.diag(torch.cat([d, d])) @ s.T
    return 0.5 * (m + m.T), d.sort().values, s


def planted_banded_sparse(n: int, *, seed: int = 0, shear: float = 0.3):
    """``(M, d)``: a sparse (SciPy CSR, pentadiagonal blocks) SPD ``[2n, 2n]`` matrix with symplectic eigenvalues
    ``d = 1..n`` (NumPy), for the sparse path at any n.

    :math:`M = L\,\mathrm{diag}(D, D)\,L^T = \begin{pmatrix} D + BDB & BD\\ DB & D\end{pmatrix}` with the symplectic
    shear :math:`L = \begin{pmatrix} I & B\\ 0 & I\end{pmatrix}` and a seeded symmetric tridiagonal B (entries
    ``shear`` x standard normal); L symplectic makes D the symplectic spectrum exactly (Williamson)."""
    import numpy as np
    import scipy.sparse as sp

    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    rng = np.random.default_rng(seed)
    d = np.arange(1, n + 1, dtype=float)
    off = shear * rng.standard_normal(n - 1)
    b = sp.diags([off, shear * rng.standard_normal(n), off], [-1, 0, 1], format="csr")
    dd = sp.diags(d)
    m = sp.bmat([[dd + b @ dd @ b, b @ dd], [dd @ b, dd]], format="csr")
    return (0.5 * (m + m.T)).tocsr(), d
