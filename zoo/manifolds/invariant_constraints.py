r"""Orthogonally invariant constraints on the row space factor H of a bounded-rank matrix X = H V^T.

Space decoupling (Yang, Gao, Yuan, arXiv 2501.13830) treats :math:`\{X : \mathrm{rank}(X) \le r,\ h(X) = 0\}`
when :math:`h(XQ) = h(X)` for every orthogonal Q, i.e. when h depends on X only through :math:`X X^T`. Writing
:math:`X = H V^T` with :math:`V^T V = I` gives :math:`X X^T = H H^T`, so the constraint becomes
:math:`H \in \mathcal{H}^r = \{H \in \mathbb{R}^{m\times r} : h(H) = 0\}` and the manifold
:class:`~zoo.manifolds.SpaceDecoupling` needs exactly two maps of :math:`\mathcal{H}^r` (the paper's and the
official code's ``proj`` and ``projH``):

* ``proj(H, Z)``: the orthogonal projection of :math:`Z \in \mathbb{R}^{m\times r}` onto the tangent space
  :math:`T_H\mathcal{H}^r` (Frobenius metric);
* ``projH(Y)``: the metric projection of :math:`Y \in \mathbb{R}^{m\times r}` onto :math:`\mathcal{H}^r`;

plus ``codim(m, r)``, the codimension of :math:`\mathcal{H}^r` in :math:`\mathbb{R}^{m\times r}`. The Riemannian
Hessian also uses the Weingarten term :math:`P_H(\mathrm{D}_H P_H[K]\,Z)`; ``weingarten`` computes it by
forward differentiation of ``proj``, and the built-in constraints override it with its closed form.

=====================  ==================================================  =========================  =====
constraint             ``proj(H, Z)``                                      ``projH(Y)``               codim
=====================  ==================================================  =========================  =====
:class:`Unconstrained` :math:`Z`                                           :math:`Y`                  0
:class:`UnitRows`      :math:`Z - \mathrm{diag}(\mathrm{rowsum}(H \circ Z)) H`  rows / row norms       m
:class:`UnitFrobenius` :math:`Z - \langle H, Z\rangle H`                   :math:`Y / \lVert Y\rVert_F`  1
:class:`FixedRowNorms` :math:`Z - \mathrm{diag}(\mathrm{rowsum}(H\circ Z)/c^2) H`  rows scaled to :math:`c_i`  m
=====================  ==================================================  =========================  =====

A user-supplied constraint is one small subclass (see :class:`InvariantConstraint`). It must commute with
right multiplication by orthogonal matrices (``projH(Y Q) = projH(Y) Q``); ``SpaceDecoupling`` checks that on
random data and refuses a constraint that fails.
"""

from __future__ import annotations

import math

import torch

__all__ = ["FixedRowNorms", "InvariantConstraint", "Unconstrained", "UnitFrobenius", "UnitRows", "as_constraint"]


