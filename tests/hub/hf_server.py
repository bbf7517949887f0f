"""In-memory stand-in for the Hugging Face Hub, for tests only.

Why it is kept beside the real server (`zoo hub serve`, which the bridge tests in test_remote.py run against
first): it follows huggingface.co's conventions where our server deliberately differs, so the bridge is also
shown to work with them. (1) Small files are regular git files: their ETag and tree ``oid`` are git blob sha1s
and the client caches them under that name, where our server names every file by its sha256 as the Hub does
for LFS files. (2) ``create_repo`` makes an initial commit holding ``.gitattributes``; ours makes an empty repo.
(3) It accepts private repos, which ours refuses. (4) It records every request (``requests``), which lets its
smoke test check what the client sends. test_remote.py runs each bridge test against both.

TEST INFRASTRUCTURE ONLY: the server binds to 127.0.0.1 on an ephemeral port, keeps all state in memory,
accepts any token and is never used by production code. It is written from scratch on the standard library
(``http.server``). The endpoint list and the request/response shapes follow what the huggingface_hub 2.4
client sends and parses (``hf_api.py``, ``_commit_api.py``, ``file_download.py``, ``_snapshot_download.py``,
``utils/_http.py``). Only model repos are hosted, and every file is committed in "regular" mode (inline
base64 in the commit payload), so no LFS or Xet storage is involved: the client must run with Xet disabled
(``huggingface_hub.constants.HF_HUB_DISABLE_XET = True``, see the smoke test).

    GET       /api/whoami-v2
    POST      /api/repos/create                         409 (body still carries "url") if it exists
    POST      /api/validate-yaml                        always valid
    GET       /api/models/{org}/{name}[/revision/{rev}] model_info / repo_info
    GET       /api/models/{org}/{name}/refs
    GET       /api/models/{org}/{name}/commits/{rev}
    GET       /api/models/{org}/{name}/tree/{rev}[/{path}]
    POST      /api/models/{org}/{name}/paths-info/{rev}
    POST      /api/models/{org}/{name}/preupload/{rev}
    POST      /api/models/{org}/{name}/commit/{branch}  412 if header.parentCommit is stale
    POST      /api/models/{org}/{name}/tag/{rev}        409 if the tag exists
    HEAD|GET  /{org}/{name}/resolve/{rev}/{path}

A revision is a branch, a tag or a (prefix of a) 40-hex commit id. Errors carry the ``X-Error-Code`` /
``X-Error-Message`` headers the client maps to its exception classes (RepoNotFound, RevisionNotFound,
EntryNotFound). Responses are HTTP/1.0, so every connection closes after one response and ``stop()``
really makes the endpoint unreachable (no pooled keep-alive connection survives it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

USER = "test-user"
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_oid(data: bytes) -> str:
    """Git blob id of ``data`` (what the Hub uses as ETag / oid of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _card_data(readme: bytes) -> dict:
    """Top-level scalars and lists of a README's YAML front matter (a small subset of YAML)."""
    match = re.match(r"---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", readme.decode("utf-8", "replace"), re.S)
    data: dict = {}
    key = None
    for line in match.group(1).splitlines() if match else []:
        if key and (item := re.match(r"\s*-\s+(.*)", line)):
            data[key] = (data[key] if isinstance(data[key], list) else []) + [item.group(1).strip().strip("'\"")]
        elif kv := re.match(r"([\w.-]+):\s*(.*)", line):
            key, value = kv.group(1), kv.group(2).strip()
            if value.startswith("[") and value.endswith("]"):
                data[key] = [v.strip().strip("'\"") for v in value[1:-1].split(",") if v.strip()]
            else:
                data[key] = value.strip("'\"") or None
    return data


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, bytes]  # full snapshot of the repo at this commit


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    created_at: str = field(default_factory=_now)
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid
    tags: dict[str, str] = field(default_factory=dict)  # name -> commit oid

    def resolve(self, rev: str) -> Commit:
        oid = self.branches.get(rev) or self.tags.get(rev)
        if oid is None and re.fullmatch(r"[0-9a-f]{7,40}", rev):
            matches = [c for c in self.commits if c.startswith(rev)]
            oid = matches[0] if len(matches) == 1 else None
        if oid is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return self.commits[oid]


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers=None, extra=None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.extra = headers or {}, extra or {}


