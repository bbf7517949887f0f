"""Reading the files of a model folder with one-line errors that name the file, and file modes under the umask.

Nothing here imports torch: the CLI checks a folder (``zoo pull``) and the hub reads its JSON objects with it.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from zoo._core.errors import ZooError

__all__ = ["check_model_folder", "check_safetensors_header", "current_umask", "dir_mode", "file_mode",
           "read_json_object", "read_utf8", "set_modes"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_MAX_HEADER = 100 * 1024 * 1024  # the limit safetensors itself puts on a header


def read_utf8(path: str | Path, what: str = "file", error: type[ZooError] = ZooError) -> str:
    """The text of ``path``; a file that is not UTF-8 is ``error`` naming the file and the first bad byte."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise error(f"{path} is not UTF-8 text (byte 0x{data[bad.start]:02x} at offset {bad.start}); a {what} is UTF-8") from None


def read_json_object(path: str | Path, what: str = "JSON file", error: type[ZooError] = ZooError) -> dict[str, Any]:
    """The JSON object in ``path``: not UTF-8, not JSON, nested too deeply or not an object is ``error`` naming the file."""
    text = read_utf8(path, what, error)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as bad:
        raise error(f"{path} is not valid JSON: {bad}") from None
    except RecursionError:
        raise error(f"{path} is nested too deeply to be a {what}") from None
    if not isinstance(data, dict):
        raise error(f"{path} must be a JSON object, got {type(data).__name__}")
    return data


def check_safetensors_header(path: str | Path) -> dict[str, Any]:
    """The header of a safetensors file (tensor name -> dtype, shape, offsets), checked against the file's size.

    Format: 8 bytes little-endian header length N, N bytes of JSON, then the tensor data. A header that does not
    parse, points outside the file, or is longer than the file is a ``ZooError`` naming the file; what safetensors
    would have said ("header too large") names neither the file nor the fix.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ZooError(f"{path} is too short for a safetensors header ({size} bytes); the file is truncated or not safetensors")
        (length,) = struct.unpack("<Q", head)
        if length > min(size - 8, _MAX_HEADER):
            raise ZooError(f"{path}: safetensors header length {length} exceeds the file ({size} bytes); the file is truncated or not safetensors")
        raw = f.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ZooError(f"{path}: safetensors header is not JSON; the file is corrupt or not safetensors") from None
    if not isinstance(header, dict):
        raise ZooError(f"{path}: safetensors header is not a JSON object")
    data_size = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_size):
            raise ZooError(f"{path}: tensor {name!r} has data offsets {offsets} outside the file's {data_size} data bytes")
    return header


def check_model_folder(folder: str | Path) -> Path:
    """``folder`` if it holds a ``config.json`` object and a ``model.safetensors`` whose header checks; else ``ZooError``."""
    folder = Path(folder)
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / name).is_file()]
    if missing:
        raise ZooError(f"{folder} is not a model folder (no {' and no '.join(missing)})")
    read_json_object(folder / CONFIG_NAME, "model config")
    check_safetensors_header(folder / WEIGHTS_NAME)
    return folder


# -- modes ---------------------------------------------------------------------------------------------------
def current_umask() -> int:
    """The process umask, read without changing it where Linux tells it (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not atomic across threads, as every umask read)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new file as ``open`` would make it: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """Mode of a new folder as ``mkdir`` would make it: ``0o777 & ~umask``."""
    return 0o777 & ~current_umask()


def set_modes(root: str | Path) -> None:
    """Give ``root`` and everything under it the modes new files and folders get under the umask.

    Temp files (``mkstemp``: 0600, ``mkdtemp``: 0700) and copies (which keep their source's mode) would otherwise
    make a shared hub unreadable to the team.
    """
    root = Path(root)
    files, dirs = file_mode(), dir_mode()
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(dirs if path.is_dir() else files)
