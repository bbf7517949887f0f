"""A small byte-level Llama trained on Shakespeare: a real, offline base model for AdaSkip tests and speed runs.

Vocabulary = the 256 byte values (no tokenizer). The architecture is transformers' ``LlamaForCausalLM``, so
everything AdaSkip does to it is what it does to any Llama checkpoint. Loss: next-byte cross-entropy; reported
as bits per byte (bpb = nats / ln 2) on held-out plays.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch

from zoo import register_model
from zoo._core.module import ZooModule

__all__ = ["ByteLlamaConfig", "ByteLlamaModule"]


@dataclasses.dataclass
class ByteLlamaConfig:
    hidden_size: int = 128  # model width d
    num_layers: int = 4  # decoder layers
    num_heads: int = 4  # query heads
    num_kv_heads: int = 2  # key/value heads (grouped-query attention)
    intermediate_size: int = 344  # SwiGLU FFN width
    max_positions: int = 4096  # longest context (RoPE positions)
    rope_theta: float = 10000.0  # RoPE base
    lr: float = 3e-3  # AdamW peak learning rate
    weight_decay: float = 0.01  # AdamW weight decay
    warmup_steps: int = 50  # linear warm-up, then cosine decay to 10% over max_steps
    max_steps: int = 2000  # length of the cosine schedule

    # a fine-tune (zoo.init_from) may change the optimisation only; every other field sets shapes or the function
    finetune_safe_fields: ClassVar[tuple[str, ...]] = ("lr", "weight_decay", "warmup_steps", "max_steps")

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "max_positions", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(f"hidden_size {self.hidden_size}, num_heads {self.num_heads}, num_kv_heads {self.num_kv_heads} "
                             "must divide evenly (d % heads == 0, heads % kv_heads == 0)")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


class ByteLlamaModule(ZooModule):
    """The byte-level Llama as a ZooModule: ``lm`` is a transformers ``LlamaForCausalLM`` over the 256 byte values,
    trained on next-byte cross-entropy (reported as bits per byte); presets ``byte_llama_tiny``, ``byte_llama_small``."""

    config_class = ByteLlamaConfig
    card_template = "adaskip"
    transformers_submodule = "lm"  # the snapshot also opens with transformers.AutoModelForCausalLM.from_pretrained

    def __init__(self, config: ByteLlamaConfig | None = None) -> None:
        super().__init__(config)
        from transformers import LlamaConfig, LlamaForCausalLM

        c = self.config
        self.lm = LlamaForCausalLM(LlamaConfig(
            vocab_size=256, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size, num_hidden_layers=c.num_layers,
            num_attention_heads=c.num_heads, num_key_value_heads=c.num_kv_heads, max_position_embeddings=c.max_positions,
            rope_theta=c.rope_theta, bos_token_id=None, eos_token_id=None, pad_token_id=None, tie_word_embeddings=False,
            attn_implementation="sdpa",
        ))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids, use_cache=False).logits

    def _bits_per_byte(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self(batch[:, :-1])  # [B, T, 256]
        nats = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten())
        return nats / math.log(2.0)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        bpb = self._bits_per_byte(batch)
        self.log("train_bpb", bpb, prog_bar=True)
        return bpb

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("val_bpb", self._bits_per_byte(batch), prog_bar=True, sync_dist=True)

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("test_bpb", self._bits_per_byte(batch), sync_dist=True)

    def configure_optimizers(self):
        c = self.config
        optimizer = torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay, betas=(0.9, 0.95))

        def schedule(step: int) -> float:
            if step < c.warmup_steps:
                return (step + 1) / c.warmup_steps
            progress = min(1.0, (step - c.warmup_steps) / max(1, c.max_steps - c.warmup_steps))
            return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


@register_model("byte_llama_tiny")
def byte_llama_tiny() -> ByteLlamaConfig:
    """2 layers, d = 64: trains in seconds; for tests and the quick-start job."""
    return ByteLlamaConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=172,
                           max_positions=1024, lr=3e-3, warmup_steps=10, max_steps=60)


@register_model("byte_llama_small")
def byte_llama_small() -> ByteLlamaConfig:
    """8 layers, d = 128 (16 sublayers to skip): the AdaSkip speed and quality runs on CPU."""
    return ByteLlamaConfig(hidden_size=128, num_layers=8, num_heads=4, num_kv_heads=2, intermediate_size=344,
                           max_positions=4096, lr=3e-3, warmup_steps=100, max_steps=3000)
