"""The local hub: a folder of versioned model repos with git-like immutable commits.

Layout of a hub folder (``$ZOO_HUB``, default ``~/.cache/zoo/hub``)::

    <org>/<name>/
        snapshots/<commit>/     a plain Hugging Face model folder (config.json, model.safetensors, README.md)
        refs/<branch-or-tag>    text: the commit id the branch or tag points at (``main`` moves on each push)
        commits/<commit>.json   the commit object: parent, message, time, branch, and the tree
                                (sha256 and size of every file in the snapshot)
        tags/<tag>.json         tag object (tags are immutable)
        .lock                   file lock taken by writers

The commit id is the sha1 of the commit object's canonical JSON without its id (tree hash, parent, message,
time, branch), as git hashes a commit header: a changed file, parent or message gives another id. Loading a
snapshot recomputes the sha256 of every file and checks it against the tree, so a tampered file is an
``IntegrityError`` rather than a silent load.

Writes are atomic: a snapshot is written into ``.staging/<random>/`` first and renamed into place, refs and
commit objects are written to a temp file and renamed; the rename of the ref is the commit point. Writers hold
``.lock`` (a ``filelock.FileLock``, across OS processes) only while they pick the parent and move the ref, so two
processes that push at once both end as commits in the history, one the parent of the other.

Names are checked before anything is written: a tag may not take the name of a branch nor a branch that of a tag,
so ``push(tag="main")`` is refused instead of turning ``main`` into a tag. A push holds ``.staging/<id>.lock`` (an
OS file lock, released by the kernel when its process dies) for as long as it uses ``.staging/<id>/``; every new
push removes the staging folders whose lock nobody holds, i.e. what killed pushes left behind, and never one a
live push uses. A staging folder without a lock file (left by an older zoo) is removed once it is older than
``STAGING_LEASE_S``.

Files and folders get the modes the caller's umask gives (``0o666 & ~umask``, ``0o777 & ~umask``), whatever the
mode of the files pushed, so a hub shared by a group (umask 002) is readable and writable by the group.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterator

from zoo._core.errors import (HubLockTimeout, IntegrityError, ParentMovedError, RepoNotFoundError, RevisionNotFoundError,
                              TagExistsError, ZooError)
from zoo._core.files import file_mode, read_json_object, set_modes
from zoo.hub.repo_id import validate_ref_name, validate_repo_id, validate_revision

__all__ = ["CommitInfo", "LocalHub", "STAGING_LEASE_S", "default_hub_root"]

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX_PREFIX = re.compile(r"^[0-9a-f]{7,40}$")
_CHUNK = 1 << 22
_COMMIT_FIELDS = ("id", "parent", "message", "time", "branch", "tree", "tree_hash")
ANY_PARENT = object()  # push(expected_parent=...) default: commit on whatever the branch head is
STAGING_LEASE_S = 24 * 3600.0  # a lock-less staging folder (from an older zoo) older than this is stale
_YOUNG_LOCK_S = 60.0  # a staging lock file without its folder is left alone this long after its last change
_LIVE_STAGING: dict[str, object] = {}  # staging folder -> the FileLock this process holds on it


def _age(path: Path) -> float:
    """Seconds since ``path`` last changed (0 if it vanished meanwhile)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def default_hub_root() -> Path:
    root = os.environ.get("ZOO_HUB")
    if root and root != "hf":
        return Path(root).expanduser()
    return Path("~/.cache/zoo/hub").expanduser()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _tree(folder: Path) -> dict[str, dict[str, object]]:
    """``{relative posix path: {"sha256", "size"}}`` of every regular file under ``folder``."""
    tree = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise ZooError(f"{path} is a symbolic link; a snapshot holds regular files only")
        if path.is_file():
            tree[path.relative_to(folder).as_posix()] = {"sha256": _sha256(path), "size": path.stat().st_size}
    return tree


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _commit_id(tree_hash: str, parent: str | None, message: str, timestamp: float, branch: str) -> str:
    body = _canonical({"tree": tree_hash, "parent": parent, "message": message, "time": timestamp, "branch": branch})
    return hashlib.sha1(b"zoo-commit %d\0" % len(body) + body).hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclasses.dataclass(frozen=True)
