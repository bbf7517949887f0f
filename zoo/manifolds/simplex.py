r"""The open probability simplex with the Fisher or the bi-invariant metric.

Points are positive vectors summing to one (``ndim = 1``; leading dims are a batch). Tangent vectors sum to 0.

==============  ================================  ================================
                Fisher (``metric="fisher"``)      bi-invariant (``"bi_invariant"``)
==============  ================================  ================================
metric          :math:`\sum_i u_i v_i / p_i`      :math:`\sum_i u_i v_i / p_i^2`
projection      :math:`u - p \sum_i u_i`          :math:`u - p^2 \sum_i u_i / \sum_i p_i^2`
gradient        :math:`p (g - \langle p, g\rangle)`  :math:`p^2 (g - \sum p_j^2 g_j / \sum p_j^2)`
retraction      :math:`p e^{u/p} / \textstyle\sum`  :math:`(p + u + u^2/(2p)) / \textstyle\sum`
==============  ================================  ================================

The bi-invariant metric is the one the Holevo-capacity paper (Zhu, Peng, Gao, Wang, arXiv 2501.11576) uses
through Manopt's ``sympositivedefinitesimplexfactory`` (its 1x1 case); the Fisher metric is Manopt's
``multinomialfactory``. The projections are the metric-orthogonal ones (derived here from the metric).

Hessian (our derivation): the ambient orthant with metric :math:`\mathrm{diag}(p^{-k})` (k = 1 Fisher,
k = 2 bi-invariant) has the Christoffel term :math:`\Gamma(u, \xi)_i = -\tfrac{k}{2} u_i \xi_i / p_i`, so
:math:`\mathrm{Hess} f[u] = P_p(\mathrm{D}\,\mathrm{grad} f[u] + \Gamma(u, \mathrm{grad} f))` (the simplex is a
Riemannian submanifold of that orthant). Both retractions are first order and never leave the open simplex
(:math:`1 + s + s^2/2 > 0` for every real s).
"""

from __future__ import annotations

import geoopt
import torch

from zoo.manifolds.base import ZooManifold

__all__ = ["Simplex"]

_METRICS = ("fisher", "bi_invariant")


