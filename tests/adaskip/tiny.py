"""Tiny random-init causal LMs of each supported family (4 layers, hidden 64, 4/2 heads, vocab 128).

Output embeddings are untied and scaled x20 for decisive greedy tokens. They used to be tied (GPT-2), so the x20
also scaled the input embeddings and the residual stream drowned every attention sublayer: dropping all of them
left the greedy tokens unchanged and the cache and padding tests could not catch a bug (issue 16, item 4).
``tests/adaskip/test_families.py`` asserts, per family, that dropping one attention sublayer changes the output.
"""

from __future__ import annotations

import torch

COMMON = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=2,
              tie_word_embeddings=False)


def _config(family: str, attn: str):
    import transformers as tf

    common = dict(COMMON, attn_implementation=attn)
    if family == "gpt2":
        return tf.GPT2LMHeadModel, tf.GPT2Config(vocab_size=128, n_embd=64, n_layer=4, n_head=4, n_positions=256,
                                                 pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                                 tie_word_embeddings=False, attn_implementation=attn)
    if family == "llama":
        return tf.LlamaForCausalLM, tf.LlamaConfig(**common)
    if family == "qwen2":
        return tf.Qwen2ForCausalLM, tf.Qwen2Config(**common)
    if family == "mistral":
        return tf.MistralForCausalLM, tf.MistralConfig(**common, sliding_window=None)
    if family == "qwen3":
        return tf.Qwen3ForCausalLM, tf.Qwen3Config(**common, head_dim=16)
    if family == "qwen3_moe":
        return tf.Qwen3MoeForCausalLM, tf.Qwen3MoeConfig(**common, head_dim=16, num_experts=4, num_experts_per_tok=2,
                                                         moe_intermediate_size=32, decoder_sparse_step=1)
    if family == "mixtral":
        return tf.MixtralForCausalLM, tf.MixtralConfig(**common, num_local_experts=4, num_experts_per_tok=2,
                                                       sliding_window=None)
    if family == "gemma":
        return tf.GemmaForCausalLM, tf.GemmaConfig(**common, head_dim=16)
    if family == "gemma2":  # window 8 < the 24-token prompts: sliding layers really slide; soft-capping needs eager
        common["attn_implementation"] = "eager"
        return tf.Gemma2ForCausalLM, tf.Gemma2Config(**common, head_dim=16, sliding_window=8, query_pre_attn_scalar=16,
                                                     attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
    if family == "gemma3_text":
        return tf.Gemma3ForCausalLM, tf.Gemma3TextConfig(**common, head_dim=16, sliding_window=8, query_pre_attn_scalar=16,
                                                         layer_types=["sliding_attention", "full_attention"] * 2)
    if family == "smollm3":  # layer 1 has no RoPE (NoPE)
        return tf.SmolLM3ForCausalLM, tf.SmolLM3Config(**common, no_rope_layers=[1, 0, 1, 1])
    if family == "phi3":
        return tf.Phi3ForCausalLM, tf.Phi3Config(**common)
    if family == "olmo2":
        return tf.Olmo2ForCausalLM, tf.Olmo2Config(**common)
    if family == "granite":
        return tf.GraniteForCausalLM, tf.GraniteConfig(**common, residual_multiplier=0.5, embedding_multiplier=2.0,
                                                       attention_multiplier=0.3, logits_scaling=2.0)
    if family == "llama4_text":  # chunk 8 < the prompts; layer 3 NoPE; MoE on layers 1 and 3
        return tf.Llama4ForCausalLM, tf.Llama4TextConfig(**common, head_dim=16, intermediate_size_mlp=128,
                                                         num_local_experts=4, num_experts_per_tok=1, moe_layers=[1, 3],
                                                         attention_chunk_size=8, no_rope_layers=[1, 1, 1, 0])
    if family.startswith("falcon"):  # new architecture (two norms, GQA) / parallel one norm / sequential ALiBi
        falcon = dict(vocab_size=128, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, pad_token_id=0,
                      bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, attn_implementation=attn,
                      max_position_embeddings=256, bias=False)
        variant = {"falcon": dict(new_decoder_architecture=True, num_kv_heads=2),
                   "falcon_parallel": dict(parallel_attn=True, multi_query=True),
                   "falcon_alibi_sequential": dict(parallel_attn=False, alibi=True, multi_query=False)}[family]
        return tf.FalconForCausalLM, tf.FalconConfig(**falcon, **variant)
    if family == "cohere":
        return tf.CohereForCausalLM, tf.CohereConfig(**common, use_qk_norm=True)
    if family == "phi":
        return tf.PhiForCausalLM, tf.PhiConfig(**common, partial_rotary_factor=0.5, qk_layernorm=True)
    if family == "gpt_neox":
        return tf.GPTNeoXForCausalLM, tf.GPTNeoXConfig(**common, rotary_pct=0.5)
    if family == "gpt_neox_sequential":
        return tf.GPTNeoXForCausalLM, tf.GPTNeoXConfig(**common, rotary_pct=0.5, use_parallel_residual=False)
    if family == "stablelm":
        return tf.StableLmForCausalLM, tf.StableLmConfig(**common, qk_layernorm=True, partial_rotary_factor=0.5)
    if family == "stablelm_parallel":
        return tf.StableLmForCausalLM, tf.StableLmConfig(**common, qk_layernorm=True, partial_rotary_factor=0.5,
                                                         use_parallel_residual=True)
    raise ValueError(family)


def tiny_model(family: str, seed: int = 0, attn: str = "sdpa"):
    model_class, config = _config(family, attn)
    torch.manual_seed(seed)
    model = model_class(config)
    # Random init makes near-uniform logits; a larger output scale gives decisive greedy tokens.
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(20.0)
        if family == "gemma":  # the stack scales embeddings by sqrt(d) = 8, which drowns the sublayers at random init
            model.get_input_embeddings().weight.div_(8.0)
    return model.eval()


FAMILIES = ["llama", "qwen2", "mistral", "gpt2"]  # the wrapper's own tests (test_wrapper.py)
# every family with a layout: the matrix of test_families.py
ALL_FAMILIES = FAMILIES + ["qwen3", "qwen3_moe", "mixtral", "gemma", "gemma2", "gemma3_text", "smollm3", "phi3",
                           "olmo2", "granite", "cohere", "phi", "gpt_neox", "gpt_neox_sequential", "stablelm",
                           "stablelm_parallel", "llama4_text", "falcon", "falcon_parallel",
                           "falcon_alibi_sequential"]


def attention_module(model, index: int) -> torch.nn.Module:
    """The attention module of decoder layer ``index`` (what a reference hook zeroes)."""
    from zoo.adaskip.layout import layout_for

    layout = layout_for(model)
    return getattr(layout.layers(model)[index], layout.attention)


def ffn_module(model, index: int) -> torch.nn.Module:
    from zoo.adaskip.layout import layout_for

    layout = layout_for(model)
    return getattr(layout.layers(model)[index], layout.ffn)
