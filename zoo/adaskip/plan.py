"""The skip plan: which attention / FFN sublayers to skip, in which phase, with which scale.

AdaSkip (He et al., "AdaSkip: Adaptive Sublayer Skipping for Accelerating Long-Context LLM Inference",
arXiv 2501.02336, AAAI 2025). A skipped sublayer j maps the residual stream ``a`` to ``Scale_j * a`` instead of
``a + f_j(norm(a))`` (section "scale compensation"; ``Scale_j = 1`` is the identity that SkipDecode and Unified
Skipping use). Attention skipped for only some tokens must keep writing its keys and values (``kv_only``), else
later tokens would attend to a cache with holes (docs/methods/adaskip.md) - ``SkipPlan`` refuses that combination.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["PHASES", "ATTENTION_MODES", "SkipPlan"]

PHASES = ("both", "prefill", "decode")
ATTENTION_MODES = ("drop", "kv_only")


@dataclasses.dataclass(frozen=True)
class SkipPlan:
    """Sublayers to skip in a decoder of ``num_layers`` layers (indices from 0)."""

    model_type: str  # transformers config.model_type the plan was made for ("llama", "gemma2", ...; see layout.LAYOUTS)
    num_layers: int  # decoder layers of that model
    attention_skip: tuple[int, ...] = ()  # layers whose attention sublayer is skipped
    ffn_skip: tuple[int, ...] = ()  # layers whose FFN sublayer is skipped
    attention_scale: tuple[float, ...] = ()  # Scale_j per entry of attention_skip; empty = 1.0 (identity)
    ffn_scale: tuple[float, ...] = ()  # Scale_j per entry of ffn_skip; empty = 1.0
    phase: str = "both"  # tokens the skips apply to: "both", "prefill" (query of the first call) or "decode"
    # skipped attention: "drop" (no K/V where the cache has a DummyLayer there, as new_cache() makes; a live cache
    # layer is kept in step instead) or "kv_only" (K/V always written, no attention)
    attention_mode: str = "drop"
    online_ffn: bool = False  # AdaSkip decode stage: add FFN skips whose similarity over the first P tokens >= beta
    online_window: int = 20  # P, decode tokens observed before online additions (paper code: 20)
    online_threshold: float = 1.0  # beta, the lowest offline similarity in the skipped set

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        for name in ("attention_skip", "ffn_skip"):
            indices = tuple(int(i) for i in getattr(self, name))
            object.__setattr__(self, name, indices)
            bad = [i for i in indices if not 0 <= i < self.num_layers]
            if bad:
                raise ValueError(f"{name} has layer indices {bad} outside 0..{self.num_layers - 1}")
            if len(set(indices)) != len(indices):
                raise ValueError(f"{name} repeats layer indices: {list(indices)}")
        for name, skip in (("attention_scale", self.attention_skip), ("ffn_scale", self.ffn_skip)):
            scales = tuple(float(s) for s in getattr(self, name))
            object.__setattr__(self, name, scales)
            if scales and len(scales) != len(skip):
                raise ValueError(f"{name} has {len(scales)} entries for {len(skip)} skipped sublayers")
            if any(not s > 0 for s in scales):
                raise ValueError(f"{name} must be positive, got {list(scales)}")
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {self.phase!r}")
        if self.attention_mode not in ATTENTION_MODES:
            raise ValueError(f"attention_mode must be one of {ATTENTION_MODES}, got {self.attention_mode!r}")
        if self.attention_skip and self.phase == "prefill" and self.attention_mode == "drop":
            raise ValueError(
                "attention skipped in prefill only needs attention_mode='kv_only': with 'drop' the decode tokens "
                "would attend to a cache that lacks the prompt's keys"
            )
        if self.phase == "decode" and self.attention_mode == "drop" and 0 in self.attention_skip:
            raise ValueError("decode-only attention skip of layer 0 needs attention_mode='kv_only' (layer 0 sizes the mask)")
        if self.online_window < 1:
            raise ValueError(f"online_window must be >= 1, got {self.online_window}")

    @classmethod
    def empty(cls, model_type: str, num_layers: int) -> "SkipPlan":
        return cls(model_type=model_type, num_layers=num_layers)

    def scales(self, kind: str) -> dict[int, float]:
        """``{layer: scale}`` of the skipped ``kind`` ("attention" or "ffn") sublayers."""
        skip = self.attention_skip if kind == "attention" else self.ffn_skip
        scale = self.attention_scale if kind == "attention" else self.ffn_scale
        return dict(zip(skip, scale or (1.0,) * len(skip)))

    def sublayers(self) -> dict[str, Any]:
        """What is skipped and how (sorted indices, phase, attention mode), without scales or the online stage: the
        part that sets a plan's cost, and the spec under which benchmark rows store a plan (``SkipPlan(t, L, **spec)``
        reads it back)."""
        return {"attention_skip": tuple(sorted(self.attention_skip)), "ffn_skip": tuple(sorted(self.ffn_skip)),
                "phase": self.phase, "attention_mode": self.attention_mode}

    @property
    def num_skipped(self) -> int:
        return len(self.attention_skip) + len(self.ffn_skip)

    def without_scale(self) -> "SkipPlan":
        return dataclasses.replace(self, attention_scale=(), ffn_scale=())
