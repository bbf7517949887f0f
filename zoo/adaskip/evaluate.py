"""Cost model and quality checks for skip plans.

FLOP estimate (matmul FLOPs, 2 per multiply-add) of one token at context length c in a Llama-style layer of width
d, key/value width d_kv and FFN width f (SwiGLU: three d x f matrices):

    attention = 2 d (2 d + 2 d_kv) + 4 c d      (q, k, v, o projections; Q K^T and A V over all heads)
    FFN       = 6 d f

A skipped FFN costs nothing; skipped attention costs nothing in ``drop`` mode and its K/V projections 4 d d_kv in
``kv_only`` mode. The LM head (2 d V) is counted in the total. Prefill of T tokens uses the mean context (T + 1) / 2.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from zoo.adaskip.plan import SkipPlan

__all__ = ["attach_benchmark", "corpus_evaluation", "flop_fraction", "greedy_agreement", "heldout_bits_per_byte", "layer_costs", "plan_quality", "smollm2_plan_quality"]


def layer_costs(config: Any, context: float) -> tuple[float, float, float, float]:
    """``(attention, kv_projections, ffn, lm_head)`` FLOPs per token for a transformers model config."""
    d = config.hidden_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    d_kv = d // heads * kv_heads
    ffn_width = getattr(config, "intermediate_size", None) or 4 * d
    ffn = (6 if getattr(config, "model_type", "") != "gpt2" else 4) * d * ffn_width
    kv = 4 * d * d_kv
    attention = 4 * d * d + kv + 4 * context * d
    return float(attention), float(kv), float(ffn), float(2 * d * config.vocab_size)


def flop_fraction(config: Any, plan: SkipPlan, prompt_tokens: int) -> float:
    """Estimated fraction of prefill FLOPs removed by ``plan`` for a prompt of ``prompt_tokens``."""
    attention, kv, ffn, head = layer_costs(config, (prompt_tokens + 1) / 2)
    total = plan.num_layers * (attention + ffn) + head
    if plan.phase == "decode":
        return 0.0
    saved = len(plan.ffn_skip) * ffn + len(plan.attention_skip) * (attention - (kv if plan.attention_mode == "kv_only" else 0.0))
    return saved / total


@torch.no_grad()
def heldout_bits_per_byte(lm: Any, data: torch.Tensor, seq_len: int, max_windows: int = 16) -> float:
    """Mean next-byte loss in bits over non-overlapping windows of a byte tensor (byte-level models)."""
    nats, count = 0.0, 0
    for start in range(0, min(len(data) - seq_len - 1, max_windows * seq_len), seq_len):
        window = data[start:start + seq_len + 1].long()[None]
        logits = lm(input_ids=window[:, :-1], use_cache=False).logits
        nats += float(torch.nn.functional.cross_entropy(logits[0].float(), window[0, 1:], reduction="sum"))
        count += seq_len
    return nats / count / math.log(2.0)


@torch.no_grad()
def greedy_agreement(lm: Any, skipper: Any, prompts: list[torch.Tensor], new_tokens: int) -> float:
    """Fraction of greedy tokens equal to the unskipped model's (position by position)."""
    saved = skipper.plan
    agree = total = 0
    for ids in prompts:
        ids = ids.view(1, -1)
        skipper.set_plan(None)
        full = lm.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)[0, ids.shape[1]:]
        skipper.set_plan(saved)
        skip = skipper.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)[0, ids.shape[1]:]
        agree += int((full == skip).sum())
        total += len(full)
    skipper.set_plan(saved)
    return agree / total


