"""Where the sublayers of a Hugging Face decoder live, per architecture family.

A pre-norm decoder layer computes ``a -> a + attention(norm1(a)) -> ... + ffn(norm2(.))``. AdaSkip needs the four
children and how the layer hands its arguments to the attention module; everything else (classes, parameter
names, ``state_dict``) stays as transformers made it. Checked against transformers 5.24 (notes section 3).
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


def _llama_attention(layer: Any, normed: torch.Tensor, args: dict[str, Any]) -> torch.Tensor:
    return layer.self_attn(hidden_states=normed, **args)[0]


def _llama_kv_only(layer: Any, normed: torch.Tensor, args: dict[str, Any]) -> None:
    """Write this layer's keys and values to the cache without computing attention (``kv_only`` mode)."""
    cache = args.get("cache", args.get("past_key_values"))  # older transformers name it past_key_values
    if cache is None:
        return
    attn = layer.self_attn
    shape = (*normed.shape[:-1], -1, attn.head_dim)  # [B, T, heads, head_dim]
    keys = attn.k_proj(normed).view(shape).transpose(1, 2)
    values = attn.v_proj(normed).view(shape).transpose(1, 2)
    cos, sin = args["position_embeddings"]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads
    keys = keys * cos + _rotate_half(keys) * sin
    cache.update(keys, values, attn.layer_idx)


def _gpt2_attention(layer: Any, normed: torch.Tensor, args: dict[str, Any]) -> torch.Tensor:
    if args.get("encoder_hidden_states") is not None:
        raise ValueError("AdaSkip does not support GPT-2 cross-attention (encoder_hidden_states was given)")
    rest = {k: v for k, v in args.items() if k not in ("cache", "attention_mask", "use_cache", "encoder_hidden_states", "encoder_attention_mask")}
    return layer.attn(normed, cache=args.get("cache"), attention_mask=args.get("attention_mask"), use_cache=args.get("use_cache"), **rest)[0]


def _gpt2_kv_only(layer: Any, normed: torch.Tensor, args: dict[str, Any]) -> None:
    cache = args.get("cache", args.get("past_key_values"))
    if cache is None:
        return
    attn = layer.attn
    _, keys, values = attn.c_attn(normed).split(attn.split_size, dim=2)  # [B, T, d] each
    shape = (*normed.shape[:-1], attn.num_heads, attn.head_dim)
    cache.update(keys.view(shape).transpose(1, 2), values.view(shape).transpose(1, 2), attn.layer_idx)


@dataclasses.dataclass(frozen=True)
class Layout:
    """How to reach the decoder stack and the four children of each layer of one architecture family."""

    family: str
    stack: Callable[[Any], torch.nn.Module]  # module whose forward receives the cache (for phase detection)
    layers: Callable[[Any], torch.nn.ModuleList]
    norm1: str
    attention: str
    norm2: str
    ffn: str
    call_attention: Callable[[Any, torch.Tensor, dict[str, Any]], torch.Tensor]
    kv_only: Callable[[Any, torch.Tensor, dict[str, Any]], None]


_LLAMA = Layout("llama", lambda m: m.model, lambda m: m.model.layers, "input_layernorm", "self_attn",
                "post_attention_layernorm", "mlp", _llama_attention, _llama_kv_only)
_GPT2 = Layout("gpt2", lambda m: m.transformer, lambda m: m.transformer.h, "ln_1", "attn", "ln_2", "mlp",
               _gpt2_attention, _gpt2_kv_only)
LAYOUTS: dict[str, Layout] = {"llama": _LLAMA, "qwen2": _LLAMA, "mistral": _LLAMA, "gpt2": _GPT2}


def layout_for(model: Any) -> Layout:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in LAYOUTS:
        raise ValueError(f"AdaSkip supports model types {sorted(LAYOUTS)}; this model is {model_type!r}")
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise ValueError(f"AdaSkip wraps a causal LM with its LM head (e.g. AutoModelForCausalLM); "
                         f"{type(model).__name__} has none")
    return LAYOUTS[model_type]
