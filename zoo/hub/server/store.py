"""The read side of the served hub: revisions, manifest entries, verified snapshots, and files sent with ranges.

Everything here reads a :class:`~zoo.hub.local.LocalHub` and keeps no second copy of anything: what the
server knows about a file (path, size, sha256) comes from the commit's manifest, and what it sends are the
snapshot's own bytes.

How files look to a Hugging Face client. The Hub names a file stored in LFS by the sha256 of its content (the
ETag of ``/resolve``, ``lfs.oid`` in a tree listing) and its git blob id is the sha1 of the small LFS pointer
text. The local hub already records every file's sha256, so the server presents every file that way: ETag =
sha256 (the client's cache stores the blob under that name), tree ``oid`` = git blob id of the pointer, all
derived from the manifest without reading the file. Only the upload check (``preupload``) needs the git blob id
of the *content* (the client skips a file whose id did not change); it is computed on demand and cached.

Integrity. A snapshot is checked against its manifest with ``LocalHub.verify`` (commit object and every
file's sha256) the first time the server reads from it; the server then records each file's (inode, size,
mtime) and, on every later read, compares the opened file's ``fstat`` with that record and re-verifies on any
difference. Only paths listed in the manifest are ever opened, with ``O_NOFOLLOW``, and the real path must lie
inside the snapshot folder: a URL cannot name anything else.

Ranges follow RFC 9110 section 14: one ``bytes=a-b``, ``a-`` or ``-n`` range gives 206 with ``Content-Range``;
an unsatisfiable one gives 416 with ``Content-Range: bytes */size``; several ranges, a malformed header, or an
``If-Range`` that is not our ETag give the whole file (200), which the RFC allows. Bodies go out with
``loop.sendfile`` (zero copy) as aiohttp's own ``FileResponse`` does, falling back to chunked reads in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from zoo._core.errors import (
    HubLockTimeout, IntegrityError, InvalidRepoIdError, RepoNotFoundError, RevisionNotFoundError, TagExistsError,
    ZooError,
)
from zoo.hub.local import CommitInfo, LocalHub
from zoo.hub.repo_id import validate_repo_id

__all__ = ["STORE", "HttpError", "Store", "git_blob_oid", "iso_time", "send_file", "validate_path"]

_CHUNK = 1 << 20
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
# Content types a browser may render from /resolve; everything else is a download (octet-stream).
_SAFE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".svg": "image/svg+xml", ".json": "application/json",
               ".md": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8",
               ".yaml": "text/plain; charset=utf-8", ".csv": "text/plain; charset=utf-8"}


class HttpError(Exception):
    """An error answer: status, message, and the ``X-Error-Code`` the Hugging Face client classifies."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.extra = dict(headers or {}), dict(extra or {})

    @classmethod
    def from_zoo(cls, error: ZooError) -> HttpError:
        """Map the local hub's errors onto the Hub's statuses and error codes."""
        if isinstance(error, RepoNotFoundError):
            return cls(404, str(error), "RepoNotFound")
        if isinstance(error, RevisionNotFoundError):
            return cls(404, str(error), "RevisionNotFound")
        if isinstance(error, TagExistsError):
            return cls(409, str(error))
        if isinstance(error, IntegrityError):
            return cls(500, f"the hub's files fail their sha256 manifest: {error}")
        if isinstance(error, HubLockTimeout):
            return cls(503, str(error))
        if isinstance(error, InvalidRepoIdError):
            return cls(400, str(error))
        return cls(400, str(error))


def git_blob_oid(data: bytes) -> str:
    """Git's blob id: sha1 of ``b"blob <size>\\0" + data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer text of a file (git-lfs spec v1), whose blob id the Hub lists as the file's ``oid``."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def iso_time(seconds: float) -> str:
    """``2024-05-01T12:00:00.000Z``, the only date format the client parses."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


