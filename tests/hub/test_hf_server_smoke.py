"""Smoke test: the unmodified huggingface_hub client round-trips against the in-memory HFTestServer."""

import json
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors.torch import load_file, save_file

from .hf_server import HFTestServer, git_blob_oid

REPO = "paperzoo-test/tiny"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    # huggingface_hub reads its env vars once, at import, into `huggingface_hub.constants`; setting os.environ now
    # is not enough on its own. hf_xet is installed, so without the constant the client would upload via Xet.
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # With telemetry on, the first request builds a user agent that fetches `{constants.ENDPOINT}/api/agent-harnesses`
    # (the import-time endpoint, i.e. huggingface.co), which can stall up to 3 s without a network.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    with HFTestServer() as server:
        yield server
    assert not server.errors, server.errors[0]


def _write_model_folder(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("---\nlibrary_name: paperzoo\n---\n# x\n")
    (folder / "config.json").write_text(json.dumps(config))
    save_file({"weight": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, str(folder / "model.safetensors"))
    return folder


def test_round_trip_with_unmodified_client(hub, tmp_path):
    start = time.monotonic()
    api = HfApi(endpoint=hub.endpoint, token="fake")
    cache = tmp_path / "hf_cache"

    url = api.create_repo(REPO, exist_ok=True)
    assert url.repo_id == REPO
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO  # 409 path
    with pytest.raises(HfHubHTTPError):
        api.create_repo(REPO)

    folder = _write_model_folder(tmp_path / "v1", {"hidden": 4})
    first = api.upload_folder(repo_id=REPO, folder_path=folder, commit_message="v1 weights")
    api.create_tag(REPO, tag="v1", revision=first.oid)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_tag(REPO, tag="v1")
    assert exc.value.response.status_code == 409
    api.create_tag(REPO, tag="v1", exist_ok=True)

    (folder / "config.json").write_text(json.dumps({"hidden": 8}))
    second = api.upload_folder(repo_id=REPO, folder_path=folder, commit_message="wider")
    assert second.oid != first.oid
    # unchanged files are skipped by the client thanks to the `oid` returned by preupload
    commit_posts = [p for m, p in hub.requests if m == "POST" and p.endswith("/commit/main")]
    assert len(commit_posts) == 2
    head = hub.repos[REPO].commits[second.oid]
    assert head.parent == first.oid and head.title == "wider"

    api.upload_file(path_or_fileobj=b"notes", path_in_repo="docs/notes.txt", repo_id=REPO)

    old = Path(snapshot_download(REPO, revision="v1", endpoint=hub.endpoint, token="fake", cache_dir=cache))
    new = Path(snapshot_download(REPO, revision="main", endpoint=hub.endpoint, token="fake", cache_dir=cache))
    assert json.loads((old / "config.json").read_text()) == {"hidden": 4}
    assert json.loads((new / "config.json").read_text()) == {"hidden": 8}
    assert (new / "docs" / "notes.txt").read_bytes() == b"notes"
    assert not (old / "docs").exists()
    assert torch.equal(load_file(old / "model.safetensors")["weight"], torch.arange(6.0).reshape(2, 3))
    assert (old / "README.md").read_text().startswith("---\nlibrary_name: paperzoo")

    by_commit = hf_hub_download(
        REPO, "config.json", revision=first.oid, endpoint=hub.endpoint, token="fake", cache_dir=cache
    )
    assert json.loads(Path(by_commit).read_text()) == {"hidden": 4}
    meta = api.get_hf_file_metadata(url=f"{hub.endpoint}/{REPO}/resolve/v1/config.json")
    assert meta.commit_hash == first.oid
    assert meta.etag == git_blob_oid(b'{"hidden": 4}')

    refs = api.list_repo_refs(REPO)
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": first.oid}
    assert [b.name for b in refs.branches] == ["main"]
    commits = api.list_repo_commits(REPO)
    assert [c.title for c in commits] == [
        "Upload docs/notes.txt with huggingface_hub",
        "wider",
        "v1 weights",
        "initial commit",
    ]

    info = api.model_info(REPO, revision="v1")
    assert info.sha == first.oid
    assert info.library_name == "paperzoo"
    siblings = sorted(s.rfilename for s in info.siblings)
    assert siblings == [".gitattributes", "README.md", "config.json", "model.safetensors"]
    assert "docs/notes.txt" in api.list_repo_files(REPO)

    with pytest.raises(RemoteEntryNotFoundError):  # a subclass of EntryNotFoundError; see the note below
        hf_hub_download(REPO, "missing.bin", endpoint=hub.endpoint, token="fake", cache_dir=cache)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="nope", endpoint=hub.endpoint, token="fake", cache_dir=cache)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/missing", "config.json", endpoint=hub.endpoint, token="fake", cache_dir=cache)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/missing")

    # stale parentCommit -> 412
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO, parent_commit=first.oid)
    assert exc.value.response.status_code == 412
    # Note: LocalEntryNotFoundError (e.g. a dead server) is also an EntryNotFoundError, so tests of "missing file"
    # should assert RemoteEntryNotFoundError, as above.
    assert issubclass(RemoteEntryNotFoundError, EntryNotFoundError)
    assert time.monotonic() - start < 10
