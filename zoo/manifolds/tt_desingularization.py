r"""The desingularised set of tensors of bounded tensor-train rank (our derivation, after arXiv 2411.14093).

Gao, Peng and Yuan (arXiv 2411.14093) desingularise bounded Tucker *and* TT ranks with slack variables; their
TT construction and code were not available to us, so this one is derived here (the full derivation, with
the dimension count and the Hessian, is in ``docs/tensor_completion.md``) and checked against a dense
implementation in ``tests/manifolds``.

**The manifold.** Shape :math:`(n_1, \dots, n_d)`, TT ranks :math:`r = (r_1, \dots, r_{d-1})`, :math:`r_0 = r_d = 1`,
with :math:`r_k \le r_{k-1} n_k`. Write :math:`N_k = n_1 \cdots n_k` and :math:`X^{\langle k\rangle} \in
\mathbb{R}^{N_k \times n_{k+1} \cdots n_d}` for the interface unfoldings. The slack variables are projectors
:math:`P_k = I - \Pi_k` on the row side of each interface, :math:`\Pi_k` the orthogonal projector on an
:math:`r_k`-dimensional subspace :math:`S_k \subset \mathbb{R}^{N_k}`, and the subspaces are *nested*:

.. math::

    \mathcal{M} = \{(X, P_1, \dots, P_{d-1}) : P_k X^{\langle k\rangle} = 0,\;
    S_k \subset S_{k-1} \otimes \mathbb{R}^{n_k}\ (S_0 = \mathbb{R})\}.

Nesting makes the constraint :math:`P_{d-1} X^{\langle d-1\rangle} = 0` imply all the others, so
:math:`\mathcal{M}` is a vector bundle (fibre :math:`S_{d-1} \otimes \mathbb{R}^{n_d}`) over an iterated
Grassmann bundle of nested subspaces: smooth, of dimension :math:`\sum_k r_{k-1} n_k r_k - \sum_{k<d} r_k^2`
(that of the fixed-rank TT manifold), and its image :math:`\varphi(\mathcal{M})` is exactly the set of tensors
with TT ranks at most r (choose :math:`S_k \supset \mathrm{col}\,X^{\langle k\rangle}` inside
:math:`S_{k-1} \otimes \mathbb{R}^{n_k}`, possible because :math:`r_k \le r_{k-1} n_k`). Without nesting the fibre
dimension jumps and the set is not a manifold.

**Coordinates.** A point is the cores ``(C_1, ..., C_d)``, ``C_k`` of shape ``(r_{k-1}, n_k, r_k)``, with
left-orthogonal interface cores: the left unfoldings :math:`L_k = L(C_k) \in \mathbb{R}^{r_{k-1} n_k \times r_k}`
have orthonormal columns for k < d, so :math:`U_{\le k} = (U_{\le k-1} \otimes I) L_k` is an orthonormal basis of
:math:`S_k` and :math:`P_k = I - U_{\le k} U_{\le k}^T` is never formed; the last core is free and carries the data.
A tangent vector is :math:`(\dot C_1, \dots, \dot C_d)` with the gauge :math:`L_k^T L(\dot C_k) = 0` (k < d).

**Metric.** In E (the tensor plus the d - 1 symmetric slacks, metric :math:`\langle X, Y\rangle + \omega\sum_k
\langle P_k, Q_k\rangle`) the variations of different cores are orthogonal (left-orthogonality and the gauge),
:math:`\|\dot P_k\|^2 = 2\|\dot U_{\le k}\|^2`, and

.. math::

    g(\xi, \eta) = \sum_{k<d} \mathrm{tr}(L(\dot C_{k,\xi})^T L(\dot C_{k,\eta}) W_k) + \langle \dot C_{d,\xi},
    \dot C_{d,\eta}\rangle, \qquad W_d = 1,\quad W_k = \sum_{s} C_{k+1}[s]\, W_{k+1}\, C_{k+1}[s]^T + 2\omega I,

:math:`C[s]` the :math:`r_{k-1} \times r_k` slice. :math:`W_k` sums the Gram matrix of the right part of the train
(the squared singular values of :math:`X^{\langle k\rangle}`, as :math:`G_{(k)} G_{(k)}^T` for Tucker) and
2 omega times the Gram matrices of the slack chains; for d = 2 it is the matrix desingularisation's
:math:`H^T H + 2\omega I`.

**Gradient.** For any cost, the core gradients from autograd are the pieces of the Riesz map:
:math:`\mathrm{grad}_k = L^{-1}[(I - L_k L_k^T) L(\partial_{C_k}) W_k^{-1}]` (k < d), :math:`\mathrm{grad}_d =
\partial_{C_d}`. The same map applied to :math:`\partial_C \langle (Z, S), \varphi(C)\rangle_E` is the orthogonal
projection of an ambient :math:`(Z, S)`.

**Retraction** (second order). Along :math:`C + t\xi` the tangential acceleration is
:math:`2 L(\dot C_k) Z_k W_k^{-1}` (k < d, zero for the last core), with :math:`Z_{d} = 0`,
:math:`Z_k = \sum_s \dot C_{k+1}[s] W_{k+1} C_{k+1}[s]^T + \sum_s C_{k+1}[s] Z_{k+1} C_{k+1}[s]^T`. So

.. math::

    R_x(\xi) = \mathrm{orth}\big(C_k + \dot C_k - L^{-1}[L(\dot C_k) Z_k W_k^{-1}]\ (k<d),\; C_d + \dot C_d\big),

where ``orth`` is a left-to-right QR sweep (it changes the cores, not the point of :math:`\mathcal{M}`).

**Hessian.** :math:`\mathrm{Hess} f[\xi] = \mathrm{grad}\text{-map}(\mathrm{ehess}(\xi) - K(\xi))` with the
curvature covector :math:`K(\xi) = \nabla_\eta \langle D\varphi[\rho], D^2\varphi[\xi, \eta]\rangle_E`,
:math:`\rho = \mathrm{grad} f`; in closed form

.. math::

    K_k = (\Lambda_{k-1}^T \otimes I) L(C_k) W_k + L(\rho_k) Z_k^T, \qquad
    \Lambda_0 = 0,\ \Lambda_k = L_k^T (\Lambda_{k-1} \otimes I) L_k + L(\rho_k)^T L(\dot C_k),

(:math:`Z_k` as above for the direction :math:`\xi`; for the last core only the first term).

**Vector transport**: the projection at y of the ambient velocity of v at x, obtained as the Riesz map at y of
:math:`\nabla_{C'} \langle D\varphi_x[v], \varphi(C')\rangle_E` at :math:`C' = y`; that pairing is a left-to-right
sweep of small environments (no dense tensor), differentiated by autograd.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from zoo.manifolds._tensor_algebra import orthonormal_qr, spd_solve_right
from zoo.manifolds.structured import StructuredManifold

__all__ = ["TTDesingularization", "check_tt_ranks", "tt_full"]


def check_tt_ranks(shape: Sequence[int], ranks: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validated ``(shape, ranks)``; ``ranks`` are the d - 1 interface ranks (ValueError naming the bad value)."""
    shape, ranks = tuple(shape), tuple(ranks)
    if len(shape) < 3:
        raise ValueError(f"shape must have order d >= 3 (a tensor train), got {shape}")
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in shape):
        raise ValueError(f"shape must be positive ints, got {shape}")
    if len(ranks) != len(shape) - 1:
        raise ValueError(f"ranks must list the {len(shape) - 1} interface ranks r_1..r_(d-1), got {ranks}")
    previous = 1
    for k, r in enumerate(ranks, start=1):
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            raise ValueError(f"ranks must be positive ints, got {ranks}")
        if r > previous * shape[k - 1]:
            raise ValueError(f"TT rank r_{k} = {r} violates r_k <= r_(k-1) n_k = {previous} * {shape[k - 1]}")
        right = math.prod(shape[k:])
        if r > right:
            raise ValueError(f"TT rank r_{k} = {r} exceeds the interface unfolding's dimensions "
                             f"{math.prod(shape[:k])} x {right}")
        previous = r
    return shape, ranks