def validate_path(path: str) -> str:
    """A file path inside a repo, or ``HttpError(400)``: relative, '/'-separated, no empty, '.' or '..' part."""
    parts = path.split("/")
    if (not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts)
            or any(ord(c) < 32 or ord(c) == 127 for c in path) or len(path) > 1024):
        raise HttpError(400, f"invalid path in repo {path!r}: use a relative path with no empty, '.' or '..' part",
                        "EntryNotFound")
    return path


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str

    def tree_entry(self) -> dict[str, Any]:
        pointer = lfs_pointer(self.sha256, self.size)
        return {"type": "file", "path": self.path, "size": self.size, "oid": git_blob_oid(pointer),
                "lfs": {"oid": self.sha256, "size": self.size, "pointerSize": len(pointer)}}

    def sibling(self) -> dict[str, Any]:
        tree = self.tree_entry()
        return {"rfilename": self.path, "size": self.size, "blobId": tree["oid"],
                "lfs": {"sha256": self.sha256, "size": self.size, "pointerSize": tree["lfs"]["pointerSize"]}}


class Store:
    """What the routes need from a :class:`LocalHub`, with errors as :class:`HttpError`."""

    def __init__(self, hub: LocalHub) -> None:
        self.hub = hub
        self._verified: dict[tuple[str, str], dict[str, tuple[int, int, int]]] = {}
        self._verify_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._content_oids: dict[str, str] = {}  # sha256 -> git blob id of the content

    # -- repos and revisions -------------------------------------------------------------------------
    def repo_id(self, org: str, name: str) -> str:
        try:
            return validate_repo_id(f"{org}/{name}")
        except InvalidRepoIdError as error:
            raise HttpError(404, str(error), "RepoNotFound") from None

    def commit(self, repo_id: str, revision: str | None) -> CommitInfo:
        """The commit ``revision`` names (branch, tag, commit id or a 7+ digit prefix)."""
        if revision is not None and (not revision or "/" in revision or revision.startswith(".")):
            raise HttpError(404, f"invalid revision {revision!r} for {repo_id}", "RevisionNotFound")
        try:
            return self.hub.commit_info(repo_id, self.hub.resolve(repo_id, revision or "main"))
        except ZooError as error:
            raise HttpError.from_zoo(error) from None

    def refs(self, repo_id: str) -> dict[str, dict[str, str]]:
        try:
            return self.hub.refs(repo_id)
        except ZooError as error:
            raise HttpError.from_zoo(error) from None

    def log(self, repo_id: str, revision: str | None) -> list[CommitInfo]:
        self.commit(repo_id, revision)  # errors first
        return self.hub.log(repo_id, revision or "main")

    def exists(self, repo_id: str) -> bool:
        return (self.hub.repo_dir(repo_id) / "refs").is_dir()

    def snapshot_dir(self, repo_id: str, commit_id: str) -> Path:
        return self.hub.repo_dir(repo_id) / "snapshots" / commit_id

    # -- manifest entries ----------------------------------------------------------------------------
    @staticmethod
    def files(info: CommitInfo) -> dict[str, FileEntry]:
        return {p: FileEntry(p, int(m["size"]), str(m["sha256"])) for p, m in sorted(info.tree.items())}

    @staticmethod
    def entry(info: CommitInfo, path: str, repo_id: str) -> FileEntry:
        meta = info.tree.get(validate_path(path))
        if meta is None:
            raise HttpError(404, f"{path!r} is not in {repo_id}@{info.commit_id[:10]}", "EntryNotFound",
                            headers={"X-Repo-Commit": info.commit_id})
        return FileEntry(path, int(meta["size"]), str(meta["sha256"]))

    @staticmethod
    def folder_entry(info: CommitInfo, folder: str) -> dict[str, Any] | None:
        under = sorted((p, str(m["sha256"])) for p, m in info.tree.items() if p.startswith(folder + "/"))
        if not under:
            return None
        return {"type": "directory", "path": folder, "size": 0,
                "oid": hashlib.sha1(json.dumps(under).encode()).hexdigest()}

    def tree(self, info: CommitInfo, folder: str, recursive: bool, repo_id: str) -> list[dict[str, Any]]:
        """Entries under ``folder`` ('' = the root): its children, or everything below it when ``recursive``."""
        prefix = f"{validate_path(folder)}/" if folder else ""
        if folder and self.folder_entry(info, folder) is None:
            raise HttpError(404, f"folder {folder!r} is not in {repo_id}@{info.commit_id[:10]}", "EntryNotFound")
        files, folders = self.files(info), set()
        listed = []
        for path, entry in files.items():
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts)):
                if recursive or depth == 1:
                    folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                listed.append(entry.tree_entry())
        listed += [self.folder_entry(info, f) for f in sorted(folders)]
        return sorted(listed, key=lambda e: e["path"])

    # -- verified reading ----------------------------------------------------------------------------
    def _stats(self, snapshot: Path, info: CommitInfo) -> dict[str, tuple[int, int, int]]:
        out = {}
        for path in info.tree:
            st = os.lstat(snapshot / path)
            out[path] = (st.st_ino, st.st_size, st.st_mtime_ns)
        return out

    def _verify_blocking(self, repo_id: str, info: CommitInfo) -> dict[str, tuple[int, int, int]]:
        snapshot = self.snapshot_dir(repo_id, info.commit_id)
        for _ in range(3):
            try:
                before = self._stats(snapshot, info)
                self.hub.verify(repo_id, info.commit_id)
                if self._stats(snapshot, info) == before:
                    return before
            except FileNotFoundError as error:
                raise IntegrityError(f"{repo_id}@{info.commit_id[:10]}: {error.filename} is missing") from None
            except IntegrityError:
                raise
            except ZooError as error:  # e.g. a symbolic link planted in the snapshot
                raise IntegrityError(f"{repo_id}@{info.commit_id[:10]}: {error}") from None
        raise IntegrityError(f"{repo_id}@{info.commit_id[:10]}: files kept changing while being verified")

    async def verified(self, repo_id: str, info: CommitInfo, *, again: bool = False) -> dict[str, tuple[int, int, int]]:
        """``{path: (inode, size, mtime_ns)}`` of a snapshot that passed ``LocalHub.verify`` (once per commit)."""
        key = (repo_id, info.commit_id)
        lock = self._verify_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if again:
                self._verified.pop(key, None)
            if key not in self._verified:
                try:
                    self._verified[key] = await asyncio.to_thread(self._verify_blocking, repo_id, info)
                except ZooError as error:
                    raise HttpError.from_zoo(error) from None
            return self._verified[key]

    def _open(self, repo_id: str, info: CommitInfo, path: str):
        snapshot = self.snapshot_dir(repo_id, info.commit_id)
        full = snapshot / path
        real, root = os.path.realpath(full), os.path.realpath(snapshot)
        if not real.startswith(root + os.sep):
            raise IntegrityError(f"{repo_id}@{info.commit_id[:10]}: {path!r} leads outside its snapshot")
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise IntegrityError(f"{repo_id}@{info.commit_id[:10]}: {path!r} is not a regular file")
        return os.fdopen(fd, "rb"), (st.st_ino, st.st_size, st.st_mtime_ns)

    async def open_verified(self, repo_id: str, info: CommitInfo, path: str):
        """An open file of the snapshot, whose bytes match the manifest (see the module docstring)."""
        self.entry(info, path, repo_id)
        for again in (False, True):
            stats = await self.verified(repo_id, info, again=again)
            try:
                fobj, now = await asyncio.to_thread(self._open, repo_id, info, path)
            except OSError as error:  # e.g. ELOOP: a symbolic link planted in the snapshot
                raise HttpError(500, f"{repo_id}@{info.commit_id[:10]}: cannot open {path!r}: {error.strerror}") from None
            except ZooError as error:
                raise HttpError.from_zoo(error) from None
            if now == stats[path]:
                return fobj
            fobj.close()
        raise HttpError(500, f"{repo_id}@{info.commit_id[:10]}: {path!r} changed after it was verified")

    async def read_checked(self, repo_id: str, info: CommitInfo, path: str, limit: int = 1 << 24) -> bytes:
        """The bytes of one small file (a card), checked against its manifest sha256 without verifying the rest."""
        entry = self.entry(info, path, repo_id)
        if entry.size > limit:
            raise HttpError(413, f"{path!r} is {entry.size} bytes; pages show files up to {limit} bytes")

        def read() -> bytes:
            fobj, _ = self._open(repo_id, info, path)
            with fobj:
                return fobj.read(limit + 1)

        try:
            data = await asyncio.to_thread(read)
        except OSError as error:
            raise HttpError(500, f"{repo_id}@{info.commit_id[:10]}: cannot open {path!r}: {error.strerror}") from None
        except ZooError as error:
            raise HttpError.from_zoo(error) from None
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise HttpError.from_zoo(IntegrityError(f"{repo_id}@{info.commit_id[:10]}: file {path!r} was modified after the commit"))
        return data

    async def content_oid(self, repo_id: str, info: CommitInfo, entry: FileEntry) -> str:
        """Git blob id of a file's content (what ``preupload`` must return for the client to skip it)."""
        if entry.sha256 not in self._content_oids:
            fobj = await self.open_verified(repo_id, info, entry.path)

            def digest() -> str:
                h = hashlib.sha1(b"blob %d\0" % entry.size)
                with fobj:
                    while block := fobj.read(_CHUNK):
                        h.update(block)
                return h.hexdigest()

            self._content_oids[entry.sha256] = await asyncio.to_thread(digest)
        return self._content_oids[entry.sha256]


