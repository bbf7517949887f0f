"""The Hugging Face Hub bridge (``hf://org/name`` or ``ZOO_HUB=hf``), through ``huggingface_hub`` unmodified.

The endpoint is read from ``$HF_ENDPOINT`` at call time and passed explicitly (``huggingface_hub`` reads it once
at import). Offline use never waits on retries: with ``$HF_HUB_OFFLINE`` set, or when the revision is a full
commit id already in the local cache (commits are immutable), the snapshot comes from the cache without a
network call.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from zoo._core.errors import RepoNotFoundError, RevisionNotFoundError, TagExistsError, ZooError

__all__ = ["download", "push_folder"]

_TRUE = {"1", "true", "yes", "on"}


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _cache_dir() -> str | None:
    # huggingface_hub reads HF_HUB_CACHE / HF_HOME once at import; read them per call instead.
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def push_folder(folder: str | Path, repo_id: str, *, message: str, tag: str | None = None, branch: str = "main") -> str:
    """Upload ``folder`` as one commit to ``repo_id`` on ``branch``; tag it; return the commit id."""
    from huggingface_hub import HfApi

    if _offline():
        raise ZooError(f"cannot push to hf://{repo_id}: HF_HUB_OFFLINE is set")
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=_endpoint())
    try:
        api.create_repo(repo_id, exist_ok=True)
        if tag is not None:  # refuse before uploading: the Hub would land the commit, then refuse the tag
            refs = api.list_repo_refs(repo_id)
            if tag in {t.name for t in refs.tags}:
                raise TagExistsError(f"tag {tag!r} already exists in hf://{repo_id} (tags are immutable); nothing was pushed")
            if tag in {b.name for b in refs.branches}:
                raise ZooError(f"{tag!r} is a branch of hf://{repo_id}; a tag may not take a branch's name; nothing was pushed")
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=message, revision=branch)
        commit_id = info.oid
        if tag is not None:
            api.create_tag(repo_id, tag=tag, revision=commit_id, tag_message=message)
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ZooError(f"push to hf://{repo_id} refused by {_endpoint() or 'the Hub'} (HTTP {status}): {first}") from None
    return commit_id


def download(repo_id: str, revision: str | None = None) -> Path:
    """The snapshot folder of ``repo_id`` at ``revision`` in the Hugging Face cache (downloaded if needed)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
    from huggingface_hub.errors import RevisionNotFoundError as HfRevisionNotFound

    revision = revision or "main"
    kwargs = dict(repo_id=repo_id, revision=revision, endpoint=_endpoint(), cache_dir=_cache_dir())
    try:
        if _offline():
            return Path(snapshot_download(**kwargs, local_files_only=True))
        if re.fullmatch(r"[0-9a-f]{40}", revision):
            try:  # an immutable commit already cached needs no network call
                return Path(snapshot_download(**kwargs, local_files_only=True))
            except LocalEntryNotFoundError:
                pass
        return Path(snapshot_download(**kwargs))
    except RepositoryNotFoundError:
        raise RepoNotFoundError(f"hf://{repo_id} was not found at {_endpoint() or 'the default endpoint'}") from None
    except HfRevisionNotFound:
        raise RevisionNotFoundError(f"revision {revision!r} not found in hf://{repo_id}") from None
    except LocalEntryNotFoundError:
        raise ZooError(f"hf://{repo_id}@{revision} is not in the local cache and HF_HUB_OFFLINE is set") from None