def _entry(files: dict[str, bytes], path: str) -> dict | None:
    """Tree / paths-info entry for ``path``: a file, a directory, or None if absent."""
    if path in files:
        return {"type": "file", "path": path, "size": len(files[path]), "oid": git_blob_oid(files[path])}
    under = sorted((p, git_blob_oid(d)) for p, d in files.items() if p.startswith(path + "/"))
    if not under:
        return None
    return {"type": "directory", "path": path, "size": 0, "oid": hashlib.sha1(json.dumps(under).encode()).hexdigest()}


def _flag(query: dict, name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("1", "true")


class HFTestServer:
    """Loopback-only fake Hub. ``with HFTestServer() as hub: HfApi(endpoint=hub.endpoint, token="fake")``."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}  # "org/name" -> Repo
        self.requests: list[tuple[str, str]] = []  # (method, URL path as sent, without query string)
        self.errors: list[str] = []  # tracebacks of server-side bugs (answered as 400 so the client does not retry)
        self.endpoint: str | None = None
        self._lock = threading.Lock()
        self._seq = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> HFTestServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.hub = self  # type: ignore[attr-defined]
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hf-test-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> HFTestServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ state helpers
    def _repo(self, repo_id: str) -> Repo:
        if repo_id not in self.repos:
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return self.repos[repo_id]

    def _new_commit(self, repo: Repo, branch: str, files: dict[str, bytes], title: str, message: str = "") -> Commit:
        self._seq += 1
        parent, date = repo.branches.get(branch), _now()
        content = {"parent": parent, "title": title, "message": message, "date": date, "seq": self._seq,
                   "files": {p: git_blob_oid(d) for p, d in sorted(files.items())}}
        oid = hashlib.sha1(json.dumps(content, sort_keys=True).encode()).hexdigest()
        repo.commits[oid] = Commit(oid, parent, title, message, date, dict(files))
        repo.branches[branch] = oid
        return repo.commits[oid]

    # ------------------------------------------------------------------ routing
    def route(self, method: str, parts: list[str], query: dict, body: bytes):
        if parts[:2] == ["api", "whoami-v2"]:
            return {"type": "user", "id": "0" * 24, "name": USER, "fullname": "Test User", "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "fake", "role": "write"}}}
        if method == "POST" and parts == ["api", "repos", "create"]:
            return self._create_repo(json.loads(body or b"{}"))
        if method == "POST" and parts == ["api", "validate-yaml"]:
            return {"errors": [], "warnings": []}
        if len(parts) >= 4 and parts[:2] == ["api", "models"]:
            return self._repo_api(method, self._repo(f"{parts[2]}/{parts[3]}"), parts[4:], query, body)
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            commit = self._repo(f"{parts[0]}/{parts[1]}").resolve(parts[3])
            path = "/".join(parts[4:])
            if path not in commit.files:
                raise HubError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit.oid})
            data = commit.files[path]
            return data, {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_oid(data)}"'}
        raise HubError(404, f"HFTestServer has no route for {method} /{'/'.join(parts)}")

    def _create_repo(self, payload: dict):
        if payload.get("type") not in (None, "model"):
            raise HubError(400, "HFTestServer only hosts model repos")
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        url = f"{self.endpoint}/{repo_id}"
        if repo_id in self.repos:
            raise HubError(409, "You already created this model repo", extra={"url": url})
        repo = self.repos[repo_id] = Repo(repo_id, private=payload.get("visibility") == "private")
        self._new_commit(repo, "main", {".gitattributes": GITATTRIBUTES}, "initial commit")
        return {"url": url, "name": repo_id}

    def _repo_api(self, method: str, repo: Repo, rest: list[str], query: dict, body: bytes):
        action, rev = (rest + [None, None])[:2]
        if method == "GET" and action in (None, "revision"):
            commit = repo.resolve(rev or "main")
            card = _card_data(commit.files.get("README.md", b""))
            blobs = _flag(query, "blobs")
            siblings = [{"rfilename": p, **({"size": len(d), "blobId": git_blob_oid(d)} if blobs else {})}
                        for p, d in sorted(commit.files.items())]
            tags = card.get("tags") if isinstance(card.get("tags"), list) else []
            return {"id": repo.repo_id, "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0],
                    "sha": commit.oid, "lastModified": commit.date, "createdAt": repo.created_at,
                    "private": repo.private, "disabled": False, "gated": False, "downloads": 0, "likes": 0,
                    "library_name": card.get("library_name"), "tags": tags, "cardData": card or None,
                    "siblings": siblings}
        if method == "GET" and action == "refs":
            def ref(kind, name, oid):
                return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}
            return {"branches": [ref("heads", n, o) for n, o in repo.branches.items()],
                    "tags": [ref("tags", n, o) for n, o in repo.tags.items()], "converts": [], "pullRequests": []}
        if method == "GET" and action == "commits" and rev:
            history, commit = [], repo.resolve(rev)
            while commit is not None:
                history.append({"id": commit.oid, "title": commit.title, "message": commit.message,
                                "date": commit.date, "authors": [{"user": USER}]})
                commit = repo.commits.get(commit.parent) if commit.parent else None
            return history
        if method == "GET" and action == "tree" and rev:
            files, path = repo.resolve(rev).files, "/".join(rest[2:]).strip("/")
            prefix = f"{path}/" if path else ""
            if path and not any(p.startswith(prefix) for p in files):
                raise HubError(404, f"Folder not found: {path}", "EntryNotFound")
            paths, recursive = set(), _flag(query, "recursive")
            for p in files:
                if p.startswith(prefix):
                    segs = p[len(prefix):].split("/")
                    paths.update(prefix + "/".join(segs[:i]) for i in (range(1, len(segs) + 1) if recursive else [1]))
            return [_entry(files, p) for p in sorted(paths)]
        if method == "POST" and action == "paths-info" and rev:
            files = repo.resolve(rev).files
            wanted = parse_qs(body.decode()).get("paths", [])
            return [e for e in (_entry(files, p.strip("/")) for p in wanted) if e is not None]
        if method == "POST" and action == "preupload" and rev:
            commit = repo.resolve(rev)
            return {"commitOid": commit.oid, "files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                 "oid": git_blob_oid(commit.files[f["path"]]) if f["path"] in commit.files else None}
                for f in json.loads(body)["files"]]}
        if method == "POST" and action == "commit" and rev:
            return self._commit(repo, rev, query, body)
        if method == "POST" and action == "tag" and rev:
            commit, tag = repo.resolve(rev), json.loads(body or b"{}")["tag"]
            if tag in repo.tags:
                raise HubError(409, f"Tag {tag} already exists")
            repo.tags[tag] = commit.oid
            return {}
        raise HubError(404, f"HFTestServer has no route for {method} {action!r} on {repo.repo_id}")

    def _commit(self, repo: Repo, branch: str, query: dict, body: bytes):
        if _flag(query, "create_pr"):
            raise HubError(400, "HFTestServer does not support create_pr")
        if branch not in repo.branches:
            raise HubError(404, f"Branch not found: {branch}", "RevisionNotFound")
        head = repo.commits[repo.branches[branch]]
        files, header = dict(head.files), {}
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                content = value["content"]
                is_b64 = value.get("encoding") == "base64"
                files[value["path"]] = base64.b64decode(content) if is_b64 else content.encode()
            elif key in ("deletedFile", "deletedFolder"):
                path = value["path"].strip("/")
                if key == "deletedFile":
                    gone = [path] if path in files else []
                else:
                    gone = [p for p in files if p.startswith(path + "/")]
                if not gone:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                for p in gone:
                    del files[p]
            else:
                raise HubError(400, f"HFTestServer only accepts regular (inline) files, got {key!r}")
        parent = header.get("parentCommit")
        if parent and not head.oid.startswith(parent.lower()):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        commit = self._new_commit(repo, branch, files, header.get("summary") or "", header.get("description") or "")
        return {"success": True, "commitOid": commit.oid, "pullRequestUrl": None,
                "commitUrl": f"{self.endpoint}/{repo.repo_id}/commit/{commit.oid}"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one response per connection: nothing outlives stop()
    timeout = 30

    def log_message(self, format, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        hub: HFTestServer = self.server.hub  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # the client never sends chunked
        headers: dict[str, str] = {}
        with hub._lock:
            hub.requests.append((method, url.path))
            try:
                status, result = 200, hub.route(method, parts, parse_qs(url.query), body)
                if isinstance(result, tuple):
                    result, headers = result
            except HubError as err:
                status, result, headers = err.status, {"error": err.message, **err.extra}, dict(err.headers)
                headers["X-Error-Message"] = err.message
                if err.code:
                    headers["X-Error-Code"] = err.code
            except Exception:  # a bug in this server: answer 4xx so the client fails fast instead of backing off
                hub.errors.append(traceback.format_exc())
                status, result = 400, {"error": f"HFTestServer internal error:\n{hub.errors[-1]}"}
        is_file = isinstance(result, bytes)
        data = result if is_file else json.dumps(result).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if is_file else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)