def _left(core: torch.Tensor) -> torch.Tensor:
    return core.reshape(-1, core.shape[-1])


def _step_left(env: torch.Tensor, top: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
    """Left environment through one position: ``sum_s top[s]^T env bottom[s]``."""
    return torch.einsum("ab,asc,bsd->cd", env, top, bottom)


def _step_right(env: torch.Tensor, top: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
    """Right environment through one position: ``sum_s top[s] env bottom[s]^T``."""
    return torch.einsum("asb,bd,csd->ac", top, env, bottom)


def tt_full(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """The dense tensor of a train (small sizes)."""
    out = cores[0].reshape(-1, cores[0].shape[-1])
    for core in cores[1:]:
        out = torch.einsum("Na,asb->Nsb", out, core).reshape(-1, core.shape[-1])
    return out.reshape([c.shape[1] for c in cores])


class TTDesingularization(StructuredManifold):
    """Desingularised bounded-TT-rank tensors, points ``(C_1, ..., C_d)`` (see module docstring).

    Args:
        shape: tensor shape ``(n_1, ..., n_d)``, d >= 3.
        ranks: the interface ranks ``(r_1, ..., r_(d-1))``, ``r_k <= r_(k-1) n_k``.
        omega: weight of the slack projectors in the metric (> 0).
    """

    name = "TTDesingularization"
    second_order_retraction = True
    _allow_zero_omega = False

    def __init__(self, shape: Sequence[int], ranks: Sequence[int], omega: float = 1.0) -> None:
        self.shape, self.ranks = check_tt_ranks(shape, ranks)
        omega = float(omega)
        if not math.isfinite(omega) or omega < 0 or (omega == 0 and not self._allow_zero_omega):
            raise ValueError(f"omega must be a finite number > 0, got {omega}")
        self.omega = omega
        self.order = len(self.shape)
        self.bond = (1, *self.ranks, 1)

    @property
    def dimension(self) -> int:
        """``sum_k r_(k-1) n_k r_k - sum_(k<d) r_k^2``."""
        return sum(self.bond[k] * n * self.bond[k + 1] for k, n in enumerate(self.shape)) - sum(r * r for r in self.ranks)

    # -- pieces ------------------------------------------------------------------------------------------------
    def weights(self, x) -> list[torch.Tensor]:
        """``[W_1, ..., W_d]`` (``W_d = 1``)."""
        dtype, device = x[0].dtype, x[0].device
        out = [torch.ones(1, 1, dtype=dtype, device=device)]
        for k in range(self.order - 2, -1, -1):
            eye = torch.eye(self.bond[k + 1], dtype=dtype, device=device)
            out.append(_step_right(out[-1], x[k + 1], x[k + 1]) + 2 * self.omega * eye)
        return out[::-1]

    def _directional(self, x, u, weights) -> list[torch.Tensor]:
        """``[Z_1, ..., Z_d]``: the right environments with one core of ``u`` on top (``Z_d = 0``)."""
        out = [torch.zeros(1, 1, dtype=x[0].dtype, device=x[0].device)]
        for k in range(self.order - 2, -1, -1):
            out.append(_step_right(weights[k + 1], u[k + 1], x[k + 1]) + _step_right(out[-1], x[k + 1], x[k + 1]))
        return out[::-1]

    @staticmethod
    def _perp(core: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        left, flat = _left(core), _left(vector)
        return (flat - left @ (left.T @ flat)).reshape(vector.shape)

    def _riesz(self, x, covector, weights) -> tuple[torch.Tensor, ...]:
        out = [spd_solve_right(_left(self._perp(c, g)), w).reshape(g.shape) for c, g, w in zip(x[:-1], covector[:-1], weights)]
        return (*out, covector[-1])

    def full(self, x) -> torch.Tensor:
        return tt_full(x)

    @staticmethod
    def orthogonalize(cores: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The same tensor and nested subspaces with left-orthogonal cores 1..d-1 (QR sweep, ``diag(R) >= 0``)."""
        out, carry = [], None
        for core in cores[:-1]:
            if carry is not None:
                core = torch.einsum("ab,bsc->asc", carry, core)
            q, carry = orthonormal_qr(_left(core))
            out.append(q.reshape(core.shape[0], core.shape[1], q.shape[1]))
        out.append(torch.einsum("ab,bsc->asc", carry, cores[-1]))
        return tuple(out)

    # -- the protocol ------------------------------------------------------------------------------------------
    def inner(self, x, u, v):
        total = (u[-1] * v[-1]).sum()
        for a, b, w in zip(u[:-1], v[:-1], self.weights(x)):
            total = total + ((_left(a) @ w) * _left(b)).sum()
        return total

    def proju(self, x, u):
        return (*(self._perp(c, a) for c, a in zip(x[:-1], u[:-1])), u[-1])

    def egrad2rgrad(self, x, egrad):
        return self._riesz(x, egrad, self.weights(x))

    def retr(self, x, u):
        weights = self.weights(x)
        z = self._directional(x, u, weights)
        moved = [c + a - (spd_solve_right(_left(a) @ zk, w)).reshape(a.shape)
                 for c, a, zk, w in zip(x[:-1], u[:-1], z, weights)]
        return self.orthogonalize(moved + [x[-1] + u[-1]])

    def pairing(self, x, v, other) -> torch.Tensor:
        """``<D phi_x[v], phi(other)>_E`` for any cores ``other`` (slack via the projector on their column space)."""
        dtype, device = x[0].dtype, x[0].device
        plain = torch.ones(1, 1, dtype=dtype, device=device)
        varied = torch.zeros(1, 1, dtype=dtype, device=device)
        gram = torch.ones(1, 1, dtype=dtype, device=device)
        slack = torch.zeros((), dtype=dtype, device=device)
        for k in range(self.order):
            varied = _step_left(varied, x[k], other[k]) + _step_left(plain, v[k], other[k])
            plain = _step_left(plain, x[k], other[k])
            gram = _step_left(gram, other[k], other[k])
            if k < self.order - 1:  # <dP_k, I - Pi'> = 2 tr(U^T U' (U'^T U')^{-1} U'^T dU)
                slack = slack + torch.trace(plain @ torch.linalg.solve(gram, varied.T))
        return varied[0, 0] + 2 * self.omega * slack

    def transp(self, x, y, v):
        with torch.enable_grad():
            other = [c.detach().clone().requires_grad_(True) for c in y]
            covector = torch.autograd.grad(self.pairing([c.detach() for c in x], [a.detach() for a in v], other), other)
        return self._riesz(y, covector, self.weights(y))

    def ehess2rhess(self, x, egrad, ehess, u):
        weights = self.weights(x)
        rgrad = self._riesz(x, egrad, weights)
        z = self._directional(x, u, weights)
        curvature, env = [], torch.zeros(1, 1, dtype=x[0].dtype, device=x[0].device)
        for k in range(self.order):
            term = torch.einsum("ab,asc,ce->bse", env, x[k], weights[k]) if k < self.order - 1 else \
                torch.einsum("ab,asc->bsc", env, x[k])
            if k < self.order - 1:
                term = term + torch.einsum("bsa,ea->bse", rgrad[k], z[k])
                env = _step_left(env, x[k], x[k]) + torch.einsum("asb,asc->bc", rgrad[k], u[k])
            curvature.append(term)
        return self._riesz(x, [h - c for h, c in zip(ehess, curvature)], weights)

    # -- optional members (tests, initialisation) ----------------------------------------------------------------
    def random(self, *, generator=None, dtype=torch.float64, device=None):
        cores = []
        for k, n in enumerate(self.shape[:-1]):
            q, _ = orthonormal_qr(torch.randn(self.bond[k] * n, self.bond[k + 1], dtype=dtype, generator=generator, device=device))
            cores.append(q.reshape(self.bond[k], n, self.bond[k + 1]))
        cores.append(torch.randn(self.bond[-2], self.shape[-1], 1, dtype=dtype, generator=generator, device=device))
        return tuple(cores)

    def feasibility(self, x) -> float:
        expected = tuple((self.bond[k], n, self.bond[k + 1]) for k, n in enumerate(self.shape))
        if tuple(tuple(c.shape) for c in x) != expected:
            return math.inf
        return max(float((_left(c).T @ _left(c) - torch.eye(c.shape[-1], dtype=c.dtype, device=c.device)).abs().max())
                   for c in x[:-1])

    def tangent_residual(self, x, u) -> float:
        return max(float((_left(c).T @ _left(a)).abs().max()) for c, a in zip(x[:-1], u[:-1]))

    def _interfaces(self, x, u=None):
        """Dense ``U_<=k`` (and their velocities along ``u``) for k = 1..d (small sizes)."""
        bases, velocities = [], []
        basis = torch.ones(1, 1, dtype=x[0].dtype, device=x[0].device)
        velocity = torch.zeros_like(basis)
        for k in range(self.order):
            if u is not None:
                velocity = (torch.einsum("Na,asb->Nsb", velocity, x[k]) + torch.einsum("Na,asb->Nsb", basis, u[k])
                            ).reshape(-1, x[k].shape[-1])
            basis = torch.einsum("Na,asb->Nsb", basis, x[k]).reshape(-1, x[k].shape[-1])
            bases.append(basis)
            velocities.append(velocity)
        return bases, velocities

    def represent(self, x):
        bases, _ = self._interfaces(x)
        projectors = [torch.eye(b.shape[0], dtype=b.dtype, device=b.device) - b @ b.T for b in bases[:-1]]
        return (bases[-1].reshape(self.shape), *projectors)

    def to_ambient(self, x, u):
        bases, velocities = self._interfaces(x, u)
        slack = [-(dv @ b.T + b @ dv.T) for b, dv in zip(bases[:-1], velocities[:-1])]
        return (velocities[-1].reshape(self.shape), *slack)

    def ambient_inner(self, a, b):
        return (a[0] * b[0]).sum() + self.omega * sum((p * q).sum() for p, q in zip(a[1:], b[1:]))

    def random_normal(self, x, *, generator=None):
        """A random tensor projected on the orthogonal complement of the range of the core Jacobian (dense)."""
        sizes = [c.numel() for c in x]

        def tensor_of(flat):
            return tt_full([p.reshape(c.shape) for p, c in zip(torch.split(flat, sizes), x)]).reshape(-1)

        jacobian = torch.autograd.functional.jacobian(tensor_of, torch.cat([c.reshape(-1) for c in x]))
        noise = torch.randn(jacobian.shape[0], dtype=x[0].dtype, generator=generator)
        normal = noise - jacobian @ (torch.linalg.pinv(jacobian) @ noise)
        scale = 1.0 + float(torch.rand((), dtype=torch.float64, generator=generator))
        return (normal / normal.norm() * scale).reshape(self.shape)
