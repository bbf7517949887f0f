"""The per-family matrix of issue 16 (item 4), on a tiny random model of every family with a layout.

References are the unwrapped model with forward hooks that zero a sublayer's module output: the residual stream
then passes that sublayer unchanged (a sandwich or post norm of zero is zero), which is what a skip with scale 1
computes. Per family: dropping one attention sublayer changes the greedy tokens (so the other checks can fail);
an empty plan is bit-identical and unwrap restores the model; a ``drop`` plan equals its reference in prefill and
decode (own and wrapper's generate); ``kv_only`` in prefill equals its reference; cached generation equals
uncached recomputation; a left-padded batch of three equals each prompt alone.
"""

from __future__ import annotations

import pytest
import torch

from zoo.adaskip import AdaSkip, SkipPlan
from zoo.adaskip.layout import REFUSED, layout_for

from tests.adaskip.tiny import ALL_FAMILIES, attention_module, ffn_module, tiny_model

NEW = 6
DROP = dict(attention_skip=(0, 2), ffn_skip=(1,))  # layer 0 (mask and length reference), a sliding and a full layer


def _prompt(seed: int, length: int = 24) -> torch.Tensor:
    return torch.randint(3, 128, (1, length), generator=torch.Generator().manual_seed(seed))


def _greedy(runner, ids, **kwargs):
    out = runner(ids, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, return_dict_in_generate=True,
                 output_logits=True, **kwargs)
    return out.sequences[:, ids.shape[1]:], torch.stack(out.logits, 1)


def _zero(out):
    return torch.zeros_like(out) if isinstance(out, torch.Tensor) else (torch.zeros_like(out[0]), *out[1:])


