"""Held-out validation / test windows, early stopping and the restored best weights (zoo.exfm.validation)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from zoo._core.registry import preset_config
from zoo.exfm import ExFMSystem, StreamingTrainer, make_synthetic_stream
from zoo.exfm.metrics import auc, log_loss, window_metrics
from zoo.exfm.validation import EarlyStoppingSpec

MONITOR = "valid/foundation/all/logloss"


def poisoned_windows():
    """7 windows of 500 rows: 0-2 as generated, 3-4 with every label set to 1 (training on them makes the models
    predict clicks everywhere, so the validation log loss gets worse), 5 validation, 6 test."""
    windows = list(make_synthetic_stream(n_rows=3500, n_windows=7, drift=0.0, seed=0, users_active=60, items_active=30))
    for t in (3, 4):
        table = windows[t]
        windows[t] = table.set_column(table.column_names.index("label"), "label", pa.array(np.ones(table.num_rows, dtype=np.int64)))
    return windows


def system() -> ExFMSystem:
    return ExFMSystem(preset_config("exfm_synthetic_tiny"))


def weights(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_early_stopping_restores_the_weights_of_the_best_window():
    windows = poisoned_windows()
    trainer = StreamingTrainer(system(), valid_windows=1, test_windows=1, early_stopping=EarlyStoppingSpec(MONITOR))
    trainer.run(windows, stop_after=5)  # every training window, without the end of the stream (run's finish) yet
    last = weights(trainer.system)
    trainer.finish(windows)
    curve = [h[MONITOR] for h in trainer.validation.history]
    assert len(curve) == 5 and trainer.next_window == 5  # windows 5 and 6 were never trained on
    best = trainer.validation.best_window
    assert best == int(np.argmin(curve)) and best < 4 and curve[-1] > curve[best]  # the last window is worse than the best
    # the weights after the best window, from a plain run that stops there
    reference = StreamingTrainer(system())
    reference.run(windows, stop_after=best + 1)
    restored, expected = weights(trainer.system), weights(reference.system)
    assert restored.keys() == expected.keys() and all(torch.equal(restored[k], expected[k]) for k in expected)
    assert not all(torch.equal(restored[k], last[k]) for k in last)  # restoring changed the weights
    summary = trainer.summary()
    assert summary[MONITOR] == pytest.approx(curve[best], abs=1e-12)  # the restored weights score the best window's score
    assert summary["early_stopping/best_window"] == best and summary["split/ended_window"] == best
    assert summary["split/train_windows"] == best + 1 and "early_stopping/stopped_window" not in summary  # patience 0: never stops
    for split in ("train", "valid", "test"):
        for metric in ("auc", "logloss", "ne"):
            assert np.isfinite(summary[f"{split}/foundation/all/{metric}"]) and np.isfinite(summary[f"{split}/serving/{metric}"])


def test_patience_stops_the_stream_and_a_killed_run_resumes_with_the_best(tmp_path):
    windows = poisoned_windows()
    spec = EarlyStoppingSpec(MONITOR, patience=1)
    whole = StreamingTrainer(system(), valid_windows=1, test_windows=1, early_stopping=spec)
    whole.run(windows)
    best = whole.validation.best_window
    assert whole.validation.stopped_window == best + 1 and whole.next_window == best + 2  # one worse window, then stop
    killed = StreamingTrainer(system(), tmp_path, valid_windows=1, test_windows=1, early_stopping=spec)
    killed.run(windows, stop_after=best + 1)  # killed right after the best window's checkpoint
    resumed = StreamingTrainer(system(), tmp_path, valid_windows=1, test_windows=1, early_stopping=spec)
    assert resumed.next_window == best + 1 and resumed.validation.best_window == best
    resumed.run(windows)
    assert resumed.validation.stopped_window == best + 1
    a, b = weights(whole.system), weights(resumed.system)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.summary() == whole.summary()


def test_metrics_are_pooled_over_the_held_out_rows():
    windows = list(make_synthetic_stream(n_rows=2400, n_windows=6, drift=0.1, seed=1, users_active=60, items_active=30))
    trainer = StreamingTrainer(system(), valid_windows=2, test_windows=1)
    trainer.run(windows)
    summary, model = trainer.summary(), trainer.system
    assert summary["split/train_windows"] == 3 and summary["split/ended_window"] == 2 and trainer.next_window == 3
    valid = windows[3:5]
    logits = np.concatenate([model.predict_logits(torch.from_numpy(model.config.features.encode(w, strict=False)), "foundation") for w in valid])
    labels = np.concatenate([w.column("label").to_numpy() for w in valid]).astype(float)
    assert summary["valid/foundation/all/auc"] == pytest.approx(auc(labels, logits), abs=1e-6)
    assert summary["valid/foundation/all/logloss"] == pytest.approx(log_loss(labels, logits), abs=1e-6)
    assert summary["valid/foundation/all/rows"] == 800
    serving = [model.config.serving_student(v.name) for v in model.config.verticals]
    assert summary["test/serving/auc"] == pytest.approx(np.mean([summary[f"test/{s}/auc"] for s in serving]))


def test_tiny_hand_computed_auc_and_logloss():
    labels = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.9, 0.8, 0.3, 0.1])
    logits = np.log(p / (1 - p))
    # positive-negative pairs: (0.9 > 0.8), (0.9 > 0.1), (0.3 < 0.8), (0.3 > 0.1): 3 of 4 ordered correctly
    measured = window_metrics(labels, logits)
    assert measured["auc"] == pytest.approx(0.75)
    assert measured["logloss"] == pytest.approx(-(np.log(0.9) + np.log(0.2) + np.log(0.3) + np.log(0.9)) / 4, rel=1e-12)
    assert measured["ne"] == pytest.approx(measured["logloss"] / np.log(2), rel=1e-12)  # base rate 1/2: H = ln 2


def test_bad_settings_fail_with_one_line_errors():
    for kwargs, match in [
        (dict(monitor="val/serving/auc"), r"monitor must be 'valid/<model>/<auc\|logloss\|ne>', got 'val/serving/auc'"),
        (dict(monitor="valid/serving/accuracy"), r"got 'valid/serving/accuracy'"),
        (dict(mode="maximum"), r"mode must be 'auto', 'max' or 'min', got 'maximum'"),
        (dict(patience=-1), r"patience must be an integer >= 0, got -1"),
        (dict(min_delta=-0.1), r"min_delta must be a number >= 0, got -0.1"),
    ]:
        with pytest.raises(ValueError, match=match) as info:
            EarlyStoppingSpec(**kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"needs valid_windows >= 1, got 0"):
        StreamingTrainer(system(), test_windows=1, early_stopping=EarlyStoppingSpec())
    with pytest.raises(ValueError, match=r"monitor 'valid/zz_alone/auc' is not measured"):
        StreamingTrainer(system(), valid_windows=1, early_stopping=EarlyStoppingSpec("valid/zz_alone/auc"))
    with pytest.raises(ValueError, match=r"4 windows leave no training window"):
        StreamingTrainer(system(), valid_windows=2, test_windows=2).run(list(make_synthetic_stream(400, 4, users_active=20, items_active=10)))
    assert EarlyStoppingSpec("valid/a_alone/auc").direction == "max" and EarlyStoppingSpec("valid/a_alone/ne").direction == "min"


def test_lightning_side_holds_out_the_windows_and_checks_the_callback():
    from zoo.exfm.module import ExFMStreamData, StreamEarlyStopping

    data = ExFMStreamData(n_rows=1200, n_windows=6, valid_windows=1, test_windows=2, stream_options={"users_active": 20, "items_active": 10})
    assert [int(t) for t in data.train_dataloader()] == [0, 1, 2]  # windows 3-5 are never training steps
    assert '"valid_windows": 1' in data.data_key() and '"valid_windows"' not in ExFMStreamData(n_windows=6).data_key()
    with pytest.raises(ValueError, match=r"valid_windows \(3\) and test_windows \(3\) must be >= 0 and leave a training window"):
        ExFMStreamData(n_windows=6, valid_windows=3, test_windows=3)
    with pytest.raises(ValueError, match=r"patience must be an integer >= 0, got 1.5"):
        StreamEarlyStopping(patience=1.5)
    assert StreamEarlyStopping("valid/foundation/all/logloss").spec.direction == "min"
