"""`zoo hub serve`, read side: the unmodified huggingface_hub client against the real server on loopback."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

import zoo
from zoo.hub import LocalHub

from tests.hub.served import png_bytes, write_png


def _two_commits(tmp_path):
    """acme/smoke: v1 (with a plot and a nested file) and main one commit later (weights changed)."""
    model = zoo.create("smoke_mlp_tiny")
    plot = write_png(tmp_path / "loss.png")
    first = model.push_to_hub("acme/smoke", commit_message="first", tag="v1", metrics={"test_mse": 0.5},
                              extra_files={"loss.png": plot})
    with torch.no_grad():
        model.net[0].bias.add_(1.0)
    second = model.push_to_hub("acme/smoke", commit_message="second\n\nwith a body", metrics={"test_mse": 0.25})
    return model, first, second


def _raw(server, method: str, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
    """One request exactly as written (no client-side normalisation of the path)."""
    host, port = server.endpoint.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


def test_download_by_tag_and_commit_with_unmodified_client(served, tmp_path):
    model, first, second = _two_commits(tmp_path)
    hub = LocalHub()
    cache = tmp_path / "cache"
    api = HfApi(endpoint=served.endpoint)

    by_tag = Path(snapshot_download("acme/smoke", revision="v1", endpoint=served.endpoint, cache_dir=cache))
    assert by_tag.name == first
    assert sorted(p.name for p in by_tag.iterdir()) == ["README.md", "config.json", "loss.png", "model.safetensors"]
    for path in by_tag.iterdir():  # byte-identical to the served snapshot
        assert path.read_bytes() == (hub.repo_dir("acme/smoke") / "snapshots" / first / path.name).read_bytes()
    by_commit = hf_hub_download("acme/smoke", "config.json", revision=second, endpoint=served.endpoint, cache_dir=cache)
    assert Path(by_commit).parent.name == second
    main = Path(snapshot_download("acme/smoke", endpoint=served.endpoint, cache_dir=cache))
    assert main.name == second and not (main / "loss.png").exists()

    # The blob the client cached is named by the ETag, which is the file's sha256 in the manifest.
    meta = get_hf_file_metadata(hf_hub_url("acme/smoke", "model.safetensors", revision="v1", endpoint=served.endpoint))
    manifest = hub.commit_info("acme/smoke", first).tree["model.safetensors"]
    assert meta.commit_hash == first and meta.etag == manifest["sha256"] and meta.size == manifest["size"]
    assert (cache / "models--acme--smoke" / "blobs" / manifest["sha256"]).is_file()

    info = api.model_info("acme/smoke", revision="v1", files_metadata=True)
    assert info.sha == first and info.library_name == "paperzoo" and "paperzoo" in info.tags
    assert {s.rfilename: s.size for s in info.siblings} == {p: m["size"] for p, m in hub.commit_info("acme/smoke", first).tree.items()}
    assert {s.rfilename: s.lfs.sha256 for s in info.siblings}["loss.png"] == hashlib.sha256(png_bytes()).hexdigest()
    assert info.card_data.eval_results[0].metric_value == 0.5
    assert api.model_info("acme/smoke").sha == second

    refs = api.list_repo_refs("acme/smoke")
    assert {b.name: b.target_commit for b in refs.branches} == {"main": second}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": first}
    commits = api.list_repo_commits("acme/smoke")
    assert [(c.commit_id, c.title, c.message) for c in commits] == [(second, "second", "with a body"), (first, "first", "")]
    assert commits[0].created_at.timestamp() == pytest.approx(hub.commit_info("acme/smoke", second).time, abs=0.002)
    assert [c.commit_id for c in api.list_repo_commits("acme/smoke", revision="v1")] == [first]

    tree = {f.path: f for f in api.list_repo_tree("acme/smoke", revision="v1", recursive=True)}
    assert set(tree) == set(hub.commit_info("acme/smoke", first).tree)
    assert tree["model.safetensors"].lfs.sha256 == manifest["sha256"]
    paths = api.get_paths_info("acme/smoke", ["config.json", "missing.txt", "loss.png"], revision="v1")
    assert sorted(p.path for p in paths) == ["config.json", "loss.png"]
    assert api.list_repo_files("acme/smoke") == sorted(hub.commit_info("acme/smoke", second).tree)
    assert [m.id for m in api.list_models(search="smo")] == ["acme/smoke"]


def test_nested_paths_and_folders(served, tmp_path):
    folder = tmp_path / "f"
    (folder / "sub" / "deep").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    (folder / "sub" / "deep" / "c.txt").write_text("c")
    commit = LocalHub().push("acme/nested", folder, message="nested")
    api = HfApi(endpoint=served.endpoint)
    top = api.list_repo_tree("acme/nested", revision=commit)
    assert sorted((e.path, type(e).__name__) for e in top) == [("a.txt", "RepoFile"), ("sub", "RepoFolder")]
    under = api.list_repo_tree("acme/nested", path_in_repo="sub", revision=commit)
    assert sorted(e.path for e in under) == ["sub/b.txt", "sub/deep"]
    deep = [e.path for e in api.list_repo_tree("acme/nested", recursive=True)]
    assert sorted(deep) == ["a.txt", "sub", "sub/b.txt", "sub/deep", "sub/deep/c.txt"]
    assert [p.path for p in api.get_paths_info("acme/nested", ["sub/deep"])] == ["sub/deep"]
    local = Path(snapshot_download("acme/nested", endpoint=served.endpoint, cache_dir=tmp_path / "c"))
    assert (local / "sub" / "deep" / "c.txt").read_text() == "c"


def test_errors_are_classified_by_the_client(served, tmp_path):
    _two_commits(tmp_path)
    cache = tmp_path / "cache"
    api = HfApi(endpoint=served.endpoint)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/none")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/none", "config.json", endpoint=served.endpoint, cache_dir=cache)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("acme/smoke", "config.json", revision="v9", endpoint=served.endpoint, cache_dir=cache)
    with pytest.raises(RevisionNotFoundError):
        api.model_info("acme/smoke", revision="0" * 40)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("acme/smoke", "missing.bin", endpoint=served.endpoint, cache_dir=cache)
    # the client caches the absence at the commit the server names
    assert list((cache / "models--acme--smoke" / ".no_exist").iterdir())[0].name == LocalHub().resolve("acme/smoke")


def test_range_requests(served, tmp_path):
    _, first, _ = _two_commits(tmp_path)
    data = (LocalHub().repo_dir("acme/smoke") / "snapshots" / first / "model.safetensors").read_bytes()
    size, url = len(data), "/acme/smoke/resolve/v1/model.safetensors"
    sha = hashlib.sha256(data).hexdigest()

    whole = _raw(served, "GET", url)
    assert whole.status == 200 and whole.body == data and whole.getheader("Accept-Ranges") == "bytes"
    assert whole.getheader("ETag") == f'"{sha}"' and whole.getheader("X-Repo-Commit") == first
    head = _raw(served, "HEAD", url)
    assert head.status == 200 and head.body == b"" and int(head.getheader("Content-Length")) == size
    for spec, start, stop in [("bytes=0-9", 0, 10), ("bytes=10-", 10, size), ("bytes=-7", size - 7, size),
                              (f"bytes=5-{size + 100}", 5, size), (f"bytes=-{size + 5}", 0, size)]:
        part = _raw(served, "GET", url, {"Range": spec})
        assert part.status == 206, spec
        assert part.body == data[start:stop], spec
        assert part.getheader("Content-Range") == f"bytes {start}-{stop - 1}/{size}", spec
        assert int(part.getheader("Content-Length")) == stop - start
    for spec in [f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"]:
        refused = _raw(served, "GET", url, {"Range": spec})
        assert refused.status == 416 and refused.getheader("Content-Range") == f"bytes */{size}", spec
    # several ranges, a reversed range, another unit, or a stale If-Range: the whole file
    for headers in [{"Range": "bytes=0-1,5-6"}, {"Range": "bytes=9-3"}, {"Range": "items=0-1"},
                    {"Range": "bytes=0-9", "If-Range": '"0000"'}]:
        full = _raw(served, "GET", url, headers)
        assert full.status == 200 and full.body == data, headers
    resumed = _raw(served, "GET", url, {"Range": "bytes=0-9", "If-Range": f'"{sha}"'})
    assert resumed.status == 206 and resumed.body == data[:10]


def test_second_call_served_from_cache_with_server_stopped(served, tmp_path, monkeypatch):
    model, first, second = _two_commits(tmp_path)
    cache = tmp_path / "cache"
    online = Path(snapshot_download("acme/smoke", revision="v1", endpoint=served.endpoint, cache_dir=cache))
    assert zoo.from_pretrained("hf://acme/smoke", revision="v1").net[0].bias is not None  # zoo's own cache (HF_HUB_CACHE)
    loaded_commit = zoo.from_pretrained("hf://acme/smoke", revision=second)
    served.stop()  # from here on nothing listens

    started = time.perf_counter()
    pinned = zoo.from_pretrained("hf://acme/smoke", revision=second)  # a full commit id is immutable: no network
    assert torch.equal(pinned.net[0].bias, loaded_commit.net[0].bias)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = Path(snapshot_download("acme/smoke", revision="v1", endpoint=served.endpoint, cache_dir=cache))
    assert again == online and (again / "loss.png").read_bytes() == png_bytes()
    assert torch.equal(zoo.from_pretrained("hf://acme/smoke", revision="v1").net[0].bias + 1.0, model.net[0].bias)
    assert time.perf_counter() - started < 3.0


def test_served_files_must_match_the_manifest(served, tmp_path):
    model = zoo.create("smoke_regressor_tiny")
    commit = model.push_to_hub("acme/t")
    snapshot = LocalHub().repo_dir("acme/t") / "snapshots" / commit
    assert _raw(served, "GET", "/acme/t/resolve/main/config.json").status == 200
    config = snapshot / "config.json"
    text = config.read_text()
    os.chmod(config, 0o644)
    config.write_text(text.replace('"zoo_version"', '"zoo_versioN"'))  # same size, other bytes
    answer = _raw(served, "GET", "/acme/t/resolve/main/config.json")
    assert answer.status == 500 and b"modified after the commit" in answer.body
    assert b"zoo_versioN" not in answer.body
    config.write_text(text)
    os.utime(config)
    assert _raw(served, "GET", "/acme/t/resolve/main/config.json").body == text.encode()


def test_api_answers_json_with_error_codes(served, tmp_path):
    _two_commits(tmp_path)
    missing = _raw(served, "GET", "/acme/smoke/resolve/main/nope.txt")
    assert missing.status == 404 and missing.getheader("X-Error-Code") == "EntryNotFound"
    assert missing.getheader("X-Repo-Commit") == LocalHub().resolve("acme/smoke")
    assert json.loads(missing.body)["error"].startswith("'nope.txt' is not in acme/smoke")
    assert _raw(served, "GET", "/api/models/acme/nope").getheader("X-Error-Code") == "RepoNotFound"
    assert _raw(served, "GET", "/api/models/acme/smoke/revision/v7").getheader("X-Error-Code") == "RevisionNotFound"
