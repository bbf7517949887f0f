"""The calibration study of ``tools/bench/adaskip.py`` (issue 16, item 6): its shortcuts are exact.

- A window recorded once serves every shorter calibration length: the model is causal, so the statistics of its
  first n tokens equal those of an n-token calibration prompt (``calibrate``).
- The scale variants: per-token mean ratio (ours), per-prompt Frobenius ratio (the paper's code), and Frobenius
  without token 0.
- Leave-one-out restarts the forward at the skipped layer from the full model's cached input: the same loss as a
  full forward with that plan.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.adaskip.tiny import tiny_model
from tests.scripts import load_script
from zoo.adaskip import AdaSkip, SkipPlan
from zoo.adaskip import calibrate as C


@pytest.fixture(scope="module")
def bench():
    return load_script("tools/bench/adaskip.py")


def test_prefix_of_a_recorded_window_is_a_shorter_calibration(bench, monkeypatch):
    monkeypatch.setattr(bench, "STUDY_LENGTHS", (8, 24))
    model = tiny_model("llama")
    prompts = [torch.randint(3, 128, (24,), generator=torch.Generator().manual_seed(s)) for s in range(2)]
    skipper = AdaSkip.wrap(model)
    try:
        records = [bench.record_window(model, skipper, ids) for ids in prompts]
    finally:
        skipper.unwrap()
    for length in (8, 24):
        study = bench.study_calibration(records, 2, length)
        direct = C.calibrate(model, [ids[:length] for ids in prompts])
        for field in ("attention_similarity", "ffn_similarity", "attention_scale", "ffn_scale", "layer_similarity"):
            torch.testing.assert_close(getattr(study, field), getattr(direct, field), rtol=1e-6, atol=1e-6)
    assert study.num_prompts == 2 and study.num_tokens == 48


def _record(cos, a, b):
    """One window's record for one layer: per-token cosines and norms of the sublayer input a and output b."""
    row = lambda part: {"cos": [sum(cos[part])], "ratio": [sum(y / x for x, y in zip(a[part], b[part]))],  # noqa: E731
                        "a2": [sum(x * x for x in a[part])], "b2": [sum(y * y for y in b[part])]}
    full = {k: row(slice(0, len(a))) for k in ("attention", "ffn", "layer")}
    return {str(len(a)): full, "first": {k: row(slice(0, 1)) for k in ("attention", "ffn", "layer")}}


def test_scale_variants(bench, monkeypatch):
    # token 0 has a massive norm (as SmolLM2's first token does): the Frobenius ratio follows it
    a, b = [100.0, 1.0, 1.0, 1.0], [200.0, 1.0, 1.0, 1.0]
    records = [_record([1.0] * 4, a, b)]
    token = bench.study_calibration(records, 1, 4, "token")
    frob = bench.study_calibration(records, 1, 4, "frobenius")
    no_first = bench.study_calibration(records, 1, 4, "frobenius_no_first")
    assert float(token.attention_scale[0]) == pytest.approx((2 + 1 + 1 + 1) / 4)
    assert float(frob.attention_scale[0]) == pytest.approx(math.sqrt((200**2 + 3) / (100**2 + 3)))
    assert float(no_first.attention_scale[0]) == pytest.approx(1.0)
    # two prompts: Frobenius ratios are per prompt, then averaged (the paper's code)
    two = [records[0], _record([1.0] * 4, [1.0] * 4, [3.0] * 4)]
    assert float(bench.study_calibration(two, 2, 4, "frobenius").ffn_scale[0]) == pytest.approx(
        (math.sqrt((200**2 + 3) / (100**2 + 3)) + 3.0) / 2)


def test_leave_one_out_restart_equals_full_forward(bench):
    model = tiny_model("llama")
    ids = torch.randint(3, 128, (20,), generator=torch.Generator().manual_seed(3))
    skipper = AdaSkip.wrap(model)
    try:
        hidden = model(input_ids=ids.view(1, -1), use_cache=False, output_hidden_states=True).hidden_states
        for kind, index in (("attention", 2), ("ffn", 1), ("attention", 0)):
            plan = SkipPlan("llama", 4, attention_skip=(index,) if kind == "attention" else (),
                            ffn_skip=(index,) if kind == "ffn" else (), attention_scale=(1.1,) if kind == "attention" else (),
                            ffn_scale=(0.9,) if kind == "ffn" else ())
            skipper.set_plan(plan)
            full = bench.window_nll(model, ids)
            restarted = bench.nll_from_layer(model, hidden[index], ids, index)
            unskipped = bench.nll_from_layer(model, hidden[0], ids, 0) if index else None
            skipper.set_plan(None)
            assert restarted == pytest.approx(full, abs=1e-5)
            if unskipped is not None:
                assert unskipped == pytest.approx(full, abs=1e-5)
        assert len(list(model.model.layers)) == 4  # the layer list is restored
    finally:
        skipper.unwrap()
