"""Benchmark of the hub: `import zoo` time, and push / load of a 100 MB checkpoint.

Side by side in one run, interleaved, medians over repeats:
- zoo: ``push_to_hub`` to the local hub (safetensors + config + card, sha256 manifest, atomic rename) and
  ``zoo.from_pretrained`` (manifest check + strict load);
- safetensors alone: ``save_file`` / ``load_file`` + ``load_state_dict``;
- torch: ``torch.save`` / ``torch.load(weights_only=True)`` + ``load_state_dict``.

    python tools/bench/hub.py [--repeats 5] [--mb 100]   # writes benchmarks/hub.json and benchmarks/hub.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def import_seconds(module: str, repeats: int) -> list[float]:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()

    imports = {m: import_seconds(m, args.repeats) for m in ("zoo", "torch", "lightning")}

    import torch
    from safetensors.torch import load_file, save_file

    import zoo
    from zoo._core.module import ZooModule

    @dataclass
    class BlobConfig:
        numel: int = 25_000_000  # float32 entries

    class Blob(ZooModule):
        config_class = BlobConfig

        def __init__(self, config=None):
            super().__init__(config)
            self.table = torch.nn.Parameter(torch.randn(self.config.numel))

    model = Blob(BlobConfig(numel=args.mb * 1_000_000 // 4))
    fresh = Blob(model.config)
    times: dict[str, list[float]] = {k: [] for k in ("zoo_push", "zoo_load", "safetensors_save", "safetensors_load", "torch_save", "torch_load")}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ZOO_HUB"] = str(Path(tmp) / "hub")
        for i in range(args.repeats):
            t = time.perf_counter(); model.push_to_hub("bench/blob"); times["zoo_push"].append(time.perf_counter() - t)
            t = time.perf_counter(); loaded = zoo.from_pretrained("bench/blob"); times["zoo_load"].append(time.perf_counter() - t)
            assert torch.equal(loaded.table, model.table)
            path = Path(tmp) / f"st{i}.safetensors"
            t = time.perf_counter(); save_file(model.state_dict(), str(path)); times["safetensors_save"].append(time.perf_counter() - t)
            t = time.perf_counter(); fresh.load_state_dict(load_file(str(path))); times["safetensors_load"].append(time.perf_counter() - t)
            path = Path(tmp) / f"pt{i}.pt"
            t = time.perf_counter(); torch.save(model.state_dict(), path); times["torch_save"].append(time.perf_counter() - t)
            t = time.perf_counter(); fresh.load_state_dict(torch.load(path, weights_only=True)); times["torch_load"].append(time.perf_counter() - t)
            del loaded

    median = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "command": f"python tools/bench/hub.py --repeats {args.repeats} --mb {args.mb}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "zoo_version": zoo.__version__,
        "import_seconds_median": {m: statistics.median(v) for m, v in imports.items()},
        "import_seconds_all": imports,
        "checkpoint_mb": args.mb,
        "seconds_median": median,
        "seconds_all": times,
    }
    args.out.mkdir(exist_ok=True)
    (args.out / "hub.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ("push / save", median["zoo_push"], median["safetensors_save"], median["torch_save"]),
        ("load", median["zoo_load"], median["safetensors_load"], median["torch_load"]),
    ]
    table = [
        f"# Hub benchmark ({result['date']}, {result['machine']})",
        "",
        f"`{result['command']}`; medians of {args.repeats} interleaved repeats.",
        "",
        "| import | median s |", "|---|---|",
        *[f"| `import {m}` | {s:.3f} |" for m, s in result["import_seconds_median"].items()],
        "",
        f"{args.mb} MB checkpoint, seconds (zoo includes the card, the sha256 manifest and strict checks):",
        "",
        "| step | zoo local hub | safetensors alone | torch.save / torch.load |", "|---|---|---|---|",
        *[f"| {name} | {z:.3f} | {s:.3f} | {t:.3f} |" for name, z, s, t in rows],
    ]
    (args.out / "hub.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
