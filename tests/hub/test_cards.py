"""Model cards: valid Hugging Face front matter, and no number that the caller did not measure."""

from __future__ import annotations

import re

import pytest
from huggingface_hub import ModelCard

import zoo
from zoo._core.errors import ZooError
from zoo.hub.cards import load_template, render_card, template_dirs


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _templates() -> list[str]:
    return sorted({p.stem for d in template_dirs() if d.is_dir() for p in d.glob("*.md")})


def test_card_front_matter_parses_and_carries_exactly_the_metrics(tmp_path):
    model = zoo.create("smoke_regressor_tiny")
    model.save_pretrained(tmp_path, metrics={"test_mse": 0.00123, "steps": 24}, repo_id="acme/card",
                          training={"recipe": "tests/smoke/smoke_tiny.yaml", "seed": 0})
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "paperzoo" and "paperzoo" in card.data.tags
    assert {(r.metric_type, r.metric_value) for r in card.data.eval_results} == {("test_mse", 0.00123), ("steps", 24)}
    results = _section(card.text, "Results")
    assert "| test_mse | 0.00123 |" in results and "| steps | 24 |" in results
    assert "`tests/smoke/smoke_tiny.yaml`" in _section(card.text, "How it was trained")


def test_card_without_metrics_claims_no_numbers(tmp_path):
    zoo.create("smoke_regressor_tiny").save_pretrained(tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert "model-index" not in text
    results = _section(text, "Results")
    assert "No results were measured" in results and not re.search(r"\d", results)


@pytest.mark.parametrize("template", _templates())
def test_every_template_renders_without_invented_numbers(template):
    class Card:
        card_template = template
        card_metadata: dict = {}

    meta, body, path = load_template(template)
    assert isinstance(meta, dict), path
    text = render_card(Card(), config={"zoo_class": "x:Y", "width": 8}, metrics={"acc": 0.5}, repo_id="acme/x")
    card = ModelCard(text)
    assert card.data.library_name == "paperzoo"
    if meta.get("arxiv"):
        assert f"arxiv:{meta['arxiv']}" in card.data.tags
    numbers = re.findall(r"\d+(?:\.\d+)?", _section(text, "Results"))
    assert numbers == ["0.5"], f"{path}: the results section shows numbers that were not passed in: {numbers}"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "high", None])
def test_bad_metric_values_are_refused(tmp_path, value):
    with pytest.raises(ZooError, match="metric 'acc'"):
        zoo.create("smoke_regressor_tiny").save_pretrained(tmp_path, metrics={"acc": value})


def test_resaving_replaces_the_card(tmp_path):
    model = zoo.create("smoke_regressor_tiny")
    model.save_pretrained(tmp_path, metrics={"test_mse": 1.5})
    model.save_pretrained(tmp_path, metrics={"test_mse": 2.5})
    text = (tmp_path / "README.md").read_text()
    assert "2.5" in text and "1.5" not in text
