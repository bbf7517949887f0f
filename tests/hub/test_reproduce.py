"""``zoo reproduce``: re-run the recipe a card records into a scratch hub and compare metrics.

The recipe is ``recipes/symplectic/min_trace_tiny.yaml``, the fastest deterministic tiny recipe (measured: 0.2 s
in process; its only run-to-run difference is ``optimizer_seconds``, a wall-clock time).
"""

from __future__ import annotations

import json
import shutil

import pytest

from zoo._core.runner import run_recipe
from zoo.cli import main
from zoo.hub import LocalHub
from zoo.hub.reproduce import RUN_RECORD, MetricCheck, ReproduceError, parse_tolerances, recipe_sha256

from tests.conftest import REPO_ROOT, subprocess_env

RECIPE = "recipes/symplectic/min_trace_tiny.yaml"
REPO = "paperzoo/symplectic-min-trace-tiny"


@pytest.fixture
def pushed(tmp_path, monkeypatch):
    """The tiny recipe run from the checkout root (as a user would) and pushed to the test hub."""
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])  # the re-run imports this checkout's zoo
    result = run_recipe(RECIPE, ["--trainer.default_root_dir", str(tmp_path / "runs"), "--zoo.tag", "v1"])
    return result


def _doctor_card(tmp_path, metric: str, factor: float) -> str:
    """Push a commit whose card claims ``metric`` * ``factor``, with a correct manifest (as a tampered push would)."""
    from huggingface_hub import ModelCard

    folder = tmp_path / "doctored"
    shutil.copytree(LocalHub().snapshot(REPO), folder)
    card = ModelCard.load(folder / "README.md")
    for result in card.data.eval_results:
        if result.metric_type == metric:
            result.metric_value *= factor
    card.save(folder / "README.md")
    return LocalHub().push(REPO, folder, message="doctored card")


def test_run_records_recipe_hash_and_exact_command(pushed):
    snapshot = LocalHub().snapshot(REPO, "v1")
    record = json.loads((snapshot / RUN_RECORD).read_text())
    assert record["recipe"] == RECIPE and record["recipe_sha256"] == recipe_sha256(REPO_ROOT / RECIPE)
    assert record["args"][-2:] == ["--zoo.tag", "v1"]
    assert record["command"] == f"zoo run {RECIPE} --trainer.default_root_dir {record['args'][1]} --zoo.tag v1"
    card = (snapshot / "README.md").read_text()
    assert f"| recipe_sha256 | `{record['recipe_sha256']}` |" in card and f"[{RUN_RECORD}]({RUN_RECORD})" in card


def test_reproduce_passes_then_fails_naming_an_edited_metric(pushed, tmp_path, capsys):
    user_hub = sorted(p.relative_to(LocalHub().root) for p in LocalHub().root.rglob("*"))
    assert main(["reproduce", f"{REPO}@v1"]) == 0
    out = capsys.readouterr().out
    assert "trace_value" in out and "optimizer_seconds" in out and "not compared (wall-clock time)" in out
    assert f"all {len(pushed.metrics) - 1} compared metrics reproduce" in out
    assert sorted(p.relative_to(LocalHub().root) for p in LocalHub().root.rglob("*")) == user_hub  # scratch hub only

    _doctor_card(tmp_path, "trace_value", 1.01)
    assert main(["reproduce", REPO]) == 1
    captured = capsys.readouterr()
    edited = pushed.metrics["trace_value"] * 1.01  # what _doctor_card wrote (the last digits depend on the platform)
    assert f"1 metric(s) did not reproduce: trace_value (pushed {edited!r}" in captured.err
    row = next(line for line in captured.out.splitlines() if line.startswith("trace_value"))
    assert row.endswith("MISMATCH") and "9.90e-03" in row  # side by side; |6.06 - 6| / 6.06


def test_changed_recipe_is_refused_before_running(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO_ROOT / RECIPE, tmp_path / "recipe.yaml")
    run_recipe("recipe.yaml", ["--trainer.default_root_dir", str(tmp_path / "runs")])
    capsys.readouterr()
    with open(tmp_path / "recipe.yaml", "a") as f:
        f.write("# edited after the push\n")
    assert main(["reproduce", REPO]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: recipe recipe.yaml changed since paperzoo/symplectic-min-trace-tiny was pushed")
    assert "--allow-changed-recipe" in err and err.count("\n") == 1


def test_reproduce_needs_a_run_record(capsys):
    import zoo

    zoo.create("smoke_regressor_tiny").push_to_hub("acme/plain")
    assert main(["reproduce", "acme/plain"]) == 1
    assert "acme/plain has no zoo_run.json: it was not pushed by `zoo run`" in capsys.readouterr().err


def test_tolerances():
    assert parse_tolerances(["a=1e-3", "b=0"]) == {"a": 1e-3, "b": 0.0}
    for bad in ["a", "=1", "a=x", "a=-1", "a=nan"]:
        with pytest.raises(ReproduceError, match="METRIC=REL"):
            parse_tolerances([bad])
    assert MetricCheck("m", 1.0, 1.0 + 5e-7, 1e-6, 1e-12).ok
    assert not MetricCheck("m", 1.0, 1.0 + 2e-6, 1e-6, 1e-12).ok
    assert MetricCheck("m", 1.0, 1.0 + 2e-6, 1e-5, 1e-12).ok
    assert MetricCheck("m", 0.0, 5e-13, 1e-6, 1e-12).ok and not MetricCheck("m", 0.0, 5e-12, 1e-6, 1e-12).ok
    assert MetricCheck("t_seconds", 1.0, 9.0, None, 1e-12).ok  # a time is shown, not compared
    missing = MetricCheck("m", 1.0, None, 1e-6, 1e-12)
    assert not missing.ok and missing.verdict == "MISMATCH (missing in the re-run)"


def test_reproduce_a_fine_tuned_model_uses_the_parent_commit_it_started_from(tmp_path, monkeypatch, capsys):
    """The scratch hub gets the parent's commit (same id, verified) and the re-run is pinned to it, even after the
    parent's main moved on; without that the re-run could not find the parent (it is not in the scratch hub)."""
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])
    smoke = "tests/smoke/smoke_tiny.yaml"
    parent = run_recipe(smoke, ["--trainer.default_root_dir", str(tmp_path / "p"), "--zoo.repo_id", "acme/base"])
    run_recipe(smoke, ["--trainer.default_root_dir", str(tmp_path / "c"), "--trainer.max_epochs", "1",
                       "--zoo.init_from", "acme/base", "--zoo.repo_id", "acme/child"])
    run_recipe(smoke, ["--trainer.default_root_dir", str(tmp_path / "p2"), "--zoo.repo_id", "acme/base", "--seed_everything", "7"])
    assert LocalHub().resolve("acme/base") != parent.commit_id  # the parent's main moved on
    # test_mse of the child depends on the weights it started from: a re-run from the moved main would mismatch
    assert main(["reproduce", "acme/child"]) == 0
    assert "test_mse" in capsys.readouterr().out
