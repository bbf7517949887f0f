"""Offline importance learning and the skip plans of AdaSkip and its baselines.

AdaSkip (arXiv 2501.02336), "Prefill: offline importance learning": N calibration requests run through the full
model; sublayer j's importance is its IO similarity cos(a, b) (near 1 = the sublayer barely turns the residual
stream), averaged over tokens; its scale is the mean norm ratio |b| / |a|. The 2m sublayers with the highest
similarity are skipped; beta, the lowest similarity in the skipped set, is the online decode threshold.
The paper's code averages per-token cosines within a request and then over requests; we average over all tokens
(token-weighted; equal for equal-length requests) [our choice, noted in the plan's provenance].

Baselines through the same mechanism (docs/methods/adaskip.md): ShortGPT (arXiv 2403.03853, block influence
BI = 1 - cos(layer in, layer out), the lowest-BI layers removed), early exit (last layers), Unified Skipping
(arXiv 2404.06954, layers whose index mod (L div N) is 1), random sublayers, FFN-only, AdaSkip without scale.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from typing import Any, Iterable

import torch

from zoo.adaskip.plan import SkipPlan
from zoo.adaskip.wrapper import AdaSkip

__all__ = ["Calibration", "adaskip_plan", "calibrate", "early_exit_plan", "ffn_only_plan", "random_plan", "shortgpt_plan", "skipdecode_schedule", "unified_plan"]


@dataclasses.dataclass
class Calibration:
    """Per-sublayer statistics from calibration prompts (prefill phase)."""

    model_type: str
    num_layers: int
    attention_similarity: torch.Tensor  # [L] mean IO cosine of each attention sublayer
    ffn_similarity: torch.Tensor  # [L]
    attention_scale: torch.Tensor  # [L] mean |b| / |a|
    ffn_scale: torch.Tensor  # [L]
    layer_similarity: torch.Tensor  # [L] whole-layer IO cosine (ShortGPT: BI = 1 - this)
    num_prompts: int
    num_tokens: int
    seconds: float


@torch.no_grad()
def calibrate(model: Any, prompts: Iterable[torch.Tensor], *, progress: bool = False) -> Calibration:
    """Run each prompt (``[1, T]`` or ``[T]`` token ids) through ``model`` once and record sublayer statistics.

    ``model`` may already be wrapped (its plan is kept aside and restored); otherwise it is wrapped and unwrapped.
    """
    started = time.perf_counter()
    existing = getattr(model, AdaSkip._ATTR, None)
    skipper = existing or AdaSkip.wrap(model)
    saved_plan, saved_recording = skipper.plan, skipper.recording
    skipper.set_plan(None)
    skipper.stats = type(skipper.stats)(len(skipper.layers))
    skipper.recording = True
    count = tokens = 0
    try:
        prompts = list(prompts)
        iterator = prompts
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(prompts, desc="AdaSkip calibration", unit="prompt")
        for ids in iterator:
            ids = ids.view(1, -1) if ids.dim() == 1 else ids
            if ids.shape[0] != 1:
                raise ValueError(f"calibration prompts are run one at a time; got a batch of {ids.shape[0]}")
            model(input_ids=ids.to(model.device), use_cache=False)
            count, tokens = count + 1, tokens + ids.shape[1]
    finally:
        skipper.recording = saved_recording
        stats = skipper.stats
        if existing is None:
            skipper.unwrap()
        else:
            skipper.set_plan(saved_plan)
    if count == 0:
        raise ValueError("calibrate needs at least one prompt")
    attention_cos, attention_ratio = stats.mean("prefill", "attention")
    ffn_cos, ffn_ratio = stats.mean("prefill", "ffn")
    layer_cos, _ = stats.mean("prefill", "layer")
    return Calibration(model.config.model_type, len(skipper.layers), attention_cos, ffn_cos, attention_ratio,
                       ffn_ratio, layer_cos, count, tokens, time.perf_counter() - started)


def _sorted_plan(cal: Calibration, chosen: list[tuple[str, int]], scale: bool, **kwargs: Any) -> SkipPlan:
    attention = sorted(i for kind, i in chosen if kind == "attention")
    ffn = sorted(i for kind, i in chosen if kind == "ffn")
    return SkipPlan(
        model_type=cal.model_type, num_layers=cal.num_layers, attention_skip=tuple(attention), ffn_skip=tuple(ffn),
        attention_scale=tuple(float(cal.attention_scale[i]) for i in attention) if scale else (),
        ffn_scale=tuple(float(cal.ffn_scale[i]) for i in ffn) if scale else (),
        **kwargs,
    )


def adaskip_plan(cal: Calibration, num_skipped: int, *, scale: bool = True, online_ffn: bool = True,
                 online_window: int = 20, phase: str = "both", attention_mode: str = "drop") -> SkipPlan:
    """Skip the ``num_skipped`` sublayers (attention and FFN pooled) of highest IO similarity.

    ``scale=False`` gives the "AdaSkip without scale" ablation; ``phase="prefill"`` (with ``kv_only``) the
    prefill-only variant. beta = the lowest similarity among the skipped sublayers.
    """
    total = 2 * cal.num_layers
    if not 0 <= num_skipped <= total:
        raise ValueError(f"num_skipped must be in 0..{total}, got {num_skipped}")
    candidates = [("attention", i, float(cal.attention_similarity[i])) for i in range(cal.num_layers)]
    candidates += [("ffn", i, float(cal.ffn_similarity[i])) for i in range(cal.num_layers)]
    if any(math.isnan(c[2]) for c in candidates):
        raise ValueError("the calibration has sublayers with no recorded tokens")
    candidates.sort(key=lambda c: (-c[2], c[0], c[1]))
    chosen = candidates[:num_skipped]
    beta = min((c[2] for c in chosen), default=1.0)
    return _sorted_plan(cal, [(k, i) for k, i, _ in chosen], scale, online_ffn=online_ffn and num_skipped > 0,
                        online_window=online_window, online_threshold=beta, phase=phase, attention_mode=attention_mode)


def ffn_only_plan(cal: Calibration, num_skipped: int, *, scale: bool = True) -> SkipPlan:
    """The ``num_skipped`` FFN sublayers of highest IO similarity (an FFN-SkipLLM-like baseline)."""
    if not 0 <= num_skipped <= cal.num_layers:
        raise ValueError(f"num_skipped must be in 0..{cal.num_layers} for FFN-only, got {num_skipped}")
    order = sorted(range(cal.num_layers), key=lambda i: (-float(cal.ffn_similarity[i]), i))
    return _sorted_plan(cal, [("ffn", i) for i in order[:num_skipped]], scale)


def _whole_layers(model_type: str, num_layers: int, layers: list[int]) -> SkipPlan:
    layers = sorted(layers)
    return SkipPlan(model_type=model_type, num_layers=num_layers, attention_skip=tuple(layers), ffn_skip=tuple(layers))


def shortgpt_plan(cal: Calibration, num_layers_removed: int) -> SkipPlan:
    """ShortGPT: remove the layers of lowest block influence BI = 1 - cos(layer input, layer output)."""
    if not 0 <= num_layers_removed <= cal.num_layers:
        raise ValueError(f"num_layers_removed must be in 0..{cal.num_layers}, got {num_layers_removed}")
    influence = 1.0 - cal.layer_similarity
    order = sorted(range(cal.num_layers), key=lambda i: (float(influence[i]), i))
    return _whole_layers(cal.model_type, cal.num_layers, order[:num_layers_removed])


def early_exit_plan(model_type: str, num_layers: int, num_layers_removed: int) -> SkipPlan:
    """Early exit: skip the last ``num_layers_removed`` layers."""
    if not 0 <= num_layers_removed <= num_layers:
        raise ValueError(f"num_layers_removed must be in 0..{num_layers}, got {num_layers_removed}")
    return _whole_layers(model_type, num_layers, list(range(num_layers - num_layers_removed, num_layers)))


def unified_plan(model_type: str, num_layers: int, num_layers_removed: int) -> SkipPlan:
    """Unified Skipping: skip layers whose index mod (L div N) is 1, at most N of them (AdaSkip's re-implementation)."""
    if not 0 < num_layers_removed <= num_layers // 2:
        raise ValueError(f"num_layers_removed must be in 1..{num_layers // 2}, got {num_layers_removed}")
    period = num_layers // num_layers_removed
    layers = [i for i in range(num_layers) if i % period == 1 % period][:num_layers_removed]
    return _whole_layers(model_type, num_layers, layers)


def skipdecode_schedule(model_type: str, num_layers: int, num_layers_removed: int, tokens_per_stage: int = 512):
    """SkipDecode (arXiv 2307.02628) as AdaSkip's re-implementation runs it: layers 1..N in prefill, and at decode
    step t layers 1..min(N, ceil(t / 512 * (N - 1)) + 1); layer 0 is never skipped. The set grows over a request, so
    skipped attention keeps writing K/V (``kv_only``). Returns ``(prefill plan, schedule)`` for
    ``skipper.set_plan(plan); skipper.decode_schedule = schedule``.
    """
    if not 0 < num_layers_removed < num_layers:
        raise ValueError(f"num_layers_removed must be in 1..{num_layers - 1}, got {num_layers_removed}")

    def layers_plan(count: int) -> SkipPlan:
        layers = tuple(range(1, count + 1))
        return SkipPlan(model_type=model_type, num_layers=num_layers, attention_skip=layers, ffn_skip=layers,
                        attention_mode="kv_only")

    def schedule(step: int) -> SkipPlan:
        return layers_plan(min(num_layers_removed, math.ceil(step / tokens_per_stage * (num_layers_removed - 1)) + 1))

    return layers_plan(num_layers_removed), schedule


def random_plan(model_type: str, num_layers: int, num_skipped: int, seed: int) -> SkipPlan:
    """``num_skipped`` sublayers drawn uniformly at random (attention and FFN pooled), identity scale."""
    if not 0 <= num_skipped <= 2 * num_layers:
        raise ValueError(f"num_skipped must be in 0..{2 * num_layers}, got {num_skipped}")
    pool = [("attention", i) for i in range(num_layers)] + [("ffn", i) for i in range(num_layers)]
    chosen = random.Random(seed).sample(pool, num_skipped)
    return SkipPlan(model_type=model_type, num_layers=num_layers,
                    attention_skip=tuple(sorted(i for k, i in chosen if k == "attention")),
                    ffn_skip=tuple(sorted(i for k, i in chosen if k == "ffn")))
