"""Held-out validation and test windows for the ExFM stream, early stopping, and the best weights.

What "validation" means in the stream (our definition; FuxiCTR and RecBole split data into train / valid / test,
RecBole by time): the last ``test_windows`` windows of the stream are the **test** set and the ``valid_windows``
windows before them the **validation** set. No model ever trains on them; the windows before them are the
training stream, processed as always (evaluate-then-train, one pass). After each training window every model
(the FM and every student, each on its vertical's rows) is scored on the whole validation set, which is the same
rows every time, so scores of different windows compare the same data. A *check* is one training window.

Early stopping (``EarlyStoppingSpec``): the monitored score improves when it beats the best so far by more than
``min_delta`` (up for AUC, down for log loss and NE); after ``patience`` checks in a row without improvement the
stream stops (``patience = 0``: never stop, only keep the best). With ``restore_best`` the system ends with the
weights it had after its best window (all networks together: one snapshot of the system), like Keras'
``restore_best_weights`` or FuxiCTR's reload of the best checkpoint. The best weights live in the streaming
trainer's per-window checkpoint (written atomically), so a run killed at any point resumes with them.

When the stream ends (or stops) the system is scored on three sets: ``train`` (the training windows up to the
window it ended with: the restored best one, or the last), ``valid`` and ``test``. Metrics are pooled over the
rows of each set (one AUC / log loss / NE over all of them, not a mean over windows) and reported as
``<set>/<model>/<metric>``: ``<model>`` is a student, ``foundation/all`` or ``foundation/<vertical>``, or
``serving``, the mean over verticals of each vertical's serving student. With drift the validation windows are
closest in time to the last training windows, so the best window is usually the last; early stopping then guards
against a run that diverges (e.g. a learning rate too high) rather than picking an early snapshot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np
import torch

from zoo.exfm.metrics import window_metrics

__all__ = ["EarlyStoppingSpec", "StreamValidation", "heldout_metrics"]

METRICS = ("auc", "logloss", "ne")


@dataclass
class EarlyStoppingSpec:
    monitor: str = "valid/serving/auc"  # valid/<model>/<auc|logloss|ne>; <model>: serving, a student, foundation/all, foundation/<vertical>
    mode: str = "auto"  # "max", "min", or "auto" (max for auc, min for logloss and ne)
    patience: int = 0  # checks (training windows) in a row without improvement before stopping; 0 = never stop
    min_delta: float = 0.0  # an improvement must beat the best score by more than this
    restore_best: bool = True  # end with the weights of the best window

    def __post_init__(self) -> None:
        parts = self.monitor.split("/")
        if len(parts) < 3 or parts[0] != "valid" or parts[-1] not in METRICS:
            raise ValueError(f"early stopping monitor must be 'valid/<model>/<auc|logloss|ne>', got {self.monitor!r}")
        if self.mode not in ("auto", "max", "min"):
            raise ValueError(f"early stopping mode must be 'auto', 'max' or 'min', got {self.mode!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 0:
            raise ValueError(f"early stopping patience must be an integer >= 0, got {self.patience!r}")
        if not (isinstance(self.min_delta, (int, float)) and self.min_delta >= 0):
            raise ValueError(f"early stopping min_delta must be a number >= 0, got {self.min_delta!r}")

    @property
    def direction(self) -> str:
        if self.mode != "auto":
            return self.mode
        return "max" if self.monitor.endswith("/auc") else "min"

    def improves(self, score: float, best: float | None) -> bool:
        if not np.isfinite(score):
            return False
        if best is None:
            return True
        return score > best + self.min_delta if self.direction == "max" else score < best - self.min_delta


def _encode(system: Any, table: Any) -> tuple[torch.Tensor, np.ndarray, dict[str, np.ndarray]]:
    ids = torch.from_numpy(system.config.features.encode(table, strict=False))
    labels = np.asarray(table.column("label").to_numpy(), dtype=np.float64)
    return ids, labels, system.memberships(table)


def heldout_metrics(system: Any, encoded: Iterable[tuple[torch.Tensor, np.ndarray, dict[str, np.ndarray]]], prefix: str) -> dict[str, float]:
    """``<prefix>/<model>/<metric>`` of every model on the rows of ``encoded`` (``_encode`` outputs), pooled."""
    config = system.config
    pooled: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def add(key: str, y: np.ndarray, z: np.ndarray) -> None:
        if len(y):
            labels, logits = pooled.setdefault(key, ([], []))
            labels.append(y)
            logits.append(z.astype(np.float32))  # float32 halves the memory of a long training set; metrics in float64

    was_training = system.training
    system.eval()
    for ids, y, memberships in encoded:
        foundation = system.predict_logits(ids, "foundation")
        add("foundation/all", y, foundation)
        for vertical, mask in memberships.items():
            add(f"foundation/{vertical}", y[mask], foundation[mask])
        for student in config.students:
            mask = memberships[student.vertical]
            if mask.any():
                add(student.name, y[mask], system.predict_logits(ids[torch.from_numpy(mask)], student.name))
    system.train(was_training)
    out: dict[str, float] = {}
    for key, (labels, logits) in pooled.items():
        measured = window_metrics(np.concatenate(labels), np.concatenate(logits).astype(np.float64))
        for metric in METRICS:
            out[f"{prefix}/{key}/{metric}"] = measured[metric]
        out[f"{prefix}/{key}/rows"] = measured["rows"]
    # the model serving each vertical, measured on that vertical's rows (a foundation model alone serves them all)
    serving = [name if name != "foundation" else f"foundation/{v.name}" for v, name in
               ((v, config.serving_student(v.name)) for v in config.verticals)]
    for metric in METRICS:
        values = [out[f"{prefix}/{name}/{metric}"] for name in serving if f"{prefix}/{name}/{metric}" in out]
        if values:
            out[f"{prefix}/serving/{metric}"] = float(np.mean(values))
    return out


def monitor_choices(config: Any) -> list[str]:
    models = ["serving", "foundation/all", *(f"foundation/{v.name}" for v in config.verticals), *(s.name for s in config.students)]
    return [f"valid/{m}/{metric}" for m in models for metric in METRICS]


class StreamValidation:
    """The held-out split of a stream, the validation curve, the early-stopping state and the best weights."""

    def __init__(self, system: Any, valid_windows: int = 0, test_windows: int = 0, early_stopping: EarlyStoppingSpec | None = None) -> None:
        for name, value in (("valid_windows", valid_windows), ("test_windows", test_windows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if early_stopping is not None and valid_windows < 1:
            raise ValueError(f"early stopping on {early_stopping.monitor!r} needs valid_windows >= 1, got {valid_windows}")
        if early_stopping is not None and early_stopping.monitor not in monitor_choices(system.config):
            raise ValueError(f"early stopping monitor {early_stopping.monitor!r} is not measured; choose one of "
                             f"valid/serving/<metric>, valid/foundation/all/<metric>, valid/foundation/<vertical>/<metric>, "
                             f"valid/<student>/<metric> with vertical in {[v.name for v in system.config.verticals]}, "
                             f"student in {[s.name for s in system.config.students]}, metric in {list(METRICS)}")
        self.system = system
        self.valid_windows, self.test_windows, self.spec = valid_windows, test_windows, early_stopping
        self.n_train: int | None = None  # windows [0, n_train) are the training stream
        self._source: Any = None  # the stream the held-out windows were encoded from
        self._valid: list[Any] = []
        self._test: list[Any] = []
        self.history: list[dict[str, float]] = []  # validation metrics after each training window
        self.best_score: float | None = None
        self.best_window: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.wait = 0
        self.stopped_window: int | None = None
        self.final: dict[str, float] = {}

    def key(self) -> dict[str, Any]:
        """What the checkpoint fingerprint must know about the split and the stopping rule."""
        return {"valid_windows": self.valid_windows, "test_windows": self.test_windows,
                "early_stopping": asdict(self.spec) if self.spec is not None else None}

    # -- the split ------------------------------------------------------------------------------------------------
    def prepare(self, windows: Any, start_window: int = 0) -> int:
        """Set the split from the stream's length and encode the held-out windows once; returns ``n_train``.

        ``windows`` must have a length; an indexable stream (a list, ``ArrowStream``) is read at the held-out
        positions only, any other iterable (``SyntheticStream``) is generated once up to its end for them."""
        if not hasattr(windows, "__len__"):
            raise ValueError("held-out validation / test windows need a stream with a length (a list, ArrowStream, SyntheticStream)")
        total = len(windows)
        n_train = total - self.valid_windows - self.test_windows
        if n_train <= start_window:
            raise ValueError(f"{total} windows leave no training window after start_window {start_window}, "
                             f"{self.valid_windows} validation and {self.test_windows} test windows")
        if self.n_train == n_train and self._source is windows:  # the same stream again (a resumed run): encoded already
            return n_train
        heldout = range(n_train, total)
        if hasattr(windows, "__getitem__"):
            tables = [windows[t] for t in heldout]
        else:
            tables = [table for t, table in enumerate(windows) if t >= n_train]
        encoded = [_encode(self.system, table) for table in tables]
        self._valid, self._test = encoded[:self.valid_windows], encoded[self.valid_windows:]
        self.n_train, self._source = n_train, windows
        return n_train

    @property
    def stopped(self) -> bool:
        return self.stopped_window is not None

    # -- after each training window -----------------------------------------------------------------------------
    def after_window(self, t: int) -> dict[str, float]:
        """Score the validation set with the weights after window ``t`` and update the early-stopping state."""
        if not self._valid:
            return {}
        metrics = heldout_metrics(self.system, self._valid, "valid")
        self.history.append({"window": float(t), **metrics})
        if self.spec is None:
            return metrics
        score = metrics.get(self.spec.monitor, float("nan"))
        if self.spec.improves(score, self.best_score):
            self.best_score, self.best_window, self.wait = float(score), t, 0
            if self.spec.restore_best:
                self.best_state = {k: v.detach().clone() for k, v in self.system.state_dict().items()}
        else:
            self.wait += 1
            if self.spec.patience and self.wait >= self.spec.patience:
                self.stopped_window = t
        return metrics

    # -- the end of the stream --------------------------------------------------------------------------------
    def finish(self, windows: Any, start_window: int, last_window: int) -> dict[str, float]:
        """Restore the best weights (if asked), then measure train / valid / test with the final weights."""
        ended = last_window
        if self.spec is not None and self.spec.restore_best and self.best_state is not None:
            self.system.load_state_dict(self.best_state)
            ended = int(self.best_window)
        train = range(start_window, ended + 1)
        if hasattr(windows, "__getitem__"):
            tables: Iterable[Any] = (windows[t] for t in train)
        else:
            tables = (table for t, table in enumerate(windows) if start_window <= t <= ended)
        final = heldout_metrics(self.system, (_encode(self.system, table) for table in tables), "train")
        if self._valid:
            final.update(heldout_metrics(self.system, self._valid, "valid"))
        if self._test:
            final.update(heldout_metrics(self.system, self._test, "test"))
        final["split/train_windows"] = float(len(train))
        final["split/valid_windows"] = float(self.valid_windows)
        final["split/test_windows"] = float(self.test_windows)
        final["split/ended_window"] = float(ended)
        if self.spec is not None and self.best_window is not None:
            final["early_stopping/best_window"] = float(self.best_window)
            final["early_stopping/best_score"] = float(self.best_score)
        if self.stopped_window is not None:
            final["early_stopping/stopped_window"] = float(self.stopped_window)
        self.final = final
        return final

    def report(self) -> str:
        """Markdown for the model card: the split, the stopping rule and the validation curve."""
        n = self.n_train if self.n_train is not None else 0
        valid, test = list(range(n, n + self.valid_windows)), list(range(n + self.valid_windows, n + self.valid_windows + self.test_windows))
        lines = [f"Held out, never trained on: validation window(s) {valid or 'none'}, test window(s) {test or 'none'}; "
                 f"the training windows end at window {n - 1}. After each training window every model is scored on the "
                 "validation set (the same rows each time)."]
        if self.spec is not None:
            s = self.spec
            lines.append(f"Early stopping on `{s.monitor}` ({s.direction}imise, patience {s.patience or 'off'}, min_delta {s.min_delta:g}, "
                         f"restore_best {str(s.restore_best).lower()}): best window {self.best_window} "
                         f"({self.best_score:.6g})" + (f", stopped after window {self.stopped_window}." if self.stopped else ", never stopped.")
                         if self.best_score is not None else f"Early stopping on `{s.monitor}`: no finite score was measured.")
        if self.history:
            key = self.spec.monitor if self.spec is not None else "valid/serving/auc"
            lines += ["", f"| after window | {key} |", "|---|---|"]
            lines += [f"| {int(h['window'])} | {h.get(key, float('nan')):.6g} |" for h in self.history]
        return "\n".join(lines)

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "best_score": self.best_score, "best_window": self.best_window,
                "best_state": self.best_state, "wait": self.wait, "stopped_window": self.stopped_window}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"])
        self.best_score, self.best_window = state["best_score"], state["best_window"]
        self.best_state, self.wait, self.stopped_window = state["best_state"], int(state["wait"]), state["stopped_window"]
