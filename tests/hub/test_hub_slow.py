"""Slow tier: a 100 MB model through the local hub, and four writers racing on one repo."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import torch

import zoo
from zoo._core.errors import IntegrityError
from zoo._core.module import ZooModule
from zoo.hub import LocalHub

from tests.conftest import subprocess_env
from tests.hub.test_local_hub import _WRITER

pytestmark = pytest.mark.slow


@dataclass
class BigConfig:
    rows: int = 5000  # 5000 x 5000 float32 = 100 MB
    cols: int = 5000


class BigModule(ZooModule):
    config_class = BigConfig

    def __init__(self, config: BigConfig | None = None) -> None:
        super().__init__(config)
        self.table = torch.nn.Parameter(torch.empty(self.config.rows, self.config.cols))
        torch.nn.init.normal_(self.table)


def test_100mb_push_load_and_tamper(isolated_hub):
    model = BigModule()
    assert model.table.numel() * 4 == 100_000_000
    started = time.perf_counter()
    commit = model.push_to_hub("acme/big")
    push_s = time.perf_counter() - started
    started = time.perf_counter()
    loaded = zoo.from_pretrained("acme/big")
    load_s = time.perf_counter() - started
    assert torch.equal(loaded.table, model.table)
    print(f"100 MB: push {push_s:.2f} s, verified load {load_s:.2f} s")
    weights = isolated_hub / "acme" / "big" / "snapshots" / commit / "model.safetensors"
    with open(weights, "r+b") as f:  # one flipped bit in the middle of the tensor data
        f.seek(50_000_000)
        byte = f.read(1)
        f.seek(50_000_000)
        f.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(IntegrityError, match="model.safetensors' was modified"):
        zoo.from_pretrained("acme/big")


def test_four_writers_race(tmp_path, isolated_hub):
    n, start = 20, time.time() + 3.0
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(isolated_hub), who, str(n), str(start), str(tmp_path / "src")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
        for who in "abcd"
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    pushed = sorted(line for out, _ in outputs for line in out.split())
    hub = LocalHub()
    history = hub.log("acme/race")
    assert sorted(c.commit_id for c in history) == pushed and len(pushed) == 4 * n
    for info in history:
        hub.verify("acme/race", info.commit_id)
    assert list((isolated_hub / "acme" / "race" / ".staging").iterdir()) == []  # no folder or lock file left behind