class Simplex(ZooManifold):
    """Open probability simplex :math:`\\{p \\in \\mathbb{R}^m : p_i > 0, \\sum_i p_i = 1\\}`.

    Args:
        metric: ``"fisher"`` (:math:`\\sum u_i v_i / p_i`) or ``"bi_invariant"`` (:math:`\\sum u_i v_i / p_i^2`).

    **Which optimizer.** The Riemannian gradient scales like :math:`p` (Fisher) or :math:`p^2` (bi-invariant),
    so geoopt's ``RiemannianSGD`` with a plain learning rate barely moves (feasible, but steps of order
    ``lr * p^2``). Use :mod:`zoo.optim` (``RiemannianGD``: Barzilai-Borwein steps adapt to the metric), or
    geoopt's ``RiemannianAdam`` (its second moment uses ``component_inner``, which normalises that scale); with
    ``RiemannianSGD`` prefer the Fisher metric and a learning rate of order 1 / (gradient spread).

    Example::

        >>> import torch, geoopt
        >>> from zoo.manifolds import Simplex
        >>> weights = geoopt.ManifoldParameter(torch.full((4,), 0.25, dtype=torch.float64), manifold=Simplex())
    """

    name = "Simplex"
    ndim = 1

    def __init__(self, metric: str = "fisher") -> None:
        super().__init__()
        if metric not in _METRICS:
            raise ValueError(f"Simplex metric must be one of {_METRICS}, got {metric!r}")
        self.metric = metric
        self._power = 1 if metric == "fisher" else 2

    def extra_repr(self) -> str:
        return f"metric={self.metric!r}"

    # -- checks --------------------------------------------------------------------------------------
    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        if (x <= 0).any():
            return False, "entries must be positive"
        total = x.sum(-1)
        if not torch.allclose(total, torch.ones_like(total), atol=atol, rtol=rtol):
            return False, f"entries must sum to 1 (sum - 1 = {(total - 1).abs().max().item():.3g})"
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=1e-5):
        if x.shape != u.shape:
            return False, f"u must have the shape of x {tuple(x.shape)}, got {tuple(u.shape)}"
        total = u.sum(-1)
        if not torch.allclose(total, torch.zeros_like(total), atol=atol, rtol=rtol):
            return False, f"tangent entries must sum to 0 (sum = {total.abs().max().item():.3g})"
        return True, None

    # -- geometry ------------------------------------------------------------------------------------
    def _weight(self, x: torch.Tensor) -> torch.Tensor:
        return x if self._power == 1 else x * x  # the metric is sum u v / weight

    def inner(self, x, u, v=None, *, keepdim=False):
        v = u if v is None else v
        return (u * v / self._weight(x)).sum(-1, keepdim=keepdim)

    def component_inner(self, x, u, v=None):
        v = u if v is None else v
        return u * v / self._weight(x)

    def proju(self, x, u):
        weight = self._weight(x)
        # normal direction = weight (g-orthogonal to every u with sum u = 0)
        return u - weight * u.sum(-1, keepdim=True) / weight.sum(-1, keepdim=True)

    def egrad2rgrad(self, x, u):
        # Riesz: the g-gradient of a Euclidean gradient g is P(weight * g)
        return self.proju(x, self._weight(x) * u)

    def projx(self, x):
        """Entries below ``eps`` times the total of the positive part are raised to that floor, then normalised.

        A floor of ``tiny`` (1e-308) would pass the point check while the metric's 1/p or 1/p^2 overflows; with
        ``eps`` every weight is at least about ``eps / m``, so unit tangent entries give inner products of at most
        about :math:`(m/\epsilon)^2` (finite in float32 and float64). An all-nonpositive input maps to the centre.
        """
        positive = x.clamp_min(0)
        total = positive.sum(-1, keepdim=True)
        centre = torch.full_like(x, 1.0 / x.shape[-1])
        x = torch.where(total > 0, positive / torch.where(total > 0, total, torch.ones_like(total)), centre)
        x = x.clamp_min(torch.finfo(x.dtype).eps)
        return x / x.sum(-1, keepdim=True)

    def retr(self, x, u):
        if self._power == 1:
            ratio = u / x
            # p exp(u/p), shifted by the max exponent for overflow safety (cancels in the normalisation)
            y = x * torch.exp(ratio - ratio.amax(-1, keepdim=True))
        else:
            y = x + u + u * u / (2 * x)
        y = y.clamp_min(torch.finfo(y.dtype).tiny)  # exp underflow must not leave the open simplex
        return y / y.sum(-1, keepdim=True)

    def ehess2rhess(self, x, egrad, ehess, u):
        weight = self._weight(x)
        dweight = u if self._power == 1 else 2 * x * u  # D weight [u]
        total = weight.sum(-1, keepdim=True)
        mean = (weight * egrad).sum(-1, keepdim=True) / total
        grad = weight * (egrad - mean)
        dmean = ((dweight * egrad + weight * ehess).sum(-1, keepdim=True) - mean * dweight.sum(-1, keepdim=True)) / total
        dgrad = dweight * (egrad - mean) + weight * (ehess - dmean)
        christoffel = -0.5 * self._power * u * grad / x
        return self.proju(x, dgrad + christoffel)

    def random(self, *size, dtype=None, device=None, generator=None, **kwargs):
        """A point drawn from the flat Dirichlet distribution (normalised exponentials)."""
        if not size or size[-1] < 2:
            raise ValueError(f"Simplex points need a last dimension >= 2, got size {size}")
        sample = torch.empty(*size, dtype=dtype or torch.get_default_dtype(), device=device)
        sample.exponential_(generator=generator)
        return geoopt.ManifoldTensor(sample / sample.sum(-1, keepdim=True), manifold=self)

    def origin(self, *size, dtype=None, device=None, **kwargs):
        """The centre of the simplex (uniform weights)."""
        return geoopt.ManifoldTensor(torch.full(size, 1.0 / size[-1], dtype=dtype or torch.get_default_dtype(), device=device),
                                     manifold=self)
