"""``ExFMSystem``: one foundation model and its vertical students as a ZooModule; the stream DataModule.

The system is pushed to the hub as one repo (``config.json`` carries the feature spec, the verticals and the
students; ``model.safetensors`` the FM, every student and every Student Adapter). ``system.score(rows)`` turns raw
rows (a dict of columns, a pandas DataFrame or an Arrow table) into click probabilities of a vertical's serving
student, so ``zoo.from_pretrained`` gives a model that scores raw rows. Only the serving head is used to score;
auxiliary heads and adapters are training-time parts (serving cost unchanged [paper]).

Under ``zoo run`` (LightningCLI ``fit``), one training step = one window: ``training_step`` hands the window to
the ``StreamingTrainer`` (manual optimisation; the trainer owns the optimizers and the per-window checkpoints in
``data.checkpoint_dir``, so a killed run resumes where it stopped). ``max_epochs: 1`` = single pass. Under DDP
every rank gets every window and the streaming trainer splits each optimizer step's batch across the ranks.

Validation (``zoo.exfm.validation``): ``data.valid_windows`` / ``data.test_windows`` hold out the stream's last
windows; a ``StreamEarlyStopping`` callback in ``trainer.callbacks`` stops the stream on a validation score and
restores the best window's weights. Lightning's own ``EarlyStopping`` / ``ModelCheckpoint`` check at epoch or
validation-loop ends and keep Lightning checkpoints, while the whole stream is one epoch and its state (optimizers,
FM snapshots, DAS log) lives in the streaming trainer's per-window checkpoints, so the callback hands its rule to
the streaming trainer, which checks after every window and keeps the best weights in those checkpoints.
"""

from __future__ import annotations

import dataclasses
import json

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from zoo._core.module import ZooModule
from zoo.exfm.config import ExFMConfig
from zoo.exfm.model import CTRNetwork, StudentAdapter

__all__ = ["ExFMStreamData", "ExFMSystem", "StreamEarlyStopping", "stream_evaluation"]


def _heads(distillation: str) -> tuple[str, ...]:
    return {"none": ("serving",), "plain": ("serving",), "auxiliary_head": ("serving", "auxiliary"),
            "auxiliary_head_adapter": ("serving", "auxiliary", "adapter")}[distillation]


