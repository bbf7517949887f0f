"""AdaSkip: adaptive sublayer skipping for long-context LLM inference (arXiv 2501.02336).

``AdaSkip.wrap(model, plan)`` installs per-layer overrides on a transformers causal LM of any family in
``zoo.adaskip.layout.LAYOUTS`` (Llama, Qwen2/3, Qwen3-MoE, Mistral, Mixtral, Gemma 1/2/3, SmolLM3, Phi, Phi-3, OLMo 2,
Granite, Cohere, StableLM, GPT-NeoX, Falcon, Llama 4 text, GPT-2); ``calibrate`` learns sublayer importance offline; ``adaskip_plan`` turns it into a plan for a budget.
"""

from zoo.adaskip.plan import SkipPlan
from zoo.adaskip.wrapper import AdaSkip, SublayerStats

__all__ = ["AdaSkip", "SkipPlan", "SublayerStats"]
