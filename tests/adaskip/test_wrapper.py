"""AdaSkip's wrapper on tiny random Llama, Qwen2, Mistral and GPT-2 models."""

from __future__ import annotations

import pytest
import torch

from zoo.adaskip import AdaSkip, SkipPlan

from tests.adaskip.tiny import FAMILIES, tiny_model

NEW = 8


def _prompt(seed: int = 0, length: int = 24, batch: int = 1) -> torch.Tensor:
    return torch.randint(3, 128, (batch, length), generator=torch.Generator().manual_seed(seed))


def _greedy(model, ids, skipper=None, **kwargs):
    runner = skipper.generate if skipper is not None else model.generate
    return runner(ids, max_new_tokens=NEW, do_sample=False, **kwargs)[:, ids.shape[1]:]


@pytest.mark.parametrize("family", FAMILIES)
def test_empty_plan_with_recorder_is_bit_identical_and_unwrap_restores(family):
    model = tiny_model(family)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ids = _prompt()
    logits, tokens = model(ids).logits, _greedy(model, ids)
    hidden = model(ids, output_hidden_states=True).hidden_states
    skipper = AdaSkip.wrap(model)
    skipper.recording = True
    assert torch.equal(model(ids).logits, logits)
    assert torch.equal(_greedy(model, ids), tokens)
    wrapped_hidden = model(ids, output_hidden_states=True).hidden_states
    assert len(wrapped_hidden) == 5 and all(torch.equal(a, b) for a, b in zip(hidden, wrapped_hidden))
    cos, ratio = skipper.stats.mean("prefill", "ffn")
    assert cos.shape == (4,) and bool(((cos > 0) & (cos <= 1 + 1e-12)).all()) and bool((ratio > 0).all())
    skipper.set_plan(SkipPlan(family, 4, attention_skip=(1,), ffn_skip=(2,)))
    assert not torch.equal(model(ids).logits, logits)  # the plan does something
    skipper.unwrap()
    assert "forward" not in vars(model.get_decoder().layers[0] if family != "gpt2" else model.transformer.h[0])
    assert torch.equal(model(ids).logits, logits)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="already wrapped"):
        AdaSkip.wrap(model).wrap(model)


