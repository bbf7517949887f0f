"""A test-only model that exercises the zoo's flow (recipe -> fit -> evaluate -> push -> load).

Not a method of the zoo: a linear regression on data with a known answer, y = X w* + noise. Each batch carries
the row indices, so a DDP test can check which rows each rank saw (written to ``$ZOO_SMOKE_RECORD_DIR``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import ClassVar

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from zoo import register_model
from zoo._core.module import ZooModule


@dataclass
class SmokeConfig:
    in_features: int = 4  # inputs per row
    hidden: int = 0  # width of a tanh hidden layer; 0 = purely linear
    lr: float = 0.1  # SGD learning rate
    aux_outputs: int = 0  # width of an auxiliary linear head on the inputs; 0 = none (a head a fine-tune may add)

    finetune_safe_fields: ClassVar[tuple[str, ...]] = ("lr",)  # what zoo.init_from may change
    finetune_head_fields: ClassVar[tuple[str, ...]] = ("aux_outputs",)  # ... only with zoo.init_new_keys

    def __post_init__(self) -> None:
        if self.in_features < 1:
            raise ValueError(f"in_features must be >= 1, got {self.in_features}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


class SmokeRegressor(ZooModule):
    config_class = SmokeConfig

    def __init__(self, config: SmokeConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        if c.hidden:
            self.net = torch.nn.Sequential(torch.nn.Linear(c.in_features, c.hidden), torch.nn.Tanh(), torch.nn.Linear(c.hidden, 1))
        else:
            self.net = torch.nn.Linear(c.in_features, 1)
        if c.aux_outputs:
            self.aux = torch.nn.Linear(c.in_features, c.aux_outputs)
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        index, x, y = batch
        self.seen.extend(index.tolist())
        loss = torch.nn.functional.mse_loss(self(x), y)
        if self.config.aux_outputs:  # the auxiliary head learns to reproduce the target too
            loss = loss + torch.nn.functional.mse_loss(self.aux(x), y[:, None].expand(-1, self.config.aux_outputs))
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        _, x, y = batch
        self.log("val_mse", torch.nn.functional.mse_loss(self(x), y), sync_dist=True)

    def test_step(self, batch, batch_idx):
        _, x, y = batch
        self.log("test_mse", torch.nn.functional.mse_loss(self(x), y), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.config.lr)

    def on_train_end(self) -> None:
        record = os.environ.get("ZOO_SMOKE_RECORD_DIR")
        if record:
            with open(os.path.join(record, f"seen_rank{self.global_rank}.json"), "w") as f:
                json.dump(self.seen, f)


class _Rows(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return i, self.x[i], self.y[i]


class SmokeData(L.LightningDataModule):
    """y = X w* + 0.01 noise, X ~ N(0, I); fixed by ``seed``.

    Training rows come in a per-epoch permutation seeded by ``$PL_GLOBAL_SEED`` (set by ``seed_everything``): in one
    process through a one-replica ``DistributedSampler``; under DDP Lightning swaps in its own ``DistributedSampler``
    with the same seed, whose ranks take interleaved positions of the same permutation. So a DDP step over 2 ranks
    x b rows uses exactly the rows of a one-process step over 2b rows.
    """

    def __init__(self, n_rows: int = 256, in_features: int = 4, batch_size: int = 32, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n_rows, in_features, generator=g)
        self.w = torch.randn(in_features, generator=g)
        self.y = self.x @ self.w + 0.01 * torch.randn(n_rows, generator=g)
        self.batch_size = batch_size

    def train_dataloader(self):
        rows = _Rows(self.x, self.y)
        if self.trainer is not None and self.trainer.world_size > 1:
            return DataLoader(rows, batch_size=self.batch_size, shuffle=True)  # Lightning shards it
        sampler = DistributedSampler(rows, num_replicas=1, rank=0, shuffle=True, seed=int(os.environ.get("PL_GLOBAL_SEED", 0)))
        return DataLoader(rows, batch_size=self.batch_size, sampler=sampler)

    def val_dataloader(self):
        return DataLoader(_Rows(self.x[:64], self.y[:64]), batch_size=64)

    def test_dataloader(self):
        return DataLoader(_Rows(self.x[-64:], self.y[-64:]), batch_size=64)


@register_model("smoke_regressor_tiny")
def smoke_regressor_tiny() -> SmokeConfig:
    return SmokeConfig(in_features=4, hidden=0, lr=0.1)


@register_model("smoke_mlp_tiny")
def smoke_mlp_tiny() -> SmokeConfig:
    return SmokeConfig(in_features=4, hidden=8, lr=0.05)
