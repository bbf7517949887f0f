r"""Holevo capacity by Riemannian optimisation over ensembles of pure states.

Paper: Zhu, Peng, Gao, Wang, arXiv 2501.11576 (Holevo capacity by Riemannian optimisation; we read the
abstract only; the formulation follows the official code ``Chengkai-Zhu/Riemannian-Opt-for-Holevo-Capacity``
as summarised in docs/methods/holevo.md; no code was copied).

.. math::
    \chi(\mathcal{N}) = \max_{\{p_i, \psi_i\}} H\Big(\sum_i p_i \mathcal{N}(\psi_i\psi_i^H)\Big)
        - \sum_i p_i H(\mathcal{N}(\psi_i\psi_i^H)) = -\min_{\mathcal{M}} f,

over :math:`\mathcal{M} = \Delta^{m-1}_+ \times (S_{\mathbb{C}}^{d_{in}-1})^m` with :math:`m = d_{in}^2` members
(pure states and at most :math:`d_{in}^2` members suffice, Davies' theorem). Gradients come from autograd
through :func:`~zoo.holevo.entropy.von_neumann_entropy`; they equal the closed forms
:math:`\partial f/\partial p_i = \langle\psi_i|A_i|\psi_i\rangle + 1/\ln 2`, :math:`\nabla_{\psi_i} f = 2 p_i A_i \psi_i`
with :math:`A_i = \mathcal{N}^\dagger(\log_2\mathcal{N}(\bar\rho) - \log_2\mathcal{N}(\psi_i\psi_i^H))`.
The default solver is the paper's: Riemannian gradient descent with BB steps (nonmonotone line search) and
the bi-invariant metric on the weights.

Baseline for classical-quantum channels: Blahut-Arimoto (Nagaoka 1998; Ramakrishnan, Iten, Scholz, Berta,
arXiv 1905.01286) with the bracket :math:`I(p_k) \le \chi \le \max_x D(\sigma_x\Vert\bar\sigma_k)`.
"""

from __future__ import annotations

import dataclasses
import math
import time

import geoopt
import torch

from zoo.holevo.channels import kraus_operators
from zoo.holevo.entropy import von_neumann_entropy
from zoo.manifolds import ComplexSphere, Simplex
from zoo.optim import OPTIMIZERS

__all__ = ["BlahutArimotoResult", "HolevoResult", "blahut_arimoto", "channel_outputs", "holevo_capacity", "holevo_cost",
           "holevo_quantity"]