def corpus_evaluation(model: Any, datamodule: Any, trainer: Any) -> dict[str, float]:
    """Recipe evaluation of a byte-level Llama on every corpus: held-out bits per byte ``<corpus>_heldout_bpb`` and byte
    perplexity ``2^bpb`` over the first ``datamodule.val_bytes`` held-out bytes in non-overlapping windows of
    ``datamodule.seq_len``. After a fine-tune on one corpus, the other corpus measures forgetting; with
    ``zoo.init_from`` the same numbers are measured for the parent (its column on the card)."""
    from zoo.adaskip.data import CORPORA, corpus_bytes

    lm, seq_len = model.lm, datamodule.seq_len
    was_training = lm.training
    lm.eval()
    out = {}
    for corpus in CORPORA:
        data = corpus_bytes(corpus, "heldout")[:datamodule.val_bytes]
        bpb = heldout_bits_per_byte(lm, data, seq_len, max_windows=(len(data) - 1) // seq_len)
        out[f"{corpus}_heldout_bpb"] = bpb
        out[f"{corpus}_heldout_byte_perplexity"] = 2.0 ** bpb
    lm.train(was_training)
    return out


def plan_quality(model: Any, datamodule: Any, trainer: Any) -> dict[str, float]:
    """Recipe evaluation of a calibrated ``AdaSkipPlanModule`` on a byte-level base model's held-out text."""
    from zoo.adaskip.wrapper import AdaSkip

    lm = model.base_model()
    data, seq_len = datamodule.val_data, datamodule.seq_len
    skipper = AdaSkip.wrap(lm, None)
    try:
        full_bpb = heldout_bits_per_byte(lm, data, seq_len)
        skipper.set_plan(model.plan)
        skip_bpb = heldout_bits_per_byte(lm, data, seq_len)
        prompts = [data[i * 1000:i * 1000 + seq_len // 2].long() for i in range(4)]
        agreement = greedy_agreement(lm, skipper, prompts, new_tokens=32)
    finally:
        skipper.unwrap()
    return {
        "skipped_sublayers": model.plan.num_skipped,
        "prefill_flop_fraction_saved": flop_fraction(lm.config, model.plan, seq_len),
        "heldout_bpb_full": full_bpb,
        "heldout_bpb_skipped": skip_bpb,
        "greedy_agreement_32": agreement,
    }


@torch.no_grad()
def token_perplexity(lm: Any, ids: torch.Tensor) -> float:
    """Perplexity of one no-cache forward over ``ids [T]`` (a prefill-phase plan applies to every token)."""
    logits = lm(input_ids=ids.view(1, -1), use_cache=False).logits
    return math.exp(float(torch.nn.functional.cross_entropy(logits[0, :-1].float(), ids.view(-1)[1:])))


def attach_benchmark(model: Any, benchmark_dir: str | Path) -> dict[str, float]:
    """Put the SmolLM2 benchmark table (``benchmarks/adaskip.md``, made by ``tools/bench/adaskip.py``) in the card of
    ``model`` as a report and ship ``adaskip.json`` beside it; ``adaskip_gpu.md`` (``tools/bench/adaskip_gpu.py``), if
    there, becomes a second report. Returns ``{"plan_matches_benchmark_arm": 1 or 0}``: 1
    when a benchmark arm skipped exactly this plan's sublayers (same phase and mode), so that row measures this plan."""
    root = Path(benchmark_dir)
    table, raw = root / "adaskip.md", root / "adaskip.json"
    if not (table.is_file() and raw.is_file()):
        return {}
    plan = model.plan
    same = [name for name, arm in json.loads(raw.read_text()).get("arms", {}).items()
            if SkipPlan(plan.model_type, plan.num_layers, **arm["plan"]).sublayers() == plan.sublayers()]
    note = (f"The `{same[0]}` row below measured exactly this plan (same skipped sublayers)." if same else
            "Note: no row below skips exactly this plan's sublayers (the benchmark was calibrated separately).")
    text = table.read_text().split("\n", 1)[1].strip()  # drop the file's own title
    model.card_reports["SmolLM2-135M benchmark (all methods at equal FLOPs)"] = note + "\n\n" + text
    model.hub_files["adaskip_benchmark.json"] = raw
    gpu = root / "adaskip_gpu.md"  # CUDA-event timing of the same plans (tools/bench/adaskip_gpu.py), when it was run
    if gpu.is_file():
        model.card_reports["GPU timing of the same plans (bf16, CUDA events)"] = gpu.read_text().split("\n", 1)[1].strip()
    return {"plan_matches_benchmark_arm": float(bool(same))}


def smollm2_plan_quality(model: Any, datamodule: Any, trainer: Any) -> dict[str, float]:
    """Recipe evaluation of a plan calibrated on SmolLM2: held-out perplexity (2k tokens) with and without the plan,
    greedy agreement over 32 tokens on 2 held-out prompts, the FLOP estimate; plus the benchmark table as a report."""
    from zoo.adaskip.wrapper import AdaSkip

    lm = model.base_model()
    ids = datamodule.val_ids
    skipper = AdaSkip.wrap(lm, None)
    try:
        full = token_perplexity(lm, ids)
        skipper.set_plan(model.plan)
        skipped = token_perplexity(lm, ids)
        prompts = [ids[i * 600: i * 600 + 512] for i in range(2)]
        agreement = greedy_agreement(lm, skipper, prompts, new_tokens=32)
    finally:
        skipper.unwrap()
    metrics = {"skipped_sublayers": model.plan.num_skipped, "prefill_flop_fraction_saved_1k": flop_fraction(lm.config, model.plan, 1024),
               "heldout_perplexity_full": full, "heldout_perplexity_skipped": skipped, "greedy_agreement_32": agreement}
    benchmarks = Path(os.environ.get("ZOO_BENCHMARKS", "benchmarks"))
    metrics.update(attach_benchmark(model, benchmarks))
    return metrics
