"""The speed levers of benchmarks/exfm.md: the fused table and the row-wise sparse optimizer give the per-field
tables' outputs (same weights), bf16-mixed training, a foundation model trained alone, and the speed bench's arms."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tests.scripts import load_script
from zoo.exfm import ExFMSystem, StreamingTrainer, make_synthetic_stream
from zoo.exfm.config import ExFMConfig, NetworkConfig, VerticalSpec
from zoo.exfm.data import synthetic_feature_spec
from zoo.exfm.model import CTRNetwork
from zoo.exfm.stream import _RowWiseAdam
from zoo._core.registry import preset_config

speed = load_script("tools/bench/exfm_speed.py")
SIZES = [7, 5, 11, 3]
STREAM = dict(n_rows=2400, n_windows=4, drift=0.1, seed=0, users_active=60, items_active=30)


def network(seed: int = 0) -> CTRNetwork:
    torch.manual_seed(seed)
    net = CTRNetwork(SIZES, "dcnv2", 4, 2, (8, 6))
    with torch.no_grad():  # a non-zero first-order table, so its copy is checked too
        net.embedding.bias.weight.normal_(0, 0.1)
    return net


def ids(n: int = 64, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, s, (n,), generator=g) for s in SIZES], dim=1)


def test_fused_table_equals_one_table_per_field_forward_and_gradients():
    net = network()
    plain = speed.PlainDCN.from_zoo(net, SIZES)
    x, y = ids(), torch.randint(0, 2, (64,), generator=torch.Generator().manual_seed(2)).float()
    torch.testing.assert_close(plain(x), net(x), rtol=0, atol=1e-6)
    torch.nn.functional.binary_cross_entropy_with_logits(net(x), y).backward()
    torch.nn.functional.binary_cross_entropy_with_logits(plain(x), y).backward()
    for j, start in enumerate(net.embedding.offsets.tolist()):  # each field's rows of the fused gradient
        torch.testing.assert_close(plain.tables[j].weight.grad, net.embedding.table.weight.grad[start:start + SIZES[j]], rtol=0, atol=1e-7)
        torch.testing.assert_close(plain.first[j].weight.grad, net.embedding.bias.weight.grad[start:start + SIZES[j]], rtol=0, atol=1e-7)
    torch.testing.assert_close(plain.head.weight.grad, net.heads["serving"].weight.grad, rtol=0, atol=1e-7)


@pytest.mark.parametrize("table", ["fused", "per_field"])
def test_row_wise_sparse_adam_gives_the_dense_models_outputs_after_a_first_step(table):
    """From a fresh state, Adam's first step moves only the batch's rows (m = 0 elsewhere), so the lazy row-wise
    step (SparseAdam on sparse gradients) lands on the same weights; from the second step on they differ by design
    (dense Adam keeps moving rows by momentum): checked too, so the equality is not vacuous."""
    net = network()
    dense = copy.deepcopy(net) if table == "fused" else speed.PlainDCN.from_zoo(net, SIZES)
    rows = copy.deepcopy(net) if table == "fused" else speed.PlainDCN.from_zoo(net, SIZES, sparse=True)
    dense_opt = torch.optim.Adam(dense.parameters(), lr=1e-2)
    sparse_opt = _RowWiseAdam(rows, 1e-2) if table == "fused" else speed._SplitAdam(rows, 1e-2)
    if table == "per_field":
        assert all(t.weight.grad is None for t in rows.tables) and all(t.sparse for t in rows.tables)
    x, y = ids(), torch.ones(64)
    for step, batch in enumerate((x, torch.zeros_like(x))):  # the second batch touches row 0 of every field only
        for module, opt in ((dense, dense_opt), (rows, sparse_opt)):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.binary_cross_entropy_with_logits(module(batch), y).backward()
            opt.step()
        gap = (dense(x) - rows(x)).abs().max().item()
        if step == 0:
            assert gap < 1e-5, gap  # float rounding of the two update paths
        else:
            assert gap > 1e-3, gap  # rows of the first batch kept moving under dense Adam only


def test_deepctr_dcn_with_zoo_weights_gives_zoo_probabilities():
    pytest.importorskip("deepctr_torch")
    spec = synthetic_feature_spec(user_buckets=64, item_buckets=32)
    cfg = {**speed.CONFIG, "dim": 4, "hidden": [8, 6]}
    net = speed.zoo_network(list(spec.field_sizes), cfg)
    with torch.no_grad():
        net.embedding.bias.weight.normal_(0, 0.1)
    model = speed.deepctr_dcn(spec, cfg)
    speed.copy_zoo_into_deepctr(model, net, spec)
    x = torch.stack([torch.randint(0, s, (50,)) for s in spec.field_sizes], dim=1)
    model.eval()
    torch.testing.assert_close(model(x.float()).squeeze(-1), torch.sigmoid(net(x)), rtol=0, atol=1e-6)


def test_bf16_mixed_runs_the_forward_passes_in_bfloat16_and_keeps_the_auc():
    data = list(make_synthetic_stream(**STREAM))
    dtypes = []
    results = {}
    for precision in ("32-true", "bf16-mixed"):
        system = ExFMSystem(preset_config("exfm_synthetic_tiny"))
        hook = system.foundation.cross[0].register_forward_hook(lambda m, a, out: dtypes.append((precision, out.dtype)))
        trainer = StreamingTrainer(system, precision=precision)
        trainer.run(data)
        hook.remove()
        results[precision] = trainer.summary()
        assert {d for p, d in dtypes if p == precision} == {torch.float32 if precision == "32-true" else torch.bfloat16}
        assert next(system.foundation.parameters()).dtype == torch.float32  # weights stay float32
    assert results["32-true"] != results["bf16-mixed"]  # not bit-identical ...
    for key, value in results["32-true"].items():  # ... but the same model (AUC / NE of this 2.4k-row stream)
        if key.endswith("/auc") or key.endswith("/ne"):
            assert abs(results["bf16-mixed"][key] - value) < 0.02, (key, value, results["bf16-mixed"][key])


def test_precision_is_checked_and_kept_in_the_fingerprint():
    system = ExFMSystem(preset_config("exfm_synthetic_tiny"))
    with pytest.raises(ValueError, match="'bf16'"):
        StreamingTrainer(system, precision="bf16")
    assert StreamingTrainer(system).fingerprint != StreamingTrainer(system, precision="bf16-mixed").fingerprint
    with pytest.raises(ValueError, match="float64"):
        StreamingTrainer(ExFMSystem(preset_config("exfm_synthetic_tiny")).double(), precision="bf16-mixed")


def test_a_foundation_model_trained_alone_serves_every_vertical():
    net = NetworkConfig(embedding_dim=4, hidden=(8,), learning_rate=5e-3, batch_size=128)
    config = ExFMConfig(verticals=(VerticalSpec("all", (1 << 62) - 1), VerticalSpec("a", 1)), foundation=net, students=())
    assert config.serving_student("a") == "foundation"
    system = ExFMSystem(config)
    data = list(make_synthetic_stream(**STREAM))
    trainer = StreamingTrainer(system, test_windows=1)
    trainer.run(data)
    assert {r["model"] for r in trainer.history} == {"foundation"}
    p = system.score(data[-1], vertical="a")
    np.testing.assert_allclose(p, system.score(data[-1], model="foundation"))
    final = trainer.validation.final
    assert final["test/serving/auc"] == pytest.approx((final["test/foundation/all/auc"] + final["test/foundation/a/auc"]) / 2)
    assert final["test/foundation/all/auc"] > 0.5


def test_speed_bench_arms_start_from_the_same_weights_and_report_every_lever():
    stream = make_synthetic_stream(12_000, 3, 0.0, 0, users_active=100, items_active=50)
    spec = synthetic_feature_spec()
    xt, yt, xs, ys = speed.encoded_split(stream, spec)
    only = ["zoo CTRNetwork (fused table)", "plain (baseline)", "+ fused table with offsets", "+ row-wise sparse Adam", "+ bf16 autocast"]
    result = speed.run_models(spec, xt, yt, xs, ys, {**speed.CONFIG, "hidden": [16, 8]}, repeats=2, train_batches=2,
                              score_batches=1, frameworks=False, only=only, log=lambda line: None)
    assert [a["name"] for a in result["arms"]] == only
    assert max(v for k, v in result["initial_max_abs_probability_difference"].items() if "bf16" not in k) < 1e-6
    assert len(result["runs"]) == 2 * len(only)
    quality = result["quality"]
    assert quality["plain (baseline)"]["test_auc"] == pytest.approx(quality["+ fused table with offsets"]["test_auc"], abs=1e-4)
    text = speed.models_markdown(result, "levers", "### levers")
    assert "| + row-wise sparse Adam |" in text and "| plain (baseline) | " in text


def test_speed_tables_say_what_they_compare():
    """The old table called an API comparison "same DCN model"; the end-to-end table now says it is not model against
    model and names what each API does, and a report in the old layout is not rendered."""
    bench = load_script("tools/bench/exfm.py")
    run = {"framework": "zoo", "version": "0", "runner": "zoo", "repeat": 0, "prep_s": 0.1, "total_s": 2.0, "train_examples_per_s": 1e4,
           "score_examples_per_s": 1e5, "test_auc": 0.7, "test_logloss": 0.6, "peak_rss_mb": 500.0}
    text = bench.speed_markdown({"model": bench.SPEED_CONFIG, "rows": 1000, "frameworks": ["zoo"], "threads": 1, "runs": [run]})
    assert "end to end, each framework through its own API (not model against model)" in text
    assert "same DCN model" not in text and "| zoo 0 | 0.1 | 10,000 (10,000-10,000) |" in text
    assert bench.speed_markdown({"model": {}, "rows": 1000, "runs": []}) == ""


def test_lightning_bf16_mixed_trains_as_the_streaming_trainer_does(tmp_path):
    """Lightning's bf16-mixed wraps each training step in an autocast; inside it, a cached bf16 weight copy outlived
    the optimizer steps (every batch after the first of a window trained on stale weights) and the adapters ran in
    bf16 too. Now the Lightning run lands on the weights of StreamingTrainer(precision="bf16-mixed")."""
    import lightning as L

    from zoo.exfm import ExFMStreamData

    options = dict(n_rows=2400, n_windows=4, stream_options={"users_active": 60, "items_active": 30})
    data = ExFMStreamData(**options)
    system = ExFMSystem(preset_config("exfm_synthetic_tiny"))
    trainer = L.Trainer(precision="bf16-mixed", max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(system, datamodule=data)
    assert system.stream_trainer.precision == "bf16-mixed"
    direct = ExFMSystem(preset_config("exfm_synthetic_tiny"))
    StreamingTrainer(direct, precision="bf16-mixed").run(ExFMStreamData(**options).windows())
    for (name, a), b in zip(system.state_dict().items(), direct.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_lightning_precisions_the_stream_cannot_run_are_refused():
    from zoo.exfm.module import _stream_precision

    assert _stream_precision("64-true") == "32-true" and _stream_precision("bf16-mixed") == "bf16-mixed"
    with pytest.raises(ValueError, match="'16-mixed'"):
        _stream_precision("16-mixed")


def test_every_installed_end_to_end_runner_reports_what_the_table_reads(tmp_path):
    """Each framework's end-to-end runner returns every key the table reads (FuxiCTR's once lacked the total and
    stopped the bench after its first run); zoo's runners always, DeepCTR-Torch and FuxiCTR where installed."""
    from zoo.exfm.data import write_arrow_stream

    path = write_arrow_stream(make_synthetic_stream(6_000, 3, 0.0, 0, users_active=50, items_active=40), tmp_path / "s.arrow")
    cfg = {**speed.CONFIG, "hidden": [16, 8]}
    keys = {"framework", "version", "train_rows", "test_rows", "prep_s", "fit_s", "train_s", "score_s", "total_s",
            "train_examples_per_s", "score_examples_per_s", "test_auc", "test_logloss", "peak_rss_mb"}
    for framework in speed.available_frameworks():
        result = speed.END_TO_END[framework](str(path), cfg, 1, str(tmp_path / framework))
        assert keys <= set(result), (framework, keys - set(result))
        assert result["train_rows"] + result["test_rows"] == 6_000 and 0.5 < result["test_auc"] <= 1.0, framework


