"""A ZooModule wrapping a transformers model (the byte-level Llama) saves a folder unmodified transformers opens.

``AutoModelForCausalLM.from_pretrained(folder)`` must give the same logits, bit for bit and in the same dtype, as
the zoo module, from a local snapshot and from one downloaded through ``HF_ENDPOINT`` with huggingface_hub's
``snapshot_download`` from ``zoo hub serve``; ``zoo.from_pretrained`` still loads the folder strictly; folders written before the hook
(zoo fields at the top of config.json, weights named ``lm.*``) still load.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

import zoo
from zoo._core.errors import ConfigError, ZooError
from zoo.adaskip.byte_llama import ByteLlamaModule
from zoo.hub import LocalHub


OLD_LAYOUT = Path(__file__).parent / "data" / "byte_llama_old_layout"


def _trained_looking_model() -> ByteLlamaModule:
    torch.manual_seed(0)
    model = zoo.create("byte_llama_tiny")
    with torch.no_grad():  # move every weight off its init so that a mis-mapped name cannot go unnoticed
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def _ids() -> torch.Tensor:
    return torch.randint(0, 256, (2, 40), generator=torch.Generator().manual_seed(1))


def _same_logits(model: ByteLlamaModule, hf_model: torch.nn.Module) -> None:
    ids = _ids()
    with torch.no_grad():
        ours, theirs = model(ids), hf_model(input_ids=ids, use_cache=False).logits
    assert theirs.dtype == ours.dtype == torch.float32
    assert torch.equal(theirs, ours)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype for k in sa)


def test_local_snapshot_opens_with_unmodified_automodel(isolated_hub):
    model = _trained_looking_model()
    model.push_to_hub("acme/byte-llama")
    folder = LocalHub().snapshot("acme/byte-llama")

    hf_model = AutoModelForCausalLM.from_pretrained(folder)
    assert type(hf_model).__name__ == "LlamaForCausalLM" and not hf_model.training
    _same_logits(model, hf_model)

    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert config["hidden_size"] == 64 and config["num_hidden_layers"] == 2 and config["vocab_size"] == 256
    assert config["zoo_class"] == "zoo.adaskip.byte_llama:ByteLlamaModule" and config["zoo_config"]["num_layers"] == 2
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        names, metadata = set(f.keys()), f.metadata()
    assert names == set(model.lm.state_dict()) and "model.embed_tokens.weight" in names  # no "lm." prefix
    assert metadata["format"] == "pt" and metadata["zoo_transformers_submodule"] == "lm"

    loaded = zoo.from_pretrained("acme/byte-llama")  # strict, and the same weights bit for bit
    assert type(loaded) is ByteLlamaModule and _same_weights(model, loaded)
    _same_logits(loaded, hf_model)


def test_snapshot_through_hf_endpoint_opens_with_automodel(served, tmp_path):
    """Pushed to and downloaded from `zoo hub serve` with the unmodified client."""
    from huggingface_hub import snapshot_download

    model = _trained_looking_model()
    commit = model.push_to_hub("hf://acme/byte-llama", tag="v1")
    folder = snapshot_download("acme/byte-llama", revision="v1", endpoint=served.endpoint, cache_dir=tmp_path / "hf")
    assert Path(folder).name == commit
    _same_logits(model, AutoModelForCausalLM.from_pretrained(folder))
    assert _same_weights(model, zoo.from_pretrained("hf://acme/byte-llama", revision=commit))


def test_folder_from_before_the_hook_still_loads():
    """``data/byte_llama_old_layout`` was written by zoo's save_pretrained before this layout existed (a 1-layer,
    d = 16 byte Llama, seed 0): zoo fields at the top of config.json, no ``model_type``, weights named ``lm.*``."""
    config = json.loads((OLD_LAYOUT / "config.json").read_text())
    assert "model_type" not in config and "zoo_config" not in config and config["hidden_size"] == 16
    with pytest.raises(ValueError, match="model_type"):  # what transformers says about such a folder
        AutoModelForCausalLM.from_pretrained(OLD_LAYOUT)
    loaded = zoo.from_pretrained(OLD_LAYOUT)
    with safe_open(str(OLD_LAYOUT / "model.safetensors"), framework="pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}
    assert set(stored) == set(loaded.state_dict()) and all(k.startswith("lm.") for k in stored)
    assert all(torch.equal(stored[k], v) for k, v in loaded.state_dict().items())


def test_old_layout_resaves_in_the_new_one(tmp_path):
    loaded = zoo.from_pretrained(OLD_LAYOUT)
    loaded.save_pretrained(tmp_path)
    _same_logits(loaded, AutoModelForCausalLM.from_pretrained(tmp_path))
    assert _same_weights(loaded, zoo.from_pretrained(tmp_path))


def test_edited_transformers_field_is_refused(tmp_path):
    _trained_looking_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    with pytest.raises(ConfigError, match="transformers field 'num_hidden_layers' is 3 but the zoo config builds 2"):
        zoo.from_pretrained(tmp_path)


def test_the_hook_needs_a_transformers_model(tmp_path, monkeypatch):
    monkeypatch.setattr(ByteLlamaModule, "transformers_submodule", "missing")
    with pytest.raises(ZooError, match="module.missing is not a transformers model"):
        zoo.create("byte_llama_tiny").save_pretrained(tmp_path)
