"""Errors raised by the zoo. Each message names the bad value and, where there is one, the fix."""

from __future__ import annotations


class ZooError(Exception):
    """Base class of every error the zoo raises on purpose (the CLI prints these as one line)."""


class UnknownModelError(ZooError, KeyError):
    """A preset or class name that no registry entry matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(ZooError, ValueError):
    """A config dictionary that does not fit its dataclass (unknown or ill-typed fields)."""


class StrictLoadError(ZooError, RuntimeError):
    """Weights that do not match the model exactly: missing, unexpected, reshaped or retyped tensors."""


class InvalidRepoIdError(ZooError, ValueError):
    """A repo id that is not ``org/name`` made of safe characters."""


class RevisionNotFoundError(ZooError, LookupError):
    """A branch, tag or commit id that a repo does not have."""


class RepoNotFoundError(ZooError, LookupError):
    """A repo that the hub does not hold."""


class IntegrityError(ZooError):
    """A snapshot whose files do not match the sha256 manifest recorded when it was committed."""


class PickleRefusedError(ZooError):
    """A folder that holds only pickle weights (.bin/.pt/.ckpt/.pth/.pkl); the zoo never unpickles on load."""


class TagExistsError(ZooError, ValueError):
    """A tag that already exists: tags are immutable."""


class HubLockTimeout(ZooError, TimeoutError):
    """Another process held the repo lock for longer than the timeout."""


class ParentMovedError(ZooError):
    """A push that named the parent it was built on found the branch at another commit (nothing was written)."""
