"""Benchmark of the hub: `import zoo` time, push / load of a 100 MB checkpoint, and `zoo hub serve` under load.

Side by side in one run, interleaved, medians over repeats:
- zoo: ``push_to_hub`` to the local hub (safetensors + config + card, sha256 manifest, atomic rename) and
  ``zoo.from_pretrained`` (manifest check + strict load);
- safetensors alone: ``save_file`` / ``load_file`` + ``load_state_dict``;
- torch: ``torch.save`` / ``torch.load(weights_only=True)`` + ``load_state_dict``.

Serving (``--sections serve``): ``clients`` concurrent clients on loopback each download a whole model folder
(a ``--mb`` MB ``model.safetensors``, ``config.json``, ``README.md``) and every file's sha256 is checked against
the hub's manifest. Rows, interleaved in each repeat: ``zoo hub serve`` with raw HTTP GETs (one connection per
client, 1 MiB reads hashed as they arrive), ``python -m http.server`` serving the same hub folder with the same
client, and ``zoo hub serve`` with the unmodified ``huggingface_hub.snapshot_download`` (each client its own
cache folder; this row includes the client's writes to disk). Both servers run as separate processes; the
clients are threads of this process. Throughput = clients x model size / wall time of the repeat.

    python tools/bench/hub.py [--repeats 5] [--mb 100]                        # both sections
    python tools/bench/hub.py --sections serve [--clients 32] [--repeats 5]   # keeps the other section's rows

Writes benchmarks/hub.json and benchmarks/hub.md (a section not run keeps its earlier numbers).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]


def import_seconds(module: str, repeats: int) -> list[float]:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(repeats)]


def local_section(repeats: int, mb: int) -> dict:
    imports = {m: import_seconds(m, repeats) for m in ("zoo", "torch", "lightning")}

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

    model = Blob(BlobConfig(numel=mb * 1_000_000 // 4))
    fresh = Blob(model.config)
    times: dict[str, list[float]] = {k: [] for k in ("zoo_push", "zoo_load", "safetensors_save", "safetensors_load", "torch_save", "torch_load")}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ZOO_HUB"] = str(Path(tmp) / "hub")
        for i in range(repeats):
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
    return {
        "command": f"python tools/bench/hub.py --sections local --repeats {repeats} --mb {mb}",
        "machine": _machine(),
        "date": time.strftime("%Y-%m-%d"),
        "zoo_version": zoo.__version__,
        "import_seconds_median": {m: statistics.median(v) for m, v in imports.items()},
        "import_seconds_all": imports,
        "checkpoint_mb": mb,
        "seconds_median": {k: statistics.median(v) for k, v in times.items()},
        "seconds_all": times,
    }


def _machine() -> str:
    import torch

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"


# -- serving -------------------------------------------------------------------------------------------
def make_model_repo(hub_root: Path, repo_id: str, mb: int, seed: int = 0) -> str:
    """Push a model folder with an ``mb`` MB float32 ``model.safetensors`` to the local hub; return the commit."""
    import numpy as np
    from safetensors.numpy import save_file

    from zoo.hub import LocalHub

    hub = LocalHub(hub_root)
    folder = hub.staging_dir(repo_id)
    table = np.random.default_rng(seed).standard_normal(mb * 1_000_000 // 4, dtype=np.float32)
    save_file({"table": table}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({"numel": int(table.size)}) + "\n")
    (folder / "README.md").write_text(f"---\nlibrary_name: paperzoo\ntags: [benchmark]\n---\n# {repo_id}\n\nA {mb} MB table.\n")
    return hub.push(repo_id, folder, message=f"{mb} MB model", move=True)


def fetch(url: str, timeout: float = 300.0) -> tuple[str, int]:
    """GET ``url`` on a fresh connection; the sha256 and the byte count of the body, hashed as it arrives."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path)
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status} {response.read()[:200]!r}")
        digest, total, buffer = hashlib.sha256(), 0, bytearray(1 << 20)
        view = memoryview(buffer)
        while n := response.readinto(buffer):
            digest.update(view[:n])
            total += n
        return digest.hexdigest(), total
    finally:
        conn.close()


def concurrent_clients(work, clients: int) -> tuple[float, list]:
    """Run ``work(i)`` in ``clients`` threads released together; (wall seconds, results in client order)."""
    results: list = [None] * clients
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work(i)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    return seconds, results


def raw_download(base_url: str, paths: list[str]):
    """A client: GET every path under ``base_url``; ``{path: sha256}`` and bytes."""
    def work(_: int) -> tuple[dict[str, str], int]:
        digests, total = {}, 0
        for path in paths:
            digests[path], n = fetch(f"{base_url}/{path}")
            total += n
        return digests, total
    return work


