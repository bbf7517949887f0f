"""``SymplecticModule``: symplectic eigenvalues by trace minimisation on Sp(2p, 2n) as a LightningModule.

Paper: Gao, Son, Stykel, arXiv 2406.14299 (Riemannian Newton on the symplectic Stiefel manifold); problem from
Son, Absil, Gao, Stykel, arXiv 2101.02618. The parameter ``point`` (``SymplecticStiefel``, ``[2n, 2p]``) minimises
:math:`\\mathrm{tr}(X^T M X)`; the minimum is :math:`2\\sum_{j\\le p} d_j`. Second-order methods run under Lightning's
manual optimization: ``training_step`` passes a closure that returns the graph-attached cost, and the
optimizer takes Hessian-vector products in closed form (:math:`U \\mapsto 2MU`). The matrix M is the seeded
planted test matrix of :func:`~zoo.symplectic.planted_spd_matrix`, rebuilt from the config.
"""

from __future__ import annotations

import dataclasses
import math

import geoopt
import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from zoo import register_model
from zoo._core.module import ZooModule
from zoo.manifolds import SymplecticStiefel, symplectic_feasibility
from zoo.optim import OPTIMIZERS
from zoo.symplectic.data import planted_spd_matrix
from zoo.symplectic.model import symplectic_eigenvalues

__all__ = ["SymplecticConfig", "SymplecticData", "SymplecticModule", "evaluate_min_trace"]


@dataclasses.dataclass
class SymplecticConfig:
    n: int = 20  # M is 2n x 2n
    p: int = 3  # number of symplectic eigenvalues (X is 2n x 2p)
    matrix_seed: int = 0  # seed of the planted SPD matrix (symplectic eigenvalues 1..n)
    metric: str = "euclidean"  # euclidean | canonical_like | tractable
    rho: float = 1.0  # canonical-like metric parameter
    optimizer: str = "newton"  # newton | trust_region | hybrid | rgd | rcg
    gradient_tolerance: float = 1e-10  # stop when |grad| <= this * |M|_F
    seed: int = 0  # seeds the starting point

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if not 1 <= self.p <= self.n:
            raise ValueError(f"p must satisfy 1 <= p <= n = {self.n}, got {self.p}")
        if self.metric not in ("euclidean", "canonical_like", "tractable"):
            raise ValueError(f"metric must be euclidean, canonical_like or tractable, got {self.metric!r}")
        if self.rho <= 0:
            raise ValueError(f"rho must be > 0, got {self.rho}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.gradient_tolerance <= 0:
            raise ValueError(f"gradient_tolerance must be > 0, got {self.gradient_tolerance}")


class SymplecticModule(ZooModule):
    """Trace minimisation on the symplectic Stiefel manifold (see module docstring)."""
    single_process_reason = "a Riemannian optimizer steps through a closure over the whole matrix; there is no data to split"

    config_class = SymplecticConfig
    card_template = "symplectic"

    def __init__(self, config: SymplecticConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.automatic_optimization = False
        matrix, _, _ = planted_spd_matrix(c.n, seed=c.matrix_seed)
        self.register_buffer("matrix", matrix, persistent=False)
        manifold = SymplecticStiefel(c.n, c.p, c.metric, rho=c.rho)
        start = manifold.random(dtype=torch.float64, generator=torch.Generator().manual_seed(c.seed))
        self.point = geoopt.ManifoldParameter(start, manifold=manifold)

    def forward(self) -> torch.Tensor:
        """:math:`\\mathrm{tr}(X^T M X)` at the current point."""
        return torch.trace(self.point.T @ self.matrix @ self.point)

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        cost = optimizer.step(closure=self.forward)
        self.log("trace", cost, prog_bar=True)
        inner = optimizer.optimizer
        if inner.stopped:
            self.trainer.should_stop = True
        return None

    def configure_optimizers(self):
        c = self.config
        matrix = self.matrix
        options = {"ehess": lambda xs, us: [2 * matrix @ us[0]]} if c.optimizer in ("newton", "trust_region", "hybrid") else {}
        scale = max(1.0, torch.linalg.matrix_norm(matrix).item())
        return OPTIMIZERS[c.optimizer]([self.point], max_iterations=10**9, gradient_tolerance=c.gradient_tolerance * scale,
                                       **options)


class _Steps(IterableDataset):
    def __iter__(self):
        while True:
            yield torch.zeros(1)


class SymplecticData(L.LightningDataModule):
    """No data: one optimizer iteration per step on the matrix named by the model's config."""

    def train_dataloader(self):
        return DataLoader(_Steps(), batch_size=None)


def evaluate_min_trace(model: SymplecticModule, datamodule, trainer) -> dict[str, float]:
    """Recipe evaluation: value, target 2 sum d_j (direct eigen-solve), relative gap, feasibility, iterations."""
    record = trainer.optimizers[0].result
    value = float(model().detach())
    target = 2 * float(symplectic_eigenvalues(model.matrix)[: model.config.p].sum())
    metrics = {"trace_value": value, "target_2_sum_d": target, "relative_gap": abs(value - target) / target,
               "feasibility": float(symplectic_feasibility(model.point.detach())), "iterations": float(record.iterations),
               "gradient_norm": float(record.gradient_norm), "hessian_vector_products": float(record.hessian_vector_products),
               "optimizer_seconds": float(record.wall_time)}
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


@register_model("symplectic_min_trace_tiny")
def symplectic_min_trace_tiny() -> SymplecticConfig:
    return SymplecticConfig(n=6, p=2, optimizer="newton", gradient_tolerance=1e-10)


@register_model("symplectic_min_trace_n100")
def symplectic_min_trace_n100() -> SymplecticConfig:
    return SymplecticConfig(n=100, p=5, optimizer="newton")
