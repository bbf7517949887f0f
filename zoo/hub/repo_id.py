"""Repo ids: ``org/name`` (local hub) or ``hf://org/name`` (Hugging Face Hub)."""

from __future__ import annotations

import re

from zoo._core.errors import InvalidRepoIdError

__all__ = ["HF_PREFIX", "split_remote", "validate_repo_id", "validate_ref_name"]

HF_PREFIX = "hf://"
# Same rules as the Hugging Face Hub: letters, digits, '-', '_', '.'; no '--' or '..'; not starting or
# ending with '-' or '.'; at most 96 characters per part.
_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it is a safe ``org/name``; otherwise raise ``InvalidRepoIdError`` saying why."""
    if not isinstance(repo_id, str):
        raise InvalidRepoIdError(f"repo id must be a string 'org/name', got {type(repo_id).__name__}")
    why = None
    parts = repo_id.split("/")
    if repo_id.startswith("/") or repo_id.startswith("~"):
        why = "it is an absolute path"
    elif len(parts) != 2:
        why = "it must have exactly one '/' (org/name)"
    elif ".." in repo_id or "--" in repo_id:
        why = "'..' and '--' are not allowed"
    elif not all(_PART.fullmatch(p) for p in parts):
        why = "each part must be 1-96 of A-Z a-z 0-9 . _ - and start and end with a letter or digit"
    elif parts[1].endswith(".git"):
        why = "the name cannot end in '.git'"
    if why:
        raise InvalidRepoIdError(f"invalid repo id {repo_id!r}: {why}")
    return repo_id


def validate_ref_name(name: str, what: str = "tag") -> str:
    if not isinstance(name, str) or not _REF.fullmatch(name) or ".." in name:
        raise InvalidRepoIdError(f"invalid {what} {name!r}: use 1-128 of A-Z a-z 0-9 . _ - starting with a letter or digit")
    if re.fullmatch(r"[0-9a-f]{7,40}", name):
        raise InvalidRepoIdError(f"invalid {what} {name!r}: it would read as a commit id")
    return name


def split_remote(repo_id: str, hub: str | None) -> tuple[bool, str]:
    """``(is_remote, bare_repo_id)``: ``hf://org/name`` or ``hub="hf"`` (or ``$ZOO_HUB=hf``) mean remote."""
    import os

    if isinstance(repo_id, str) and repo_id.startswith(HF_PREFIX):
        return True, validate_repo_id(repo_id[len(HF_PREFIX):])
    if (hub if hub is not None else os.environ.get("ZOO_HUB")) == "hf":
        return True, validate_repo_id(repo_id)
    return False, repo_id
