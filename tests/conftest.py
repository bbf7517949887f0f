"""Shared fixtures: every test gets its own empty local hub and Hugging Face cache, offline by default."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Before huggingface_hub is imported anywhere: no telemetry, no Xet (the loopback test server speaks the
# plain commit API), and a throwaway HF_HOME so tests never touch the user's cache.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ["HF_HUB_DISABLE_XET"] = "1"

import tests.smoke.model  # noqa: E402,F401  registers the test-only presets smoke_*_tiny
from tests.hub.served import hf_client, served  # noqa: E402,F401  fixtures: `zoo hub serve` on loopback, for any test


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    hub = tmp_path / "hub"
    monkeypatch.setenv("ZOO_HUB", str(hub))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    return hub


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that can import ``tests`` and ``zoo`` from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def zoo_executable() -> list[str]:
    exe = Path(sys.executable).with_name("zoo")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "zoo"]


def assert_same_training(ddp, single, parent) -> None:
    """Data-parallel weights ``ddp`` against one process's ``single`` over the same global batches: equal up to the
    order of float additions (the all-reduce of per-rank partial sums), and both far from ``parent`` (so they trained)."""
    import torch

    worst = 0.0
    for (name, a), (_, b) in zip(ddp.state_dict().items(), single.state_dict().items()):
        torch.testing.assert_close(a, b.detach(), rtol=1e-4, atol=1e-5, msg=name)
        worst = max(worst, float((a - b.detach()).abs().max()))
    moved = max(float((a - b).abs().max()) for a, b in zip(ddp.state_dict().values(), parent.state_dict().values()))
    assert moved > 100 * max(worst, 1e-7), (moved, worst)  # it trained, by far more than the DDP/single difference
    print(f"max |DDP - single| = {worst:.3g}; max change from the parent = {moved:.3g}")
