"""AdaSkip: adaptive sublayer skipping for long-context LLM inference (arXiv 2501.02336).

``AdaSkip.wrap(model, plan)`` installs per-layer overrides on any Llama / Qwen2 / Mistral / GPT-2 causal LM from
transformers; ``calibrate`` learns sublayer importance offline; ``adaskip_plan`` turns it into a plan for a budget.
"""

from zoo.adaskip.plan import SkipPlan
from zoo.adaskip.wrapper import AdaSkip, SublayerStats

__all__ = ["AdaSkip", "SkipPlan", "SublayerStats"]
