"""``HolevoModule``: the Holevo-capacity fit as a LightningModule (Zhu, Peng, Gao, Wang, arXiv 2501.11576).

The parameters are the ensemble: ``weights`` (``Simplex``, shape ``[m]``) and ``states`` (``ComplexSphere`` in
real view, shape ``[m, d_in, 2]``; safetensors cannot store complex128). ``training_step`` returns the cost
:math:`f = -\\chi`; ``configure_optimizers`` returns the configured zoo Riemannian optimizer, which Lightning's
automatic optimization drives through its closure (one optimizer iteration per step). Training stops when the
optimizer's gradient tolerance is met. The channel is part of the config, so ``from_pretrained`` rebuilds it.
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
from zoo.holevo import channels
from zoo.holevo.model import holevo_cost
from zoo.holevo.reference import amplitude_damping_chi, depolarizing_chi, erasure_chi, unital_qubit_chi
from zoo.manifolds import ComplexSphere, Simplex
from zoo.optim import OPTIMIZERS

__all__ = ["HolevoConfig", "HolevoData", "HolevoModule", "build_channel", "closed_form_capacity", "evaluate_capacity"]

_CHANNELS = ("depolarizing", "amplitude_damping", "dephasing", "erasure", "pauli", "random")


@dataclasses.dataclass
class HolevoConfig:
    channel: str = "depolarizing"  # depolarizing | amplitude_damping | dephasing | erasure | pauli | random
    dimension: int = 2  # input dimension d_in (qubit channels: 2)
    parameters: tuple[float, ...] = (0.3,)  # channel parameters: q | gamma | p | epsilon | (l1, l2, l3) | (d_out, kraus_rank)
    channel_seed: int = 0  # seed of the random channel
    members: int = 0  # ensemble size m; 0 = d_in^2
    metric: str = "bi_invariant"  # simplex metric: bi_invariant (paper) | fisher
    optimizer: str = "rgd"  # rgd | rcg (first order; Lightning automatic optimization)
    gradient_tolerance: float = 1e-10  # stop when |grad| <= this
    seed: int = 0  # seeds the initial states

    def __post_init__(self) -> None:
        self.parameters = tuple(float(v) for v in self.parameters)
        if self.channel not in _CHANNELS:
            raise ValueError(f"channel must be one of {_CHANNELS}, got {self.channel!r}")
        if self.dimension < 2:
            raise ValueError(f"dimension must be >= 2, got {self.dimension}")
        if self.members < 0:
            raise ValueError(f"members must be >= 0, got {self.members}")
        if self.metric not in ("bi_invariant", "fisher"):
            raise ValueError(f"metric must be 'bi_invariant' or 'fisher', got {self.metric!r}")
        if self.optimizer not in ("rgd", "rcg"):
            raise ValueError(f"optimizer must be 'rgd' or 'rcg' (first-order, automatic optimization), got {self.optimizer!r}")
        if self.gradient_tolerance <= 0:
            raise ValueError(f"gradient_tolerance must be > 0, got {self.gradient_tolerance}")
        build_channel(self)  # validates the parameters


def build_channel(config: HolevoConfig) -> torch.Tensor:
    """The Kraus stack described by ``config`` (ValueError naming the field on bad parameters)."""
    name, d, values = config.channel, config.dimension, config.parameters
    needed = {"pauli": 3, "random": 2}.get(name, 1)
    if len(values) != needed:
        raise ValueError(f"parameters for channel {name!r} must have {needed} value(s), got {values}")
    if name in ("amplitude_damping", "dephasing", "pauli") and d != 2:
        raise ValueError(f"channel {name!r} is a qubit channel: dimension must be 2, got {d}")
    if name == "depolarizing":
        return channels.depolarizing(d, values[0])
    if name == "amplitude_damping":
        return channels.amplitude_damping(values[0])
    if name == "dephasing":
        return channels.dephasing(values[0])
    if name == "erasure":
        return channels.erasure(d, values[0])
    if name == "pauli":
        return channels.pauli_channel(*values)
    return channels.random_channel(d, int(values[0]), int(values[1]), seed=config.channel_seed)


def closed_form_capacity(config: HolevoConfig) -> float | None:
    """The closed-form chi (bits) of the configured channel, or None (random channels)."""
    name, d, values = config.channel, config.dimension, config.parameters
    if name == "depolarizing":
        return depolarizing_chi(d, values[0])
    if name == "amplitude_damping":
        return amplitude_damping_chi(values[0])[0]
    if name == "dephasing":
        return 1.0
    if name == "erasure":
        return erasure_chi(d, values[0])
    if name == "pauli":
        return unital_qubit_chi(*values)
    return None


class HolevoModule(ZooModule):
    """Holevo capacity fit (see module docstring)."""
    single_process_reason = "a Riemannian optimizer steps through a closure over the whole channel; there is no data to split"

    config_class = HolevoConfig
    card_template = "holevo"

    def __init__(self, config: HolevoConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.register_buffer("kraus_real", torch.view_as_real(build_channel(c)), persistent=False)
        members = c.members or c.dimension**2
        generator = torch.Generator().manual_seed(c.seed)
        sphere = ComplexSphere(real_view=True)
        self.weights = geoopt.ManifoldParameter(torch.full((members,), 1.0 / members, dtype=torch.float64),
                                                manifold=Simplex(c.metric))
        self.states = geoopt.ManifoldParameter(sphere.random(members, c.dimension, 2, dtype=torch.float64, generator=generator),
                                               manifold=sphere)

    @property
    def kraus(self) -> torch.Tensor:
        return torch.view_as_complex(self.kraus_real)

    def forward(self) -> torch.Tensor:
        """The Holevo quantity chi (bits) of the current ensemble."""
        return -holevo_cost(self.kraus, self.weights, torch.view_as_complex(self.states))

    def training_step(self, batch, batch_idx):
        cost = holevo_cost(self.kraus, self.weights, torch.view_as_complex(self.states))
        self.log("chi_bits", -cost.detach(), prog_bar=True)
        return cost

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        optimizer = self.trainer.optimizers[0]
        if getattr(optimizer, "stopped", False):
            self.trainer.should_stop = True

    def configure_optimizers(self):
        return OPTIMIZERS[self.config.optimizer]([self.weights, self.states], max_iterations=10**9,
                                                 gradient_tolerance=self.config.gradient_tolerance)


class _Steps(IterableDataset):
    def __iter__(self):
        while True:
            yield torch.zeros(1)


class HolevoData(L.LightningDataModule):
    """No data: a fit runs one optimizer iteration per step on the channel in the model's config."""

    def train_dataloader(self):
        return DataLoader(_Steps(), batch_size=None)


