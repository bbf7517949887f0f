"""Momentum resolution along an ARPES cut: arc length in 1/A, a padded fine k grid, and the resolution matrix.

ARPES model of docs/methods/kagome.md: ``I = I0 [sum_n M_n A_n f] (x) R_E (x) R_k + B`` with ``R_k`` a Gaussian of FWHM
``dk`` (1/A) along the cut. Our construction (the model names only the Gaussian ``R_k``):

1. Metric. With the issue's basis (lattice constant ``a`` in A) ``a1 = a (1, 0)``, ``a2 = a (1/2, sqrt3/2)`` and
   ``a_i . b_j = 2 pi delta_ij``, the reciprocal vectors are ``b1 = (2 pi / a) (1, -1/sqrt3)``,
   ``b2 = (2 pi / a) (0, 2/sqrt3)``, so a step ``dq = dh b1 + dk b2`` has the Cartesian length

       |dq| = (2 pi / a) sqrt( (4/3) (dh^2 - dh dk + dk^2) )      [1/A]

   (checks: Gamma-M = (1/2, 0) gives 2 pi / (sqrt3 a) = |b1| / 2; Gamma-K = (2/3, 1/3) gives 4 pi / (3 a)).
2. The cut is the piecewise-linear path through the data k points, in their order; ``s_i`` is the arc length (1/A)
   of data point ``i`` from the first one.
3. Fine grid: a uniform lattice of step ``dk / oversampling`` in ``s``, kept only within ``padding`` FWHM of some data
   point (the Gaussian is < 1e-10 of its peak beyond 3 FWHM), so sparse cuts cost ``~ 2 padding oversampling + 1``
   model points per data point and dense cuts no more than the uniform grid. Fine points are mapped back to (h, k)
   by linear interpolation along the path; beyond the first and last data points the end segments are extended
   (extrapolated), so the kernel has model values on both sides at the ends of the cut.
4. ``mu_i = sum_j R_ij I(s_j)``, ``R_ij = G(s_i - s_j) / sum_j' G(s_i - s_j')`` with the unit-area Gaussian ``G``: the
   rectangle rule on the uniform lattice (equal weights; no weight bridges the gaps between windows), rows
   normalised so that a k-independent intensity is unchanged. Wrapped in a ``ResolutionOperator``.

Approximation (stated): at a kink of the path (e.g. at K on Gamma-K-M-Gamma) the fine points on both sides of the kink
lie on different straight segments, so the 1-D convolution along the arc stands in for the 2-D resolution ellipse,
which would also sample k off the path. The resolution across the cut (perpendicular to it) is not modelled.
"""

from __future__ import annotations

import math

import torch

from zoo.fitting.resolution import ResolutionOperator, gaussian_kernel

__all__ = ["arc_length", "momentum_resolution_grid", "points_along_path", "segment_length"]


def segment_length(dq: torch.Tensor, lattice_constant: float) -> torch.Tensor:
    """``|dq|`` in 1/A of r.l.u. steps ``dq [..., 2]`` (formula 1 of the module docstring)."""
    if not lattice_constant > 0:
        raise ValueError(f"lattice_constant must be > 0 A, got {lattice_constant}")
    dh, dk = dq[..., 0], dq[..., 1]
    squared = (4.0 / 3.0) * (dh**2 - dh * dk + dk**2)  # >= 0: (4/3)[(dh - dk/2)^2 + 3 dk^2 / 4]
    return (2 * math.pi / lattice_constant) * torch.sqrt(squared.clamp_min(0.0))


def arc_length(q: torch.Tensor, lattice_constant: float) -> torch.Tensor:
    """``[N]`` arc length (1/A) along the piecewise-linear path through ``q [N, 2]`` (r.l.u.), 0 at ``q[0]``."""
    steps = segment_length(q[1:] - q[:-1], lattice_constant)
    return torch.cat([torch.zeros(1, dtype=q.dtype), torch.cumsum(steps, 0)])


def points_along_path(q: torch.Tensor, s: torch.Tensor, s_query: torch.Tensor) -> torch.Tensor:
    """(h, k) ``[M, 2]`` at arc lengths ``s_query`` on the path ``q [N, 2]`` with arc lengths ``s [N]``.

    Linear interpolation on each segment; queries before ``s[0]`` or after ``s[-1]`` extend the first or last
    segment of non-zero length (extrapolation). Repeated points (zero-length segments) are skipped.
    """
    keep = torch.cat([torch.ones(1, dtype=torch.bool), s[1:] > s[:-1]])
    knots, q_knots = s[keep], q[keep]
    if knots.numel() < 2:
        raise ValueError("the cut needs at least two distinct k points to define a direction for the momentum resolution")
    index = (torch.searchsorted(knots, s_query, right=True) - 1).clamp(0, knots.numel() - 2)
    t = (s_query - knots[index]) / (knots[index + 1] - knots[index])
    return q_knots[index] + t[:, None] * (q_knots[index + 1] - q_knots[index])


def momentum_resolution_grid(
    q: torch.Tensor, fwhm: float, lattice_constant: float, *, oversampling: float = 4.0, padding: float = 3.0,
) -> tuple[torch.Tensor, ResolutionOperator]:
    """Fine k points and the Gaussian momentum-resolution operator for a cut through ``q`` (module docstring).

    Args:
        q: ``[N, 2]`` data k points (r.l.u.), ordered along a piecewise-linear cut, ``N >= 2``.
        fwhm: Gaussian FWHM along the cut (1/A), > 0.
        lattice_constant: in-plane lattice constant ``a`` (A).
        oversampling: fine points per FWHM (fine step ``fwhm / oversampling``).
        padding: half width of the window kept around each data point, in FWHM.

    Returns:
        ``(q_fine [M, 2], operator)`` with ``operator(I_fine [..., M]) -> [..., N]`` over the arc length.
    """
    if q.ndim != 2 or q.shape[-1] != 2 or q.shape[0] < 2:
        raise ValueError(f"momentum resolution needs q of shape [N, 2] with N >= 2 points along the cut, got {tuple(q.shape)}")
    if not fwhm > 0:
        raise ValueError(f"momentum resolution fwhm must be > 0 1/A, got {fwhm}")
    if not oversampling >= 1:
        raise ValueError(f"momentum oversampling must be >= 1, got {oversampling}")
    if not padding >= 1:
        raise ValueError(f"momentum padding must be >= 1 FWHM, got {padding}")
    q = q.to(torch.float64)
    s = arc_length(q, lattice_constant)
    step = fwhm / oversampling
    half = math.ceil(padding * oversampling)  # window of +-half steps around each data point
    origin = float(s[0]) - (half + 1) * step
    centre = torch.round((s - origin) / step).long()  # nearest lattice index of each data point
    offsets = torch.arange(-half, half + 1)
    index = torch.unique(centre[:, None] + offsets[None, :])  # sorted, no duplicates where windows overlap
    s_fine = origin + index.to(torch.float64) * step
    q_fine = points_along_path(q, s, s_fine)
    kernel = gaussian_kernel(s[:, None] - s_fine[None, :], fwhm)  # [N, M]; equal weights on the uniform lattice
    operator = ResolutionOperator(kernel / kernel.sum(1, keepdim=True), s, s_fine)
    return q_fine, operator