class CommitInfo:
    """One commit of a repo: id, parent id, message, time (seconds since the epoch), branch, tree."""

    commit_id: str
    parent: str | None
    message: str
    time: float
    branch: str
    tree: dict[str, dict[str, object]]
    tree_hash: str

    @property
    def iso_time(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time))


class LocalHub:
    """A hub folder; see the module docstring for the layout and guarantees."""

    def __init__(self, root: str | Path | None = None, lock_timeout: float = 120.0) -> None:
        self.root = Path(root).expanduser() if root is not None else default_hub_root()
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"LocalHub({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------------------
    def repo_dir(self, repo_id: str) -> Path:
        org, name = validate_repo_id(repo_id).split("/")
        return self.root / org / name

    def check_exists(self) -> None:
        """Raise ``RepoNotFoundError`` if the hub folder does not exist (reading commands need one)."""
        if not self.root.is_dir():
            raise RepoNotFoundError(f"hub folder {self.root} does not exist (nothing was pushed there; is --hub or $ZOO_HUB right?)")

    def _existing_repo(self, repo_id: str) -> Path:
        path = self.repo_dir(repo_id)
        if not self.root.is_dir():
            raise RepoNotFoundError(f"repo {repo_id!r} is not in the hub: hub folder {self.root} does not exist")
        if not (path / "refs").is_dir():
            known = ", ".join(self.list_repos()[:10]) or "none"
            raise RepoNotFoundError(f"repo {repo_id!r} is not in the hub at {self.root} (repos there: {known})")
        return path

    def _lock(self, repo: Path):
        from filelock import FileLock, Timeout

        lock = FileLock(str(repo / ".lock"), timeout=self.lock_timeout, mode=file_mode())

        class _Guard:
            def __enter__(self_inner):
                try:
                    lock.acquire()
                except Timeout:
                    raise HubLockTimeout(f"{repo} is locked by another process for over {self.lock_timeout} s") from None

            def __exit__(self_inner, *exc):
                lock.release()

        return _Guard()

    # -- writing -----------------------------------------------------------------------------------
    def staging_dir(self, repo_id: str) -> Path:
        """A new empty folder on the hub's filesystem, to write a snapshot into before ``push(..., move=True)``.

        The folder is locked for this process until ``push`` consumes it or ``discard_staging`` removes it; folders
        that dead pushes left are removed first (see the module docstring).
        """
        from filelock import FileLock

        root = self.repo_dir(repo_id) / ".staging"
        root.mkdir(parents=True, exist_ok=True)
        self.clean_staging(repo_id)
        name = uuid.uuid4().hex
        # not thread-local: a server takes it in one worker thread and releases it in another
        lock = FileLock(str(root / f"{name}.lock"), mode=file_mode(), thread_local=False)
        lock.acquire(timeout=10)  # taken before the folder exists: a cleaner never sees the folder unlocked
        staging = root / name
        staging.mkdir()
        _LIVE_STAGING[str(staging)] = lock
        return staging

    def discard_staging(self, staging: str | Path) -> None:
        """Remove a folder made by ``staging_dir`` (a push that will not happen) and release its lock."""
        shutil.rmtree(staging, ignore_errors=True)
        self._release_staging(Path(staging))

    @staticmethod
    def _release_staging(staging: Path) -> None:
        lock = _LIVE_STAGING.pop(str(staging), None)
        if lock is not None:
            Path(f"{staging}.lock").unlink(missing_ok=True)  # unlinked while held: no one else can be using it
            lock.release()

    def clean_staging(self, repo_id: str) -> list[str]:
        """Remove the staging folders of ``repo_id`` that no live push holds; return their names."""
        from filelock import FileLock, Timeout

        root = self.repo_dir(repo_id) / ".staging"
        if not root.is_dir():
            return []
        removed = []
        for entry in sorted(root.iterdir()):
            if entry.name.endswith(".lock"):
                folder = entry.with_name(entry.name[: -len(".lock")])
                if str(folder) in _LIVE_STAGING:
                    continue  # ours, in use
                if not folder.exists() and _age(entry) < _YOUNG_LOCK_S:
                    continue  # a push may be between taking its lock and making its folder: do not even touch it
                lock = FileLock(str(entry), mode=file_mode())
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue  # a live push in another process holds it
                except OSError:
                    continue  # not ours to judge (e.g. another user's lock on a shared hub)
                try:
                    if folder.exists():
                        shutil.rmtree(folder, ignore_errors=True)
                        removed.append(folder.name)
                    entry.unlink(missing_ok=True)
                finally:
                    lock.release()
            elif entry.is_dir() and not Path(f"{entry}.lock").exists():
                if _age(entry) > STAGING_LEASE_S:  # left by a zoo that did not lock its staging folders
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry.name)
        return removed

    def check_push(self, repo_id: str, branch: str = "main", tag: str | None = None) -> None:
        """Raise now, without writing anything, if a push of ``repo_id`` to ``branch`` with ``tag`` would be refused.

        Checks the names, that ``tag`` is neither an existing tag (tags are immutable) nor a branch, and that
        ``branch`` is not a tag. ``push`` checks the same again under the lock.
        """
        repo = self.repo_dir(repo_id)
        validate_ref_name(branch, "branch")
        if tag is not None:
            validate_ref_name(tag, "tag")
        if (repo / "refs").is_dir():
            self._check_ref_kinds(repo, repo_id, branch, tag)
        if tag == branch:
            raise ZooError(f"tag and branch must differ, both are {tag!r}")

    @staticmethod
    def _check_ref_kinds(repo: Path, repo_id: str, branch: str | None, tag: str | None) -> None:
        """Tags are immutable, and a tag and a branch never share a name (refs/ holds both)."""
        if tag is not None and (repo / "tags" / f"{tag}.json").exists():
            raise TagExistsError(f"tag {tag!r} already exists in {repo_id}; tags are immutable")
        if tag is not None and (repo / "refs" / tag).exists():
            raise TagExistsError(f"tag {tag!r} would take the name of branch {tag!r} of {repo_id}; a tag and a branch cannot share a name")
        if branch is not None and (repo / "tags" / f"{branch}.json").exists():
            raise ZooError(f"{branch!r} is a tag of {repo_id}; push to a branch")

    def push(
        self,
        repo_id: str,
        folder: str | Path,
        *,
        message: str | None = None,
        branch: str = "main",
        tag: str | None = None,
        move: bool = False,
        expected_parent: str | None | object = ANY_PARENT,
    ) -> str:
        """Commit the files of ``folder`` as a new snapshot on ``branch``; return the commit id.

        With ``move=True`` the folder (best made by ``staging_dir``) is renamed into place instead of copied.
        ``expected_parent`` (a commit id, or None for a new branch) makes the push conditional: if the branch head
        is another commit when the lock is taken, nothing is written and ``ParentMovedError`` is raised (a
        snapshot built from an older head would otherwise drop what the newer head added).
        """
        repo = self.repo_dir(repo_id)
        self.check_push(repo_id, branch, tag)
        folder = Path(folder)
        if not folder.is_dir():
            raise ZooError(f"{folder} is not a folder")
        if move:
            staged = folder
        else:
            staged = self.staging_dir(repo_id)
            shutil.copytree(folder, staged, dirs_exist_ok=True)
        for sub in ("refs", "snapshots", "commits", "tags"):
            (repo / sub).mkdir(parents=True, exist_ok=True)
        try:
            set_modes(staged)  # copies and temp files keep their own modes; the hub's follow the umask
            tree = _tree(staged)  # hashed outside the lock: the slow part of a push
            if not tree:
                raise ZooError(f"{folder} holds no files to commit")
            tree_hash = hashlib.sha256(_canonical(tree)).hexdigest()
            message = message or f"push {', '.join(sorted(tree))}"
            with self._lock(repo):
                self._check_ref_kinds(repo, repo_id, branch, tag)
                head = repo / "refs" / branch
                parent = self._read_ref(head) if head.exists() else None
                if expected_parent is not ANY_PARENT and parent != expected_parent:
                    raise ParentMovedError(f"{repo_id}@{branch} is at {parent or 'no commit'}, not at the expected parent "
                                           f"{expected_parent or 'no commit'}; nothing was pushed")
                timestamp = time.time()
                commit_id = _commit_id(tree_hash, parent, message, timestamp, branch)
                os.rename(staged, repo / "snapshots" / commit_id)
                commit = {"id": commit_id, "tree_hash": tree_hash, "parent": parent, "message": message,
                          "time": timestamp, "branch": branch, "tree": tree}
                _write_atomic(repo / "commits" / f"{commit_id}.json", json.dumps(commit, indent=1, sort_keys=True))
                _write_atomic(head, commit_id + "\n")  # the commit point
                if tag is not None:
                    self._write_tag(repo, tag, commit_id, message)
        except BaseException:
            if staged.exists():
                shutil.rmtree(staged, ignore_errors=True)
            raise
        finally:
            self._release_staging(staged)
        return commit_id

    def _write_tag(self, repo: Path, tag: str, commit_id: str, message: str | None) -> None:
        tag_object = {"tag": tag, "commit": commit_id, "message": message or "", "time": time.time()}
        _write_atomic(repo / "tags" / f"{tag}.json", json.dumps(tag_object, indent=1, sort_keys=True))
        _write_atomic(repo / "refs" / tag, commit_id + "\n")

    def tag(self, repo_id: str, revision: str, tag: str, message: str | None = None) -> str:
        """Name the commit ``revision`` resolves to with the immutable ``tag``; return the commit id."""
        validate_ref_name(tag, "tag")
        repo = self._existing_repo(repo_id)
        with self._lock(repo):
            self._check_ref_kinds(repo, repo_id, None, tag)
            commit_id = self.resolve(repo_id, revision)
            self._write_tag(repo, tag, commit_id, message)
        return commit_id

    def fetch_commit(self, source: "LocalHub", repo_id: str, commit_id: str) -> None:
        """Copy commit ``commit_id`` of ``repo_id`` from the ``source`` hub, keeping its id (as ``git fetch`` does).

        The commit objects of its ancestors come along (so ``log`` works) but only this commit's snapshot; the
        snapshot is verified against its manifest first. ``main`` points at it if this hub had no ``main``.
        """
        source.verify(repo_id, commit_id)
        repo = self.repo_dir(repo_id)
        for sub in ("refs", "snapshots", "commits", "tags"):
            (repo / sub).mkdir(parents=True, exist_ok=True)
        with self._lock(repo):
            chain, current = [], commit_id
            while current is not None:
                chain.append(current)
                current = source.commit_info(repo_id, current).parent
            for commit in chain:
                target = repo / "commits" / f"{commit}.json"
                if not target.exists():
                    _write_atomic(target, (source.repo_dir(repo_id) / "commits" / f"{commit}.json").read_text())
            snapshot = repo / "snapshots" / commit_id
            if not snapshot.exists():
                staged = self.staging_dir(repo_id)
                try:
                    shutil.copytree(source.repo_dir(repo_id) / "snapshots" / commit_id, staged, dirs_exist_ok=True)
                    set_modes(staged)
                    os.rename(staged, snapshot)
                finally:
                    if staged.exists():
                        shutil.rmtree(staged, ignore_errors=True)
                    self._release_staging(staged)
            if not (repo / "refs" / "main").exists():
                _write_atomic(repo / "refs" / "main", commit_id + "\n")
        self.verify(repo_id, commit_id)

    # -- reading -----------------------------------------------------------------------------------
    def refs(self, repo_id: str) -> dict[str, dict[str, str]]:
        """``{"branches": {name: commit}, "tags": {name: commit}}``."""
        repo = self._existing_repo(repo_id)
        out: dict[str, dict[str, str]] = {"branches": {}, "tags": {}}
        for ref in sorted((repo / "refs").iterdir()):
            if ref.name.startswith("."):
                continue
            kind = "tags" if (repo / "tags" / f"{ref.name}.json").exists() else "branches"
            out[kind][ref.name] = self._read_ref(ref)
        return out

    @staticmethod
    def _read_ref(ref: Path) -> str:
        """The commit id in a ref file; anything else is an ``IntegrityError`` naming the file."""
        try:
            text = ref.read_bytes().decode("ascii").strip()
        except UnicodeDecodeError:
            text = ""
        if not _HEX40.match(text):
            raise IntegrityError(f"{ref} does not hold a commit id (40 hex digits); the ref was damaged")
        return text

    def resolve(self, repo_id: str, revision: str | None = None) -> str:
        """The 40-hex commit id of ``revision``: a branch, a tag, a commit id or a unique prefix of 7+ digits."""
        repo = self._existing_repo(repo_id)
        revision = validate_revision(revision) or "main"
        if "/" not in revision and not revision.startswith("."):
            ref = repo / "refs" / revision
            if ref.is_file():
                return self._read_ref(ref)
        if _HEX40.match(revision) and (repo / "commits" / f"{revision}.json").is_file():
            return revision
        if _HEX_PREFIX.match(revision):
            found = [p.stem for p in (repo / "commits").glob(f"{revision}*.json")]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise RevisionNotFoundError(f"commit prefix {revision!r} is ambiguous in {repo_id}: {sorted(found)}")
        refs = self.refs(repo_id)
        names = sorted(refs["branches"]) + sorted(refs["tags"])
        raise RevisionNotFoundError(f"revision {revision!r} not found in {repo_id} (branches and tags: {', '.join(names)})")

    def commit_info(self, repo_id: str, commit_id: str) -> CommitInfo:
        path = self._existing_repo(repo_id) / "commits" / f"{commit_id}.json"
        if not path.is_file():
            raise RevisionNotFoundError(f"commit {commit_id} not found in {repo_id}")
        data = read_json_object(path, "commit object", IntegrityError)
        missing = [k for k in _COMMIT_FIELDS if k not in data]
        if missing:
            raise IntegrityError(f"{path} lacks field(s) {missing}; the commit object was damaged")
        if not isinstance(data["tree"], dict) or not all(isinstance(v, dict) and "sha256" in v for v in data["tree"].values()):
            raise IntegrityError(f"{path}: field 'tree' is not a {{path: {{sha256, size}}}} object; the commit object was damaged")
        return CommitInfo(data["id"], data["parent"], data["message"], data["time"], data["branch"], data["tree"], data["tree_hash"])

    def log(self, repo_id: str, revision: str | None = None) -> list[CommitInfo]:
        """Commits reachable from ``revision`` (default ``main``), newest first."""
        out, commit_id = [], self.resolve(repo_id, revision)
        while commit_id is not None:
            info = self.commit_info(repo_id, commit_id)
            out.append(info)
            commit_id = info.parent
        return out

    def list_repos(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            f"{org.name}/{repo.name}"
            for org in self.root.iterdir() if org.is_dir() and not org.name.startswith(".")
            for repo in org.iterdir() if (repo / "refs").is_dir()
        )

    def verify(self, repo_id: str, commit_id: str) -> None:
        """Raise ``IntegrityError`` unless the snapshot's files match the commit's sha256 tree exactly."""
        info = self.commit_info(repo_id, commit_id)
        if _commit_id(info.tree_hash, info.parent, info.message, info.time, info.branch) != commit_id or (
            hashlib.sha256(_canonical(info.tree)).hexdigest() != info.tree_hash
        ):
            raise IntegrityError(f"commit object {commit_id} of {repo_id} was altered (its hash no longer matches its id)")
        snapshot = self.repo_dir(repo_id) / "snapshots" / commit_id
        if not snapshot.is_dir():
            raise IntegrityError(f"snapshot folder of commit {commit_id} of {repo_id} is missing")
        found = _tree(snapshot)
        for path in sorted(set(info.tree) | set(found)):
            if path not in found:
                raise IntegrityError(f"{repo_id}@{commit_id[:10]}: file {path!r} is missing from {snapshot}")
            if path not in info.tree:
                raise IntegrityError(f"{repo_id}@{commit_id[:10]}: file {path!r} was added after the commit")
            if found[path]["sha256"] != info.tree[path]["sha256"]:
                raise IntegrityError(
                    f"{repo_id}@{commit_id[:10]}: file {path!r} was modified after the commit "
                    f"(sha256 {found[path]['sha256'][:12]}..., committed {str(info.tree[path]['sha256'])[:12]}...)"
                )

    def snapshot(self, repo_id: str, revision: str | None = None, verify: bool = True) -> Path:
        """The snapshot folder of ``revision``, checked against its manifest unless ``verify=False``."""
        commit_id = self.resolve(repo_id, revision)
        if verify:
            self.verify(repo_id, commit_id)
        return self.repo_dir(repo_id) / "snapshots" / commit_id

    def iter_files(self, repo_id: str, revision: str | None = None) -> Iterator[Path]:
        snapshot = self.snapshot(repo_id, revision)
        yield from (p for p in sorted(snapshot.rglob("*")) if p.is_file())