def hf_download(endpoint: str, repo_id: str, commit: str, cache_root: Path):
    """A client: the unmodified ``snapshot_download`` into its own cache; ``{path: sha256}`` and bytes."""
    def work(i: int) -> tuple[dict[str, str], int]:
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()

        folder = Path(snapshot_download(repo_id, revision=commit, endpoint=endpoint, cache_dir=cache_root / f"c{i}"))
        digests, total = {}, 0
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            digests[path.relative_to(folder).as_posix()] = hashlib.sha256(data).hexdigest()
            total += len(data)
        return digests, total
    return work


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def zoo_server(hub_root: Path):
    """``zoo hub serve`` on a free loopback port, as its own process; yields its URL and process id."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "zoo.cli", "--hub", str(hub_root), "hub", "serve", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = process.stdout.readline()
        match = re.search(r"at (http://\S+),", line)
        if match is None:
            raise RuntimeError(f"zoo hub serve did not start: {line!r}")
        yield match.group(1), process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def http_server(folder: Path):
    """``python -m http.server`` serving ``folder`` on a free loopback port, as its own process; yields URL and pid."""
    process = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory",
                                str(folder)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"port (\d+)", line)
        if match is None:
            raise RuntimeError(f"http.server did not start: {line!r}")
        yield f"http://127.0.0.1:{match.group(1)}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def serve_section(repeats: int, mb: int, clients: int, rows: tuple[str, ...] = ("zoo_raw", "http_server", "zoo_hf_client")) -> dict:
    """Throughput of ``clients`` concurrent downloads of an ``mb`` MB model; see the module docstring."""
    from zoo.hub import LocalHub

    # huggingface_hub reads these at import: no telemetry call, plain HTTP (no Xet), before the first import
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
    with tempfile.TemporaryDirectory() as tmp:
        hub_root, repo_id = Path(tmp) / "hub", "bench/served"
        commit = make_model_repo(hub_root, repo_id, mb)
        manifest = LocalHub(hub_root).commit_info(repo_id, commit).tree
        expected = {p: m["sha256"] for p, m in manifest.items()}
        model_bytes = sum(int(m["size"]) for m in manifest.values())
        paths = sorted(manifest)
        mb_per_s: dict[str, list[float]] = {row: [] for row in rows}
        checked = 0
        load = [os.getloadavg()[0]]
        cpu_per_gb: dict[str, list[float]] = {row: [] for row in rows}
        with zoo_server(hub_root) as (zoo_url, zoo_pid), http_server(hub_root) as (plain_url, plain_pid):
            pids = {"zoo_raw": zoo_pid, "http_server": plain_pid, "zoo_hf_client": zoo_pid}
            sources = {
                "zoo_raw": lambda: raw_download(f"{zoo_url}/{repo_id}/resolve/{commit}", paths),
                "http_server": lambda: raw_download(f"{plain_url}/{repo_id}/snapshots/{commit}", paths),
                "zoo_hf_client": lambda: hf_download(zoo_url, repo_id, commit, Path(tmp) / "caches"),
            }
            fetch(f"{zoo_url}/{repo_id}/resolve/{commit}/config.json")  # the server verifies the snapshot once
            for repeat in range(repeats):
                for row in rows:
                    cpu_before = cpu_seconds(pids[row])
                    seconds, results = concurrent_clients(sources[row](), clients)
                    cpu_after = cpu_seconds(pids[row])
                    if cpu_before is not None and cpu_after is not None:
                        cpu_per_gb[row].append((cpu_after - cpu_before) / (clients * model_bytes / 1e9))
                    for digests, total in results:
                        if digests != expected or total != model_bytes:
                            raise AssertionError(f"{row}: a client got other bytes than the manifest says")
                        checked += len(digests)
                    mb_per_s[row].append(clients * model_bytes / 1e6 / seconds)
                    shutil.rmtree(Path(tmp) / "caches", ignore_errors=True)
                    print(f"repeat {repeat + 1}/{repeats} {row}: {mb_per_s[row][-1]:.0f} MB/s", flush=True)
                load.append(os.getloadavg()[0])
    return {
        "command": f"python tools/bench/hub.py --sections serve --repeats {repeats} --mb {mb} --clients {clients}",
        "date": time.strftime("%Y-%m-%d"),
        "machine": _machine(),
        "clients": clients, "model_mb": round(model_bytes / 1e6, 1), "repeats": repeats,
        "files_sha256_checked": checked,
        "load_average_1min": load,
        "mb_per_s_all": mb_per_s,
        "mb_per_s_median": {k: statistics.median(v) for k, v in mb_per_s.items()},
        "mb_per_s_min": {k: min(v) for k, v in mb_per_s.items()},
        "mb_per_s_max": {k: max(v) for k, v in mb_per_s.items()},
        "server_cpu_s_per_gb_all": cpu_per_gb,
        "server_cpu_s_per_gb_median": {k: statistics.median(v) for k, v in cpu_per_gb.items() if v},
    }


# -- report --------------------------------------------------------------------------------------------
def markdown(result: dict) -> str:
    out = []
    local = result.get("local") or (result if "seconds_median" in result else None)
    if local:
        median = local["seconds_median"]
        rows = [
            ("push / save", median["zoo_push"], median["safetensors_save"], median["torch_save"]),
            ("load", median["zoo_load"], median["safetensors_load"], median["torch_load"]),
        ]
        out += [
            f"# Hub benchmark ({local['date']}, {local['machine']})",
            "",
            f"`{local['command']}`; medians of {len(local['seconds_all']['zoo_push'])} interleaved repeats.",
            "",
            "| import | median s |", "|---|---|",
            *[f"| `import {m}` | {s:.3f} |" for m, s in local["import_seconds_median"].items()],
            "",
            f"{local['checkpoint_mb']} MB checkpoint, seconds (zoo includes the card, the sha256 manifest and strict checks):",
            "",
            "| step | zoo local hub | safetensors alone | torch.save / torch.load |", "|---|---|---|---|",
            *[f"| {name} | {z:.3f} | {s:.3f} | {t:.3f} |" for name, z, s, t in rows],
        ]
    serve = result.get("serve")
    if serve:
        names = {
            "zoo_raw": ("`zoo hub serve`", "raw GETs, hashed in memory"),
            "http_server": ("`python -m http.server`, same folder", "raw GETs, hashed in memory"),
            "zoo_hf_client": ("`zoo hub serve`", "`snapshot_download`, own cache each (writes to disk)"),
        }
        load = serve["load_average_1min"]
        out += [
            "",
            f"## Serving: {serve['clients']} concurrent clients download a {serve['model_mb']:.0f} MB model on loopback "
            f"({serve['date']})",
            "",
            f"`{serve['command']}`; {serve['repeats']} repeats, rows interleaved in each; every one of the "
            f"{serve['files_sha256_checked']} downloaded files matched the manifest's sha256. Throughput = clients x "
            f"model size / wall time; the servers are separate processes, the clients threads of one process, all on "
            f"the same {serve['machine'].split(',')[1].strip()}, so clients and server share the CPUs. "
            f"1-minute load average during the run: {min(load):.1f} to {max(load):.1f}.",
            "",
            "| server | client | median MB/s | min - max MB/s | / http.server, per repeat: median (min - max) "
            "| server CPU s per GB sent (median) |",
            "|---|---|---|---|---|---|",
            *[f"| {names[k][0]} | {names[k][1]} | {serve['mb_per_s_median'][k]:.0f} | "
              f"{serve['mb_per_s_min'][k]:.0f} - {serve['mb_per_s_max'][k]:.0f} | {_ratios(serve, k)} | "
              f"{serve.get('server_cpu_s_per_gb_median', {}).get(k, float('nan')):.2f} |"
              for k in serve["mb_per_s_median"]],
            "",
            "With every client and both servers on the same two busy cores, throughput measures the whole loopback "
            "system (the hashing clients included), not the server alone; the server process's CPU time per GB sent "
            "(user + system, from /proc) is what serving costs it. `zoo hub serve` sends file bodies with "
            "`sendfile`; `http.server` copies them with `shutil.copyfileobj`.",
        ]
    return "\n".join(out) + "\n"


def _ratios(serve: dict, row: str) -> str:
    """Throughput of ``row`` over http.server's in the same repeat (the pairs the interleaving makes)."""
    base = serve["mb_per_s_all"].get("http_server")
    if not base:
        return ""
    ratios = [a / b for a, b in zip(serve["mb_per_s_all"][row], base)]
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f} - {max(ratios):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients of the serve section")
    parser.add_argument("--sections", default="local,serve", help="comma-separated: local, serve")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if not sections <= {"local", "serve"}:
        parser.error(f"--sections {args.sections!r}: use local, serve or both")

    path = args.out / "hub.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    if "seconds_median" in result:  # the earlier flat layout was the local section alone
        result = {"local": result}
    if "local" in sections:
        result["local"] = local_section(args.repeats, args.mb)
    if "serve" in sections:
        result["serve"] = serve_section(args.repeats, args.mb, args.clients)
    args.out.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "hub.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