STORE = web.AppKey("store", Store)


def content_type(path: str) -> str:
    return _SAFE_TYPES.get(os.path.splitext(path)[1].lower(), "application/octet-stream")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` of a single satisfiable byte range, ``None`` to send everything, or 416."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if match is None:  # several ranges or another unit: the whole representation (RFC 9110 14.2)
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last n bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - length, 0), size
    start = int(first)
    stop = size if not last else int(last) + 1
    if last and int(last) < start:
        return None  # invalid range: ignored
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(stop, size)


def _unsatisfiable(size: int) -> HttpError:
    return HttpError(416, f"range not satisfiable for a file of {size} bytes", headers={"Content-Range": f"bytes */{size}"})


async def send_file(request: web.Request, fobj, entry: FileEntry, headers: dict[str, str]) -> web.StreamResponse:
    """Send ``fobj`` (or the requested range of it) with ``headers``; HEAD sends the headers only."""
    etag = f'"{entry.sha256}"'
    wanted = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        wanted = None
    try:
        span = parse_range(wanted, entry.size)
    except HttpError:
        fobj.close()
        raise
    start, stop = span or (0, entry.size)
    response = web.StreamResponse(status=206 if span else 200, headers={
        **headers, "ETag": etag, "Accept-Ranges": "bytes", "Content-Type": content_type(entry.path),
    })
    if span:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{entry.size}"
    response.content_length = stop - start
    with fobj:
        await response.prepare(request)
        if request.method == "HEAD" or stop == start:
            await response.write_eof()
            return response
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("the client went away")
        try:
            await asyncio.get_running_loop().sendfile(transport, fobj, start, stop - start)
        except NotImplementedError:  # e.g. behind TLS: plain chunked reads
            fobj.seek(start)
            left = stop - start
            while left > 0:
                block = await asyncio.to_thread(fobj.read, min(_CHUNK, left))
                if not block:
                    raise IntegrityError(f"{entry.path!r} ended early")
                await response.write(block)
                left -= len(block)
        await response.write_eof()
    return response