def _row_dots(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(dim=1, keepdim=True)  # [m, 1]


class InvariantConstraint:
    """Base of the constraints :math:`\\mathcal{H}^r = \\{H : h(H H^T) = 0\\}` (override ``proj``, ``projH``, ``codim``).

    Example: a user-supplied constraint, "the rows listed in ``rows`` have unit norm, the others are free"
    (invariant, since row norms are the diagonal of :math:`H H^T`)::

        >>> import torch
        >>> from zoo.manifolds import InvariantConstraint, SpaceDecoupling
        >>> class SomeUnitRows(InvariantConstraint):
        ...     name = "some_unit_rows"
        ...     def __init__(self, rows):
        ...         self.rows = torch.as_tensor(rows)
        ...     def codim(self, m, r):
        ...         return len(self.rows)
        ...     def proj(self, H, Z):  # remove the radial part of the constrained rows
        ...         h = H[self.rows]
        ...         return Z.index_add(0, self.rows, -(h * Z[self.rows]).sum(1, keepdim=True) * h)
        ...     def projH(self, Y):  # normalise the constrained rows
        ...         y = Y[self.rows]
        ...         return Y.index_add(0, self.rows, y / y.norm(dim=1, keepdim=True) - y)
        >>> manifold = SpaceDecoupling(6, 5, 2, SomeUnitRows([0, 3]))
        >>> manifold.dimension  # (m + n - r) r - codim = 9 * 2 - 2
        16

    ``weingarten`` then comes from forward-mode differentiation of ``proj`` (override it for speed at scale);
    ``residual`` is the distance to ``projH`` unless overridden.
    """

    name = "constraint"

    def codim(self, m: int, r: int) -> int:
        """Codimension of :math:`\\mathcal{H}^r` in :math:`\\mathbb{R}^{m\\times r}`."""
        raise NotImplementedError

    def proj(self, H: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        """Orthogonal projection of ``Z`` ``[m, r]`` onto the tangent space of :math:`\\mathcal{H}^r` at ``H``."""
        raise NotImplementedError

    def projH(self, Y: torch.Tensor) -> torch.Tensor:  # noqa: N802 - the paper's name
        """Metric projection of ``Y`` ``[m, r]`` onto :math:`\\mathcal{H}^r`."""
        raise NotImplementedError

    def weingarten(self, H: torch.Tensor, Z: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """:math:`P_H(\\mathrm{D}_H P_H[K]\\,Z)` for tangent ``K`` (the curvature term of the Hessian).

        Default: a Jacobian-vector product of ``H -> proj(H, Z)`` along ``K`` (double-backward trick, so in-place
        code in ``proj`` is fine), projected again.
        """
        with torch.enable_grad():
            _, derivative = torch.autograd.functional.jvp(lambda h: self.proj(h, Z), H, K)
        return self.proj(H, derivative)

    def residual(self, H: torch.Tensor) -> float:
        """Largest violation of :math:`h(H) = 0` (default: the largest entry of ``projH(H) - H``)."""
        return float((self.projH(H) - H).abs().max()) if H.numel() else 0.0

    def check(self, m: int, r: int) -> None:
        """Raise ``ValueError`` if the constraint cannot act on ``[m, r]`` factors (e.g. a norm list of another length)."""

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class Unconstrained(InvariantConstraint):
    """No constraint: :math:`\\mathcal{H}^r = \\mathbb{R}^{m\\times r}` (the plain desingularisation of bounded rank,
    Khrulkov and Oseledets 2018; Manopt's ``desingularizationfactory``, Rebjock and Boumal, arXiv 2406.14211)."""

    name = "none"

    def codim(self, m, r):
        return 0

    def proj(self, H, Z):
        return Z

    def projH(self, Y):  # noqa: N802
        return Y

    def weingarten(self, H, Z, K):
        return torch.zeros_like(K)

    def residual(self, H):
        return 0.0


class UnitRows(InvariantConstraint):
    """Unit row norms (the oblique manifold): :math:`\\mathrm{diag}(X X^T) = 1`, e.g. spherical data fitting and the
    Burer-Monteiro factor of a correlation matrix."""

    name = "unit_rows"

    def codim(self, m, r):
        return m

    def proj(self, H, Z):
        return Z - _row_dots(H, Z) * H

    def projH(self, Y):  # noqa: N802
        return Y / torch.linalg.vector_norm(Y, dim=1, keepdim=True)

    def weingarten(self, H, Z, K):
        # D_H[K] of Z - diag(H.Z) H is -diag(K.Z) H - diag(H.Z) K; the first part is normal, the second tangent
        return -_row_dots(H, Z) * K

    def residual(self, H):
        return float((torch.linalg.vector_norm(H, dim=1) - 1).abs().max())


class UnitFrobenius(InvariantConstraint):
    """Unit Frobenius norm :math:`\\lVert X\\rVert_F = 1` (e.g. the graph-similarity problem)."""

    name = "unit_frobenius"

    def codim(self, m, r):
        return 1

    def proj(self, H, Z):
        return Z - (H * Z).sum() * H

    def projH(self, Y):  # noqa: N802
        return Y / torch.linalg.matrix_norm(Y)

    def weingarten(self, H, Z, K):
        return -(H * Z).sum() * K

    def residual(self, H):
        return abs(float(torch.linalg.matrix_norm(H)) - 1)


class FixedRowNorms(InvariantConstraint):
    """Row i has norm :math:`c_i > 0` (a weighted oblique manifold); ``norms`` has one positive entry per row."""

    name = "fixed_row_norms"

    def __init__(self, norms) -> None:
        norms = torch.as_tensor(norms, dtype=torch.float64)
        if norms.dim() != 1 or norms.numel() == 0:
            raise ValueError(f"FixedRowNorms norms must be a non-empty vector, got shape {tuple(norms.shape)}")
        if not torch.isfinite(norms).all() or (norms <= 0).any():
            raise ValueError(f"FixedRowNorms norms must be finite and > 0, got min {float(norms.min()):.3g}")
        self.norms = norms

    def _c(self, like: torch.Tensor) -> torch.Tensor:
        return self.norms.to(dtype=like.dtype, device=like.device).unsqueeze(1)  # [m, 1]

    def check(self, m, r):
        if self.norms.numel() != m:
            raise ValueError(f"FixedRowNorms has {self.norms.numel()} norms but the factor has m = {m} rows")

    def codim(self, m, r):
        return m

    def proj(self, H, Z):
        return Z - _row_dots(H, Z) / self._c(H) ** 2 * H

    def projH(self, Y):  # noqa: N802
        return Y * (self._c(Y) / torch.linalg.vector_norm(Y, dim=1, keepdim=True))

    def weingarten(self, H, Z, K):
        return -_row_dots(H, Z) / self._c(H) ** 2 * K

    def residual(self, H):
        return float((torch.linalg.vector_norm(H, dim=1, keepdim=True) - self._c(H)).abs().max())

    def extra_repr(self):
        return f"{self.norms.numel()} norms in [{float(self.norms.min()):.3g}, {float(self.norms.max()):.3g}]"


_NAMED = {"none": Unconstrained, "unit_rows": UnitRows, "unit_frobenius": UnitFrobenius}


def as_constraint(constraint) -> InvariantConstraint:
    """An :class:`InvariantConstraint` from an instance, ``None`` (unconstrained) or a name (``"none"``,
    ``"unit_rows"``, ``"unit_frobenius"``)."""
    if constraint is None:
        return Unconstrained()
    if isinstance(constraint, InvariantConstraint):
        return constraint
    if isinstance(constraint, str) and constraint in _NAMED:
        return _NAMED[constraint]()
    raise ValueError(f"constraint must be an InvariantConstraint, None or one of {sorted(_NAMED)}, got {constraint!r}")


def random_orthogonal(r: int, *, generator: torch.Generator | None = None, dtype=torch.float64) -> torch.Tensor:
    """A Haar-random orthogonal ``[r, r]`` matrix (QR of a Gaussian with the sign fix)."""
    q, upper = torch.linalg.qr(torch.randn(r, r, dtype=dtype, generator=generator))
    return q * torch.sign(torch.diagonal(upper)).unsqueeze(0)


def check_invariance(constraint: InvariantConstraint, m: int, r: int, *, seed: int = 0, tolerance: float = 1e-8) -> None:
    """Raise ``ValueError`` unless ``projH`` and ``proj`` commute with right multiplication by a random orthogonal Q.

    Also checks that ``projH`` lands on a fixed point and ``proj`` is idempotent (float64, random data).
    """
    generator = torch.Generator().manual_seed(seed)
    y = torch.randn(m, r, dtype=torch.float64, generator=generator) + 0.5
    z = torch.randn(m, r, dtype=torch.float64, generator=generator)
    q = random_orthogonal(r, generator=generator)
    what = type(constraint).__name__
    h = constraint.projH(y)
    if tuple(h.shape) != (m, r) or not torch.isfinite(h).all():
        raise ValueError(f"constraint {what}: projH of a [{m}, {r}] matrix gave shape {tuple(h.shape)} or non-finite values")
    scale = max(1.0, float(h.abs().max()))

    def gap(a, b):
        return float((a - b).abs().max()) / scale

    if gap(constraint.projH(y @ q), h @ q) > tolerance:
        raise ValueError(f"constraint {what} is not orthogonally invariant: projH(Y Q) != projH(Y) Q "
                         f"(max error {gap(constraint.projH(y @ q), h @ q):.2g})")
    if gap(constraint.projH(h), h) > tolerance:
        raise ValueError(f"constraint {what}: projH is not a projection (projH(projH(Y)) != projH(Y))")
    p = constraint.proj(h, z)
    if gap(constraint.proj(h @ q, z @ q), p @ q) > tolerance:
        raise ValueError(f"constraint {what} is not orthogonally invariant: proj(H Q, Z Q) != proj(H, Z) Q")
    if gap(constraint.proj(h, p), p) > tolerance:
        raise ValueError(f"constraint {what}: proj is not idempotent (proj(H, proj(H, Z)) != proj(H, Z))")
    if not math.isfinite(constraint.residual(h)) or constraint.residual(h) > tolerance * scale:
        raise ValueError(f"constraint {what}: projH(Y) violates the constraint by {constraint.residual(h):.2g}")
