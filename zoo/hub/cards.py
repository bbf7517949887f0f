"""Model cards rendered from ``hub_cards/<template>.md`` at save / push time.

A template is YAML front matter (static metadata: ``license``, ``tags``, ``datasets``, ``arxiv``, ``task``,
``pipeline_tag``, ``base_model``) followed by a Jinja body; method templates ``{% extends "_base.md" %}`` and fill
the blocks ``description``, ``intended_use`` and ``limits``. The rendered card's front matter is built by
``huggingface_hub.ModelCardData`` (so the Hub parses it): ``library_name: paperzoo``, the template's metadata,
tag ``arxiv:<id>``, and a ``model-index`` holding exactly the ``metrics`` passed in. The body's results table is
made from the same ``metrics``: a card never shows a number that the caller did not measure. Longer measured
reports (a benchmark table with the command that made it) go in ``module.card_reports`` (``{title: markdown}``) and
are printed as sections of their own after the results, so they are never mistaken for the run's own metrics.

A model started from another (``zoo run`` with ``zoo.init_from``) carries ``module.card_lineage`` (see
``zoo._core.finetune.Parent.lineage``): the front matter gains ``base_model`` (the parent's repo id, the Hugging Face
convention), ``base_model_revision`` (its commit id) and ``base_model_relation: finetune``; the body links the parent
and the results table puts the parent's metrics beside the child's, saying where the parent's numbers come from.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import zoo
from zoo._core.errors import ZooError

__all__ = ["load_template", "render_card", "template_dirs"]


def template_dirs() -> list[Path]:
    """Folders searched for card templates: the source checkout's ``hub_cards/``, then a wheel's installed copy."""
    import sys

    package = Path(zoo.__file__).resolve().parent
    return [package.parent / "hub_cards", Path(sys.prefix) / "share" / "paperzoo" / "hub_cards"]


def _split_front_matter(text: str, where: str) -> tuple[dict[str, Any], str]:
    import yaml

    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---\n", 4)
    if end < 0:
        raise ZooError(f"card template {where}: front matter opened with '---' is never closed")
    meta = yaml.safe_load(text[4:end]) or {}
    if not isinstance(meta, dict):
        raise ZooError(f"card template {where}: front matter must be a YAML mapping")
    return meta, text[end + 5:]


def load_template(name: str) -> tuple[dict[str, Any], str, Path]:
    """``(front matter, Jinja body, path)`` of template ``name`` (file ``<name>.md``)."""
    for folder in template_dirs():
        path = folder / f"{name}.md"
        if path.is_file():
            meta, body = _split_front_matter(path.read_text(), str(path))
            return meta, body, path
    raise ZooError(f"no card template {name!r}.md in {[str(d) for d in template_dirs()]}")


def _metric_value(name: str, value: Any) -> float | int:
    try:
        number = value.item() if hasattr(value, "item") else value
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise TypeError
    except (TypeError, ValueError, RuntimeError):
        raise ZooError(f"metric {name!r} must be a number, got {value!r}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise ZooError(f"metric {name!r} is {number}; a card reports finite measured values only")
    return number


def render_card(
    module: Any,
    *,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
    files: list[str] | None = None,
) -> str:
    """The model card (front matter + markdown) of ``module``; see the module docstring."""
    import jinja2
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    template_name = getattr(type(module), "card_template", "_base")
    meta, _, _ = load_template(template_name)
    meta = {**meta, **getattr(type(module), "card_metadata", {})}
    metrics = {str(k): _metric_value(str(k), v) for k, v in (metrics or {}).items()}
    training = dict(training or {})
    name = repo_id or type(module).__name__
    datasets = list(meta.get("datasets") or [])
    dataset = str(training.get("dataset") or (datasets[0] if datasets else "custom"))
    tags = ["paperzoo", *(meta.get("tags") or [])]
    if meta.get("arxiv"):
        tags.append(f"arxiv:{meta['arxiv']}")
    lineage = _lineage(module)
    eval_results = [
        EvalResult(task_type=str(meta.get("task", "other")), dataset_type=dataset, dataset_name=dataset,
                   metric_type=k, metric_name=k, metric_value=v)
        for k, v in metrics.items()
    ]
    card_data = ModelCardData(
        library_name="paperzoo",
        license=meta.get("license", "apache-2.0"),
        tags=list(dict.fromkeys(tags)),
        datasets=datasets or None,
        pipeline_tag=meta.get("pipeline_tag"),
        base_model=lineage["base_model"] if lineage else meta.get("base_model"),
        model_name=name,
        eval_results=eval_results or None,
        **({"base_model_revision": lineage["commit_id"], "base_model_relation": "finetune"} if lineage else {}),
    )

    def loader(template: str) -> str:
        return load_template(template.removesuffix(".md"))[1]

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(loader), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True,
    )
    body = env.get_template(f"{template_name}.md").render(
        repo_id=name,
        model_class=type(module).__name__,
        zoo_class=config.get("zoo_class"),
        zoo_version=zoo.__version__,
        config={k: v for k, v in config.items() if not k.startswith("zoo_")},
        config_json=json.dumps({k: v for k, v in config.items() if not k.startswith("zoo_")}, indent=2),
        metrics=metrics,
        training=training,
        meta=meta,
        files=list(files or []),
        reports={str(k): _nest_headings(str(v)) for k, v in (getattr(module, "card_reports", None) or {}).items()},
        lineage=lineage,
        comparison=_comparison(metrics, lineage["metrics"]) if lineage and lineage["metrics"] else [],
    )
    return str(ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}"))


def _lineage(module: Any) -> dict[str, Any] | None:
    lineage = getattr(module, "card_lineage", None)
    if not lineage:
        return None
    missing = [k for k in ("base_model", "commit_id", "url") if not lineage.get(k)]
    if missing:
        raise ZooError(f"card_lineage lacks {missing}")
    return {**lineage, "metrics": {str(k): _metric_value(str(k), v) for k, v in (lineage.get("metrics") or {}).items()}}


def _comparison(child: Mapping[str, float], parent: Mapping[str, float]) -> list[tuple[str, str, str]]:
    """Rows ``(metric, child, parent)`` of the side-by-side table: the child's metrics first, then the parent's others."""
    def shown(values: Mapping[str, float], name: str) -> str:
        return "%.6g" % values[name] if name in values else "-"

    names = list(child) + [n for n in parent if n not in child]
    return [(n, shown(child, n), shown(parent, n)) for n in names]


def _nest_headings(markdown: str) -> str:
    """Move a report's own headings one level down (``## x`` -> ``### x``), outside code fences, so that they nest
    under the report's section instead of standing beside it."""
    out, fenced = [], False
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            level = len(line) - len(line.lstrip("#"))
            if 1 <= level < 6 and line[level:level + 1] == " ":
                line = "#" + line
        out.append(line)
    return "\n".join(out)
