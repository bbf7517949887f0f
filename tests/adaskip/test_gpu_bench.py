"""The GPU timing script: its table and summary from a JSON, the committed table matches the committed JSON, and it
declines cleanly without a GPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _script():
    return load_script("tools/bench/adaskip_gpu.py")


def _row(prefill_ms, decode_ms, base=(20.0, 10.0), estimate=1.0):
    return {"prefill_ms": prefill_ms, "decode_ms_per_token": decode_ms, "prefill_speedup": base[0] / prefill_ms,
            "decode_speedup": base[1] / decode_ms, "flop_speedup_estimate": estimate}


def test_render_reports_overhead_and_measured_over_estimated():
    summary = {"command": "c", "device": "d", "model": "m", "repeats": 3, "decode_tokens": 4, "notes": ["a note"],
               "results": {"2x64": {"unwrapped": _row(20.0, 10.0), "wrapped_empty": _row(20.4, 10.0),
                                    "a": _row(10.0, 8.0, estimate=2.0), "b": _row(16.0, 8.0, estimate=1.0)}}}
    text = _script().render(summary)
    assert "a note" in text
    # overhead +2.0 % in prefill, 0 in decode; ratios: a 2.0/2.0 = 1.0, b 1.25/1.0 = 1.25 -> median 1.125
    assert "| 2x64 | +2.0% | +0.0% | 1.125 (1.000-1.250) |" in text
    assert "| 2x64 | a | 10.00 | 2.000 | 2.000 | 8.000 | 1.250 |" in text


def test_committed_table_is_rendered_from_committed_json():
    path = ROOT / "benchmarks" / "adaskip_gpu.json"
    assert _script().render(json.loads(path.read_text())) == path.with_suffix(".md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_exits_cleanly_without_a_gpu(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "argv", ["adaskip_gpu.py", "--out", str(tmp_path / "x.json")])
    assert _script().main() == 0
    assert "no CUDA device" in capsys.readouterr().out
    assert not (tmp_path / "x.json").exists()
