"""The write half of the Hub API, behind a bearer token (see ``auth``), as ``huggingface_hub`` 2.x calls it
(``HfApi.create_repo``, ``upload_folder``/``create_commit`` in ``_commit_api.py``, ``create_tag``,
``create_branch``):

    POST  /api/repos/create                          {name, organization, type}; 409 when it exists
    POST  /api/validate-yaml                         {content}: errors when the README's front matter is not YAML
    POST  /api/models/{org}/{name}/preupload/{rev}   every file "regular" (inline base64): no LFS, no Xet
    POST  /api/models/{org}/{name}/commit/{branch}   ndjson: header (summary, description, parentCommit), file,
                                                     deletedFile, deletedFolder; 412 when parentCommit is stale
    POST  /api/models/{org}/{name}/tag/{rev}         {tag, message}; 409 when it exists (tags are immutable)
    POST  /api/models/{org}/{name}/branch/{branch}   {startingPoint}; 409 when it exists
    GET   /api/whoami-v2                             who the token is (for ``HfApi.whoami``)

A commit lands through ``LocalHub.push``, so it has the local hub's guarantees: the new snapshot is built in
the repo's staging folder (the branch head's files, then the uploaded files, minus the deleted ones) and
renamed into place under the repo's file lock; its manifest records every file's sha256. Commits through one
server are serialised per repo. The push is conditional on the branch head the snapshot was built from
(``LocalHub.push(expected_parent=...)``, checked under the lock): if another process pushed meanwhile, nothing
is written and the server rebuilds on the new head, so no change is ever dropped.

Uploaded files travel inline (base64 in the ndjson body), so a commit's size is bounded by ``max_commit_bytes``
(default 2 GiB); each file line is decoded and written to disk as it arrives, so memory holds one file at a time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import os
import shutil
from pathlib import Path
from typing import Any

from aiohttp import web

from zoo._core.errors import ParentMovedError, ZooError
from zoo.hub.local import _write_atomic
from zoo.hub.repo_id import validate_ref_name, validate_repo_id
from zoo.hub.server.auth import TokenCheck
from zoo.hub.server.store import STORE, HttpError, Store, validate_path

__all__ = ["AUTH", "MAX_COMMIT", "add_routes"]

AUTH = web.AppKey("auth", TokenCheck)
MAX_COMMIT = web.AppKey("max_commit_bytes", int)
_LOCKS = web.AppKey("repo_locks", dict)


def _repo_lock(request: web.Request, repo_id: str) -> asyncio.Lock:
    return request.app[_LOCKS].setdefault(repo_id, asyncio.Lock())


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise HttpError(400, "the request body must be a JSON object")
    return body


def _writer(request: web.Request) -> tuple[Store, str]:
    request.app[AUTH].require(request)
    store = request.app[STORE]
    return store, store.repo_id(request.match_info["org"], request.match_info["name"])


async def whoami(request: web.Request) -> web.Response:
    request.app[AUTH].require(request)
    return web.json_response({"type": "user", "id": "0" * 24, "name": "zoo-hub", "fullname": "zoo hub writer",
                              "orgs": [], "auth": {"type": "access_token",
                                                   "accessToken": {"displayName": "token file", "role": "write"}}})


async def create_repo(request: web.Request) -> web.Response:
    request.app[AUTH].require(request)
    store: Store = request.app[STORE]
    body = await _json(request)
    if body.get("type") not in (None, "model"):
        raise HttpError(400, f"this server hosts model repos only, not {body.get('type')!r}")
    if body.get("visibility") == "private" or body.get("private") is True:
        raise HttpError(400, "this server has no private repos: every repo is readable by whoever reaches it")
    if not body.get("organization"):
        raise HttpError(400, f"give the repo id as org/name (got {body.get('name')!r} without an org)")
    try:
        repo_id = validate_repo_id(f"{body['organization']}/{body.get('name')}")
    except ZooError as error:
        raise HttpError(400, str(error)) from None
    url = f"{request.url.origin()}/{repo_id}"
    try:
        # A repo of the local hub is a folder with refs/ (LocalHub's layout); it gets commits on the first push.
        store.hub.repo_dir(repo_id).mkdir(parents=True, exist_ok=True)
        os.mkdir(store.hub.repo_dir(repo_id) / "refs")
    except FileExistsError:
        raise HttpError(409, f"repo {repo_id} already exists", extra={"url": url}) from None
    return web.json_response({"url": url, "name": repo_id})


async def validate_yaml(request: web.Request) -> web.Response:
    import yaml

    body = await _json(request)
    content = str(body.get("content") or "")
    errors = []
    if content.startswith("---"):
        end = content.find("\n---", 3)
        try:
            meta = yaml.safe_load(content[3:end] if end > 0 else "")
            if meta is not None and not isinstance(meta, dict):
                errors.append({"message": "the front matter must be a YAML mapping"})
        except yaml.YAMLError as error:
            errors.append({"message": f"the front matter is not valid YAML: {error}"})
    return web.json_response({"errors": errors, "warnings": []}, status=400 if errors else 200)


def _head(store: Store, repo_id: str, branch: str) -> str | None:
    """The commit ``branch`` points at; ``None`` for ``main`` of a repo without commits."""
    refs = store.refs(repo_id)
    if branch in refs["tags"]:
        raise HttpError(400, f"{branch!r} is a tag of {repo_id}; commit to a branch")
    if branch in refs["branches"]:
        return refs["branches"][branch]
    if branch == "main" and not refs["branches"]:
        return None
    raise HttpError(404, f"branch {branch!r} not found in {repo_id}; create it first", "RevisionNotFound")


async def preupload(request: web.Request) -> web.Response:
    store, repo_id = _writer(request)
    body = await _json(request)
    head = _head(store, repo_id, request.match_info["rev"])
    info = store.commit(repo_id, head) if head else None
    out = []
    for item in body.get("files") or []:
        path = validate_path(str(item.get("path", "")))
        oid = None
        if info is not None and path in info.tree and int(info.tree[path]["size"]) == item.get("size"):
            oid = await store.content_oid(repo_id, info, store.entry(info, path, repo_id))
        out.append({"path": path, "uploadMode": "regular", "shouldIgnore": False, "oid": oid})
    return web.json_response({"files": out, "commitOid": head})


async def _read_lines(request: web.Request, limit: int):
    """The ndjson body line by line (a file line can be far longer than aiohttp's readline limit)."""
    buffer, total = bytearray(), 0
    async for chunk in request.content.iter_chunked(1 << 20):
        total += len(chunk)
        if total > limit:
            raise HttpError(413, f"commit body over {limit} bytes; raise --max-commit-mb or push in several commits")
        buffer += chunk
        while (cut := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:cut])
            del buffer[:cut + 1]
            if line.strip():
                yield line
    if bytes(buffer).strip():
        yield bytes(buffer)


