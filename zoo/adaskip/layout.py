"""Where the sublayers of a Hugging Face decoder live and what each adds to the residual stream, per family.

A decoder layer is two residual sublayers. *Sequential* families compute ``a -> h = a + A(a) -> b = h + F(h)``;
*parallel* ones (GPT-J style: Cohere, Phi, GPT-NeoX) read both terms from the layer input, ``b = a + A(a) + F(a)``.
A layout gives the terms ``A`` and ``F`` exactly as the family's own layer computes them, norms included: pre-norm
(Llama, Qwen2/3, Mistral, Mixtral, Gemma, Phi-3, SmolLM3, Granite with its residual multiplier), sandwich norms
(Gemma 2/3: ``A = post_norm(attn(pre_norm(a)))``), post-norm only (OLMo 2: ``A = post_norm(attn(a))``). Everything
inside the attention module (q/k norms, soft-capping, sliding windows, NoPE layers, fused QKV) stays the family's
own code, and an MoE FFN is one module, so skipping it skips the router and every expert.

Skipping a sublayer replaces its term: in a sequential layer ``h = s * a`` (AdaSkip's scale s); in a parallel one
the skipped term is dropped and the scale applies to the stream that it would have been added to,
``b = s * a + F(a)`` (skipping attention) or ``b = s * a + A(a)`` (skipping the FFN); with both skipped the scales
multiply. Statistics of a parallel sublayer compare ``a`` with ``a + its own term``.

``kv_only`` writes a skipped attention's keys and values without attending. Llama-like and GPT-2 layouts do it by
hand (k and v projections and RoPE only); the others run their own attention module with an attention function
that returns zeros, so every family detail of the keys (k norms, partial or absent RoPE, fused QKV) is kept; the
cost is the q and output projections of that layer. Families whose layers cannot be rebuilt faithfully are refused
with the reason (``REFUSED``). Checked against transformers 5.24 (docs/methods/adaskip.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

__all__ = ["LAYOUTS", "Layout", "layout_for"]


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    # RoPE (Su et al., arXiv 2104.09864): pairs (x_i, x_{i+d/2}) rotate together; this is the "rotate half" form.
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


KV_ONLY_ATTENTION = "zoo_adaskip_kv_only"


def _zero_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any):
    """An attention function that attends to nothing: the keys and values were already written to the cache."""
    return query.new_zeros(query.shape[0], query.shape[2], query.shape[1], value.shape[-1]), None


def _register_zero_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(KV_ONLY_ATTENTION, _zero_attention)


def _cache_of(args: dict[str, Any]) -> Any:
    return args.get("cache", args.get("past_key_values", args.get("layer_past")))


def _module_kv_only(attention: str, norm: str | None) -> Callable[[Any, torch.Tensor, dict[str, Any]], None]:
    """``kv_only`` through the family's own attention module, run with the zero attention function."""

    def kv_only(layer: Any, stream: torch.Tensor, args: dict[str, Any]) -> None:
        if _cache_of(args) is None:
            return
        module = getattr(layer, attention)
        config = module.config
        saved = config._attn_implementation_internal
        config._attn_implementation_internal = KV_ONLY_ATTENTION
        try:
            module(hidden_states=getattr(layer, norm)(stream) if norm else stream, **args)
        finally:
            config._attn_implementation_internal = saved

    return kv_only


@dataclasses.dataclass(frozen=True)
class Layout:
    """How to reach the decoder stack of one family and the two residual terms of each of its layers."""

    family: str
    stack: Callable[[Any], torch.nn.Module]  # module whose forward receives the cache (for phase detection)
    layers: Callable[[Any], torch.nn.ModuleList]
    attention: str  # child name of the attention module
    ffn: str  # child name of the FFN (MLP or mixture of experts)
    attention_term: Callable[[Any, torch.Tensor, dict[str, Any]], torch.Tensor]  # A(a): what attention adds
    ffn_term: Callable[[Any, torch.Tensor], torch.Tensor]  # F(h): what the FFN adds
    kv_only: Callable[[Any, torch.Tensor, dict[str, Any]], None]  # write K/V of the layer input, no attention
    parallel: bool = False  # both terms read the layer input
    # how a parallel layer adds (stream, A, F), in the family's own order so that an empty plan is bit-identical
    combine: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    returns_tuple: bool = False  # the stack reads outputs[0] (Falcon); attention weights come back as None


