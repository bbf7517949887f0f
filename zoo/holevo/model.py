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
the bi-invariant metric on the weights, inside an active-set loop of ours that reaches optima on the boundary of
the simplex (unused members get weight exactly 0), solves for the weights of each face by Newton steps with the
states fixed, and finishes a face on which RGD stalls by Riemannian Newton steps on weights and states together
(see :func:`holevo_capacity`).

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
from zoo.holevo.entropy import _FLOOR, _kernel, von_neumann_entropy
from zoo.manifolds import ComplexSphere, Simplex
from zoo.optim import OPTIMIZERS

__all__ = ["BlahutArimotoResult", "HolevoResult", "blahut_arimoto", "channel_outputs", "holevo_capacity", "holevo_cost",
           "holevo_quantity", "member_divergences"]


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


def _initial_point(d_in: int, members: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    weights = torch.full((members,), 1.0 / members, dtype=torch.float64)
    states = ComplexSphere(real_view=True).random(members, d_in, 2, dtype=torch.float64, generator=generator)
    return weights, states.detach().as_subclass(torch.Tensor).clone()


def _log2_support(rho: torch.Tensor) -> torch.Tensor:
    """:math:`\\log_2\\rho` with eigenvalues at or below round-off floored at 1e-300 (the entropy module's kernel rule)."""
    values, vectors = torch.linalg.eigh(rho)
    values = torch.where(_kernel(values), torch.full_like(values, _FLOOR), values)
    return (vectors * torch.log2(values).to(vectors.dtype)) @ vectors.mH


def member_divergences(kraus: torch.Tensor, weights: torch.Tensor, states: torch.Tensor, average=None) -> torch.Tensor:
    """:math:`D(\\mathcal{N}(\\psi_i\\psi_i^H)\\Vert\\mathcal{N}(\\bar\\rho))` in bits for complex ``states [m, d_in]``.

    Donald's identity gives :math:`\\chi = \\sum_i p_i D_i`; at an optimal ensemble :math:`D_i = \\chi` on the
    support and :math:`D_i \\le \\chi` for every pure input (the KKT conditions of the concave problem in p, and
    the divergence-radius bound over states). ``average`` overrides :math:`\\mathcal{N}(\\bar\\rho)`.
    """
    outputs = channel_outputs(kraus, states)
    if average is None:
        average = torch.einsum("m,mab->ab", weights.to(outputs.dtype), outputs)
    log_average = _log2_support(average)
    cross = torch.einsum("mab,ba->m", outputs, log_average).real
    return -von_neumann_entropy(outputs) - cross


def _price(kraus: torch.Tensor, average: torch.Tensor, starts: torch.Tensor, iterations: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """Local ascent of :math:`\\psi \\mapsto D(\\mathcal{N}(\\psi\\psi^H)\\Vert\\mathcal{N}(\\bar\\rho))` from each start
    (real views ``[k, d_in, 2]``), all at once; returns ``(states, divergences in bits)``."""
    sphere = ComplexSphere(real_view=True)
    psi = geoopt.ManifoldParameter(starts.detach().as_subclass(torch.Tensor).clone(), manifold=sphere)
    log_average = _log2_support(average).detach()

    def closure():
        outputs = channel_outputs(kraus, torch.view_as_complex(psi))
        return (von_neumann_entropy(outputs) + torch.einsum("mab,ba->m", outputs, log_average).real).sum()

    optimizer = OPTIMIZERS["rgd"]([psi], max_iterations=iterations, gradient_tolerance=1e-9)
    optimizer.minimize(closure)
    with torch.no_grad():
        found = torch.view_as_complex(psi.detach().clone())
        return psi.detach().clone(), member_divergences(kraus, None, found, average=average)


def _solve(kraus, method: str, metric: str, tol: float, seed: int, members: int, max_iterations: int, progress: bool,
           active_set: bool, check_every: int = 50, max_rounds: int = 200, stall_rounds: int = 5,
           newton_iterations: int = 30):
    """One seeded start of :func:`holevo_capacity` (see its docstring for the active-set rule)."""
    d_in = kraus.shape[2]
    p, s = _initial_point(d_in, members, seed)
    active = list(range(members))
    counts = {"iterations": 0, "cost": 0, "time": 0.0, "process_time": 0.0}
    stop_reason, converged, gradient_norm, cost_value = "", False, math.nan, math.nan
    rounds = 0
    stalls, stall_limit = 0, stall_rounds  # consecutive weight-step restarts on the face (see _face_newton)
    protected: set[int] = set()  # members that re-entered: not dropped again until the face problem converges
    generator = torch.Generator().manual_seed(seed + 7919)
    bar = None
    if progress:  # one bar over every active-set round: iterations so far, active members, cost
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iterations, desc=f"holevo {method}", leave=False)
    while True:
        rounds += 1
        weights = geoopt.ManifoldParameter(p[active] / p[active].sum(), manifold=Simplex(metric))
        states = geoopt.ManifoldParameter(s[active].clone(), manifold=ComplexSphere(real_view=True))

        def closure():  # graph-attached cost: autograd gives exact gradients and Hessian-vector products
            return holevo_cost(kraus, weights, torch.view_as_complex(states))

        optimizer = OPTIMIZERS[method]([weights, states], max_iterations=max(max_iterations - counts["iterations"], 0),
                                       gradient_tolerance=tol)
        leaving: list[int] = []
        reweighted = False
        while not optimizer.stopped:
            optimizer.step(closure)
            if bar is not None:
                bar.n = counts["iterations"] + optimizer.iterations
                bar.set_postfix(members=len(active), cost=optimizer.history[-1]["cost"] if optimizer.history else None,
                                refresh=False)
                bar.refresh()
            if active_set and not optimizer.stopped and optimizer.iterations % check_every == 0 and len(active) > 1:
                # the weights' slow mode: solve for them exactly with the states fixed (see _face_weights)
                wall, cpu = time.perf_counter(), time.process_time()
                found, gain = _face_weights(kraus, weights.detach().clone(), torch.view_as_complex(states.detach()))
                counts["time"] += time.perf_counter() - wall  # the result's times cover the weight steps too
                counts["process_time"] += time.process_time() - cpu
                if gain > 1e-15 * max(1.0, abs(optimizer.history[-1]["cost"])):
                    with torch.no_grad():
                        weights.copy_(found)
                    reweighted = True
                if len(active) > 2:
                    leaving = [k for k in _leaving(kraus, weights.detach(), torch.view_as_complex(states.detach()))
                               if active[k] not in protected]
                if leaving or reweighted:
                    break
        record = optimizer.result
        counts["iterations"] += record.iterations
        counts["cost"] += record.cost_evaluations
        counts["time"] += record.wall_time
        counts["process_time"] += record.process_time
        with torch.no_grad():
            p = torch.zeros_like(p)
            p[active] = weights.detach()
            s[active] = states.detach()
        gradient_norm, cost_value = record.gradient_norm, record.cost
        if reweighted:  # the recorded cost is that of the weights before the weight step
            with torch.no_grad():
                cost_value = float(holevo_cost(kraus, p[active], torch.view_as_complex(s[active])))
        if leaving:
            if rounds >= max_rounds or counts["iterations"] >= max_iterations:
                # stop on the ensemble whose cost is reported (dropping now would leave weights summing below 1)
                stop_reason = f"active-set rounds exhausted ({rounds} rounds, {counts['iterations']} iterations)"
                break
            stalls = 0
            keep = [i for k, i in enumerate(active) if k not in leaving]
            for k in leaving:
                p[active[k]] = 0.0
            active = keep
            continue
        if reweighted:  # the face problem restarts from the new weights (not an active-set round)
            rounds -= 1
            stalls += 1
            if method != "rgd" or stalls < stall_limit or len(active) < 2:
                continue
            # RGD with weight steps has stalled on this face: a second-order finish (see _face_newton)
            found = _face_newton(kraus, metric, tol, p[active], s[active], cost_value,
                                 min(newton_iterations, max_iterations - counts["iterations"]))
            newton_record = found[2]
            counts["iterations"] += newton_record.iterations
            counts["cost"] += newton_record.cost_evaluations
            counts["time"] += newton_record.wall_time
            counts["process_time"] += newton_record.process_time
            if found[0] is None:  # not converged: keep the RGD point, try again after twice as many stalls
                stalls, stall_limit = 0, 2 * stall_limit
                continue
            with torch.no_grad():
                p[active], s[active] = found[0], found[1]
            record = newton_record
            gradient_norm, cost_value = record.gradient_norm, record.cost
        stalls = 0
        if not record.converged:
            stop_reason = record.stop_reason or "stopped"
            break
        protected = set()
        inactive = [i for i in range(members) if i not in active]
        if not active_set:
            stop_reason, converged = record.stop_reason, True
            break
        # KKT re-check of the dropped members: can any pure input raise chi (D > chi)? Ascend D from their states
        # and from as many fresh random states, all at once. With every member active it runs too (from d_in random
        # states): a face can converge with all members stationary while an input the ensemble lacks violates KKT
        chi = -cost_value
        with torch.no_grad():
            average = torch.einsum("m,mab->ab", p.to(kraus.dtype), channel_outputs(kraus, torch.view_as_complex(s)))
        fresh = ComplexSphere(real_view=True).random(len(inactive) or d_in, d_in, 2, dtype=torch.float64,
                                                     generator=generator)
        basis = torch.view_as_real(torch.eye(d_in, dtype=kraus.dtype))  # the input basis (the letters of a cq channel)
        candidates, divergence = _price(kraus, average, torch.cat([s[inactive], fresh, basis]))
        margin = 1e-9 * max(1.0, abs(chi))
        order = torch.argsort(divergence, descending=True).tolist()
        # the most violating input only, into one member (the others would split its step: duplicates of it, and
        # inputs that stop violating once it enters; they are priced again at the next re-check)
        # an input at an active member's state is no missing member: its D - chi is that member's stationarity
        # residual on the face (about tol / p_i), which the face problem owns
        overlap = (torch.view_as_complex(candidates).conj() @ torch.view_as_complex(s[active]).T).abs().amax(1) ** 2
        entering = [k for k in order if float(divergence[k]) > chi + margin and float(overlap[k]) < 1 - 1e-8][:1]
        step, negligible, full = 0.0, "", ""
        if entering and not inactive:  # free a member by merging two with the same state (the ensemble is unchanged)
            freed = _merge_duplicate(p, s, active)
            if freed is None:
                full = " and no free member (all members active and distinct)"
            else:
                active = [i for i in active if i != freed]
                inactive = [freed]
        if entering and not full:  # by concavity the gain of entering is at most step * (D - chi): below 1e-12 bits
            # it is no violation
            slots = inactive[:1]
            trial = s.clone()
            trial[slots] = candidates[entering]
            step = _entering_weight(kraus, p, trial, slots)
            excess = float(divergence[entering[0]]) - chi
            if step * excess <= 1e-12:
                negligible = f"; an input with D - chi = {excess:.3g} bits would gain at most {step * excess:.2g} bits"
                entering = []
        if not entering or full or rounds >= max_rounds or counts["iterations"] >= max_iterations:
            stop_reason, converged = record.stop_reason, True
            if entering:
                converged = False
                stop_reason = (f"{'stopped' if full else 'active-set rounds exhausted'} with a KKT violation (a pure "
                               f"input has D - chi = {float(divergence[entering[0]]) - chi:.3g} bits){full}")
            else:
                priced = "dropped members" if inactive else "no member dropped; priced inputs"
                stop_reason += f"; KKT: {priced} have D - chi <= {float(divergence.max()) - chi:.3g} bits{negligible}"
            break
        s[slots] = candidates[entering]
        p = p * (1 - step)
        p[slots] = step / len(slots)
        active = sorted(active + slots)
        protected = set(slots)
    if bar is not None:
        bar.close()
    return p, s, counts, stop_reason, converged, gradient_norm, cost_value


def _face_newton(kraus, metric: str, tol: float, weights: torch.Tensor, states: torch.Tensor, cost: float,
                 iterations: int):
    r"""Riemannian Newton-tCG on the face problem (weights and states together) from the stalled RGD point.

    On the face :math:`\mathcal{F} = \Delta^{k-1}_+ \times (S_{\mathbb{C}}^{d_{in}-1})^k` of the ``k`` active members
    each iteration solves :math:`\mathrm{Hess} f(x)[\eta] = -\mathrm{grad} f(x)` in :math:`T_x\mathcal{F}` by
    truncated CG (exact Hessian-vector products: double backward through the entropy, then the Riemannian Hessian
    of the product metric), stopped at :math:`\lVert r\rVert \le \lVert g\rVert\min(0.1, \lVert g\rVert)` or at
    negative curvature, and takes an Armijo step along :math:`\eta` (:class:`~zoo.optim.RiemannianNewton`; Absil,
    Mahony, Sepulchre 2008, Alg. 5). Near a nondegenerate minimiser on the face (up to the phase of each state,
    whose null directions CG never enters, the gradient being orthogonal to them) the rate is quadratic.

    Why: RGD's tail on a face is linear with a rate set by the conditioning of the joint Hessian, and the weight-only
    Newton step of :func:`_face_weights` removes the weight block's slow mode but not a mode that couples weights and
    states. Measured on ``random_channel(4, 4, 2, seed=0)`` (12 active members, 108 real coordinates) before this
    finish: from iteration ~700 every 50-iteration stretch ended with a weight step that gained more than round-off,
    so the face restarted ~350 times; the smallest gradient norm per stretch fell only from 2e-7 to 4e-10 and the
    cost gained ~1e-8 bits per stretch at first and ~1e-14 at the end, and the run stopped at 20000 iterations with
    ``converged=False`` although the value agreed with the hybrid method's to 13 digits. With this finish the same case triggers it once,
    after 5 weight-step restarts in a row on the 12-member face: 15 Newton iterations (1549 Hessian-vector
    products, 2 s CPU), gradient norm 9.8e-5 .. 1.5e-5 for the first 11 (damped) iterations, then
    1.4e-6, 1.5e-9, 8.8e-12, i.e. the quadratic phase; 645 iterations and 6.5 s CPU in all (was 20000, ~40 s).

    Returns ``(weights, states, record)``; weights and states are None unless Newton converged (gradient norm <= tol)
    at a cost no worse than ``cost`` (up to :math:`10^{-13}\max(1, |f|)`); then the caller keeps its RGD point.
    """
    w = geoopt.ManifoldParameter(weights / weights.sum(), manifold=Simplex(metric))
    x = geoopt.ManifoldParameter(states.clone(), manifold=ComplexSphere(real_view=True))

    def closure():
        return holevo_cost(kraus, w, torch.view_as_complex(x))

    optimizer = OPTIMIZERS["newton"]([w, x], max_iterations=max(iterations, 0), gradient_tolerance=tol)
    record = optimizer.minimize(closure)
    if not record.converged or not record.cost <= cost + 1e-13 * max(1.0, abs(cost)):
        return None, None, record
    return w.detach().clone(), x.detach().clone(), record


def _merge_duplicate(p: torch.Tensor, s: torch.Tensor, active: list[int]) -> int | None:
    """Merge the lighter of two active members whose states agree up to a phase (:math:`|\\langle\\psi_i|\\psi_j\\rangle|^2
    > 1 - 10^{-12}`) into the other, in place (weights add; :math:`\\chi` and the average are unchanged); returns the
    freed index, or None when all active states are distinct."""
    states = torch.view_as_complex(s[active])
    overlap = (states.conj() @ states.T).abs() ** 2
    overlap.fill_diagonal_(0)
    pairs = (overlap > 1 - 1e-12).nonzero().tolist()
    if not pairs:
        return None
    i, j = min(pairs, key=lambda pair: float(min(p[active[pair[0]]], p[active[pair[1]]])))
    keep, free = (active[i], active[j]) if p[active[i]] >= p[active[j]] else (active[j], active[i])
    p[keep] += p[free]
    p[free] = 0.0
    return free


def _entering_weight(kraus, p: torch.Tensor, s: torch.Tensor, slots: list[int], steps: int = 60) -> float:
    """Exact line search for the weight ``t`` that moves ``p`` to ``(1 - t) p + t u`` (``u`` uniform on ``slots``) with
    the states fixed: :math:`\\chi` is concave in the weights, so bisection on the sign of
    :math:`d\\chi/dt = \\sum_i (u_i - p_i) D_i` (Donald's identity: :math:`\\partial\\chi/\\partial p_i = D_i - 1/\\ln 2`)."""
    with torch.no_grad():
        outputs = channel_outputs(kraus, torch.view_as_complex(s))
        u = torch.zeros_like(p)
        u[slots] = 1.0 / len(slots)

        def slope(t: float) -> float:
            q = (1 - t) * p + t * u
            average = torch.einsum("m,mab->ab", q.to(outputs.dtype), outputs)
            divergence = member_divergences(kraus, None, torch.view_as_complex(s), average=average)
            return float(((u - p) * divergence).sum())

        low, high = 0.0, 1.0 - 1e-6
        if slope(high) > 0:
            return high
        for _ in range(steps):
            middle = 0.5 * (low + high)
            if slope(middle) > 0:
                low = middle
            else:
                high = middle
        return low


def _weight_hessian(outputs: torch.Tensor, average: torch.Tensor) -> torch.Tensor:
    """Hessian of :math:`\\chi(p) = H(\\sum_i p_i w_i) - \\sum_i p_i H(w_i)` (bits) in the weights, states fixed.

    :math:`\\partial^2\\chi/\\partial p_i\\partial p_j = -\\tfrac{1}{\\ln 2}\\,\\mathrm{tr}(w_i\\,\\mathrm{D}\\log\\bar w[w_j])
    = -\\tfrac{1}{\\ln 2}\\sum_{ab} (\\tilde w_i)_{ba} (\\tilde w_j)_{ab} L_{ab}` with :math:`\\bar w = V\\Lambda V^H`,
    :math:`\\tilde w = V^H w V` and the Daleckii-Krein divided differences
    :math:`L_{ab} = (\\log\\lambda_a - \\log\\lambda_b)/(\\lambda_a - \\lambda_b)` (:math:`1/\\lambda_a` when they coincide;
    Bhatia, *Matrix Analysis*, V.3). Every :math:`w_i` with :math:`p_i > 0` lives on the support of :math:`\\bar w`, so
    pairs with a kernel eigenvalue (the entropy module's round-off rule) get :math:`L = 0`. Negative semidefinite
    (:math:`\\chi` is concave in p); singular when two members share an output.
    """
    values, vectors = torch.linalg.eigh(average)
    kernel = _kernel(values)
    safe = torch.where(kernel, torch.ones_like(values), values)
    li, lj = safe.unsqueeze(-1), safe.unsqueeze(-2)
    gap = li - lj
    close = gap.abs() <= 1e-10 * torch.maximum(li, lj)
    divided = torch.where(close, 2 / (li + lj), (torch.log(li) - torch.log(lj)) / torch.where(close, torch.ones_like(gap), gap))
    divided = torch.where(kernel.unsqueeze(-1) | kernel.unsqueeze(-2), torch.zeros_like(divided), divided)
    rotated = vectors.mH @ outputs @ vectors
    return -torch.einsum("iab,jba,ab->ij", rotated, rotated, divided.to(rotated.dtype)).real / math.log(2)


def _face_weights(kraus, p: torch.Tensor, states: torch.Tensor, steps: int = 30) -> tuple[torch.Tensor, float]:
    r"""Maximise :math:`\chi` over the weights of the active members with their states fixed; returns ``(p, gain)``.

    With the states fixed, :math:`\chi(p) = \sum_i p_i D_i(p)` is concave on the simplex (the mutual information of
    the cq channel :math:`i \mapsto w_i = \mathcal{N}(\psi_i\psi_i^H)`), with gradient
    :math:`\partial\chi/\partial p_i = D_i - 1/\ln 2` (Donald's identity) and the Hessian of :func:`_weight_hessian`.
    Each iteration takes the exact Newton step on the face :math:`\sum_i \Delta_i = 0`,

    .. math:: \begin{pmatrix} \nabla^2\chi & \mathbf 1 \\ \mathbf 1^T & 0 \end{pmatrix}
              \begin{pmatrix}\Delta \\ \nu\end{pmatrix} = \begin{pmatrix} -\nabla\chi \\ 0 \end{pmatrix}

    (least-norm solution by SVD with singular values below :math:`10^{-9}` of the largest cut: members with equal
    outputs make the Hessian singular, and only their total weight matters; nearly dependent outputs make it
    nearly singular, and a step along such a direction, where :math:`\chi` is almost linear, is huge and gets cut
    to nothing by the boundary, so those directions are left to the Riemannian method and the leaving rule; on a
    random d = 4 channel a curvature of :math:`4\cdot10^{-11}` against 23 stalled the uncut step), shortened to
    stay inside the open simplex (at most 0.99 of the way to the nearest zero weight, and no weight below
    :math:`10^{-100}`, where the simplex metrics would overflow; a member that should leave decays geometrically and
    the leaving rule drops it) and backtracked until Armijo's
    condition :math:`\chi(p + t\Delta) \ge \chi(p) + 10^{-4} t \langle\nabla\chi, \Delta\rangle` holds (Nocedal and Wright,
    *Numerical Optimization*, ch. 3 and 16). Where the step is no ascent direction or backtracking fails, one
    Blahut-Arimoto step :math:`p_i \leftarrow p_i 2^{D_i} / \sum_j p_j 2^{D_j}` is taken instead: it never decreases
    :math:`\chi` for fixed letters (Arimoto 1972; Nagaoka 1998). Stops when the Newton decrement
    :math:`\langle\nabla\chi, \Delta\rangle/2` (the predicted gain) is at round-off.
    """
    with torch.no_grad():
        outputs = channel_outputs(kraus, states)

        def evaluate(q):
            average = torch.einsum("m,mab->ab", q.to(outputs.dtype), outputs)
            divergence = member_divergences(kraus, None, states, average=average)
            return float((q * divergence).sum()), divergence, average

        start, divergence, average = evaluate(p)
        chi, m = start, p.numel()
        floor = 1e-15 * max(1.0, abs(chi))
        for _ in range(steps):
            system = torch.zeros(m + 1, m + 1, dtype=torch.float64)
            system[:m, :m] = _weight_hessian(outputs, average)
            system[:m, m] = system[m, :m] = 1.0
            rhs = torch.cat([-divergence, torch.zeros(1, dtype=torch.float64)])  # the 1/ln 2 is absorbed by nu
            step = torch.linalg.lstsq(system, rhs.unsqueeze(-1), rcond=1e-9, driver="gelsd").solution[:m, 0]
            slope = float((divergence * step).sum())
            accepted = None
            if math.isfinite(slope) and slope > 0:
                if slope / 2 <= floor:
                    break
                shrinking = step < 0
                t = min(1.0, 0.99 * float((p[shrinking] / -step[shrinking]).min())) if shrinking.any() else 1.0
                while t > 1e-10:
                    trial = (p + t * step).clamp_min(1e-100)
                    trial = trial / trial.sum()
                    value, trial_divergence, trial_average = evaluate(trial)
                    if value >= chi + 1e-4 * t * slope:
                        accepted = trial, value, trial_divergence, trial_average
                        break
                    t /= 2
            if accepted is None:  # Blahut-Arimoto step: monotone
                trial = p * torch.exp2(divergence - divergence.max())
                trial = trial / trial.sum()
                value, trial_divergence, trial_average = evaluate(trial)
                if value <= chi + floor:
                    break
                accepted = trial, value, trial_divergence, trial_average
            p, chi, divergence, average = accepted
        return p, chi - start


def _leaving(kraus, weights: torch.Tensor, states: torch.Tensor) -> list[int]:
    """Members that the KKT conditions say leave the support: small weight and :math:`D_i < \\chi`.

    Rule (after Bertsekas' epsilon-active sets for projected Newton; thresholds ours): drop i when
    :math:`D_i < \\chi` and either :math:`p_i \\le \\min(10^{-2}, 10^{-1}(\\chi - D_i))` or
    :math:`\\chi - D_i > 3\\max_j (D_j - \\chi)` with that max below 1e-3 bits (its deficit dwarfs the non-stationarity of the rest; at an
    optimum :math:`D_j = \\chi` on the support), never below two members. A wrong drop is undone by the re-check
    that follows convergence.
    """
    with torch.no_grad():
        divergence = member_divergences(kraus, weights, states)
        chi = float((weights * divergence).sum())
        gap = chi - divergence
        # how far the members above the mean are from stationarity (0 at an optimum: D_i = chi on the support)
        spread = float((-gap).clamp_min(0).max())
        small = weights <= torch.clamp(0.1 * gap, max=1e-2)
        clear = (gap > 3 * spread) & (spread < 1e-3)
        candidates = ((small | clear) & (gap > 0)).nonzero().flatten().tolist()
    room = weights.numel() - 2
    candidates.sort(key=lambda k: float(weights[k]))
    return candidates[:max(room, 0)]


def holevo_capacity(kraus, *, method: str = "rgd", tol: float = 1e-10, seed: int = 0, members: int | None = None,
                    max_iterations: int = 20000, metric: str = "bi_invariant", restarts: int = 1,
                    progress: bool = False, active_set: bool = True) -> HolevoResult:
    """Holevo capacity :math:`\\chi(\\mathcal{N})` (bits) of the channel with Kraus operators ``kraus``.

    **Boundary optima (active set).** Optimal ensembles often use fewer members than ``members`` (rank-deficient
    outputs, cq channels whose letters go unused): the optimum sits on the boundary of the simplex, where the
    open-simplex metrics put it infinitely far away, so plain Riemannian descent approaches it sublinearly
    (with the bi-invariant metric a weight decays like 1/k). We therefore run a face-restricted active-set
    method rather than a multiplicative (Blahut-Arimoto-like) method throughout, because the active set keeps the
    chosen Riemannian method and its rate on the face, and certifies the result; on each face the weights get
    exact Newton steps with the states fixed:

    * every ``50`` iterations the weights of the active members are first solved for with the states fixed, by
      exact Newton steps on the face (:func:`_face_weights`); if that raises :math:`\\chi` by more than round-off
      (:math:`10^{-15}\\max(1, \\chi)`), the method restarts on the face from the new weights (not counted as an
      active-set round). Why: on the face the weights can be the slow mode. The bi-invariant metric scales the
      weight part of the Riemannian gradient by :math:`p_i^2` (the Fisher metric by :math:`p_i`), so a small
      member's log-weight moves by about :math:`t\\,p_i(D_i - \\chi)` (bits) per step of size t, while t is capped by
      the stiff directions (our reading, not measured apart: states whose outputs are rank-deficient, where the
      entropy's floored kernel logarithm gives curvature of order :math:`p_i\\log_2(1/\\lambda_{floor}) \\approx
      10^3 p_i`). Measured on the
      gate's seed 9 (8 letters, d = 5; the last face had 34 members): a member with :math:`p = 2.4\\cdot10^{-3}`
      (optimal :math:`3.4\\cdot10^{-3}`) and :math:`D - \\chi = 2.6\\cdot10^{-3}` bits stayed there for 4900 RGD
      iterations (gradient norm stuck at :math:`9\\cdot10^{-6}`, :math:`1.3\\cdot10^{-6}` bits short). With the
      states fixed the weight problem is concave and small (m x m Hessian in closed form), and on that face
      Newton reached Blahut-Arimoto's value within :math:`2\\cdot10^{-13}` bits in 2 iterations, whereas the
      Blahut-Arimoto multiplicative step :math:`p_i \\leftarrow p_i 2^{D_i}/Z` (monotone, but linear at a rate of
      about :math:`1 - c\\,p_{min}`) needed 3725 iterations to close its bracket to :math:`10^{-12}`; so Newton,
      with that step as the fallback where a Newton step fails. The Riemannian method keeps the states (and the
      joint stationarity test);
    * with ``method="rgd"``, when the weight step has restarted the face 5 times in a row (250 iterations without
      convergence or a change of face: RGD's linear tail), a second-order finish runs on the face: up to 30
      iterations of Riemannian Newton-tCG on weights and states together (:func:`_face_newton`, which has the
      measurements). Accepted only when it reaches ``tol`` at a cost no worse than RGD's; otherwise RGD continues from
      its own point and the next attempt waits twice as many restarts. Why: a slow mode that couples weights and
      states, which the weight-only step does not fix (``random_channel(4, 4, 2, seed=0)``: 20000 iterations and
      ``converged=False`` without it, 645 iterations and ``converged=True`` with it);
    * then members with :math:`p_i \\le \\min(10^{-2}, 10^{-1}(\\chi - D_i))` and
      :math:`D_i < \\chi` (:func:`member_divergences`, Donald's identity; this is the sign of the Lagrangian
      gradient) are dropped: their weight is set to exactly 0 and the method restarts on the face of the
      remaining members (never fewer than two);
    * when the method converges on the face (Riemannian gradient norm <= ``tol``), the KKT conditions of the
      dropped members are re-checked: :math:`D(\\mathcal{N}(\\psi\\psi^H)\\Vert\\mathcal{N}(\\bar\\rho))` is
      ascended from each dropped member's state, as many random states and the input basis vectors (the
      letters of a cq channel, where D is convex in the letter distribution, so these starts make the check exact).
      With no dropped member it runs too, from :math:`d_{in}` random states and the basis: a face can converge with
      every member stationary while the ensemble lacks an input (``rank_deficient_cq_states(54)``: all 9 members
      on two of three letters, reported converged 6.7e-5 bits short before). Inputs with
      :math:`D > \\chi + 10^{-9}` that are not at an active member's state are violations; the most violating
      one re-enters as one member, with the weight of an exact line search on :math:`\\chi` (states fixed), and
      may not be dropped again before the face problem converges (anti-cycling: several at once, at a fixed
      small weight, split the step among duplicates and inputs that stop violating, and were dropped and
      re-added over and over); with every member active it takes the slot freed by merging two members with the
      same state (:func:`_merge_duplicate`), and where all are distinct the run stops with ``converged=False``.
      The method then continues. ``converged`` is True
      only when the face problem converged and no re-check found a violation (a local certificate: the
      ascent is local).

    ``active_set=False`` runs the plain method on the open simplex.

    Args:
        kraus: a sequence of complex ``[d_out, d_in]`` matrices or a stacked ``[k, d_out, d_in]`` tensor (CPTP).
        method: ``"rgd"`` (paper's BB gradient descent), ``"rcg"``, ``"newton"``, ``"trust_region"`` or ``"hybrid"``.
            Second-order methods get exact Hessian-vector products by double backward through the entropy.
        tol: stop when the Riemannian gradient norm is at most ``tol``.
        seed: seeds the random initial states (weights start uniform).
        members: ensemble size m (default :math:`d_{in}^2`, always sufficient).
        max_iterations: iteration cap per restart (all active-set rounds together).
        metric: simplex metric, ``"bi_invariant"`` (paper) or ``"fisher"``.
        restarts: best of this many seeded starts (``seed``, ``seed + 1``, ...).
        active_set: drop members leaving the support and re-check them (above).

    Returns:
        :class:`HolevoResult`; dropped members have probability exactly 0.

    Example::

        >>> from zoo.holevo import depolarizing, holevo_capacity
        >>> round(holevo_capacity(depolarizing(2, 0.3)).capacity, 8)
        0.3901597
    """
    kraus = kraus_operators(kraus)
    if method not in OPTIMIZERS:
        raise ValueError(f"method must be one of {sorted(OPTIMIZERS)}, got {method!r}")
    if metric not in ("bi_invariant", "fisher"):
        raise ValueError(f"metric must be 'bi_invariant' or 'fisher', got {metric!r}")
    if tol <= 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    d_in = kraus.shape[2]
    members = d_in * d_in if members is None else members
    if members < 1:
        raise ValueError(f"members must be >= 1, got {members}")
    best = None
    for restart in range(restarts):
        p, s, counts, stop_reason, converged, gradient_norm, cost_value = _solve(
            kraus, method, metric, tol, seed + restart, members, max_iterations, progress, active_set)
        result = HolevoResult(
            capacity=-cost_value, probabilities=p, states=torch.view_as_complex(s.clone()),
            iterations=counts["iterations"], converged=converged, gradient_norm=gradient_norm, stop_reason=stop_reason or "",
            time=counts["time"], process_time=counts["process_time"], method=method, cost_evaluations=counts["cost"],
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
