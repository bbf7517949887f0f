"""The streaming loop: DAS sharing and staleness, evaluate-then-train, bit-exact resume after a kill, bad rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest
import torch

import zoo
from zoo.exfm import ExFMSystem, StreamingTrainer, make_synthetic_stream
from zoo.exfm.config import StudentSpec
from zoo.exfm.metrics import window_metrics
from zoo._core.registry import preset_config

STREAM = dict(n_rows=2400, n_windows=4, drift=0.1, seed=0, users_active=60, items_active=30)


def tiny_system(**overrides) -> ExFMSystem:
    config = preset_config("exfm_synthetic_tiny", **overrides)
    return ExFMSystem(config)


def windows():
    return list(make_synthetic_stream(**STREAM))


def test_das_scores_each_example_once_for_all_verticals():
    system = tiny_system()
    trainer = StreamingTrainer(system)
    scored = []
    trainer.annotator.register_forward_hook(lambda module, args, out: scored.append(args[0].shape[0]))
    data = windows()
    trainer.run(data)
    union = [int((system.memberships(w)["a"] | system.memberships(w)["b"]).sum()) for w in data]
    sizes = [int(system.memberships(w)["a"].sum() + system.memberships(w)["b"].sum()) for w in data]
    # k = 1: window 0 has no snapshot yet; windows 1..3 are scored once per row of the union of a and b
    assert trainer.das.calls == sum(scored) == sum(union[1:])
    assert trainer.das.naive_calls == sum(sizes[1:]) > trainer.das.calls  # the verticals overlap
    # 8 students (4 arms x 2 verticals) share those calls; the snapshot used for window t is t - 1
    assert [(r["window"], r["snapshot"]) for r in trainer.das.log] == [(1, 0), (2, 1), (3, 2)]


def test_das_logs_the_snapshot_predictions_as_columns():
    system = tiny_system(students=(StudentSpec("a_ah", "a", "auxiliary_head", staleness=2), StudentSpec("b_ah", "b", "auxiliary_head", staleness=0)), serving_students=())
    trainer = StreamingTrainer(system)
    data = windows()
    trainer.run(data[:3])
    ids = torch.from_numpy(system.config.features.encode(data[2], strict=False))
    table = trainer._annotate(2, data[2], ids, system.memberships(data[2]))
    assert table["fm_snapshot_k2"][0].as_py() == 0 and table["fm_snapshot_k0"][0].as_py() == 2
    reference = ExFMSystem(system.config).foundation.double()
    reference.load_state_dict(trainer.snapshots[0])
    a = system.memberships(data[2])["a"]
    with torch.no_grad():
        expected = reference(ids[torch.from_numpy(a)].long()).numpy()
    np.testing.assert_allclose(table["fm_logit_k2"].to_numpy()[a], expected, rtol=1e-5, atol=1e-5)
    assert np.isnan(table["fm_logit_k2"].to_numpy()[~a]).all()  # rows no k=2 vertical needs are not scored


def test_windows_are_scored_before_training_on_them():
    system = tiny_system()
    initial = ExFMSystem(system.config)
    trainer = StreamingTrainer(system)
    data = windows()
    trainer.run(data[:1])
    ids = torch.from_numpy(system.config.features.encode(data[0], strict=False))
    y = data[0]["label"].to_numpy().astype(float)
    record = next(r for r in trainer.history if r["model"] == "foundation" and r["traffic"] == "all")
    assert record["ne"] == pytest.approx(window_metrics(y, initial.predict_logits(ids, "foundation"))["ne"], rel=1e-12)
    trained = window_metrics(y, system.predict_logits(ids, "foundation"))["ne"]
    assert trained < record["ne"]  # training on the window changed (improved) the FM


def test_resume_after_a_stop_is_bit_exact(tmp_path):
    data = windows()
    full = StreamingTrainer(tiny_system(), tmp_path / "full")
    full.run(data)
    first = StreamingTrainer(tiny_system(), tmp_path / "resumed")
    first.run(data, stop_after=2)
    assert first.next_window == 2
    second = StreamingTrainer(tiny_system(), tmp_path / "resumed")  # a new process would start like this
    assert second.next_window == 2
    second.run(data)
    a, b = full.system.state_dict(), second.system.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert full.history == second.history
    assert full.foundation_optimizer.state_dict()["state"][0]["exp_avg"].equal(second.foundation_optimizer.state_dict()["state"][0]["exp_avg"])
    assert len(list((tmp_path / "full").glob("window-*.pt"))) == 2  # keeps the newest two


@pytest.mark.slow  # two fresh interpreters: about 30 s idle, minutes on a loaded machine
def test_resume_after_sigkill_is_bit_exact(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys, torch
        from zoo._core.registry import preset_config
        from zoo.exfm import ExFMSystem, StreamingTrainer, make_synthetic_stream
        torch.set_num_threads(1)
        data = list(make_synthetic_stream(**{STREAM!r}))
        trainer = StreamingTrainer(ExFMSystem(preset_config("exfm_synthetic_tiny")), sys.argv[1])
        kill = sys.argv[2] == "kill"
        for t, window in enumerate(data):
            if t < trainer.next_window:
                continue
            trainer.process_window(t, window)
            if kill and t == 1:
                os.kill(os.getpid(), signal.SIGKILL)
        torch.save(trainer.system.state_dict(), sys.argv[3])
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(p) for p in sys.path if p])}
    run = lambda *args: subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env, timeout=240)
    assert run(tmp_path / "ck", "kill", tmp_path / "x.pt").returncode == -signal.SIGKILL
    assert not (tmp_path / "x.pt").exists() and [p.name[:13] for p in sorted((tmp_path / "ck").glob("*.pt"))] == ["window-000000", "window-000001"]
    assert run(tmp_path / "ck", "resume", tmp_path / "resumed.pt").returncode == 0
    straight = StreamingTrainer(tiny_system())  # the same run without a kill, in this process (single thread too)
    straight.run(windows())
    a = torch.load(tmp_path / "resumed.pt", weights_only=True)
    b = straight.system.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in b)


def test_bad_rows_give_clear_errors():
    system = tiny_system()
    window = windows()[0]
    with pytest.raises(ValueError, match="unknown column"):
        system.score(window.append_column("typo", pa.array(np.zeros(window.num_rows))))
    user = window["user_id"].to_numpy().copy()
    user[3] = -1
    with pytest.raises(ValueError, match="negative id -1 at row 3"):
        system.score(window.set_column(0, "user_id", pa.array(user)))
    with pytest.raises(ValueError, match="NaN"):
        system.score(window.set_column(0, "user_id", pa.array(np.where(np.arange(len(user)) == 2, np.nan, 1.0))))
    with pytest.raises(ValueError, match="vertical_mask"):
        StreamingTrainer(system).process_window(0, window.drop_columns(["vertical_mask"]))
    labels = window["label"].to_numpy().copy()
    labels[0] = 2
    with pytest.raises(ValueError, match="label must be 0 or 1"):
        StreamingTrainer(system).process_window(0, window.set_column(window.column_names.index("label"), "label", pa.array(labels)))
    with pytest.raises(ValueError, match="expected window 0"):
        StreamingTrainer(system).process_window(1, window)
    with pytest.raises(KeyError, match="no vertical 'c'"):
        system.score(window, vertical="c")


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="distillation must be one of"):
        StudentSpec("x", "a", "cotrain")
    with pytest.raises(ValueError, match="staleness must be >= 0, got -1"):
        StudentSpec("x", "a", staleness=-1)
    with pytest.raises(ValueError, match="has vertical 'zz'"):
        preset_config("exfm_synthetic_tiny", students=(StudentSpec("x", "zz"),))
    with pytest.raises(ValueError, match="architecture"):
        preset_config("exfm_synthetic_tiny").foundation.__class__(architecture="mlp")


@pytest.mark.parametrize("preset", ["exfm_synthetic_tiny", "exfm_deepfm_tiny", "exfm_ml100k_tiny", "exfm_synthetic", "exfm_ml100k"])
def test_presets_build_and_the_fm_is_larger_than_a_vm(preset):
    system = zoo.create(preset)
    fm = sum(p.numel() for p in system.foundation.parameters())
    vm = sum(p.numel() for p in next(iter(system.students.values())).parameters())
    assert fm > 4 * vm
    assert preset in zoo.list_models("exfm_*")


def test_save_load_round_trip_scores_raw_rows(tmp_path):
    system = tiny_system()
    data = windows()
    StreamingTrainer(system).run(data[:2])
    system.save_pretrained(tmp_path / "m", metrics={"a_ah_sa/ne": 0.9})
    loaded = zoo.from_pretrained(tmp_path / "m")
    assert isinstance(loaded, ExFMSystem) and loaded.config == system.config
    raw = data[3].select(["user_id", "item_id", "item_category", "user_segment", "hour", "user_count", "item_count", "user_click_mean", "item_click_mean"])
    for vertical in ("a", "b"):
        np.testing.assert_array_equal(loaded.score(raw, vertical=vertical), system.score(raw, vertical=vertical))
    assert not np.array_equal(loaded.score(raw, vertical="a"), loaded.score(raw, model="foundation"))


def test_a_checkpoint_of_another_config_or_stream_is_set_aside(tmp_path, capsys):
    data = windows()
    StreamingTrainer(tiny_system(), tmp_path, data_key="stream A").run(data, stop_after=2)
    first = sorted(p.name for p in tmp_path.glob("window-*.pt"))
    again = StreamingTrainer(tiny_system(), tmp_path, data_key="stream A")
    assert again.next_window == 2  # same config and stream: resumed
    other_stream = StreamingTrainer(tiny_system(), tmp_path, data_key="stream B")
    assert other_stream.next_window == 0 and "belong to another config or stream" in capsys.readouterr().err
    stale = tmp_path / f"stale-{first[0].split('-')[2].removesuffix('.pt')}"
    assert sorted(p.name for p in stale.glob("*.pt")) == first  # kept, never loaded, never mixed
    other_seed = StreamingTrainer(tiny_system(seed=1), tmp_path, data_key="stream A")
    assert other_seed.next_window == 0
    with pytest.raises(ValueError, match="is never loaded"):
        other_seed.load_state_dict(torch.load(stale / first[-1], weights_only=True))


def test_start_window_continues_a_trained_system():
    data = windows()
    full = StreamingTrainer(tiny_system())
    full.run(data[:2])
    continued = StreamingTrainer(full.system, start_window=2)
    assert continued.next_window == 2 and sorted(continued.snapshots) == [1]  # the given FM is snapshot t - 1
    continued.run(data)
    assert [r["window"] for r in continued.history if r["model"] == "foundation" and r["traffic"] == "all"] == [2, 3]
    assert [(r["window"], r["snapshot"]) for r in continued.das.log] == [(2, 1), (3, 2)]  # k = 1 supervised from window 2
