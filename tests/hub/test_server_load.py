"""`zoo hub serve` under concurrent load on loopback: every client gets exactly the manifest's bytes.

The fast test runs 8 clients on a 10 MB model against the server in a thread; the slow one 32 clients on a
100 MB model against `zoo hub serve` as its own process, the setting of benchmarks/hub.md (whose throughput
numbers come from tools/bench/hub.py, not from these tests: tests check correctness only).
"""

from __future__ import annotations

import pytest

from zoo.hub import LocalHub
from zoo.hub.server import HubServer

from tests.scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("tools/bench/hub.py")


def _check(results, manifest) -> int:
    expected = {p: m["sha256"] for p, m in manifest.items()}
    size = sum(int(m["size"]) for m in manifest.values())
    for digests, total in results:
        assert digests == expected and total == size
    return len(results)


def test_8_clients_download_a_10mb_model(bench, isolated_hub, hf_client, tmp_path):
    commit = bench.make_model_repo(isolated_hub, "load/m10", 10)
    manifest = LocalHub().commit_info("load/m10", commit).tree
    with HubServer(isolated_hub) as server:
        _, results = bench.concurrent_clients(bench.hf_download(server.endpoint, "load/m10", "main", tmp_path / "caches"), 8)
        assert _check(results, manifest) == 8
        assert len(list((tmp_path / "caches").iterdir())) == 8  # each client its own cache
        raw = bench.raw_download(f"{server.endpoint}/load/m10/resolve/{commit}", sorted(manifest))
        _, results = bench.concurrent_clients(raw, 8)
        assert _check(results, manifest) == 8


@pytest.mark.slow
def test_32_clients_download_a_100mb_model(bench, isolated_hub, hf_client, tmp_path):
    commit = bench.make_model_repo(isolated_hub, "load/m100", 100)
    manifest = LocalHub().commit_info("load/m100", commit).tree
    assert manifest["model.safetensors"]["size"] > 100_000_000
    with bench.zoo_server(isolated_hub) as (url, _):
        seconds, results = bench.concurrent_clients(bench.raw_download(f"{url}/load/m100/resolve/{commit}", sorted(manifest)), 32)
        assert _check(results, manifest) == 32
        print(f"32 x 100 MB raw GETs: {32 * 100 / seconds:.0f} MB/s")
        seconds, results = bench.concurrent_clients(bench.hf_download(url, "load/m100", commit, tmp_path / "caches"), 32)
        assert _check(results, manifest) == 32
        print(f"32 x 100 MB snapshot_download: {32 * 100 / seconds:.0f} MB/s")
