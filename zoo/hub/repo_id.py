"""Repo ids: ``org/name`` (local hub) or ``hf://org/name`` (Hugging Face Hub); revisions; what a local folder is.

A model folder is given explicitly: as a ``pathlib.Path`` (any ``os.PathLike``) or as a string in a path form,
``/abs``, ``./rel``, ``../rel``, ``~/...``, ``.`` or ``..``. Any other string is a repo id and is validated as
one, so ``org/name`` never silently means a folder that happens to exist in the working directory, and ``''`` or
a 300-character name is a one-line error rather than a folder lookup.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from zoo._core.errors import InvalidRepoIdError, ZooError

__all__ = ["HF_PREFIX", "local_folder", "split_remote", "validate_repo_id", "validate_ref_name", "validate_revision"]

HF_PREFIX = "hf://"
# Same rules as the Hugging Face Hub: letters, digits, '-', '_', '.'; no '--' or '..'; not starting or
# ending with '-' or '.'; at most 96 characters per part.
_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PATH_PREFIXES = ("/", "./", "../", "~")


def shown(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut to ``limit`` characters with its length said, so that an error stays one short line."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:40] + '...'!r} ({len(text)} characters)"


def validate_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it is a safe ``org/name``; otherwise raise ``InvalidRepoIdError`` saying why."""
    if not isinstance(repo_id, str):
        raise InvalidRepoIdError(f"repo id must be a string 'org/name', got {type(repo_id).__name__}")
    why = None
    parts = repo_id.split("/")
    if not repo_id:
        why = "it is empty"
    elif repo_id.startswith("/") or repo_id.startswith("~"):
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
        raise InvalidRepoIdError(f"invalid repo id {shown(repo_id)}: {why}")
    return repo_id


def validate_ref_name(name: str, what: str = "tag") -> str:
    """Return ``name`` if it can name a branch or tag (``what`` says which, for the message)."""
    if not isinstance(name, str) or not _REF.fullmatch(name) or ".." in name:
        label = shown(name) if isinstance(name, str) else f"{type(name).__name__} {name!r}"
        raise InvalidRepoIdError(f"invalid {what} {label}: use 1-128 of A-Z a-z 0-9 . _ - starting with a letter or digit")
    if re.fullmatch(r"[0-9a-f]{7,40}", name):
        raise InvalidRepoIdError(f"invalid {what} {name!r}: it would read as a commit id")
    return name


def validate_revision(revision: object) -> str | None:
    """``None`` (meaning ``main``) or a non-empty revision string; ``''`` no longer silently means ``main``."""
    if revision is None:
        return None
    if not isinstance(revision, str):
        raise InvalidRepoIdError(f"revision must be a string (branch, tag or commit id), got {type(revision).__name__} {revision!r}")
    if not revision:
        raise InvalidRepoIdError("revision '' is empty; pass None (or leave it out) for main, or name a branch, tag or commit")
    if len(revision) > 256 or any(ord(c) < 32 for c in revision):
        raise InvalidRepoIdError(f"invalid revision {shown(revision)}: at most 256 characters, none of them control characters")
    return revision


def local_folder(repo_or_path: object) -> Path | None:
    """The folder ``repo_or_path`` names explicitly (see the module docstring), or ``None`` for a repo id.

    A path that the operating system refuses to look up (too long, NUL byte) is a ``ZooError`` naming it.
    """
    if isinstance(repo_or_path, os.PathLike):
        path = Path(repo_or_path)
    elif isinstance(repo_or_path, str) and (repo_or_path.startswith(_PATH_PREFIXES) or repo_or_path in (".", "..")):
        path = Path(repo_or_path)
    else:
        return None
    try:
        path = path.expanduser()
        path.is_dir()
    except (OSError, ValueError, RuntimeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ZooError(f"folder {shown(str(path))}: {reason}") from None
    return path


def split_remote(repo_id: str, hub: str | None) -> tuple[bool, str]:
    """``(is_remote, bare_repo_id)``: ``hf://org/name`` or ``hub="hf"`` (or ``$ZOO_HUB=hf``) mean remote."""
    import os

    if isinstance(repo_id, str) and repo_id.startswith(HF_PREFIX):
        return True, validate_repo_id(repo_id[len(HF_PREFIX):])
    if (hub if hub is not None else os.environ.get("ZOO_HUB")) == "hf":
        return True, validate_repo_id(repo_id)
    return False, repo_id