def _write_upload(folder: Path, line: bytes) -> tuple[str, str, Any]:
    """Parse one ndjson line; a file's content is decoded and written under ``folder`` at once."""
    try:
        item = json.loads(line)
        key, value = item["key"], item["value"]
    except (ValueError, KeyError, TypeError):
        raise HttpError(400, "each line of a commit must be a JSON object with 'key' and 'value'") from None
    if key == "header":
        return key, "", value if isinstance(value, dict) else {}
    if key in ("file", "deletedFile", "deletedFolder"):
        path = validate_path(str(value.get("path", "")).strip("/") if key != "file" else str(value.get("path", "")))
        if key == "file":
            try:
                content = value["content"]
                data = base64.b64decode(content, validate=True) if value.get("encoding") == "base64" else content.encode()
            except (KeyError, binascii.Error, AttributeError):
                raise HttpError(400, f"file {path!r}: content must be base64 text") from None
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return key, path, None
    if key in ("lfsFile", "copy"):
        raise HttpError(400, f"{key} lines are not accepted: this server takes files inline (preupload says 'regular')")
    raise HttpError(400, f"unknown commit line {key!r}")


def _build_snapshot(store: Store, repo_id: str, head: str | None, uploads: Path, ops: list[tuple[str, str]],
                    target: Path) -> None:
    """``target`` := the files of ``head``, then the uploads, minus the deletions (in the order sent)."""
    if head is not None:
        source = store.snapshot_dir(repo_id, head)
        for path in store.hub.commit_info(repo_id, head).tree:
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / path, target / path)
    for key, path in ops:
        if key == "file":
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(uploads / path, target / path)
        elif key == "deletedFile":
            if not (target / path).is_file():
                raise HttpError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            (target / path).unlink()
        else:
            if not (target / path).is_dir():
                raise HttpError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            shutil.rmtree(target / path)