def evaluate_capacity(model: HolevoModule, datamodule, trainer) -> dict[str, float]:
    """Recipe evaluation: chi found, closed form (if any) and gap, iterations, gradient norm."""
    optimizer = trainer.optimizers[0]
    record = optimizer.result
    metrics = {"holevo_chi_bits": float(model().detach()), "iterations": float(record.iterations),
               "gradient_norm": float(record.gradient_norm), "converged": float(record.converged),
               "optimizer_seconds": float(record.wall_time)}
    truth = closed_form_capacity(model.config)
    if truth is not None:
        metrics["closed_form_chi_bits"] = truth
        metrics["abs_error_bits"] = abs(metrics["holevo_chi_bits"] - truth)
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


@register_model("holevo_depolarizing_tiny")
def holevo_depolarizing_tiny() -> HolevoConfig:
    return HolevoConfig(channel="depolarizing", dimension=2, parameters=(0.3,), gradient_tolerance=1e-9)


@register_model("holevo_amplitude_damping")
def holevo_amplitude_damping() -> HolevoConfig:
    return HolevoConfig(channel="amplitude_damping", dimension=2, parameters=(0.5,))


@register_model("holevo_depolarizing_qutrit")
def holevo_depolarizing_qutrit() -> HolevoConfig:
    return HolevoConfig(channel="depolarizing", dimension=3, parameters=(0.5,))