class ExFMSystem(ZooModule):
    """External distillation: an FM trained on the whole stream and N vertical students (see ``zoo.exfm``)."""

    config_class = ExFMConfig
    card_template = "exfm"

    def __init__(self, config: ExFMConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        sizes, f, s = c.features.field_sizes, c.foundation, c.student
        with torch.random.fork_rng(devices=[]):  # initial weights fixed by config.seed, global RNG untouched
            torch.manual_seed(c.seed)
            self.foundation = CTRNetwork(sizes, f.architecture, f.embedding_dim, f.cross_layers, f.hidden, linear_init=f.linear_init)
            self.students = nn.ModuleDict({
                spec.name: CTRNetwork(sizes, s.architecture, s.embedding_dim, s.cross_layers, s.hidden, heads=_heads(spec.distillation),
                                      linear_init=s.linear_init)
                for spec in c.students
            })
            self.adapters = nn.ModuleDict({
                spec.name: StudentAdapter(c.adapter_hidden) for spec in c.students if spec.distillation == "auxiliary_head_adapter"
            })
        self.automatic_optimization = False
        self.stream_trainer: Any = None

    # -- inference ------------------------------------------------------------------------------------------------
    def network(self, model: str) -> CTRNetwork:
        if model == "foundation":
            return self.foundation
        if model in self.students:
            return self.students[model]
        raise ValueError(f"unknown model {model!r}; choose 'foundation' or a student: {list(self.students)}")

    def forward(self, ids: torch.Tensor, model: str = "foundation") -> torch.Tensor:
        """Serving-head logits [batch] of ``model`` for encoded ids [batch, fields]."""
        return self.network(model)(ids, "serving")

    @torch.inference_mode()
    def predict_logits(self, ids: torch.Tensor, model: str, batch_size: int = 8192) -> np.ndarray:
        network = self.network(model)
        parts = [network(ids[i:i + batch_size], "serving") for i in range(0, len(ids), batch_size)]
        return torch.cat(parts).double().numpy() if parts else np.zeros(0)

    def score(self, rows: Any, vertical: str | None = None, model: str | None = None) -> np.ndarray:
        """Click probabilities of raw rows.

        Args:
            rows: raw columns (dict / DataFrame / Arrow table) holding every feature of ``config.features``;
                extra columns must be among its ``passthrough`` names, else ValueError.
            vertical: score with that vertical's serving student (default: the first vertical).
            model: or name a model directly ("foundation" or a student); overrides ``vertical``.
        """
        if model is None:
            vertical = vertical or self.config.verticals[0].name
            self.config.vertical(vertical)  # KeyError naming the choices
            model = self.config.serving_student(vertical)
        ids = torch.from_numpy(self.config.features.encode(rows, strict=True))
        was_training = self.training
        self.eval()
        logits = self.predict_logits(ids, model)
        self.train(was_training)
        return 1.0 / (1.0 + np.exp(-logits))

    def memberships(self, table: Any) -> dict[str, np.ndarray]:
        """Vertical name -> boolean row mask (``vertical_mask & vertical.mask != 0``)."""
        names = table.column_names if hasattr(table, "column_names") else list(table.keys())
        if "vertical_mask" not in names:
            raise ValueError("rows need a 'vertical_mask' column (int64 bitmask) to be assigned to verticals")
        column = table["vertical_mask"]
        mask = np.asarray(column.to_numpy() if hasattr(column, "to_numpy") else column, dtype=np.int64)
        return {v.name: (mask & np.int64(v.mask)) != 0 for v in self.config.verticals}

    # -- Lightning: one step = one window ----------------------------------------------------------------------
    def on_train_start(self) -> None:
        from zoo.exfm.stream import StreamingTrainer

        datamodule = self.trainer.datamodule
        checkpoint_dir = getattr(datamodule, "checkpoint_dir", None)
        stopping = [c for c in self.trainer.callbacks if isinstance(c, StreamEarlyStopping)]
        if len(stopping) > 1:
            raise ValueError(f"at most one StreamEarlyStopping callback, got {len(stopping)}")
        self.stream_trainer = StreamingTrainer(
            self, checkpoint_dir, progress=False, data_key=datamodule.data_key(), start_window=datamodule.start_window,
            valid_windows=getattr(datamodule, "valid_windows", 0), test_windows=getattr(datamodule, "test_windows", 0),
            early_stopping=stopping[0].spec if stopping else None,
            precision=_stream_precision(str(self.trainer.precision)),
        )
        if self.stream_trainer.validation is not None:
            self.stream_trainer.validation.prepare(datamodule.windows(), datamodule.start_window)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        t = int(batch)
        if t < self.stream_trainer.next_window or self.stream_trainer.stopped:  # done before a resume, or stopped early
            self.trainer.should_stop = self.stream_trainer.stopped
            return None
        # Lightning's precision plugin wraps this step in its own autocast; switched off here so that the streaming
        # trainer's regions alone decide what runs in bf16 (the same computation as StreamingTrainer used directly)
        with torch.autocast(self.device.type, enabled=False):
            self.stream_trainer.process_window(t, self.trainer.datamodule.window(t))
        summary = [r for r in self.stream_trainer.history if r["window"] == t and r["model"] != "foundation"]
        if summary:
            self.log("window_ne", float(np.mean([r["ne"] for r in summary])), prog_bar=True, batch_size=1)
        validation = self.stream_trainer.validation
        if validation is not None and validation.history and validation.spec is not None:
            self.log(validation.spec.monitor.replace("/", "_"), validation.history[-1].get(validation.spec.monitor, float("nan")),
                     prog_bar=True, batch_size=1)
        self.trainer.should_stop = self.stream_trainer.stopped
        return None

    def on_train_end(self) -> None:
        if self.stream_trainer is not None and self.stream_trainer.validation is not None:
            self.stream_trainer.finish(self.trainer.datamodule.windows())
            self.card_reports["Validation and early stopping"] = self.stream_trainer.validation.report()

    def configure_optimizers(self) -> Any:
        return None  # the StreamingTrainer owns one Adam per network (state carried across windows)


def _stream_precision(lightning_precision: str) -> str:
    """The streaming trainer's precision for a Lightning ``--trainer.precision``: float32 and float64 runs map to
    "32-true" (a float64 system stays float64), "bf16-mixed" to itself; others (16-mixed has no gradient scaler in
    the stream's own loop; the "-true" half precisions would cast the weights) are refused."""
    if lightning_precision in ("32-true", "64-true"):
        return "32-true"
    if lightning_precision == "bf16-mixed":
        return "bf16-mixed"
    raise ValueError(f"ExFM streams train in precision '32-true', '64-true' or 'bf16-mixed', got {lightning_precision!r}")


class _WindowIndex(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class ExFMStreamData(L.LightningDataModule):
    """Windows of a synthetic stream or of MovieLens-100K, in time order; one batch = one window index.

    Args:
        source: ``"synthetic"`` or ``"ml100k"``.
        n_rows, n_windows, drift, seed: the synthetic stream (``make_synthetic_stream``); n_windows also cuts ML-100K.
        stream_options: other ``SyntheticStream`` fields.
        path: ML-100K folder (default: located, see ``find_movielens_100k``).
        label: ML-100K click label, ``"rating>=4"`` or ``"rating==5"``.
        cache_dir: write the synthetic stream there as an Arrow file and memory-map it (None: keep windows in memory).
        valid_windows, test_windows: the stream's last windows held out as validation and test sets (never trained
            on; ``zoo.exfm.validation``): training ends before them, and the evaluation reports train / valid / test.
        checkpoint_dir: per-window checkpoints of the streaming trainer (None: none; a run cannot resume).
        start_window: train (and evaluate) from this window on; the windows before it are the past of a system
            started from a pushed model (``zoo.init_from``). The synthetic stream's windows depend only on
            ``(seed, window)`` and its running statistics on the windows before, so a longer stream with the same
            window size continues a shorter one exactly: windows 0..11 of 360,000 rows in 18 windows are those of
            240,000 rows in 12.
    """

    def __init__(self, source: str = "synthetic", n_rows: int = 20_000, n_windows: int = 10, drift: float = 0.1, seed: int = 0,
                 stream_options: dict[str, Any] | None = None, path: str | None = None, label: str = "rating>=4",
                 cache_dir: str | None = None, checkpoint_dir: str | None = None, start_window: int = 0,
                 valid_windows: int = 0, test_windows: int = 0) -> None:
        super().__init__()
        if source not in ("synthetic", "ml100k"):
            raise ValueError(f"source must be 'synthetic' or 'ml100k', got {source!r}")
        if not 0 <= start_window < n_windows:
            raise ValueError(f"start_window must lie in [0, n_windows={n_windows}), got {start_window}")
        if min(valid_windows, test_windows) < 0 or start_window + valid_windows + test_windows >= n_windows:
            raise ValueError(f"valid_windows ({valid_windows}) and test_windows ({test_windows}) must be >= 0 and leave a training "
                             f"window in [start_window={start_window}, n_windows={n_windows})")
        self.start_window, self.valid_windows, self.test_windows = start_window, valid_windows, test_windows
        self.source, self.n_rows, self.n_windows, self.drift, self.seed = source, n_rows, n_windows, drift, seed
        self.stream_options = dict(stream_options or {})
        self.path, self.label, self.cache_dir, self.checkpoint_dir = path, label, cache_dir, checkpoint_dir
        self._windows: Any = None

    def _build(self) -> Any:
        from zoo.exfm.data import ArrowStream, load_movielens_100k, make_synthetic_stream, write_arrow_stream

        if self.source == "ml100k":
            return load_movielens_100k(self.path, n_windows=self.n_windows, label=self.label)
        stream = make_synthetic_stream(self.n_rows, self.n_windows, self.drift, self.seed, **self.stream_options)
        if self.cache_dir is None:
            return list(stream)
        # every field of the generator, defaults included: a changed default never reuses an older cache file
        key = "synthetic-" + "-".join(f"{k}={v}" for k, v in sorted(dataclasses.asdict(stream).items()))
        file = Path(self.cache_dir) / f"{key}.arrow"
        if not file.is_file():
            write_arrow_stream(stream, file, progress=True)
        return ArrowStream(file)

    def data_key(self) -> str:
        """What identifies this stream (the checkpoint fingerprint's data part)."""
        return json.dumps({"source": self.source, "n_rows": self.n_rows, "n_windows": self.n_windows, "drift": self.drift,
                           "seed": self.seed, "stream_options": self.stream_options, "path": self.path, "label": self.label,
                           "start_window": self.start_window,
                           **({"valid_windows": self.valid_windows, "test_windows": self.test_windows}
                              if self.valid_windows or self.test_windows else {})}, sort_keys=True, default=str)

    def setup(self, stage: str | None = None) -> None:
        if self._windows is None:
            self._windows = self._build()

    def window(self, t: int) -> Any:
        self.setup()
        return self._windows[t]

    def windows(self) -> Any:
        self.setup()
        return self._windows

    def train_dataloader(self) -> Any:
        self.setup()
        training_end = len(self._windows) - self.valid_windows - self.test_windows  # held-out windows are never trained on
        windows = torch.utils.data.Subset(_WindowIndex(len(self._windows)), range(self.start_window, training_end))
        # every rank takes every window (the streaming trainer splits each window's batches across ranks itself);
        # Lightning leaves a DistributedSampler as it is, so this one-replica sampler is not swapped for a sharding one
        sampler = torch.utils.data.DistributedSampler(windows, num_replicas=1, rank=0, shuffle=False)
        return torch.utils.data.DataLoader(windows, batch_size=None, sampler=sampler)


class StreamEarlyStopping(L.Callback):
    """Early stopping for the ExFM stream, with the best window's weights restored (``zoo.exfm.validation``).

    Put it in a recipe's ``trainer.callbacks`` together with ``data.valid_windows >= 1``::

        trainer:
          callbacks:
            - class_path: zoo.exfm.module.StreamEarlyStopping
              init_args: {monitor: valid/serving/auc, patience: 2, min_delta: 0.0}

    Args:
        monitor: ``valid/<model>/<auc|logloss|ne>``; ``<model>``: ``serving`` (mean over verticals of the serving
            students), a student name, ``foundation/all`` or ``foundation/<vertical>``.
        mode: ``"max"``, ``"min"`` or ``"auto"`` (max for AUC, min for log loss and NE).
        patience: training windows in a row without improvement before the stream stops (0: never stop early).
        min_delta: how much a score must beat the best one to count as an improvement.
        restore_best: end with the weights of the best window (else: of the last one).
    """

    def __init__(self, monitor: str = "valid/serving/auc", mode: str = "auto", patience: int = 0, min_delta: float = 0.0,
                 restore_best: bool = True) -> None:
        from zoo.exfm.validation import EarlyStoppingSpec

        self.spec = EarlyStoppingSpec(monitor, mode, patience, min_delta, restore_best)


def stream_evaluation(model: ExFMSystem, datamodule: Any, trainer: Any) -> dict[str, float]:
    """``zoo run`` evaluation: the progressive-validation metrics measured during the stream (evaluate-then-train),
    averaged over windows >= ``evaluation_start_window``, plus DAS call counts and transfer ratios.

    A system not trained in this run (the parent of a continued run, ``zoo.init_from``) is scored frozen on the same
    windows (from ``datamodule.start_window`` on) and trains on none: the same metrics of a model that stopped
    learning, beside the child that kept learning."""
    if getattr(model, "stream_trainer", None) is None:
        from zoo.exfm.stream import StreamingTrainer

        frozen = StreamingTrainer(model)
        frozen.evaluate_only(datamodule.windows(), getattr(datamodule, "start_window", 0))
        return frozen.summary()
    return model.stream_trainer.summary()
