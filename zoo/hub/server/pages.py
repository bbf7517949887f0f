"""Web pages for people, rendered on the server (Jinja2 templates in ``templates/``, no JavaScript):

    /                                   repos: search by name (?q=), filter by a card tag (?tag=)
    /{org}/{name}                       the card at main: metrics table (model-index), plots, branches and tags
    /{org}/{name}/commit/{rev}          the card at a revision (the ``commitUrl`` the client is given)
    /{org}/{name}/tree/{rev}            files with size and sha256 (from the manifest)
    /{org}/{name}/commits/{rev}         commit log with branch and tag names
    /{org}/{name}/compare?a=REV&b=REV   metrics of two revisions side by side, and the files that differ

Card HTML is sanitised (see ``render``) and every page is sent with a Content-Security-Policy that allows no
script at all, images and styles only from this server.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from zoo.hub.local import CommitInfo
from zoo.hub.server.api_read import card_of
from zoo.hub.server.render import card_metrics, card_tags, render_markdown
from zoo.hub.server.store import STORE, HttpError, Store

__all__ = ["PAGE_HEADERS", "add_routes", "error_page"]

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_TEMPLATES = Path(__file__).resolve().parent / "templates"
_ENV = web.AppKey("jinja", object)


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["size"] = _human_size
    env.filters["number"] = _number
    env.filters["q"] = lambda text: quote(str(text), safe="")
    return env


def _human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    html = request.app[_ENV].get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return _page(request, "error.html", status=status, status_code=status, message=message)


def _repo(request: web.Request) -> tuple[Store, str]:
    store = request.app[STORE]
    return store, store.repo_id(request.match_info["org"], request.match_info["name"])


def _ref_names(store: Store, repo_id: str) -> dict[str, list[str]]:
    """``{commit id: [branch and tag names]}``."""
    names: dict[str, list[str]] = {}
    refs = store.refs(repo_id)
    for kind in ("branches", "tags"):
        for name, commit_id in sorted(refs[kind].items()):
            names.setdefault(commit_id, []).append(name)
    return names


async def index(request: web.Request) -> web.Response:
    store: Store = request.app[STORE]
    query, wanted_tag = request.query.get("q", "").strip(), request.query.get("tag", "").strip()
    rows, tag_counts = [], Counter()
    for repo_id in store.hub.list_repos():
        refs = store.refs(repo_id)
        head = refs["branches"].get("main")
        info, tags, problem = None, [], None
        if head:
            info = store.hub.commit_info(repo_id, head)
            try:
                tags = card_tags((await card_of(store, repo_id, info))[0])
            except HttpError as error:
                problem = error.message
        tag_counts.update(tags)
        if query and query.lower() not in repo_id.lower():
            continue
        if wanted_tag and wanted_tag not in tags:
            continue
        rows.append({"repo_id": repo_id, "head": head, "time": info.iso_time if info else "", "tags": tags,
                     "versions": sorted(refs["tags"]), "branches": sorted(refs["branches"]), "problem": problem})
    return _page(request, "index.html", rows=rows, query=query, wanted_tag=wanted_tag,
                 all_tags=sorted(tag_counts.items()), total=len(store.hub.list_repos()))


async def _card_context(store: Store, repo_id: str, info: CommitInfo) -> dict[str, Any]:
    meta, body = await card_of(store, repo_id, info)
    base = f"/{repo_id}/resolve/{info.commit_id}"
    return {"meta": meta, "metrics": card_metrics(meta), "tags": card_tags(meta),
            "card_html": render_markdown(body, base) if body else ""}


async def card(request: web.Request) -> web.Response:
    store, repo_id = _repo(request)
    revision = request.match_info.get("rev", "main")
    refs = store.refs(repo_id)
    if not refs["branches"] and revision == "main":
        return _page(request, "repo.html", repo_id=repo_id, revision=revision, info=None, refs=refs,
                     names={}, meta={}, metrics={}, tags=[], card_html="", tab="card")
    info = store.commit(repo_id, revision)
    context = await _card_context(store, repo_id, info)
    return _page(request, "repo.html", repo_id=repo_id, revision=revision, info=info, refs=refs,
                 names=_ref_names(store, repo_id), tab="card", **context)


async def files(request: web.Request) -> web.Response:
    store, repo_id = _repo(request)
    revision = request.match_info["rev"]
    info = store.commit(repo_id, revision)
    return _page(request, "files.html", repo_id=repo_id, revision=revision, info=info,
                 files=list(store.files(info).values()), total=sum(int(m["size"]) for m in info.tree.values()),
                 tab="files")


async def commits(request: web.Request) -> web.Response:
    store, repo_id = _repo(request)
    revision = request.match_info["rev"]
    history = store.log(repo_id, revision)
    return _page(request, "commits.html", repo_id=repo_id, revision=revision, history=history,
                 names=_ref_names(store, repo_id), tab="commits")


def _relative(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return ""
    if a == 0:
        return "" if b == 0 else "n/a"
    rel = (b - a) / abs(a)
    return f"{rel:+.3%}" if math.isfinite(rel) else "n/a"


async def compare(request: web.Request) -> web.Response:
    store, repo_id = _repo(request)
    history = store.log(repo_id, "main") if store.refs(repo_id)["branches"].get("main") else []
    default_a = history[1].commit_id if len(history) > 1 else "main"
    rev_a, rev_b = request.query.get("a", default_a), request.query.get("b", "main")
    info_a, info_b = store.commit(repo_id, rev_a), store.commit(repo_id, rev_b)
    metrics_a = card_metrics((await card_of(store, repo_id, info_a))[0])
    metrics_b = card_metrics((await card_of(store, repo_id, info_b))[0])
    rows = []
    for name in list(dict.fromkeys([*metrics_a, *metrics_b])):
        a = metrics_a.get(name, {}).get("value")
        b = metrics_b.get(name, {}).get("value")
        rows.append({"name": name, "a": a, "b": b, "diff": (b - a) if a is not None and b is not None else None,
                     "relative": _relative(a, b)})
    changes = []
    for path in sorted(set(info_a.tree) | set(info_b.tree)):
        old, new = info_a.tree.get(path), info_b.tree.get(path)
        status = "added" if old is None else "removed" if new is None else (
            "same" if old["sha256"] == new["sha256"] else "changed")
        changes.append({"path": path, "old": old, "new": new, "status": status})
    choices = [(name, commit_id) for commit_id, names in _ref_names(store, repo_id).items() for name in names]
    choices += [(c.commit_id[:12] + " " + c.message.split("\n")[0][:40], c.commit_id) for c in store.log(repo_id, rev_b)]
    return _page(request, "compare.html", repo_id=repo_id, rev_a=rev_a, rev_b=rev_b, info_a=info_a, info_b=info_b,
                 rows=rows, changes=changes, choices=choices, revision=rev_b, tab="compare")


async def stylesheet(request: web.Request) -> web.FileResponse:
    return web.FileResponse(Path(__file__).resolve().parent / "static" / "style.css",
                            headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})


def add_routes(app: web.Application) -> None:
    app[_ENV] = _environment()
    app.router.add_get("/", index)
    app.router.add_get("/static/style.css", stylesheet)
    app.router.add_get("/{org}/{name}", card)
    app.router.add_get("/{org}/{name}/commit/{rev}", card)
    app.router.add_get("/{org}/{name}/tree/{rev}", files)
    app.router.add_get("/{org}/{name}/commits/{rev}", commits)
    app.router.add_get("/{org}/{name}/compare", compare)