def test_xavier_normal_linear_init_is_a_config_choice_that_leaves_default_fingerprints_alone():
    from dataclasses import replace

    default = preset_config("exfm_synthetic_tiny")
    xavier = replace(default, foundation=replace(default.foundation, linear_init="xavier_normal"))
    fm = ExFMSystem(xavier).foundation
    assert all(float(m.bias.abs().max()) == 0.0 for m in fm.modules() if isinstance(m, torch.nn.Linear))
    weight = fm.mlp[0].weight  # std sqrt(2 / (fan_in + fan_out)); PyTorch's default gives std 1 / sqrt(3 fan_in)
    assert float(weight.std()) == pytest.approx((2 / sum(weight.shape)) ** 0.5, rel=0.1)
    assert float(ExFMSystem(default).foundation.mlp[0].weight.std()) == pytest.approx((3 * weight.shape[1]) ** -0.5, rel=0.1)
    assert StreamingTrainer(ExFMSystem(xavier)).fingerprint != StreamingTrainer(ExFMSystem(default)).fingerprint
    # the field's default is not part of the fingerprint: a run written before it existed still resumes
    import hashlib
    import json

    from zoo._core.config import config_to_dict

    old = config_to_dict(default)
    for network in ("foundation", "student"):
        del old[network]["linear_init"]
    key = {"config": old, "data": "", "start_window": 0}
    assert StreamingTrainer(ExFMSystem(default)).fingerprint == hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    with pytest.raises(ValueError, match="'he'"):
        NetworkConfig(linear_init="he")
