"""The hub: a local versioned hub (default), the Hugging Face Hub bridge, and model cards.

``snapshot_path(repo_or_path, revision)`` turns whatever a user passes to ``from_pretrained`` into a folder;
``push_module(module, repo_id, ...)`` writes a module as a new commit. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from zoo._core.errors import ZooError
from zoo.hub.local import CommitInfo, LocalHub, default_hub_root
from zoo.hub.repo_id import HF_PREFIX, local_folder, split_remote, validate_ref_name, validate_repo_id, validate_revision

__all__ = ["CommitInfo", "LocalHub", "check_push_target", "default_hub_root", "push_folder", "push_module", "snapshot_path",
           "validate_repo_id"]


def _local_hub(hub: str | Path | None) -> LocalHub:
    return LocalHub(hub) if hub not in (None, "hf") else LocalHub()


def snapshot_path(repo_or_path: str | Path, revision: str | None = None, *, hub: str | Path | None = None) -> Path:
    """A folder holding the model: the snapshot of a hub repo at ``revision`` (verified against its manifest), or a
    folder named explicitly (a ``Path``, or a string such as ``/abs``, ``./rel``, ``~/x``; see ``repo_id.local_folder``)."""
    revision = validate_revision(revision)
    folder = local_folder(repo_or_path)
    if folder is not None:
        if revision is not None:
            raise ZooError(f"revision={revision!r} was given but {repo_or_path} is a plain folder, not a hub repo")
        if not folder.is_dir():
            raise ZooError(f"{folder} is not a folder")
        return folder
    if not isinstance(repo_or_path, str):
        raise ZooError(f"expected a repo id 'org/name' or a folder path, got {type(repo_or_path).__name__}")
    remote, repo_id = split_remote(repo_or_path, None if hub is None else str(hub))
    if remote:
        from zoo.hub.remote import download

        return download(repo_id, revision)
    return _local_hub(hub).snapshot(repo_id, revision)


def check_push_target(repo_id: str, *, tag: str | None = None, branch: str = "main", hub: str | Path | None = None) -> None:
    """Raise now if pushing to ``repo_id`` (``branch``, ``tag``) would be refused; writes nothing.

    Local hub: names, immutable tags, tags and branches never sharing a name. ``hf://``: the names only (the remote's
    refs are checked by the push itself), so no network call is made.
    """
    remote, bare = split_remote(repo_id, None if hub is None else str(hub))
    if remote:
        validate_ref_name(branch, "branch")
        if tag is not None:
            validate_ref_name(tag, "tag")
            if tag == branch:
                raise ZooError(f"tag and branch must differ, both are {tag!r}")
        return
    _local_hub(hub).check_push(validate_repo_id(bare), branch, tag)


def push_folder(
    folder: str | Path, repo_id: str, *, message: str, tag: str | None = None, branch: str = "main",
    hub: str | Path | None = None, move: bool = False,
) -> str:
    """Commit ``folder`` to ``repo_id`` (local or ``hf://``) and return the commit id."""
    check_push_target(repo_id, tag=tag, branch=branch, hub=hub)
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
    import tempfile

    check_push_target(repo_id, tag=tag, branch=branch, hub=hub)  # before a byte is written
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
        local.discard_staging(staging)
        raise
    return local.push(bare, staging, message=message, tag=tag, branch=branch, move=True)