def _reference(family: str, attention=(), ffn=(), when=lambda args: True):
    """The unwrapped model with the listed sublayers' outputs zeroed while ``when(hidden_states)`` holds."""
    model = tiny_model(family)

    def hook(module, args, kwargs, out):
        stream = args[0] if args else kwargs["hidden_states"]
        return _zero(out) if when(stream) else out

    for index in attention:
        attention_module(model, index).register_forward_hook(hook, with_kwargs=True)
    for index in ffn:
        ffn_module(model, index).register_forward_hook(hook, with_kwargs=True)
    return model


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_dropping_one_attention_changes_the_greedy_tokens(family):
    ids = _prompt(0)
    model, zeroed = tiny_model(family), set()
    for index in range(4):
        attention_module(model, index).register_forward_hook(
            lambda module, args, out, index=index: _zero(out) if index in zeroed else out)
    full, _ = _greedy(model.generate, ids)
    changed = []
    for index in range(4):
        zeroed.clear(), zeroed.add(index)
        changed.append(not torch.equal(_greedy(model.generate, ids)[0], full))
    assert sum(changed) >= 2, f"{family}: dropping attention i changes the tokens only for {changed}"
    zeroed.clear(), zeroed.update(DROP["attention_skip"])
    assert not torch.equal(_greedy(model.generate, ids)[0], full)  # the plan the other tests use shows in the tokens


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_empty_plan_is_bit_identical_and_unwrap_restores(family):
    model = tiny_model(family)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ids = _prompt(1)
    logits = model(ids).logits
    hidden = model(ids, output_hidden_states=True).hidden_states
    tokens, scores = _greedy(model.generate, ids)
    skipper = AdaSkip.wrap(model)
    skipper.recording = True
    assert torch.equal(model(ids).logits, logits)
    assert all(torch.equal(a, b) for a, b in zip(hidden, model(ids, output_hidden_states=True).hidden_states))
    wrapped_tokens, wrapped_scores = _greedy(skipper.generate, ids)
    assert torch.equal(wrapped_tokens, tokens) and torch.equal(wrapped_scores, scores)
    cos, ratio = skipper.stats.mean("prefill", "attention")
    assert bool(torch.isfinite(cos).all()) and bool((ratio > 0).all())
    skipper.set_plan(SkipPlan(model.config.model_type, 4, **DROP))
    assert not torch.equal(model(ids).logits, logits)
    skipper.unwrap()
    assert not any("forward" in vars(layer) for layer in skipper.layers)
    assert torch.equal(model(ids).logits, logits)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_drop_plan_equals_zeroed_reference_in_prefill_and_decode(family):
    ids = _prompt(2)
    reference = _reference(family, attention=DROP["attention_skip"], ffn=DROP["ffn_skip"])
    expected_logits = reference(ids).logits
    expected = _greedy(reference.generate, ids)
    model = tiny_model(family)
    skipper = AdaSkip.wrap(model, SkipPlan(model.config.model_type, 4, **DROP))
    torch.testing.assert_close(model(ids, use_cache=False).logits, expected_logits, rtol=0, atol=1e-5)
    for runner in (skipper.generate, model.generate):  # DummyLayers at 0 and 2 / live layers kept in step
        tokens, scores = _greedy(runner, ids)
        assert torch.equal(tokens, expected[0])
        torch.testing.assert_close(scores, expected[1], rtol=0, atol=1e-4)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_kv_only_prefill_equals_its_reference(family):
    """Attention 0 and 2 skipped in prefill only, writing K/V; decode tokens attend to the prompt's keys there."""
    ids = _prompt(3)
    reference = _reference(family, attention=(0, 2), when=lambda stream: stream.shape[1] > 1)
    expected = _greedy(reference.generate, ids)
    model = tiny_model(family)
    skipper = AdaSkip.wrap(model, SkipPlan(model.config.model_type, 4, attention_skip=(0, 2), attention_mode="kv_only", phase="prefill"))
    torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=0, atol=1e-5)
    tokens, scores = _greedy(skipper.generate, ids)
    assert torch.equal(tokens, expected[0])
    torch.testing.assert_close(scores, expected[1], rtol=0, atol=1e-4)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_cached_generation_equals_uncached_recomputation(family):
    ids = _prompt(4)
    model = tiny_model(family)
    skipper = AdaSkip.wrap(model, SkipPlan(model.config.model_type, 4, attention_skip=(0, 3), attention_scale=(1.0, 0.97),
                                           ffn_skip=(1,), ffn_scale=(1.03,)))
    cached, _ = _greedy(skipper.generate, ids)
    uncached, _ = _greedy(model.generate, ids, use_cache=False)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_left_padded_batch_of_three_equals_each_prompt_alone(family):
    model = tiny_model(family)
    skipper = AdaSkip.wrap(model, SkipPlan(model.config.model_type, 4, **DROP))
    prompts = [_prompt(5, 24), _prompt(6, 19), _prompt(7, 13)]
    batch = torch.zeros(3, 24, dtype=torch.long)  # pad_token_id = 0, left padding
    mask = torch.zeros(3, 24, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        batch[row, 24 - prompt.shape[1]:], mask[row, 24 - prompt.shape[1]:] = prompt[0], 1
    alone = [_greedy(skipper.generate, prompt)[0][0] for prompt in prompts]
    for runner in (skipper.generate, model.generate):  # DummyLayers at 0 and 2 / live layers kept in step
        together, _ = _greedy(runner, batch, attention_mask=mask)
        for row in range(3):
            assert torch.equal(together[row], alone[row]), (runner, row)


@pytest.mark.parametrize("model_type", sorted(REFUSED))
def test_refused_model_types_say_why(model_type):
    from types import SimpleNamespace

    stub = SimpleNamespace(config=SimpleNamespace(model_type=model_type))  # refused before anything else is read
    with pytest.raises(ValueError, match=rf"cannot skip sublayers of '{model_type}' faithfully: .*(wrap its language model|stale)"):
        AdaSkip.wrap(stub)


def test_unknown_model_type_is_refused_with_the_supported_list():
    from types import SimpleNamespace

    with pytest.raises(ValueError, match=r"AdaSkip supports model types \['cohere', .*; this model is 'rwkv'"):
        AdaSkip.wrap(SimpleNamespace(config=SimpleNamespace(model_type="rwkv")))


@pytest.mark.parametrize("family", ["cohere", "gpt_neox", "falcon"])
@torch.no_grad()
def test_parallel_block_statistics_compare_the_input_with_its_own_term(family):
    """In a parallel block each sublayer's IO cosine is cos(a, a + its term), a being the layer input."""
    model = tiny_model(family)
    ids = _prompt(8)
    inputs, terms = {}, {}
    layers = layout_for(model).layers(model)
    for index, layer in enumerate(layers):
        layer.register_forward_pre_hook(lambda m, args, kwargs, i=index: inputs.__setitem__(i, args[0] if args else kwargs["hidden_states"]), with_kwargs=True)
        attention_module(model, index).register_forward_hook(lambda m, args, out, i=index: terms.__setitem__(i, out[0]))
    model(ids, use_cache=False)
    skipper = AdaSkip.wrap(model)
    skipper.recording = True
    model(ids, use_cache=False)
    cos, _ = skipper.stats.mean("prefill", "attention")
    for index in range(4):
        a = inputs[index].double()
        expected = torch.nn.functional.cosine_similarity(a, a + terms[index].double(), dim=-1).mean()
        assert float(cos[index]) == pytest.approx(float(expected), abs=1e-9)


@pytest.mark.parametrize("family", ["gemma2", "qwen3_moe", "phi", "falcon_alibi_sequential"])
def test_calibration_and_plan_run_on_new_families(family):
    from zoo.adaskip.calibrate import adaskip_plan, calibrate

    model = tiny_model(family)
    cal = calibrate(model, [_prompt(s, 16)[0] for s in range(2)])
    sims = torch.cat([cal.attention_similarity, cal.ffn_similarity])
    assert bool(torch.isfinite(sims).all()) and float(sims.abs().max()) <= 1 + 1e-9
    plan = adaskip_plan(cal, 3)
    skipper = AdaSkip.wrap(model, plan)
    tokens, _ = _greedy(skipper.generate, _prompt(9))
    assert tokens.shape == (1, NEW) and plan.model_type == model.config.model_type
