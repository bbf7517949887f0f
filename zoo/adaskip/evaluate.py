"""Cost model and quality checks for skip plans.

FLOP estimate (matmul FLOPs, 2 per multiply-add) of one token at context length c in a Llama-style layer of width
d, key/value width d_kv and FFN width f (SwiGLU: three d x f matrices):

    attention = 2 d (2 d + 2 d_kv) + 4 c d      (q, k, v, o projections; Q K^T and A V over all heads)
    FFN       = 6 d f

A skipped FFN costs nothing; skipped attention costs nothing in ``drop`` mode and its K/V projections 4 d d_kv in
``kv_only`` mode. The LM head (2 d V) is counted in the total. Prefill of T tokens uses the mean context (T + 1) / 2.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo.adaskip.plan import SkipPlan

__all__ = ["flop_fraction", "greedy_agreement", "heldout_bits_per_byte", "layer_costs", "plan_quality"]


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
