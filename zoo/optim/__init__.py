"""Riemannian optimizers as ``torch.optim.Optimizer`` subclasses (closure-based, Lightning-ready).

:class:`RiemannianGD` (BB + nonmonotone Armijo), :class:`RiemannianCG`, :class:`RiemannianNewton` (truncated
CG), :class:`RiemannianTrustRegion` (Steihaug-Toint tCG), :class:`HybridGDNewton`. Each keeps an
:class:`OptimizeResult`; see :mod:`zoo.optim.base` for the closure contract and multi-tensor points.
"""

from zoo.optim.base import RiemannianOptimizer
from zoo.optim.hybrid import HybridGDNewton
from zoo.optim.newton import RiemannianNewton
from zoo.optim.rcg import RiemannianCG
from zoo.optim.result import OptimizeResult
from zoo.optim.rgd import RiemannianGD
from zoo.optim.trust_region import RiemannianTrustRegion

OPTIMIZERS = {"rgd": RiemannianGD, "rcg": RiemannianCG, "newton": RiemannianNewton, "trust_region": RiemannianTrustRegion,
              "hybrid": HybridGDNewton}

__all__ = ["HybridGDNewton", "OPTIMIZERS", "OptimizeResult", "RiemannianCG", "RiemannianGD", "RiemannianNewton",
           "RiemannianOptimizer", "RiemannianTrustRegion"]
