"""DDP on 2 CPU processes (gloo): same weights as one process over the same global batches, disjoint shards,
exactly one push."""

from __future__ import annotations

import json
import subprocess

import torch

import zoo
from zoo._core.runner import run_recipe
from zoo.hub import LocalHub

from tests.conftest import REPO_ROOT, subprocess_env, zoo_executable

RECIPE = "tests/smoke/smoke_tiny.yaml"
N_ROWS, EPOCHS, PER_RANK_BATCH = 256, 3, 32


def test_ddp_two_processes_match_single_process(tmp_path):
    record = tmp_path / "record"
    record.mkdir()
    ddp_hub, single_hub = tmp_path / "ddp_hub", tmp_path / "single_hub"
    common = ["--trainer.max_epochs", str(EPOCHS), "--data.init_args.n_rows", str(N_ROWS), "--zoo.repo_id", "acme/ddp"]
    run = subprocess.run(
        [*zoo_executable(), "run", RECIPE, *common, "--data.init_args.batch_size", str(PER_RANK_BATCH),
         "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
         "--trainer.default_root_dir", str(tmp_path / "ddp_runs")],
        cwd=REPO_ROOT, env=subprocess_env(ZOO_HUB=str(ddp_hub), ZOO_SMOKE_RECORD_DIR=str(record)),
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]

    # Each rank saw a different shard, and together all rows, in every epoch.
    seen = [json.loads((record / f"seen_rank{r}.json").read_text()) for r in (0, 1)]
    half = N_ROWS // 2
    assert all(len(s) == EPOCHS * half for s in seen)
    for epoch in range(EPOCHS):
        shard0, shard1 = (set(s[epoch * half:(epoch + 1) * half]) for s in seen)
        assert len(shard0) == half and not shard0 & shard1 and shard0 | shard1 == set(range(N_ROWS))

    # Exactly one push, from rank 0.
    assert len(LocalHub(ddp_hub).log("acme/ddp")) == 1 and run.stderr.count("zoo run: pushed") == 1

    # One process with the global batch (2 x 32 rows) makes the same SGD steps.
    single = run_recipe(RECIPE, [*common, "--data.init_args.batch_size", str(2 * PER_RANK_BATCH),
                                 "--trainer.default_root_dir", str(tmp_path / "single_runs"), "--zoo.hub", str(single_hub)])
    ddp_model = zoo.from_pretrained("acme/ddp", hub=str(ddp_hub))
    assert single.module.trainer.global_step == EPOCHS * N_ROWS // (2 * PER_RANK_BATCH)
    for (name, a), (_, b) in zip(ddp_model.state_dict().items(), single.module.state_dict().items()):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(ddp_model.net.weight, zoo.create("smoke_regressor_tiny").net.weight)  # it did train
