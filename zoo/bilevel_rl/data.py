"""``OuterSteps``: a LightningDataModule whose batches only count M-SoBiRL outer iterations.

Bilevel RL on a known tabular model has no dataset: each training step is one outer iteration of the
algorithm, so the data module yields ``steps`` placeholder batches per epoch [our choice].
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["OuterSteps"]


class OuterSteps(L.LightningDataModule):
    """``steps`` batches per epoch (each the iteration index); ``trainer.max_epochs * steps`` outer iterations."""

    def __init__(self, steps: int = 1000) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.steps = steps

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.arange(self.steps)), batch_size=1, shuffle=False)
