"""Bearer tokens for the write API.

The write API exists only when the server is given a token file (``--token-file F``): one token per line, blank
lines and ``#`` comments ignored. Without one the server is read-only and every write answers 403. A write
request must carry ``Authorization: Bearer <token>`` (what ``huggingface_hub`` sends from ``$HF_TOKEN`` or
``token=``); tokens are compared in constant time (``hmac.compare_digest``). Reads need no token.

A missing or wrong token answers 401 with the message the Hugging Face client recognises as bad credentials
(``Invalid credentials in Authorization header``), so it reports an authentication failure rather than a
missing repo.
"""

from __future__ import annotations

import hmac
import os
import stat
import sys
from pathlib import Path

from aiohttp import web

from zoo._core.errors import ZooError
from zoo.hub.server.store import HttpError

__all__ = ["TokenCheck", "load_tokens"]

BAD_CREDENTIALS = "Invalid credentials in Authorization header"


def load_tokens(path: str | Path) -> tuple[str, ...]:
    """The tokens in ``path``; a missing, unreadable or empty file is a ``ZooError``."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except OSError as error:
        raise ZooError(f"token file {path}: {error.strerror or error}") from None
    tokens = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))
    if not tokens:
        raise ZooError(f"token file {path} holds no token (one per line; '#' starts a comment)")
    if any(len(t) < 16 or any(c.isspace() for c in t) for t in tokens):
        raise ZooError(f"token file {path}: every token must be at least 16 characters without spaces")
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH) and os.name == "posix":
        print(f"zoo hub serve: warning: {path} is readable by other users; chmod 600 it", file=sys.stderr)
    return tokens


class TokenCheck:
    """``require(request)`` raises unless the request may write."""

    def __init__(self, tokens: tuple[str, ...] | None) -> None:
        self.tokens = tuple(tokens or ())

    @property
    def writable(self) -> bool:
        return bool(self.tokens)

    def require(self, request: web.Request) -> None:
        if not self.tokens:
            raise HttpError(403, "this server is read-only: it was started without --token-file")
        header = request.headers.get("Authorization", "")
        scheme, _, sent = header.partition(" ")
        sent = sent.strip()
        if scheme.lower() != "bearer" or not sent:
            raise HttpError(401, BAD_CREDENTIALS, extra={"detail": "send 'Authorization: Bearer <token>' (set HF_TOKEN)"})
        if not any(hmac.compare_digest(sent.encode(), t.encode()) for t in self.tokens):
            raise HttpError(401, BAD_CREDENTIALS, extra={"detail": "the token is not one of this server's"})
