"""``AdaSkip.wrap(model, plan)``: sublayer skipping on a Hugging Face causal LM, without copying modeling files.

Mechanism (docs/methods/adaskip.md): each decoder-layer *instance* gets its own ``forward`` (``types.MethodType``) that
rebuilds the residual layer from its family's two terms (``layout.py``: norms, multipliers and parallel blocks
as the family computes them) and, per sublayer j and phase, either runs it,

    b = a + f_j(a)                                           (the model as trained; f_j includes its norms)

or skips it with scale compensation (AdaSkip, arXiv 2501.02336, "Scale compensation"),

    b = Scale_j * a.

In a parallel block (both terms read the layer input ``a``: Cohere, Phi, GPT-NeoX, Falcon) the skipped term is left
out and the scale multiplies the stream it would have joined, ``b = Scale_j * a + f_other(a)``; its statistics
compare ``a`` with ``a + f_j(a)``.

Classes, parameters and ``state_dict`` are untouched, so ``unwrap()`` (deleting the instance attributes) restores
the model bit-exactly and an empty plan computes exactly the same operations in the same order as the original.
A forward pre-hook on the decoder stack decides the phase once per call: *prefill* when the cache is empty or
absent, *decode* otherwise. Skipped attention either writes no K/V (``drop``) or writes only K/V (``kv_only``).
``drop`` holds no K/V only where the cache has a storage-free ``DummyLayer`` (``new_cache()`` puts one at each layer
whose attention is always skipped; the wrapper's ``generate`` uses it). Any other cache layer at a dropped attention
(the model's own ``generate``, a static cache, a cache the caller built) is kept in step as under ``kv_only``:
transformers reads the sequence length and sizes masks from live cache layers, so an empty one there would
silently lose positions and padding.

The recorder accumulates, per phase and sublayer, the token-mean IO cosine cos(a, b) and norm ratio |b|/|a| -
AdaSkip's importance signal and scale (paper, "Prefill: offline importance learning"). The online decode stage
(paper, "Decode: online FFN-only additions") measures each FFN's cosine over the first ``online_window`` decode
steps of a request and then also skips every FFN whose mean is >= ``online_threshold`` (beta), with the measured
scale. One plan covers the whole batch of a call: statistics are pooled over rows (our choice; the paper runs
batch 1).
"""

from __future__ import annotations

import inspect
import types
from collections import defaultdict
from typing import Any

import torch

from zoo.adaskip.layout import Layout, layout_for
from zoo.adaskip.plan import SkipPlan

__all__ = ["AdaSkip", "SublayerStats"]

KINDS = ("attention", "ffn")


