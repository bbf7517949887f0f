"""The tiny ExFM recipes run in-process: stream, evaluate, push the system with its measured ablation table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import pytest

import zoo
from zoo._core.runner import run_recipe
from zoo.exfm.data import find_movielens_100k
from zoo.hub import LocalHub

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "exfm"


def check_card(repo_id: str, metrics: dict[str, float], students: list[str]) -> str:
    card = (LocalHub().snapshot(repo_id) / "README.md").read_text()
    assert "### Ablation measured by this run" in card
    for name in students:
        assert f"| `{name}` |" in card and f"{metrics[name + '/ne']:.4f}" in card
    assert f"| {next(k for k in metrics if k.endswith('/ne'))} | {metrics[next(k for k in metrics if k.endswith('/ne'))]:.6g} |" in card
    return card


def test_synthetic_tiny_recipe_pushes_the_system_with_its_ablation(tmp_path):
    result = run_recipe(RECIPES / "synthetic_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    assert result.loaded_back_equal is True and result.module.stream_trainer.next_window == 4
    metrics = result.metrics
    students = [s.name for s in result.module.config.students]
    assert {f"{s}/ne" for s in students} <= set(metrics)
    assert 0.5 < metrics["a_alone/ne"] < 1.1 and 0.5 < metrics["foundation/all/auc"] <= 1.0
    assert 0 < metrics["das/fm_calls"] < metrics["das/naive_calls"]  # overlapping verticals share FM calls
    card = check_card("paperzoo/exfm-synthetic-tiny", metrics, students)
    # windows 4 and 5 are held out (validation, test); train / valid / test AUC and log loss besides NE, in metrics and card
    assert metrics["split/train_windows"] + metrics["split/valid_windows"] + metrics["split/test_windows"] <= 6
    for split in ("train", "valid", "test"):
        for model in ["serving", "foundation/all", *students]:
            assert all(0 < metrics[f"{split}/{model}/{m}"] < 2 for m in ("auc", "logloss", "ne"))
    assert "### Train / valid / test measured by this run" in card and "## Validation and early stopping" in card
    row = " | ".join(f"{metrics[f'{split}/serving/{m}']:.4f}" for split in ("train", "valid", "test") for m in ("auc", "logloss", "ne"))
    assert f"| serving | {row} |" in card
    assert f"best window {int(metrics['early_stopping/best_window'])}" in card
    loaded = zoo.from_pretrained("paperzoo/exfm-synthetic-tiny")
    window = result.module.trainer.datamodule.window(3)
    np.testing.assert_array_equal(loaded.score(window, vertical="b"), result.module.score(window, vertical="b"))


def _movielens():
    try:
        return find_movielens_100k()
    except FileNotFoundError:
        return None


@pytest.mark.slow
@pytest.mark.skipif(_movielens() is None, reason="MovieLens-100K not installed (python tools/fetch_ml100k.py or $ZOO_ML100K)")
def test_ml100k_tiny_recipe(tmp_path):
    result = run_recipe(RECIPES / "ml100k_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    metrics = result.metrics
    # windows 18 and 19 are held out (validation, test); early stopping may end the training windows before 18
    assert metrics["windows"] <= 18 and (metrics["split/valid_windows"], metrics["split/test_windows"]) == (1, 1)
    assert 0.5 < metrics["foundation/all/auc"] < 1.0 and 0.5 < metrics["test/serving/auc"] < 1.0
    assert 0 < metrics["das/fm_calls"] < metrics["das/naive_calls"]  # multi-genre movies are in both verticals
    check_card("paperzoo/exfm-ml100k-tiny", metrics, [s.name for s in result.module.config.students])


def test_recipe_resumes_from_its_window_checkpoints(tmp_path):
    args = ["--trainer.default_root_dir", str(tmp_path), "--data.init_args.checkpoint_dir", str(tmp_path / "ck"), "--zoo.repo_id", "null"]
    first = run_recipe(RECIPES / "synthetic_tiny.yaml", args)
    assert [p.name[:13] for p in sorted((tmp_path / "ck").glob("*.pt"))] == ["window-000002", "window-000003"]
    again = run_recipe(RECIPES / "synthetic_tiny.yaml", args)  # a restarted job: every window is already done
    assert again.metrics == first.metrics
    a, b = first.module.state_dict(), again.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_of_another_config_are_never_resumed(tmp_path):
    """A rerun with another seed in the same checkpoint folder used to reload the old run's newest checkpoint and push
    its weights under the new config (two repos, identical weights, different config.json)."""
    recipe = RECIPES / "synthetic_tiny.yaml"
    args = ["--trainer.default_root_dir", str(tmp_path), "--data.init_args.checkpoint_dir", str(tmp_path / "ck")]
    run_recipe(recipe, [*args, "--zoo.repo_id", "acme/seed0"])
    second = run_recipe(recipe, [*args, "--zoo.repo_id", "acme/seed1", "--model.init_args.config.seed", "1"])
    seed0, seed1 = zoo.from_pretrained("acme/seed0"), zoo.from_pretrained("acme/seed1")
    assert (seed0.config.seed, seed1.config.seed) == (0, 1)
    assert not torch.equal(seed0.foundation.embedding.table.weight, seed1.foundation.embedding.table.weight)
    fresh = run_recipe(recipe, ["--trainer.default_root_dir", str(tmp_path / "fresh"), "--zoo.repo_id", "null",
                                "--model.init_args.config.seed", "1"])
    a, b = fresh.module.state_dict(), second.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the rerun started fresh: nothing of the seed-0 run mixed in


def test_continued_on_later_windows_beside_its_frozen_parent(tmp_path):
    from huggingface_hub import ModelCard

    parent = run_recipe(RECIPES / "synthetic_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path / "p")])
    child = run_recipe(RECIPES / "synthetic_finetune_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path / "c")])
    history = child.module.stream_trainer.history
    assert sorted({r["window"] for r in history}) == [4, 5]  # only the later windows, each scored before training on it
    assert [(r["window"], r["snapshot"]) for r in child.module.stream_trainer.das.log] == [(4, 3), (5, 4)]
    card_path = LocalHub().snapshot("paperzoo/exfm-synthetic-continued-tiny") / "README.md"
    assert ModelCard.load(card_path).data.base_model == "paperzoo/exfm-synthetic-tiny"
    text = card_path.read_text()
    assert "parent column: measured by this run's evaluation applied to the parent" in text
    frozen = zoo.from_pretrained("paperzoo/exfm-synthetic-tiny")
    assert all(torch.equal(frozen.state_dict()[k], parent.module.state_dict()[k]) for k in frozen.state_dict())
    from zoo.exfm.module import stream_evaluation

    parent_metrics = stream_evaluation(frozen, child.module.trainer.datamodule, None)
    assert f"| a_ah_sa/ne | {child.metrics['a_ah_sa/ne']:.6g} | {parent_metrics['a_ah_sa/ne']:.6g} |" in text