async def commit(request: web.Request) -> web.Response:
    store, repo_id = _writer(request)
    branch = request.match_info["rev"]
    if request.query.get("create_pr") in ("1", "true"):
        raise HttpError(400, "this server has no pull requests; commit to a branch")
    if not store.exists(repo_id):
        raise HttpError(404, f"repo {repo_id} is not in the hub; create it first", "RepoNotFound")
    async with _repo_lock(request, repo_id):
        uploads = await asyncio.to_thread(store.hub.staging_dir, repo_id)
        try:
            header: dict[str, Any] = {}
            ops: list[tuple[str, str]] = []
            async for line in _read_lines(request, request.app[MAX_COMMIT]):
                key, path, value = await asyncio.to_thread(_write_upload, uploads, line)
                if key == "header":
                    header = value
                else:
                    ops.append((key, path))
            summary = str(header.get("summary") or "").strip() or "commit through zoo hub serve"
            description = str(header.get("description") or "").strip()
            message = f"{summary}\n\n{description}" if description else summary
            parent_wanted = str(header.get("parentCommit") or "").lower()
            for _ in range(3):
                head = _head(store, repo_id, branch)
                if parent_wanted and not (head or "").startswith(parent_wanted):
                    raise HttpError(412, f"A commit has happened since {parent_wanted[:12]}: {branch} is at "
                                         f"{(head or 'no commit')[:12]}. Please refresh and try again.")
                staged = await asyncio.to_thread(store.hub.staging_dir, repo_id)
                try:
                    await asyncio.to_thread(_build_snapshot, store, repo_id, head, uploads, ops, staged)
                    try:  # conditional on the head it was built from; another process may push meanwhile
                        commit_id = await asyncio.to_thread(functools.partial(
                            store.hub.push, repo_id, staged, message=message, branch=branch, move=True, expected_parent=head))
                    except ParentMovedError:
                        continue  # rebuild on the new head
                finally:
                    if staged.exists():  # not consumed by push: remove it and release its lock
                        await asyncio.to_thread(store.hub.discard_staging, staged)
                break
            else:
                raise HttpError(409, f"{repo_id}@{branch} kept moving while this commit was built; try again")
        except ZooError as error:
            raise HttpError.from_zoo(error) from None
        except OSError as error:  # e.g. a file and a folder of the same name
            raise HttpError(400, f"cannot build the commit of {repo_id}: {error}") from None
        finally:
            await asyncio.to_thread(store.hub.discard_staging, uploads)
    return web.json_response({"success": True, "commitOid": commit_id, "pullRequestUrl": None,
                              "commitUrl": f"{request.url.origin()}/{repo_id}/commit/{commit_id}"})


async def create_tag(request: web.Request) -> web.Response:
    store, repo_id = _writer(request)
    body = await _json(request)
    tag = body.get("tag")
    if not isinstance(tag, str):
        raise HttpError(400, "give the tag name as 'tag'")
    message = body.get("message") if isinstance(body.get("message"), str) else None
    async with _repo_lock(request, repo_id):
        try:
            await asyncio.to_thread(store.hub.tag, repo_id, request.match_info["rev"], tag, message)
        except ZooError as error:
            raise HttpError.from_zoo(error) from None
    return web.json_response({})


def _create_branch_blocking(store: Store, repo_id: str, branch: str, start: str) -> str:
    hub = store.hub
    repo = hub.repo_dir(repo_id)
    with hub._lock(repo):  # the local hub's own repo lock: refs move only under it
        if (repo / "refs" / branch).exists():
            raise HttpError(409, f"{branch!r} already exists in {repo_id}")
        commit_id = hub.resolve(repo_id, start)
        _write_atomic(repo / "refs" / branch, commit_id + "\n")
    return commit_id


async def create_branch(request: web.Request) -> web.Response:
    store, repo_id = _writer(request)
    body = await _json(request) if request.can_read_body else {}
    branch = request.match_info["branch"]
    start = str(body.get("startingPoint") or "main")
    try:
        validate_ref_name(branch, "branch")
        store.commit(repo_id, start)
        async with _repo_lock(request, repo_id):
            await asyncio.to_thread(_create_branch_blocking, store, repo_id, branch, start)
    except ZooError as error:
        raise HttpError.from_zoo(error) from None
    return web.json_response({})


async def refuse_delete(request: web.Request) -> web.Response:
    request.app[AUTH].require(request)
    raise HttpError(405, "this server never deletes: commits, tags and repos are immutable history")


def add_routes(app: web.Application, tokens: TokenCheck, max_commit_bytes: int) -> None:
    app[AUTH] = tokens
    app[MAX_COMMIT] = max_commit_bytes
    app[_LOCKS] = {}
    repo = "/api/models/{org}/{name}"
    app.router.add_get("/api/whoami-v2", whoami)
    app.router.add_post("/api/repos/create", create_repo)
    app.router.add_post("/api/validate-yaml", validate_yaml)
    app.router.add_post(repo + "/preupload/{rev}", preupload)
    app.router.add_post(repo + "/commit/{rev}", commit)
    app.router.add_post(repo + "/tag/{rev}", create_tag)
    app.router.add_post(repo + "/branch/{branch}", create_branch)
    app.router.add_delete(repo + "/tag/{rev}", refuse_delete)
    app.router.add_delete(repo + "/branch/{branch}", refuse_delete)
    app.router.add_route("DELETE", "/api/repos/delete", refuse_delete)
    app.router.add_post("/api/repos/delete", refuse_delete)