def _term(module: str, pre: str | None, post: str | None, mult: str | None, dropout: str | None, attention: bool):
    """``mult * post(dropout(module(pre(stream))))``, each part optional: the residual term a family's layer adds.
    An attention module takes ``hidden_states=`` plus the layer's arguments and returns a tuple."""

    def term(layer: Any, stream: torch.Tensor, args: dict[str, Any] | None = None) -> torch.Tensor:
        x = getattr(layer, pre)(stream) if pre else stream
        out = getattr(layer, module)(hidden_states=x, **args)[0] if attention else getattr(layer, module)(x)
        if dropout:
            out = getattr(layer, dropout)(out)
        if post:
            out = getattr(layer, post)(out)
        return out * getattr(layer, mult) if mult else out

    return term


def _attn(attention: str, pre: str | None = None, post: str | None = None, mult: str | None = None, dropout: str | None = None):
    return _term(attention, pre, post, mult, dropout, attention=True)


def _ffn(ffn: str, pre: str | None = None, post: str | None = None, mult: str | None = None, dropout: str | None = None):
    return _term(ffn, pre, post, mult, dropout, attention=False)


def _llama_attention(layer: Any, stream: torch.Tensor, args: dict[str, Any]) -> torch.Tensor:
    return layer.self_attn(hidden_states=layer.input_layernorm(stream), **args)[0]


def _llama_kv_only(layer: Any, stream: torch.Tensor, args: dict[str, Any]) -> None:
    """Write this layer's keys and values to the cache without computing attention (``kv_only`` mode)."""
    cache = _cache_of(args)
    if cache is None:
        return
    normed = layer.input_layernorm(stream)
    attn = layer.self_attn
    shape = (*normed.shape[:-1], -1, attn.head_dim)  # [B, T, heads, head_dim]
    keys = attn.k_proj(normed).view(shape).transpose(1, 2)
    values = attn.v_proj(normed).view(shape).transpose(1, 2)
    cos, sin = args["position_embeddings"]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads
    keys = keys * cos + _rotate_half(keys) * sin
    cache.update(keys, values, attn.layer_idx)


def _gpt2_attention(layer: Any, stream: torch.Tensor, args: dict[str, Any]) -> torch.Tensor:
    if args.get("encoder_hidden_states") is not None:
        raise ValueError("AdaSkip does not support GPT-2 cross-attention (encoder_hidden_states was given)")
    rest = {k: v for k, v in args.items() if k not in ("cache", "attention_mask", "use_cache", "encoder_hidden_states", "encoder_attention_mask")}
    return layer.attn(layer.ln_1(stream), cache=args.get("cache"), attention_mask=args.get("attention_mask"),
                      use_cache=args.get("use_cache"), **rest)[0]


def _gpt2_kv_only(layer: Any, stream: torch.Tensor, args: dict[str, Any]) -> None:
    cache = _cache_of(args)
    if cache is None:
        return
    normed = layer.ln_1(stream)
    attn = layer.attn
    _, keys, values = attn.c_attn(normed).split(attn.split_size, dim=2)  # [B, T, d] each
    shape = (*normed.shape[:-1], attn.num_heads, attn.head_dim)
    cache.update(keys.view(shape).transpose(1, 2), values.view(shape).transpose(1, 2), attn.layer_idx)


def _decoder(model: Any) -> torch.nn.Module:
    return model.model


def _decoder_layers(model: Any) -> torch.nn.ModuleList:
    return model.model.layers


def _pre_norm(family: str, kv_only=None, attn_mult: str | None = None, attn_dropout: str | None = None,
              ffn_dropout: str | None = None) -> Layout:
    """Llama-style pre-norm layer: ``input_layernorm`` -> ``self_attn``, ``post_attention_layernorm`` -> ``mlp``."""
    plain = attn_mult is None and attn_dropout is None
    return Layout(family, _decoder, _decoder_layers, "self_attn", "mlp",
                  _llama_attention if plain else _attn("self_attn", "input_layernorm", mult=attn_mult, dropout=attn_dropout),
                  _ffn("mlp", "post_attention_layernorm", mult=attn_mult, dropout=ffn_dropout),
                  kv_only or _module_kv_only("self_attn", "input_layernorm"))


_LLAMA = _pre_norm("llama", _llama_kv_only)
_GPT2 = Layout("gpt2", lambda m: m.transformer, lambda m: m.transformer.h, "attn", "mlp", _gpt2_attention,
               _ffn("mlp", "ln_2"), _gpt2_kv_only)
