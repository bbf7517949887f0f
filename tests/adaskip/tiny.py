"""Tiny random-init causal LMs of each supported family (notes section 4: 4 layers, hidden 64, 4/2 heads, vocab 128)."""

from __future__ import annotations

import torch


def tiny_model(family: str, seed: int = 0, attn: str = "sdpa"):
    from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig,
                              MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

    torch.manual_seed(seed)
    common = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, attn_implementation=attn))
    elif family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common, attn_implementation=attn))
    elif family == "mistral":
        model = MistralForCausalLM(MistralConfig(**common, sliding_window=None, attn_implementation=attn))
    elif family == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=128, n_embd=64, n_layer=4, n_head=4, n_positions=256,
                                           pad_token_id=0, bos_token_id=1, eos_token_id=2, attn_implementation=attn))
    else:
        raise ValueError(family)
    # Random init makes near-uniform logits; a larger output scale gives decisive greedy tokens.
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(20.0)
    return model.eval()


FAMILIES = ["llama", "qwen2", "mistral", "gpt2"]


def attention_module(model, index: int) -> torch.nn.Module:
    """The attention module of decoder layer ``index`` (what a reference hook zeroes)."""
    from zoo.adaskip.layout import layout_for

    layout = layout_for(model)
    return getattr(layout.layers(model)[index], layout.attention)