def channel_outputs(kraus: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """:math:`\\mathcal{N}(\\psi_i\\psi_i^H)` for complex ``states [m, d_in]`` -> ``[m, d_out, d_out]``."""
    images = torch.einsum("kab,mb->mka", kraus, states)  # K_k psi_i: [m, k, d_out]
    return torch.einsum("mka,mkb->mab", images, images.conj())


def holevo_cost(kraus: torch.Tensor, weights: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """:math:`f = \\sum_i p_i H(\\mathcal{N}(\\psi_i\\psi_i^H)) - H(\\sum_i p_i\\mathcal{N}(\\psi_i\\psi_i^H))` in bits (= -chi of the ensemble)."""
    outputs = channel_outputs(kraus, states)
    average = torch.einsum("m,mab->ab", weights.to(outputs.dtype), outputs)
    return (weights * von_neumann_entropy(outputs)).sum() - von_neumann_entropy(average)


def holevo_quantity(kraus, weights: torch.Tensor, states: torch.Tensor) -> float:
    """:math:`\\chi` (bits) of the ensemble ``{weights, states}`` through the channel."""
    kraus = kraus_operators(kraus)
    with torch.no_grad():
        return -float(holevo_cost(kraus, torch.as_tensor(weights, dtype=torch.float64), torch.as_tensor(states).to(kraus.dtype)))


@dataclasses.dataclass
class HolevoResult:
    """Result of :func:`holevo_capacity`."""

    capacity: float  # chi of the optimal ensemble found, bits
    probabilities: torch.Tensor  # [m] ensemble weights
    states: torch.Tensor  # [m, d_in] complex unit vectors
    iterations: int
    converged: bool  # gradient norm reached tol
    gradient_norm: float
    stop_reason: str
    time: float  # wall seconds
    process_time: float  # CPU seconds
    method: str
    cost_evaluations: int


def _initial_point(d_in: int, members: int, seed: int, metric: str):
    generator = torch.Generator().manual_seed(seed)
    weights = geoopt.ManifoldParameter(torch.full((members,), 1.0 / members, dtype=torch.float64), manifold=Simplex(metric))
    sphere = ComplexSphere(real_view=True)
    states = geoopt.ManifoldParameter(sphere.random(members, d_in, 2, dtype=torch.float64, generator=generator), manifold=sphere)
    return weights, states


def holevo_capacity(kraus, *, method: str = "rgd", tol: float = 1e-10, seed: int = 0, members: int | None = None,
                    max_iterations: int = 20000, metric: str = "bi_invariant", restarts: int = 1,
                    progress: bool = False) -> HolevoResult:
    """Holevo capacity :math:`\\chi(\\mathcal{N})` (bits) of the channel with Kraus operators ``kraus``.

    Args:
        kraus: a sequence of complex ``[d_out, d_in]`` matrices or a stacked ``[k, d_out, d_in]`` tensor (CPTP).
        method: ``"rgd"`` (paper's BB gradient descent), ``"rcg"``, ``"newton"``, ``"trust_region"`` or ``"hybrid"``.
        tol: stop when the Riemannian gradient norm is at most ``tol``.
        seed: seeds the random initial states (weights start uniform).
        members: ensemble size m (default :math:`d_{in}^2`, always sufficient).
        max_iterations: iteration cap per restart.
        metric: simplex metric, ``"bi_invariant"`` (paper) or ``"fisher"``.
        restarts: best of this many seeded starts (``seed``, ``seed + 1``, ...).

    Returns:
        :class:`HolevoResult`.

    Example::

        >>> from zoo.holevo import depolarizing, holevo_capacity
        >>> round(holevo_capacity(depolarizing(2, 0.3)).capacity, 8)
        0.3901597
    """
    kraus = kraus_operators(kraus)
    if method not in OPTIMIZERS:
        raise ValueError(f"method must be one of {sorted(OPTIMIZERS)}, got {method!r}")
    if tol <= 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    d_in = kraus.shape[2]
    members = members or d_in * d_in
    if members < 1:
        raise ValueError(f"members must be >= 1, got {members}")
    second_order = method in ("newton", "trust_region", "hybrid")
    best = None
    for restart in range(restarts):
        weights, states = _initial_point(d_in, members, seed + restart, metric)

        def cost():
            return holevo_cost(kraus, weights, torch.view_as_complex(states))

        def closure():
            loss = cost()
            if second_order:  # entropy is differentiable once: Hessian-vector products by finite differences
                loss.backward()
                return loss.detach()
            return loss

        optimizer = OPTIMIZERS[method]([weights, states], max_iterations=max_iterations, gradient_tolerance=tol)
        record = optimizer.minimize(closure, progress=progress)
        result = HolevoResult(
            capacity=-record.cost, probabilities=weights.detach().clone(),
            states=torch.view_as_complex(states.detach().clone()), iterations=record.iterations,
            converged=record.converged, gradient_norm=record.gradient_norm, stop_reason=record.stop_reason or "",
            time=record.wall_time, process_time=record.process_time, method=method,
            cost_evaluations=record.cost_evaluations,
        )
        if best is None or result.capacity > best.capacity:
            best = result
    return best


@dataclasses.dataclass
class BlahutArimotoResult:
    """Result of :func:`blahut_arimoto` (capacities in bits)."""

    capacity: float  # lower end of the final bracket, I(p)
    upper_bound: float  # max_x D(sigma_x || sigma_bar)
    probabilities: torch.Tensor
    iterations: int
    converged: bool
    time: float


def _relative_entropies(states: torch.Tensor, average: torch.Tensor) -> torch.Tensor:
    """:math:`D(\\sigma_x\\Vert\\bar\\sigma)` in nats for each x (0 log 0 = 0; supports are inside supp sigma_bar)."""
    values, vectors = torch.linalg.eigh(average)
    log_average = (vectors * torch.log(values.clamp_min(1e-300)).to(vectors.dtype)) @ vectors.mH
    state_values = torch.linalg.eigvalsh(states).clamp_min(0)
    negentropy = (state_values * torch.log(torch.where(state_values > 0, state_values, torch.ones_like(state_values)))).sum(-1)
    cross = torch.einsum("xab,ba->x", states, log_average).real
    return negentropy - cross


def blahut_arimoto(states, *, tol: float = 1e-10, max_iterations: int = 100000) -> BlahutArimotoResult:
    """Holevo capacity of the cq channel :math:`x \\mapsto \\sigma_x` by the Blahut-Arimoto iteration.

    :math:`p_{k+1}(x) \\propto p_k(x)\\exp D(\\sigma_x\\Vert\\bar\\sigma_k)` (natural logs), stopped when the bracket
    :math:`\\max_x D(\\sigma_x\\Vert\\bar\\sigma_k) - I(p_k) \\le` ``tol`` (bits).

    Args:
        states: density matrices ``[letters, d, d]``.
    """
    states = torch.as_tensor(states).to(torch.complex128)
    if states.dim() != 3 or states.shape[1] != states.shape[2]:
        raise ValueError(f"states must have shape [letters, d, d], got {tuple(states.shape)}")
    started = time.perf_counter()
    letters = states.shape[0]
    p = torch.full((letters,), 1.0 / letters, dtype=torch.float64)
    lower = upper = 0.0
    converged = False
    for iteration in range(1, max_iterations + 1):
        average = torch.einsum("x,xab->ab", p.to(states.dtype), states)
        divergence = _relative_entropies(states, average)
        lower = float((p * divergence).sum()) / math.log(2)
        upper = float(divergence.max()) / math.log(2)
        if upper - lower <= tol:
            converged = True
            break
        p = p * torch.exp(divergence - divergence.max())
        p = p / p.sum()
    return BlahutArimotoResult(lower, upper, p, iteration, converged, time.perf_counter() - started)
