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


def test_card_reports_get_their_own_section_after_the_results(tmp_path):
    model = zoo.create("smoke_regressor_tiny")
    model.card_reports["Benchmark against X"] = "`python tools/bench/x.py`\n\n| arm | time |\n|---|---|\n| ours | 1.5 |"
    model.save_pretrained(tmp_path, metrics={"test_mse": 0.5})
    text = (tmp_path / "README.md").read_text()
    assert "| ours | 1.5 |" in _section(text, "Benchmark against X")
    assert "1.5" not in _section(text, "Results") and text.index("## Results") < text.index("## Benchmark against X")
    zoo.create("smoke_regressor_tiny").save_pretrained(tmp_path / "plain")
    assert "Benchmark" not in (tmp_path / "plain" / "README.md").read_text()


def test_headings_inside_a_report_nest_under_its_section(tmp_path):
    model = zoo.create("smoke_regressor_tiny")
    model.card_reports["Bench"] = "## Per budget\n\ntext\n\n```\n# a comment in code\n```\n#hashtag"
    model.save_pretrained(tmp_path, metrics={"test_mse": 0.5})
    text = (tmp_path / "README.md").read_text()
    assert "\n### Per budget\n" in text and "\n## Per budget" not in text
    assert "\n# a comment in code\n" in text and "\n#hashtag" in text  # code and non-headings untouched


def test_card_without_metrics_claims_no_numbers(tmp_path):
    zoo.create("smoke_regressor_tiny").save_pretrained(tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert "model-index" not in text
    results = _section(text, "Results")
    assert "No results were measured" in results and not re.search(r"\d", results)


def _tiny_config_for(template: str) -> dict:
    """The config of a *_tiny preset whose class renders ``template`` (every template must have one)."""
    import importlib
    import pkgutil

    from zoo._core import registry
    from zoo._core.config import config_to_dict

    for info in pkgutil.walk_packages(zoo.__path__, "zoo."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for name in zoo.list_models("*_tiny"):
        config = registry.preset_config(name)
        cls = registry.model_class_for_config(config)
        if getattr(cls, "card_template", "_base") == template:
            return {"zoo_class": registry.class_path(cls), **config_to_dict(config)}
    raise AssertionError(f"no *_tiny preset renders hub_cards/{template}.md")


@pytest.mark.parametrize("template", _templates())
def test_every_template_renders_without_invented_numbers(template):
    class Card:
        card_template = template
        card_metadata: dict = {}

    meta, body, path = load_template(template)
    assert isinstance(meta, dict), path
    config = _tiny_config_for(template)
    text = render_card(Card(), config=config, metrics={"acc": 0.5}, repo_id="acme/x")
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


def test_extra_files_ship_with_the_weights_and_show_on_the_card(tmp_path, isolated_hub):
    from zoo.hub import LocalHub

    plot = tmp_path / "fit.png"
    plot.write_bytes(b"\x89PNG fake image bytes")
    report = tmp_path / "report.txt"
    report.write_text("chi2 / dof = 1.0\n")
    model = zoo.create("smoke_regressor_tiny")
    model.hub_files["fit.png"] = plot
    commit = model.push_to_hub("acme/plots", extra_files={"report.txt": report})
    snapshot = LocalHub().snapshot("acme/plots", commit)  # the manifest covers the extra files too
    assert (snapshot / "fit.png").read_bytes() == plot.read_bytes() and (snapshot / "report.txt").is_file()
    card = (snapshot / "README.md").read_text()
    assert "![fit.png](fit.png)" in card and "[report.txt](report.txt)" in card
    for bad in ("config.json", "../x.png", "weights.bin"):
        with pytest.raises(ZooError, match="extra file"):
            model.save_pretrained(tmp_path / "out", extra_files={bad: plot})
    with pytest.raises(ZooError, match="does not exist"):
        model.save_pretrained(tmp_path / "out", extra_files={"a.png": tmp_path / "missing.png"})