PLANS = {
    "ffn": dict(ffn_skip=(1, 2)),
    "ffn_scaled": dict(ffn_skip=(2,), ffn_scale=(0.9,)),
    "attention_drop": dict(attention_skip=(0, 2), attention_scale=(1.0, 0.95)),
    "attention_kv_only": dict(attention_skip=(0, 2), attention_mode="kv_only"),
    "mixed": dict(attention_skip=(1,), ffn_skip=(3,), attention_scale=(1.02,), ffn_scale=(0.97,)),
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", sorted(PLANS))
def test_cached_and_uncached_generation_agree(family, name):
    model = tiny_model(family)
    skipper = AdaSkip.wrap(model, SkipPlan(family, 4, **PLANS[name]))
    ids = _prompt(1)
    cached = _greedy(model, ids, skipper)
    uncached = _greedy(model, ids, use_cache=False)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", ["ffn_scaled", "attention_drop", "attention_kv_only"])
def test_padded_batch_matches_one_by_one(family, name):
    model = tiny_model(family)
    skipper = AdaSkip.wrap(model, SkipPlan(family, 4, **PLANS[name]))
    long, short = _prompt(2, 24), _prompt(3, 19)
    pad = torch.zeros(1, 5, dtype=torch.long)  # pad_token_id = 0, left padding
    batch = torch.cat([long, torch.cat([pad, short], dim=1)])
    mask = torch.ones_like(batch)
    mask[1, :5] = 0
    together = _greedy(model, batch, skipper, attention_mask=mask)
    assert torch.equal(together[0], _greedy(model, long, skipper)[0])
    assert torch.equal(together[1], _greedy(model, short, skipper)[0])


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_dropped_attention_holds_no_cache(family):
    model = tiny_model(family)
    skipper = AdaSkip.wrap(model, SkipPlan(family, 4, attention_skip=(0, 3)))
    cache = skipper.new_cache()
    out = model(_prompt(), cache=cache, use_cache=True)
    assert out.logits.shape == (1, 24, 128)
    assert [layer.keys is None for layer in cache.layers] == [True, False, False, True]
    assert cache.get_seq_length() == 24


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_phase_specific_plans(family):
    model = tiny_model(family)
    ids = _prompt(4)
    full = _greedy(model, ids)
    skipper = AdaSkip.wrap(model, SkipPlan(family, 4, ffn_skip=(1, 2), attention_skip=(1,), attention_mode="kv_only", phase="decode"))
    decode_only = _greedy(model, ids, skipper)
    assert decode_only[0, 0] == full[0, 0]  # the first token comes from the prefill, which is untouched
    assert not torch.equal(decode_only, full)
    skipper.set_plan(SkipPlan(family, 4, attention_skip=(1,), attention_mode="kv_only", phase="prefill"))
    prefill_only = _greedy(model, ids, skipper)
    logits = model(ids).logits  # a prefill call: the skip applies
    skipper.set_plan(None)
    assert not torch.equal(logits, model(ids).logits)
    assert prefill_only.shape == full.shape
    with pytest.raises(ValueError, match="kv_only"):
        SkipPlan(family, 4, attention_skip=(1,), phase="prefill")


def test_online_decode_stage_adds_ffn_skips_after_window():
    model = tiny_model("llama")
    ids = _prompt(5)
    skipper = AdaSkip.wrap(model, SkipPlan("llama", 4, attention_skip=(2,), online_ffn=True, online_window=3, online_threshold=0.0))
    skipper.generate(ids, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert sorted(skipper.online_ffn_skips) == [0, 1, 2, 3]  # beta = 0 admits every FFN (cosines are positive)
    assert all(0.5 < s < 2.0 for s in skipper.online_ffn_skips.values())
    skipper.set_plan(SkipPlan("llama", 4, attention_skip=(2,), online_ffn=True, online_window=3, online_threshold=1.01))
    skipper.generate(ids, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert skipper.online_ffn_skips == {}
    skipper.set_plan(SkipPlan("llama", 4, online_ffn=True, online_window=10, online_threshold=0.0))
    skipper.generate(ids, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert skipper.online_ffn_skips == {}  # 6 tokens < P = 10: the window never closes


def test_sampling_generation_runs():
    model = tiny_model("mistral")
    skipper = AdaSkip.wrap(model, SkipPlan("mistral", 4, attention_skip=(1,), ffn_skip=(2,)))
    torch.manual_seed(0)
    out = skipper.generate(_prompt(), max_new_tokens=NEW, do_sample=True, top_k=20)
    assert out.shape == (1, 24 + NEW)


def test_plan_for_another_architecture_is_refused():
    model = tiny_model("llama")
    with pytest.raises(ValueError, match="plan made for gpt2 with 4 layers cannot drive this llama model"):
        AdaSkip.wrap(model, SkipPlan("gpt2", 4, ffn_skip=(1,)))
    with pytest.raises(ValueError, match="cannot drive this llama model with 4 layers"):
        AdaSkip.wrap(model, SkipPlan("llama", 6, ffn_skip=(1,)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ffn_skip=(4,)), r"ffn_skip has layer indices \[4\] outside 0..3"),
        (dict(ffn_skip=(1, 1)), "repeats"),
        (dict(ffn_skip=(1,), ffn_scale=(0.5, 0.5)), "2 entries for 1"),
        (dict(ffn_skip=(1,), ffn_scale=(-1.0,)), "positive"),
        (dict(phase="sometimes"), "phase must be one of"),
        (dict(attention_mode="half"), "attention_mode must be one of"),
        (dict(attention_skip=(0,), phase="decode"), "layer 0"),
    ],
)
def test_bad_plans_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SkipPlan("llama", 4, **kwargs)


def test_calibrated_plan_round_trips_through_the_hub():
    import zoo
    from zoo.adaskip.calibrate import adaskip_plan, calibrate
    from zoo.adaskip.module import AdaSkipPlanModule

    model = tiny_model("qwen2")
    cal = calibrate(model, [_prompt(s, 32)[0] for s in range(3)])
    assert cal.num_prompts == 3 and cal.num_tokens == 96
    assert "forward" not in vars(model.model.layers[0])  # calibrate unwraps what it wrapped
    plan = adaskip_plan(cal, 3)
    similarity = torch.cat([cal.attention_similarity, cal.ffn_similarity])
    skipped = [cal.attention_similarity[i] for i in plan.attention_skip] + [cal.ffn_similarity[i] for i in plan.ffn_skip]
    assert len(skipped) == 3 and min(skipped) >= similarity.sort(descending=True).values[2] - 1e-15
    assert plan.online_threshold == pytest.approx(float(min(skipped)))
    module = AdaSkipPlanModule.from_calibration(cal, plan, base_model="tiny-random-qwen2", source="random tokens")
    commit = module.push_to_hub("acme/adaskip-tiny", metrics={"skipped_sublayers": 3})
    loaded = zoo.from_pretrained("acme/adaskip-tiny", revision=commit)
    assert isinstance(loaded, AdaSkipPlanModule) and loaded.plan == plan
    assert torch.equal(loaded.ffn_similarity, cal.ffn_similarity)
    ids = _prompt(9)
    skipper = module.apply(model)
    expected = model(ids).logits
    skipper.unwrap()
    loaded.apply(model)
    assert torch.equal(model(ids).logits, expected)
    assert loaded.replan(5).plan.num_skipped == 5
    with pytest.raises(ValueError, match="plan made for qwen2"):
        loaded.apply(tiny_model("gpt2"))


def test_skipdecode_schedule_grows_and_stays_consistent():
    from zoo.adaskip.calibrate import skipdecode_schedule

    plan, schedule = skipdecode_schedule("llama", 4, 3, tokens_per_stage=4)
    assert plan.attention_skip == (1, 2, 3) and plan.attention_mode == "kv_only"
    # ceil(t / 4 * 2) + 1 layers at step t: 2, 2, 3, 3, 3 (capped at N = 3)
    assert [schedule(t).attention_skip for t in (1, 2, 3, 6, 100)] == [(1, 2), (1, 2), (1, 2, 3), (1, 2, 3), (1, 2, 3)]
    model = tiny_model("llama")
    skipper = AdaSkip.wrap(model, plan)
    skipper.decode_schedule = schedule
    out = skipper.generate(_prompt(6), max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False)
    assert out.shape == (1, 24 + NEW) and skipper.plan.attention_skip == (1, 2, 3)
    first = skipper.generate(_prompt(7), max_new_tokens=1, do_sample=False)
    assert skipper.plan == plan  # a new request starts again from the prefill plan
    with pytest.raises(ValueError, match="num_layers_removed"):
        skipdecode_schedule("llama", 4, 4)
    assert first.shape == (1, 25)


def test_sublayers_spec_ignores_scales_and_order_and_reads_back():
    import json

    plan = SkipPlan("llama", 4, attention_skip=(3, 1), attention_scale=(0.9, 0.8), ffn_skip=(2,))
    spec = plan.sublayers()
    assert spec == {"attention_skip": (1, 3), "ffn_skip": (2,), "phase": "both", "attention_mode": "drop"}
    assert SkipPlan("llama", 4, **json.loads(json.dumps(spec))).sublayers() == spec  # as a benchmark shard stores it
    assert plan.without_scale().sublayers() == spec
    assert SkipPlan("llama", 4, attention_skip=(1, 3), attention_mode="kv_only").sublayers() != spec
