"""The ExFM continuation recipe under DDP on 2 CPU processes (gloo): every rank streams every window and each optimizer
step splits its batch across the ranks, so the weights match one process; only global rank 0 pushes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

import zoo
from zoo._core.runner import run_recipe
from zoo.hub import LocalHub

from tests.conftest import REPO_ROOT, subprocess_env, zoo_executable

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "exfm"


@pytest.mark.slow  # a DDP launch re-imports lightning in two fresh processes: about a minute on 2 cores
def test_continued_stream_ddp_two_processes_match_one_process(tmp_path, isolated_hub):
    parent = run_recipe(RECIPES / "synthetic_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path / "parent")])
    recipe = str(RECIPES / "synthetic_finetune_tiny.yaml")
    common = ["--zoo.init_from", f"paperzoo/exfm-synthetic-tiny@{parent.commit_id}"]
    run = subprocess.run(
        [*zoo_executable(), "run", recipe, *common, "--zoo.repo_id", "acme/exfm-ddp", "--trainer.devices", "2",
         "--trainer.strategy", "ddp", "--trainer.default_root_dir", str(tmp_path / "ddp"),
         "--data.init_args.checkpoint_dir", str(tmp_path / "ddp" / "ck")],
        cwd=REPO_ROOT, env=subprocess_env(ZOO_HUB=str(isolated_hub)), capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert len(LocalHub().log("acme/exfm-ddp")) == 1 and run.stderr.count("zoo run: pushed") == 1  # rank 0 only
    assert len(list((tmp_path / "ddp" / "ck").glob("window-*.pt"))) == 2  # written by rank 0 alone, newest two kept
    card = (LocalHub().snapshot("acme/exfm-ddp") / "README.md").read_text()
    assert "2 process(es), CPUAccelerator, DDPStrategy" in card

    single = run_recipe(recipe, [*common, "--zoo.repo_id", "null", "--trainer.default_root_dir", str(tmp_path / "single")])
    ddp = zoo.from_pretrained("acme/exfm-ddp")
    worst = 0.0
    for (name, a), (_, b) in zip(ddp.state_dict().items(), single.module.state_dict().items()):
        # the same rows per step; only the order of float additions differs (two per-rank partial sums)
        torch.testing.assert_close(a, b.detach(), rtol=1e-4, atol=1e-5, msg=name)
        worst = max(worst, float((a - b.detach()).abs().max()))
    moved = max(float((a - b).abs().max()) for a, b in zip(ddp.state_dict().values(), parent.module.state_dict().values()))
    assert moved > 100 * max(worst, 1e-7)  # it trained, by far more than the DDP/single difference
    print(f"max |DDP - single| = {worst:.3g}; max change from the parent = {moved:.3g}")