_SANDWICH = Layout("gemma2", _decoder, _decoder_layers, "self_attn", "mlp",
                   _attn("self_attn", "input_layernorm", "post_attention_layernorm"),
                   _ffn("mlp", "pre_feedforward_layernorm", "post_feedforward_layernorm"),
                   _module_kv_only("self_attn", "input_layernorm"))
_OLMO2 = Layout("olmo2", _decoder, _decoder_layers, "self_attn", "mlp", _attn("self_attn", None, "post_attention_layernorm"),
                _ffn("mlp", None, "post_feedforward_layernorm"), _module_kv_only("self_attn", None))

def _moe_ffn(ffn: str, pre: str):
    """Llama 4 text: ``feed_forward`` is a dense MLP, or on MoE layers returns (output, router logits) flattened."""

    def term(layer: Any, stream: torch.Tensor) -> torch.Tensor:
        out = getattr(layer, ffn)(getattr(layer, pre)(stream))
        return (out[0] if isinstance(out, tuple) else out).view(stream.shape)

    return term


def _stack(name: str):
    return lambda m: getattr(m, name)


def _stack_layers(name: str, layers: str = "layers"):
    return lambda m: getattr(getattr(m, name), layers)


# Parallel blocks (one norm shared by both terms, or one per term), each adding in its family's own order.
_COHERE = Layout("cohere", _decoder, _decoder_layers, "self_attn", "mlp", _attn("self_attn", "input_layernorm"),
                 _ffn("mlp", "input_layernorm"), _module_kv_only("self_attn", "input_layernorm"), parallel=True,
                 combine=lambda a, attn, ffn: a + attn + ffn)
_PHI = Layout("phi", _decoder, _decoder_layers, "self_attn", "mlp",
              _attn("self_attn", "input_layernorm", dropout="resid_dropout"),
              _ffn("mlp", "input_layernorm", dropout="resid_dropout"), _module_kv_only("self_attn", "input_layernorm"),
              parallel=True, combine=lambda a, attn, ffn: attn + ffn + a)
_NEOX_ATTENTION = _attn("attention", "input_layernorm", dropout="post_attention_dropout")
_NEOX_FFN = _ffn("mlp", "post_attention_layernorm", dropout="post_mlp_dropout")
_NEOX = Layout("gpt_neox", _stack("gpt_neox"), _stack_layers("gpt_neox"), "attention", "mlp", _NEOX_ATTENTION,
               _NEOX_FFN, _module_kv_only("attention", "input_layernorm"))
_NEOX_PARALLEL = dataclasses.replace(_NEOX, parallel=True, combine=lambda a, attn, ffn: ffn + attn + a)
_STABLELM = Layout("stablelm", _decoder, _decoder_layers, "self_attn", "mlp", _attn("self_attn", "input_layernorm"),
                   _ffn("mlp", "post_attention_layernorm", dropout="dropout"),
                   _module_kv_only("self_attn", "input_layernorm"))
_STABLELM_PARALLEL = dataclasses.replace(_STABLELM, ffn_term=_ffn("mlp", "input_layernorm", dropout="dropout"),
                                         parallel=True, combine=lambda a, attn, ffn: a + attn + ffn)

# Falcon: three block shapes picked by the config (layout_for); ALiBi or RoPE and multi-query attention stay inside
# the attention module, which does not use the attention-function registry, so its kv_only also attends (no saving).
_FALCON_SEQUENTIAL = Layout("falcon", _stack("transformer"), _stack_layers("transformer", "h"), "self_attention", "mlp",
                            _attn("self_attention", "input_layernorm"), _ffn("mlp", "post_attention_layernorm"),
                            _module_kv_only("self_attention", "input_layernorm"), returns_tuple=True)
_FALCON_PARALLEL = dataclasses.replace(_FALCON_SEQUENTIAL, ffn_term=_ffn("mlp", "input_layernorm"), parallel=True,
                                       combine=lambda a, attn, ffn: a + (ffn + attn))
_FALCON_TWO_NORMS = dataclasses.replace(_FALCON_PARALLEL, attention_term=_attn("self_attention", "ln_attn"),
                                        ffn_term=_ffn("mlp", "ln_mlp"), kv_only=_module_kv_only("self_attention", "ln_attn"))


def _falcon(config: Any) -> Layout:
    if config.new_decoder_architecture and config.num_ln_in_parallel_attn == 2:
        return _FALCON_TWO_NORMS
    if config.new_decoder_architecture or config.parallel_attn:
        return _FALCON_PARALLEL
    return _FALCON_SEQUENTIAL


