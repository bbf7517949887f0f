"""Resuming a killed ``zoo run``: periodic atomic checkpoints, a data order that survives a restart, fit time
across resumes.

``zoo run RECIPE --ckpt_path last`` (or a checkpoint path) continues a run from its newest checkpoint, written every
``zoo.checkpoint_every`` optimizer steps into ``<trainer.default_root_dir>/checkpoints/``. Three things make the
resumed run end with the weights an uninterrupted run would have had:

1. Lightning restores the weights, optimizer and scheduler states and the loop counters from the checkpoint.
2. ``ResumableSampler`` draws each epoch's order from ``(seed, epoch)`` alone (not from a generator that advanced
   through earlier epochs), and ``ResumableLoader`` records in the checkpoint how many batches of the current epoch
   were already trained, so the resumed epoch continues with the next batch instead of starting the epoch again
   (Lightning alone restarts the data of a non-resumable loader and warns about it).
3. ``AtomicCheckpointIO`` writes each checkpoint to a temporary file in the same folder, flushes it to disk and
   renames it over the old one: a kill leaves either the previous or the new checkpoint, never half a file.
   (Lightning's own writer goes through an fsspec transaction whose temporary file lives in the system temp
   folder, so on another filesystem its final move is a copy, which a kill can cut short.)

``FitClock`` keeps the seconds spent in ``fit`` in every checkpoint, so the card's ``fit_seconds`` counts the whole
run across resumes (the work done after the last checkpoint of a killed run is redone and counted once).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, DistributedSampler

__all__ = ["AtomicCheckpointIO", "FitClock", "ResumableLoader", "ResumableSampler", "resumable_loader"]


class ResumableSampler(DistributedSampler):
    """Each epoch's order is ``randperm`` seeded by ``seed + epoch``, split across ranks as ``DistributedSampler``
    splits it (rank r takes positions r, r + world, ...), so a DDP step over ``world`` ranks of ``b`` rows uses
    exactly the rows of a one-process step over ``world * b`` rows. ``skip(epoch, batches)`` drops the first
    ``batches`` batches of that epoch (those a resumed run already trained on).

    Lightning keeps a ``DistributedSampler`` as it is under DDP (it swaps only other samplers), so the world size
    and rank are read from ``torch.distributed`` when the loader is built.
    """

    def __init__(self, dataset: Any, *, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = True) -> None:
        world, rank = 1, 0
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self._skip: tuple[int, int] = (-1, 0)  # (epoch, batches already trained in it)

    def skip(self, epoch: int, batches: int) -> None:
        self._skip = (int(epoch), int(batches))

    def __iter__(self):
        indices = list(super().__iter__())
        epoch, batches = self._skip
        if epoch == self.epoch and batches > 0:
            indices = indices[batches * self.batch_size:]
        return iter(indices)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a ``ResumableSampler`` that Lightning saves in and restores from checkpoints.

    ``progress()`` (set by ``resumable_loader``) returns ``(epoch, batches trained in it)`` from the trainer when a
    checkpoint is written; loading the state makes the sampler skip those batches.
    """

    progress: Callable[[], tuple[int, int]] | None = None

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self.progress() if self.progress is not None else (0, 0)
        return {"epoch": int(epoch), "batches": int(batches)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.skip(state.get("epoch", 0), state.get("batches", 0))


def resumable_loader(dataset: Any, *, batch_size: int, seed: int, trainer: Any = None, shuffle: bool = True,
                     drop_last: bool = True, **kwargs: Any) -> ResumableLoader:
    """A training loader whose order depends only on ``(seed, epoch)`` and that resumes mid-epoch (see above)."""
    sampler = ResumableSampler(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    loader = ResumableLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **kwargs)
    if trainer is not None:
        def progress() -> tuple[int, int]:
            # the count includes the batch whose on_train_batch_end is writing the checkpoint
            return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

        loader.progress = progress
    return loader


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file beside the target, fsync, then ``os.replace`` (atomic on POSIX)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes the file owner-only; a checkpoint gets the usual mode
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


class FitClock(Callback):
    """Seconds spent in ``fit``, carried through checkpoints: ``seconds()`` is the whole run's, across resumes."""

    def __init__(self) -> None:
        self.before = 0.0  # seconds recorded by the checkpoint this run resumed from
        self.resumes = 0  # how many times this run was resumed
        self._started: float | None = None
        self._ended: float | None = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._started, self._ended = time.perf_counter(), None

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._ended = time.perf_counter()

    def seconds(self) -> float:
        if self._started is None:
            return self.before
        return self.before + ((self._ended or time.perf_counter()) - self._started)

    def state_dict(self) -> dict[str, float]:
        return {"fit_seconds": self.seconds(), "resumes": self.resumes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.before = float(state.get("fit_seconds", 0.0))
        self.resumes = int(state.get("resumes", 0)) + 1
