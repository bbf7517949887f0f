"""Model cards as safe HTML: front matter, the model-index metrics, and the markdown body.

A card is YAML front matter (``library_name``, ``tags``, ``model-index`` ...) followed by markdown. The body is
rendered by markdown-it-py (CommonMark plus GFM tables) and then sanitised by nh3, the Python binding of the
Rust ``ammonia`` sanitiser: an allow-list of tags and attributes, URL schemes limited to http, https and mailto,
so ``<script>``, ``on*=`` handlers, ``style`` and ``javascript:`` links never reach the page. Relative links and
image sources (a card shows its plots as ``![fit](fit.png)``) are rewritten to the ``/resolve`` URL of the same
commit, so the page shows exactly the files of the revision it describes. The pages are also sent with a
Content-Security-Policy that forbids every script, a second fence behind the sanitiser.
"""

from __future__ import annotations

import math
import posixpath
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = ["card_metrics", "card_tags", "render_markdown", "split_card"]

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "summary", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
}
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"}, "td": {"align"},
               "th": {"align"}, "code": {"class"}, "ol": {"start"}}


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """``(front matter, markdown body)``; front matter that is not a YAML mapping counts as none."""
    import yaml

    if not text.startswith("---"):
        return {}, text
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return {}, text
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            try:
                meta = yaml.safe_load("\n".join(lines[1:i])) or {}
            except yaml.YAMLError:
                return {}, "\n".join(lines[i + 1:])
            return (meta if isinstance(meta, dict) else {}), "\n".join(lines[i + 1:])
    return {}, text


def card_tags(meta: dict[str, Any]) -> list[str]:
    tags = meta.get("tags")
    return [str(t) for t in tags] if isinstance(tags, list) else []


def card_metrics(meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{metric name: {"value", "dataset", "task"}}`` from the card's ``model-index`` (numbers only)."""
    out: dict[str, dict[str, Any]] = {}
    index = meta.get("model-index")
    for model in index if isinstance(index, list) else []:
        for result in (model or {}).get("results") or [] if isinstance(model, dict) else []:
            if not isinstance(result, dict):
                continue
            dataset = (result.get("dataset") or {}).get("name") if isinstance(result.get("dataset"), dict) else None
            task = (result.get("task") or {}).get("type") if isinstance(result.get("task"), dict) else None
            for metric in result.get("metrics") or []:
                if not isinstance(metric, dict):
                    continue
                value = metric.get("value")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    continue
                name = str(metric.get("name") or metric.get("type") or "metric")
                out[name] = {"value": value, "dataset": dataset, "task": task}
    return out


def _rewrite(base_url: str):
    """nh3 attribute filter: relative ``src``/``href`` -> ``base_url/<path>``; anything escaping the repo dropped."""

    def attribute_filter(tag: str, attribute: str, value: str) -> str | None:
        if attribute not in ("src", "href"):
            return value
        parts = urlsplit(value)
        if parts.scheme or parts.netloc or value.startswith(("/", "#", "?")):
            return value  # absolute (scheme checked by nh3), site-relative, or an anchor
        path = posixpath.normpath(parts.path)
        if path in ("", ".") or path.startswith("..") or path.startswith("/"):
            return None
        return f"{base_url}/{quote(path)}"

    return attribute_filter


def render_markdown(markdown: str, base_url: str) -> str:
    """Sanitised HTML of a card body; relative links point under ``base_url`` (a ``/resolve/<commit>`` URL)."""
    import nh3
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable("table").enable("strikethrough").render(markdown)
    return nh3.clean(
        html, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
        attribute_filter=_rewrite(base_url), link_rel="noopener noreferrer nofollow", strip_comments=True,
    )
