"""Fixtures for tests of `zoo hub serve`: the real server over the test's local hub, on a free loopback port.

The unmodified huggingface_hub client reads its settings into `huggingface_hub.constants` at import, so the
fixtures set those constants (no Xet, no telemetry, online) as well as the environment, and pass `cache_dir` /
`endpoint` explicitly where the client would fall back to import-time values. Every server-side exception
(logged by the server as an error) fails the test that caused it.
"""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import pytest
from huggingface_hub import constants

from zoo.hub.server import HubServer

TOKEN = "zoo-test-token-0123456789abcdef"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def hf_client(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def served(isolated_hub, hf_client, monkeypatch):
    """The real server with write token ``TOKEN``; ``HF_ENDPOINT`` and ``HF_TOKEN`` point the client at it."""
    isolated_hub.mkdir(parents=True, exist_ok=True)
    errors = _Collect()
    logger = logging.getLogger("zoo.hub.server")
    logger.addHandler(errors)
    try:
        with HubServer(isolated_hub, tokens=(TOKEN,)) as server:
            monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
            monkeypatch.setenv("HF_TOKEN", TOKEN)
            yield server
    finally:
        logger.removeHandler(errors)
    assert not errors.records, errors.format(errors.records[0])


def png_bytes(width: int = 48, height: int = 24) -> bytes:
    """A small RGB gradient as a PNG file (zlib + the PNG chunk layout; no imaging library needed)."""
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (x * 5 % 256, y * 10 % 256, 128))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def write_png(path: Path) -> Path:
    path.write_bytes(png_bytes())
    return path
