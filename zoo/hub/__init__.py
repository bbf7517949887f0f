"""The hub: a local versioned hub (default), the Hugging Face Hub bridge, and model cards.

``snapshot_path(repo_or_path, revision)`` turns whatever a user passes to ``from_pretrained`` into a folder;
``push_module(module, repo_id, ...)`` writes a module as a new commit. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from zoo._core.errors import ZooError
from zoo.hub.local import CommitInfo, LocalHub, default_hub_root
from zoo.hub.repo_id import HF_PREFIX, split_remote, validate_repo_id

__all__ = ["CommitInfo", "LocalHub", "default_hub_root", "push_folder", "push_module", "snapshot_path", "validate_repo_id"]


def _local_hub(hub: str | Path | None) -> LocalHub:
    return LocalHub(hub) if hub not in (None, "hf") else LocalHub()


def snapshot_path(repo_or_path: str | Path, revision: str | None = None, *, hub: str | Path | None = None) -> Path:
    """A folder holding the model: an existing folder as it is, or the snapshot of a hub repo at ``revision``."""
    if isinstance(repo_or_path, Path) or (isinstance(repo_or_path, str) and Path(repo_or_path).expanduser().is_dir()):
        if revision is not None:
            raise ZooError(f"revision={revision!r} was given but {repo_or_path} is a plain folder, not a hub repo")
        return Path(repo_or_path).expanduser()
    remote, repo_id = split_remote(str(repo_or_path), None if hub is None else str(hub))
    if remote:
        from zoo.hub.remote import download

        return download(repo_id, revision)
    return _local_hub(hub).snapshot(repo_id, revision)


def push_folder(
    folder: str | Path, repo_id: str, *, message: str, tag: str | None = None, branch: str = "main",
    hub: str | Path | None = None, move: bool = False,
) -> str:
    """Commit ``folder`` to ``repo_id`` (local or ``hf://``) and return the commit id."""
    remote, bare = split_remote(repo_id, None if hub is None else str(hub))
    if remote:
        from zoo.hub.remote import push_folder as push_remote

        return push_remote(folder, bare, message=message, tag=tag, branch=branch)
    return _local_hub(hub).push(bare, folder, message=message, tag=tag, branch=branch, move=move)


def push_module(
    module: Any, repo_id: str, *, commit_message: str | None = None, tag: str | None = None,
    metrics: Mapping[str, float] | None = None, training: Mapping[str, Any] | None = None,
    hub: str | Path | None = None, branch: str = "main", extra_files: Mapping[str, Any] | None = None,
) -> str:
    """Save ``module`` (config, weights, card, extra files) and commit it; return the commit id."""
    import shutil
    import tempfile

    remote, bare = split_remote(repo_id, None if hub is None else str(hub))
    message = commit_message or f"push {type(module).__name__}"
    if remote:
        with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
            module.save_pretrained(tmp, metrics=metrics, training=training, repo_id=HF_PREFIX + bare, extra_files=extra_files)
            return push_folder(tmp, repo_id, message=message, tag=tag, branch=branch, hub=hub)
    local = _local_hub(hub)
    staging = local.staging_dir(bare)  # same filesystem as the snapshots: the commit is a rename
    try:
        module.save_pretrained(staging, metrics=metrics, training=training, repo_id=bare, extra_files=extra_files)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return local.push(bare, staging, message=message, tag=tag, branch=branch, move=True)
