"""The read half of the Hub API, as ``huggingface_hub`` 2.x calls it (``hf_api.py``, ``file_download.py``,
``_snapshot_download.py``):

    GET       /api/models[?search=]                          list_models
    GET       /api/models/{org}/{name}[/revision/{rev}]      model_info / repo_info: sha, siblings, cardData
    GET       /api/models/{org}/{name}/refs                  list_repo_refs
    GET       /api/models/{org}/{name}/commits/{rev}         list_repo_commits (newest first, one page)
    GET       /api/models/{org}/{name}/tree/{rev}[/{path}]   list_repo_tree (?recursive=true), snapshot_download
    POST      /api/models/{org}/{name}/paths-info/{rev}      get_paths_info (form field ``paths``, repeated)
    HEAD|GET  /{org}/{name}/resolve/{rev}/{path}             hf_hub_download: the bytes, ``ETag`` (sha256),
                                                             ``X-Repo-Commit``, ``Content-Length``, ranges

Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) and
``X-Error-Message``, which the client's ``hf_raise_for_status`` turns into its exception classes.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from zoo.hub.local import CommitInfo
from zoo.hub.server.render import card_tags, split_card
from zoo.hub.server.store import STORE, Store, content_type, iso_time, send_file

__all__ = ["add_routes", "card_of"]

_TRUE = {"1", "true", "True"}


async def card_of(store: Store, repo_id: str, info: CommitInfo) -> tuple[dict[str, Any], str]:
    """Front matter and markdown body of the README at ``info`` (empty when there is none)."""
    if "README.md" not in info.tree:
        return {}, ""
    text = (await store.read_checked(repo_id, info, "README.md")).decode("utf-8", "replace")
    return split_card(text)


def _repo(request: web.Request) -> tuple[Store, str]:
    store = request.app[STORE]
    return store, store.repo_id(request.match_info["org"], request.match_info["name"])


async def model_info(request: web.Request) -> web.Response:
    store, repo_id = _repo(request)
    info = store.commit(repo_id, request.match_info.get("rev"))
    meta, _ = await card_of(store, repo_id, info)
    first = store.log(repo_id, info.commit_id)[-1]
    blobs = request.query.get("blobs") in _TRUE
    siblings = [e.sibling() if blobs else {"rfilename": p} for p, e in store.files(info).items()]
    return web.json_response({
        "_id": info.commit_id, "id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0],
        "sha": info.commit_id, "lastModified": iso_time(info.time), "createdAt": iso_time(first.time),
        "private": False, "disabled": False, "gated": False, "downloads": 0, "likes": 0,
        "library_name": meta.get("library_name"), "pipeline_tag": meta.get("pipeline_tag"),
        "tags": card_tags(meta), "cardData": meta or None, "siblings": siblings,
    })


async def list_models(request: web.Request) -> web.Response:
    store: Store = request.app[STORE]
    search = request.query.get("search", "").lower()
    out = []
    for repo_id in store.hub.list_repos():
        if search and search not in repo_id.lower():
            continue
        head = store.refs(repo_id)["branches"].get("main")
        out.append({"id": repo_id, "modelId": repo_id, "private": False, "sha": head,
                    "author": repo_id.split("/")[0]})
    return web.json_response(out)


async def refs(request: web.Request) -> web.Response:
    store, repo_id = _repo(request)
    found = store.refs(repo_id)

    def ref(kind: str, name: str, commit: str) -> dict[str, str]:
        return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": commit}

    return web.json_response({
        "branches": [ref("heads", n, c) for n, c in found["branches"].items()],
        "tags": [ref("tags", n, c) for n, c in found["tags"].items()],
        "converts": [], "pullRequests": [],
    })


async def commits(request: web.Request) -> web.Response:
    store, repo_id = _repo(request)
    history = store.log(repo_id, request.match_info["rev"])
    return web.json_response([
        {"id": c.commit_id, "title": c.message.split("\n", 1)[0],
         "message": c.message.split("\n", 1)[1].strip() if "\n" in c.message else "",
         "date": iso_time(c.time), "authors": []}
        for c in history
    ])


async def tree(request: web.Request) -> web.Response:
    store, repo_id = _repo(request)
    info = store.commit(repo_id, request.match_info["rev"])
    folder = request.match_info.get("path", "").strip("/")
    recursive = request.query.get("recursive") in _TRUE
    return web.json_response(store.tree(info, folder, recursive, repo_id))


async def paths_info(request: web.Request) -> web.Response:
    store, repo_id = _repo(request)
    info = store.commit(repo_id, request.match_info["rev"])
    form = await request.post()
    out = []
    for path in form.getall("paths", []):
        path = str(path).strip("/")
        if path in info.tree:
            out.append(store.entry(info, path, repo_id).tree_entry())
        elif path and (folder := store.folder_entry(info, path)) is not None:
            out.append(folder)
    return web.json_response(out)


async def resolve(request: web.Request) -> web.StreamResponse:
    store, repo_id = _repo(request)
    revision = request.match_info["rev"]
    info = store.commit(repo_id, revision)
    entry = store.entry(info, request.match_info["path"], repo_id)
    headers = {
        "X-Repo-Commit": info.commit_id,
        # A file of the hub is served as data, never as a page of this site.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        "Cache-Control": "public, max-age=31536000, immutable" if re.fullmatch(r"[0-9a-f]{40}", revision) else "no-cache",
    }
    if request.method == "HEAD":  # the manifest answers: no need to open the file
        response = web.StreamResponse(status=200, headers={
            **headers, "ETag": f'"{entry.sha256}"', "Accept-Ranges": "bytes", "Content-Type": content_type(entry.path)})
        response.content_length = entry.size
        await response.prepare(request)
        await response.write_eof()
        return response
    fobj = await store.open_verified(repo_id, info, entry.path)
    return await send_file(request, fobj, entry, headers)


def add_routes(app: web.Application) -> None:
    repo = "/api/models/{org}/{name}"
    app.router.add_get("/api/models", list_models)
    app.router.add_get(repo, model_info)
    app.router.add_get(repo + "/revision/{rev}", model_info)
    app.router.add_get(repo + "/refs", refs)
    app.router.add_get(repo + "/commits/{rev}", commits)
    app.router.add_get(repo + "/tree/{rev}", tree)
    app.router.add_get(repo + "/tree/{rev}/{path:.+}", tree)
    app.router.add_post(repo + "/paths-info/{rev}", paths_info)
    # GET routes also answer HEAD in aiohttp; resolve handles both.
    app.router.add_get("/{org}/{name}/resolve/{rev}/{path:.+}", resolve)