class SublayerStats:
    """Running sums of IO cosine and norm ratio per (phase, kind, layer), over tokens."""

    def __init__(self, num_layers: int) -> None:
        self.num_layers = num_layers
        self.cos = defaultdict(lambda: torch.zeros(num_layers, dtype=torch.float64))
        self.ratio = defaultdict(lambda: torch.zeros(num_layers, dtype=torch.float64))
        self.tokens = defaultdict(lambda: torch.zeros(num_layers, dtype=torch.float64))

    def add(self, phase: str, kind: str, layer: int, before: torch.Tensor, after: torch.Tensor) -> None:
        a, b = before.detach().double().flatten(0, -2), after.detach().double().flatten(0, -2)  # [tokens, d]
        cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
        ratio = b.norm(dim=-1) / a.norm(dim=-1).clamp_min(1e-30)
        self.cos[phase, kind][layer] += cos.sum().cpu()
        self.ratio[phase, kind][layer] += ratio.sum().cpu()
        self.tokens[phase, kind][layer] += cos.numel()

    def mean(self, phase: str, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean cosine [L], mean norm ratio [L])``; NaN where nothing was recorded."""
        n = self.tokens[phase, kind]
        return self.cos[phase, kind] / n, self.ratio[phase, kind] / n


class AdaSkip:
    """A skip controller attached to one model; see the module docstring."""

    _ATTR = "_zoo_adaskip"

    def __init__(self, model: Any, plan: SkipPlan | None, layout: Layout) -> None:
        self.model = model
        self.layout = layout
        self.layers = list(layout.layers(model))
        self.recording = False
        self.stats = SublayerStats(len(self.layers))
        self._phase = "prefill"
        self._decode_steps = 0
        self._online: dict[int, float] = {}
        self._online_stats = SublayerStats(len(self.layers))
        self._hook = None
        self._kv_write: frozenset[int] = frozenset()  # dropped attentions whose cache layer is live: write their K/V
        self.decode_schedule = None  # optional callable(decode step t >= 1) -> SkipPlan, for time-varying baselines
        self._apply(plan if plan is not None else SkipPlan.empty(model.config.model_type, len(self.layers)))
        self._base_plan = self.plan

    # -- installing ----------------------------------------------------------------------------------
    @classmethod
    def wrap(cls, model: Any, plan: SkipPlan | None = None) -> "AdaSkip":
        """Install the per-layer overrides on ``model`` (in place) and return the controller."""
        if getattr(model, cls._ATTR, None) is not None:
            raise ValueError("this model is already wrapped by AdaSkip; call unwrap() first")
        layout = layout_for(model)
        skipper = cls(model, None, layout)
        skipper.set_plan(plan)
        for index, layer in enumerate(skipper.layers):
            if "forward" in vars(layer):
                raise ValueError(f"decoder layer {index} already has an instance-level forward; refusing to stack overrides")
            signature = inspect.signature(type(layer).forward)
            layer.forward = types.MethodType(_make_forward(skipper, index, signature), layer)
        skipper._hook = layout.stack(model).register_forward_pre_hook(skipper._pre_forward, with_kwargs=True)
        setattr(model, cls._ATTR, skipper)
        return skipper

    def unwrap(self) -> Any:
        """Remove every override; the model is exactly as before ``wrap``."""
        for layer in self.layers:
            vars(layer).pop("forward", None)
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if getattr(self.model, self._ATTR, None) is self:
            delattr(self.model, self._ATTR)
        return self.model

    def set_plan(self, plan: SkipPlan | None) -> None:
        if plan is None:
            plan = SkipPlan.empty(self.model.config.model_type, len(self.layers))
        if plan.model_type != self.model.config.model_type or plan.num_layers != len(self.layers):
            raise ValueError(
                f"plan made for {plan.model_type} with {plan.num_layers} layers cannot drive this "
                f"{self.model.config.model_type} model with {len(self.layers)} layers"
            )
        self._online = {}
        self._apply(plan)
        self._base_plan = plan

    def _apply(self, plan: SkipPlan) -> None:
        """Make ``plan`` current. Every change of plan, phase or online skips ends in ``_refresh_active``."""
        self.plan = plan
        self._attention = plan.scales("attention")
        self._ffn = plan.scales("ffn")
        self._refresh_active()

    # -- caches ----------------------------------------------------------------------------------------
    def new_cache(self) -> Any:
        """A ``DynamicCache`` with storage-free ``DummyLayer``s where attention is dropped for every token.

        Pass it as ``generate(..., cache=skipper.new_cache())``: masks and ``get_seq_length()`` then read a live
        layer, and skipped layers hold no memory (docs/methods/adaskip.md).
        """
        from transformers.cache_utils import DynamicCache

        try:
            from transformers.cache_utils import DummyLayer
        except ImportError:  # older transformers: no storage-free layer; skipped layers then just stay empty
            DummyLayer = None
        cache = DynamicCache(config=self.model.config)
        if DummyLayer is not None and self.plan.phase == "both" and self.plan.attention_mode == "drop":
            dropped = set(self.plan.attention_skip)
            sliding = list(getattr(cache, "is_sliding", [False] * len(cache.layers)))
            for kind in set(sliding):  # keep one live layer per attention kind for lengths and masks (kv_only there)
                same = [i for i, s in enumerate(sliding) if s == kind]
                if set(same) <= dropped:
                    dropped.discard(same[0])
            for index in dropped:
                cache.layers[index] = DummyLayer()
        return cache

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """``model.generate`` with a cache from ``new_cache()`` unless one is given."""
        if kwargs.get("cache", kwargs.get("past_key_values")) is None and "cache_implementation" not in kwargs:
            kwargs["cache"] = self.new_cache()
        return self.model.generate(*args, **kwargs)

    # -- phase and online stage ------------------------------------------------------------------------
    def _pre_forward(self, module: Any, args: tuple, kwargs: dict) -> None:
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if cache is None and len(args) > 1 and not isinstance(args[1], torch.Tensor):
            cache = args[1]
        seen = cache.get_seq_length() if cache is not None else 0
        self._kv_write = self._live_dropped(cache)
        if seen == 0:
            self._phase, self._decode_steps, self._online = "prefill", 0, {}
            self._online_stats = SublayerStats(len(self.layers))
            if self.decode_schedule is not None:
                self._apply(self._base_plan)
        else:
            self._phase = "decode"
            self._decode_steps += 1
            if self.decode_schedule is not None:
                self._apply(self.decode_schedule(self._decode_steps))
            plan = self.plan
            if plan.online_ffn and self._decode_steps == plan.online_window + 1:
                cos, ratio = self._online_stats.mean("decode", "ffn")
                self._online = {
                    i: float(ratio[i]) for i in range(len(self.layers))
                    if i not in self._ffn and bool(cos[i] >= plan.online_threshold)
                }
        self._refresh_active()

    def _live_dropped(self, cache: Any) -> frozenset[int]:
        """Dropped attentions whose cache layer stores K/V (not a ``DummyLayer``); with no cache given, the model makes
        a ``DynamicCache`` of live layers itself (unless ``use_cache=False``, when nothing is written anyway)."""
        if self.plan.attention_mode != "drop" or not self.plan.attention_skip:
            return frozenset()
        layers = getattr(cache, "layers", None)
        if layers is None:
            return frozenset(self.plan.attention_skip)
        return frozenset(i for i in self.plan.attention_skip
                         if i < len(layers) and type(layers[i]).__name__ != "DummyLayer")

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def online_ffn_skips(self) -> dict[int, float]:
        """FFN skips added by the online decode stage for the current request (``{layer: scale}``)."""
        return dict(self._online)

    def _refresh_active(self) -> None:
        """Resolve the skip sets of this forward once (the per-layer code reads them 2L times per forward)."""
        self._active_attention = self._active("attention")
        self._active_ffn = self._active("ffn")
        self._online_probe = self.plan.online_ffn and self._phase == "decode" and self._decode_steps <= self.plan.online_window

    def _active(self, kind: str) -> dict[int, float]:
        plan = self.plan
        if plan.phase not in ("both", self._phase):
            base: dict[int, float] = {}
        else:
            base = self._attention if kind == "attention" else self._ffn
        if kind == "ffn" and self._phase == "decode" and self._online:
            return {**self._online, **base}
        return base


def _make_forward(skipper: AdaSkip, index: int, signature: inspect.Signature):
    layout = skipper.layout

    def forward(layer: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        if len(args) == 1 and "hidden_states" not in kwargs:  # how Llama-family stacks call a layer: no binding needed
            stream, call = args[0], kwargs
        else:
            bound = signature.bind(layer, *args, **kwargs).arguments
            call = {k: v for k, v in bound.items() if k not in ("self", "hidden_states", "kwargs")}
            call.update(bound.get("kwargs", {}))
            stream = bound["hidden_states"]
        layer_input = stream
        phase = skipper._phase
        record = skipper.recording
        online_probe = skipper._online_probe
        attention, ffn = skipper._active_attention, skipper._active_ffn
        skip_attention, skip_ffn = index in attention, index in ffn
        if skip_attention and (skipper.plan.attention_mode == "kv_only" or index in skipper._kv_write):
            layout.kv_only(layer, stream, call)

        if layout.parallel:  # both terms read the layer input; a skipped term's scale applies to the stream
            a = stream
            attn_term = None if skip_attention else layout.attention_term(layer, a, call)
            ffn_term = None if skip_ffn else layout.ffn_term(layer, a)
            scale = (attention[index] if skip_attention else 1.0) * (ffn[index] if skip_ffn else 1.0)
            base = a * scale if scale != 1.0 else a
            if attn_term is not None and ffn_term is not None:
                stream = layout.combine(a, attn_term, ffn_term)
            elif attn_term is not None or ffn_term is not None:
                stream = base + (attn_term if attn_term is not None else ffn_term)
            else:
                stream = base
            if record and attn_term is not None:
                skipper.stats.add(phase, "attention", index, a, a + attn_term)
            if ffn_term is not None and (record or online_probe):
                alone = a + ffn_term
                if record:
                    skipper.stats.add(phase, "ffn", index, a, alone)
                if online_probe:
                    skipper._online_stats.add("decode", "ffn", index, a, alone)
        else:
            # attention sublayer
            if skip_attention:
                stream = stream * attention[index] if attention[index] != 1.0 else stream
            else:
                residual = stream
                stream = residual + layout.attention_term(layer, stream, call)
                if record:
                    skipper.stats.add(phase, "attention", index, residual, stream)
            # FFN sublayer
            if skip_ffn:
                stream = stream * ffn[index] if ffn[index] != 1.0 else stream
            else:
                residual = stream
                stream = residual + layout.ffn_term(layer, stream)
                if record:
                    skipper.stats.add(phase, "ffn", index, residual, stream)
                if online_probe:
                    skipper._online_stats.add("decode", "ffn", index, residual, stream)
        if record:  # whole-layer IO similarity: ShortGPT's block influence is 1 - this cosine
            skipper.stats.add(phase, "layer", index, layer_input, stream)
        return (stream, None) if layout.returns_tuple else stream

    return forward
