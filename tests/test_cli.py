"""The `zoo` command: one end-to-end run in a subprocess, the other commands in-process."""

from __future__ import annotations

import subprocess

import pytest
from huggingface_hub import ModelCard

import zoo
from zoo.cli import main

from tests.conftest import REPO_ROOT, subprocess_env, zoo_executable


def test_zoo_run_then_hub_commands(tmp_path, isolated_hub, capsys):
    run = subprocess.run(
        [*zoo_executable(), "run", "tests/smoke/smoke_tiny.yaml", "--trainer.max_epochs", "2",
         "--trainer.default_root_dir", str(tmp_path / "runs")],
        cwd=REPO_ROOT, env=subprocess_env(ZOO_HUB=str(isolated_hub)), capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "pushed smoke/regressor-tiny@" in run.stderr and "loaded back bit-identical" in run.stderr
    repo = "smoke/regressor-tiny"

    assert main(["hub", "ls"]) == 0
    assert capsys.readouterr().out.startswith(f"{repo}\tmain=")
    assert main(["hub", "tag", repo, "main", "v1", "-m", "first release"]) == 0
    assert capsys.readouterr().out.startswith(f"{repo}: tag v1 -> ")
    assert main(["hub", "log", repo]) == 0
    log = capsys.readouterr().out.strip().splitlines()
    assert len(log) == 1 and "(main, v1)" in log[0] and "zoo run tests/smoke/smoke_tiny.yaml" in log[0]
    assert main(["card", repo, "--revision", "v1"]) == 0
    card = ModelCard(capsys.readouterr().out)
    assert card.data.eval_results[0].metric_type == "test_mse"
    assert main(["pull", repo, str(tmp_path / "pulled")]) == 0
    capsys.readouterr()
    assert zoo.from_pretrained(str(tmp_path / "pulled")).config.in_features == 4
    assert main(["list", "smoke_*"]) == 0
    assert capsys.readouterr().out.split() == ["smoke_mlp_tiny", "smoke_regressor_tiny"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["card", "acme/../../etc/passwd"], "zoo: error: invalid repo id 'acme/../../etc/passwd'"),
        (["card", "../etc/passwd"], "zoo: error: ../etc/passwd is not a folder"),  # an explicit path: a folder or nothing
        (["pull", "acme/none", "out"], "zoo: error: repo 'acme/none' is not in the hub"),
        (["hub", "tag", "acme/none", "main", "v1"], "zoo: error: repo 'acme/none' is not in the hub"),
        (["run", "recipes/none.yaml"], "zoo: error: recipe recipes/none.yaml does not exist"),
    ],
)
def test_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