LAYOUTS: dict[str, Layout] = {
    "llama": _LLAMA, "qwen2": _LLAMA, "mistral": _LLAMA, "gpt2": _GPT2,
    "qwen3": _pre_norm("qwen3"),  # q/k RMSNorm inside the attention module
    "qwen3_moe": _pre_norm("qwen3_moe"),  # mlp is the sparse MoE block (or a dense MLP on mlp_only_layers)
    "mixtral": _pre_norm("mixtral"),  # mlp is the sparse MoE block
    "gemma": _pre_norm("gemma"),  # (1 + w) RMSNorm, embeddings scaled by sqrt(d) in the stack
    "smollm3": _pre_norm("smollm3"),  # NoPE on some layers: the attention module knows which
    "phi3": _pre_norm("phi3", attn_dropout="resid_attn_dropout", ffn_dropout="resid_mlp_dropout"),  # fused qkv_proj
    "granite": _pre_norm("granite", attn_mult="residual_multiplier"),  # residual_multiplier on both terms
    "gemma2": _SANDWICH,  # sandwich norms, attention and final soft-capping, alternating sliding window
    "gemma3_text": dataclasses.replace(_SANDWICH, family="gemma3_text"),  # + q/k norms, local/global RoPE
    "olmo2": _OLMO2,  # post-norm only, q/k norms over all heads
    # chunked local attention, NoPE layers with temperature tuning and L2 q/k norms stay inside the attention module;
    # feed_forward is a dense MLP or, on moe_layers, a routed MoE with a shared expert
    "llama4_text": Layout("llama4_text", _decoder, _decoder_layers, "self_attn", "feed_forward",
                          _attn("self_attn", "input_layernorm"), _moe_ffn("feed_forward", "post_attention_layernorm"),
                          _module_kv_only("self_attn", "input_layernorm")),
    "cohere": _COHERE,  # parallel, one LayerNorm for both terms, optional q/k norms
    "phi": _PHI,  # parallel, one LayerNorm, partial RoPE, optional q/k LayerNorms, resid dropout on both terms
    "gpt_neox": _NEOX,  # fused query_key_value, partial RoPE; parallel when use_parallel_residual (the default)
    "stablelm": _STABLELM,  # partial RoPE, optional per-head q/k LayerNorms; parallel when use_parallel_residual
    "falcon": _FALCON_PARALLEL,  # the config picks sequential, parallel with one norm, or with two (new architecture)
}
_PARALLEL_VARIANTS = {"gpt_neox": _NEOX_PARALLEL, "stablelm": _STABLELM_PARALLEL}

# Model types transformers has that AdaSkip does not rebuild, and why (issue 16, item 1).
_RECURRENT = ("layers that keep a recurrent state every token must update, which a skipped sublayer would leave "
              "stale (no kv_only equivalent); no layout")
REFUSED: dict[str, str] = {
    "gemma3": "this is the multimodal Gemma 3 wrapper; wrap its language model (Gemma3ForCausalLM, model type gemma3_text)",
    "llama4": "this is the multimodal Llama 4 wrapper; wrap its language model (Llama4ForCausalLM, model type llama4_text)",
    "qwen3_next": f"its Gated DeltaNet linear-attention {_RECURRENT}",
    "jamba": f"its Mamba {_RECURRENT}",
    "bamba": f"its Mamba-2 {_RECURRENT}",
    "falcon_h1": f"its Mamba-2 {_RECURRENT}",
}


def layout_for(model: Any) -> Layout:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in REFUSED:
        raise ValueError(f"AdaSkip cannot skip sublayers of {model_type!r} faithfully: {REFUSED[model_type]}")
    if model_type not in LAYOUTS:
        raise ValueError(f"AdaSkip supports model types {sorted(LAYOUTS)}; this model is {model_type!r}")
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise ValueError(f"AdaSkip wraps a causal LM with its LM head (e.g. AutoModelForCausalLM); "
                         f"{type(model).__name__} has none")
    _register_zero_attention()
    layout = LAYOUTS[model_type]
    if model_type in _PARALLEL_VARIANTS and getattr(model.config, "use_parallel_residual", False):
        layout = _PARALLEL_VARIANTS[model_type]
    if model_type == "falcon":
        layout = _falcon(model.config)
    return dataclasses.replace(layout, family=model_type)
