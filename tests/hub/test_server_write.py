"""`zoo hub serve`, write side: pushes through the unmodified client land as LocalHub commits, behind a token."""

from __future__ import annotations

import hashlib
import http.client
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

import zoo
from zoo._core.errors import TagExistsError, ZooError
from zoo.hub import LocalHub
from zoo.hub.server import HubServer

from tests.hub.served import TOKEN, write_png


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _post(server, path: str, body: dict, token: str = TOKEN) -> dict:
    host, port = server.endpoint.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", path, body=json.dumps(body), headers={"Authorization": f"Bearer {token}",
                                                              "Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200, response.read()
    return json.loads(response.read())


def test_push_to_hub_over_http_lands_a_verified_commit(served, tmp_path):
    model = zoo.create("smoke_mlp_tiny")
    commit = model.push_to_hub("hf://acme/pushed", commit_message="over http", tag="v1", metrics={"test_mse": 0.125},
                               extra_files={"loss.png": write_png(tmp_path / "loss.png")})
    hub = LocalHub()
    assert hub.resolve("acme/pushed") == commit and hub.resolve("acme/pushed", "v1") == commit
    hub.verify("acme/pushed", commit)  # commit object and every file's sha256
    info = hub.commit_info("acme/pushed", commit)
    assert info.message == "over http" and info.parent is None
    assert sorted(info.tree) == ["README.md", "config.json", "loss.png", "model.safetensors"]
    # the same weights, bit for bit, from the served hub directly and back over HTTP
    for loaded in (zoo.from_pretrained("acme/pushed"), zoo.from_pretrained("hf://acme/pushed", revision="v1")):
        for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert a.dtype == b.dtype and torch.equal(a, b), name
    # a second push moves main on, with the first as parent; v1 stays
    with torch.no_grad():
        model.net[0].weight.mul_(2)
    second = model.push_to_hub("hf://acme/pushed", commit_message="doubled")
    assert hub.commit_info("acme/pushed", second).parent == commit and hub.resolve("acme/pushed", "v1") == commit
    assert torch.equal(zoo.from_pretrained("acme/pushed").net[0].weight, model.net[0].weight)


def test_push_refused_without_a_valid_token(served, tmp_path, monkeypatch):
    model = zoo.create("smoke_regressor_tiny")
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(ZooError, match=r"refused .*HTTP 401"):  # one line, not the client's traceback
        model.push_to_hub("hf://acme/nope")
    monkeypatch.setenv("HF_TOKEN", "not-the-token-0123456789")
    with pytest.raises(ZooError, match=r"refused .*HTTP 401"):
        model.push_to_hub("hf://acme/nope")
    assert not LocalHub().repo_dir("acme/nope").exists()
    # a repo that exists still refuses commits and tags to a wrong token
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    commit = model.push_to_hub("hf://acme/nope")
    api = HfApi(endpoint=served.endpoint, token="not-the-token-0123456789")
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "x.txt").write_text("x")
    for call in (lambda: api.upload_folder(repo_id="acme/nope", folder_path=folder),
                 lambda: api.create_tag("acme/nope", tag="v1"),
                 lambda: api.create_branch("acme/nope", branch="dev")):
        with pytest.raises(HfHubHTTPError) as refused:
            call()
        assert refused.value.response.status_code == 401
    assert LocalHub().refs("acme/nope") == {"branches": {"main": commit}, "tags": {}}


def test_server_without_token_file_is_read_only(isolated_hub, hf_client, tmp_path):
    commit = zoo.create("smoke_regressor_tiny").push_to_hub("acme/ro")
    with HubServer(isolated_hub) as server:  # no tokens: the write API is off
        api = HfApi(endpoint=server.endpoint, token=TOKEN)
        with pytest.raises(HfHubHTTPError) as refused:
            api.create_repo("acme/other")
        assert refused.value.response.status_code == 403 and "read-only" in str(refused.value)
        with pytest.raises(HfHubHTTPError) as refused:
            api.create_tag("acme/ro", tag="v1")
        assert refused.value.response.status_code == 403
        assert api.model_info("acme/ro").sha == commit  # reads still work
        assert Path(snapshot_download("acme/ro", endpoint=server.endpoint, cache_dir=tmp_path / "c")).name == commit
    assert LocalHub().list_repos() == ["acme/ro"]


def test_tags_are_immutable_over_http(served):
    model = zoo.create("smoke_regressor_tiny")
    first = model.push_to_hub("hf://acme/tags", tag="v1")
    second = model.push_to_hub("hf://acme/tags")
    api = HfApi(endpoint=served.endpoint)
    with pytest.raises(HfHubHTTPError) as taken:
        api.create_tag("acme/tags", tag="v1", revision=second)
    assert taken.value.response.status_code == 409 and "immutable" in str(taken.value)
    api.create_tag("acme/tags", tag="v1", revision=second, exist_ok=True)  # the client's exist_ok: still untouched
    with pytest.raises(HfHubHTTPError) as taken:
        api.create_tag("acme/tags", tag="main", revision=first)  # a branch name is taken too
    assert taken.value.response.status_code == 409
    with pytest.raises(HfHubHTTPError) as refused:
        api.delete_tag("acme/tags", tag="v1")
    assert refused.value.response.status_code == 405
    with pytest.raises(HfHubHTTPError) as refused:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="acme/tags", revision="v1")
    assert refused.value.response.status_code == 400
    with pytest.raises(TagExistsError, match="immutable"):
        model.push_to_hub("hf://acme/tags", tag="v1")
    assert LocalHub().refs("acme/tags") == {"branches": {"main": second}, "tags": {"v1": first}}  # nothing landed


def test_commit_api_details(served, tmp_path):
    api = HfApi(endpoint=served.endpoint)
    assert api.create_repo("acme/raw").repo_id == "acme/raw"
    with pytest.raises(HfHubHTTPError) as exists:
        api.create_repo("acme/raw")
    assert exists.value.response.status_code == 409
    assert api.create_repo("acme/raw", exist_ok=True).repo_id == "acme/raw"
    with pytest.raises(HfHubHTTPError):
        api.create_repo("acme/secret", private=True)
    assert api.list_repo_refs("acme/raw").branches == []

    folder = tmp_path / "f"
    (folder / "docs").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlibrary_name: paperzoo\n---\n# raw\n")
    (folder / "weights.bin.txt").write_bytes(bytes(range(256)) * 4000)
    (folder / "docs" / "a.txt").write_text("a")
    first = api.upload_folder(repo_id="acme/raw", folder_path=folder, commit_message="one").oid
    hub = LocalHub()
    assert sorted(hub.commit_info("acme/raw", first).tree) == ["README.md", "docs/a.txt", "weights.bin.txt"]

    # unchanged files are skipped by the client: preupload answers each file's git blob id
    (folder / "docs" / "a.txt").write_text("A")
    weights = (folder / "weights.bin.txt").read_bytes()
    answer = _post(served, "/api/models/acme/raw/preupload/main",
                   {"files": [{"path": "weights.bin.txt", "size": len(weights), "sample": ""}]})
    assert answer["files"][0]["oid"] == git_blob_oid(weights) and answer["files"][0]["uploadMode"] == "regular"
    second = api.upload_folder(repo_id="acme/raw", folder_path=folder, commit_message="two").oid
    tree_one, tree_two = hub.commit_info("acme/raw", first).tree, hub.commit_info("acme/raw", second).tree
    assert tree_two["weights.bin.txt"] == tree_one["weights.bin.txt"] and tree_two["docs/a.txt"] != tree_one["docs/a.txt"]
    unchanged = api.create_commit("acme/raw", [CommitOperationAdd("README.md", folder / "README.md")], commit_message="noop")
    assert unchanged.oid == second  # nothing changed: the client made no commit

    third = api.create_commit("acme/raw", [CommitOperationDelete("docs/"), CommitOperationAdd("b/c.txt", b"c")],
                              commit_message="move", parent_commit=second).oid
    assert sorted(hub.commit_info("acme/raw", third).tree) == ["README.md", "b/c.txt", "weights.bin.txt"]
    with pytest.raises(HfHubHTTPError) as stale:
        api.create_commit("acme/raw", [CommitOperationAdd("d.txt", b"d")], commit_message="late", parent_commit=second)
    assert stale.value.response.status_code == 412
    with pytest.raises(HfHubHTTPError) as missing:
        api.create_commit("acme/raw", [CommitOperationDelete("nothing.txt")], commit_message="rm")
    assert missing.value.response.status_code == 404
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.upload_file(path_or_fileobj=b"---\n[unclosed\n---\n", path_in_repo="README.md", repo_id="acme/raw")

    api.create_branch("acme/raw", branch="dev", revision=first)
    dev = api.upload_file(path_or_fileobj=b"dev", path_in_repo="dev.txt", repo_id="acme/raw", revision="dev").oid
    assert hub.commit_info("acme/raw", dev).parent == first and hub.resolve("acme/raw") == third
    with pytest.raises(HfHubHTTPError) as exists:
        api.create_branch("acme/raw", branch="dev")
    assert exists.value.response.status_code == 409
    for commit in (first, second, third, dev):
        hub.verify("acme/raw", commit)
    assert not list((hub.repo_dir("acme/raw") / ".staging").iterdir())  # nothing left behind


def test_push_to_branch_through_zoo(served):
    model = zoo.create("smoke_regressor_tiny")
    main = model.push_to_hub("hf://acme/br")
    with torch.no_grad():
        model.net.bias.fill_(3.0)
    dev = model.push_to_hub("hf://acme/br", branch="dev")
    hub = LocalHub()
    assert hub.commit_info("acme/br", dev).parent == main and hub.resolve("acme/br") == main
    assert torch.equal(zoo.from_pretrained("hf://acme/br", revision="dev").net.bias, model.net.bias)


def test_commit_bodies_over_the_limit_are_refused(isolated_hub, hf_client, tmp_path):
    with HubServer(isolated_hub, tokens=(TOKEN,), max_commit_bytes=50_000) as server:
        api = HfApi(endpoint=server.endpoint, token=TOKEN)
        api.create_repo("acme/big")
        with pytest.raises(HfHubHTTPError) as big:
            api.upload_file(path_or_fileobj=b"x" * 100_000, path_in_repo="x.bin", repo_id="acme/big")
        assert big.value.response.status_code == 413
        api.upload_file(path_or_fileobj=b"x" * 1000, path_in_repo="x.bin", repo_id="acme/big")
    assert hashlib.sha256(b"x" * 1000).hexdigest() == LocalHub().commit_info("acme/big", LocalHub().resolve("acme/big")).tree["x.bin"]["sha256"]


def test_concurrent_pushes_over_http_all_land_in_one_history(served):
    import threading

    api = HfApi(endpoint=served.endpoint)
    api.create_repo("acme/race")
    errors = []

    def push(i: int) -> None:
        try:
            api.upload_file(path_or_fileobj=f"writer {i}".encode(), path_in_repo=f"w{i}.txt", repo_id="acme/race",
                            commit_message=f"writer {i}")
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    hub = LocalHub()
    history = hub.log("acme/race")
    assert len(history) == 6 and history[-1].parent is None  # a chain: each commit's parent is the one before
    assert sorted(history[0].tree) == [f"w{i}.txt" for i in range(6)]  # nothing reverted
    for commit in history:
        hub.verify("acme/race", commit.commit_id)


def test_a_push_by_another_process_meanwhile_is_kept(served, monkeypatch, tmp_path):
    """The branch moves (a local push) while the server builds a commit: it rebuilds on the new head."""
    from zoo.hub.server import api_write

    api = HfApi(endpoint=served.endpoint)
    api.create_repo("acme/moving")
    api.upload_file(path_or_fileobj=b"base", path_in_repo="base.txt", repo_id="acme/moving")
    other = tmp_path / "other"
    other.mkdir()
    (other / "base.txt").write_text("base")
    (other / "local.txt").write_text("pushed by another process")
    build, calls = api_write._build_snapshot, []

    def build_while_someone_pushes(*args):
        calls.append(args[2])
        if len(calls) == 1:
            LocalHub().push("acme/moving", other, message="local push")
        return build(*args)

    monkeypatch.setattr(api_write, "_build_snapshot", build_while_someone_pushes)
    api.upload_file(path_or_fileobj=b"http", path_in_repo="http.txt", repo_id="acme/moving", commit_message="http")
    hub = LocalHub()
    messages = [c.message for c in hub.log("acme/moving")]
    assert messages[:2] == ["http", "local push"] and len(calls) == 2 and calls[0] != calls[1]
    assert sorted(hub.log("acme/moving")[0].tree) == ["base.txt", "http.txt", "local.txt"]


def test_http_pushes_leave_no_staging_folder_or_held_lock(served):
    """The server takes staging locks in one worker thread and releases them in another: they must really be
    released (a thread-local lock stayed held, so dead staging folders could never be told from live ones)."""
    import fcntl

    model = zoo.create("smoke_mlp_tiny")
    for _ in range(2):
        model.push_to_hub("hf://acme/staged")
    staging = LocalHub().repo_dir("acme/staged") / ".staging"
    leftovers = list(staging.iterdir()) if staging.exists() else []
    for entry in leftovers:  # lock files may stay only if nobody holds them
        assert entry.suffix == ".lock", entry
        with open(entry, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if still held


def test_a_push_landing_between_the_head_check_and_the_commit_is_not_dropped(served, monkeypatch, tmp_path):
    """Another process pushes after the server's last look at the head but before its commit takes the lock: the
    conditional push (expected_parent) refuses, the server rebuilds on the new head, nothing is lost (the
    server used to land its commit on top anyway, without the other push's file, and answer 409)."""
    api = HfApi(endpoint=served.endpoint)
    api.create_repo("acme/racing")
    api.upload_file(path_or_fileobj=b"base", path_in_repo="base.txt", repo_id="acme/racing")
    other = tmp_path / "other"
    other.mkdir()
    (other / "base.txt").write_text("base")
    (other / "local.txt").write_text("pushed by another process")
    push, calls = LocalHub.push, []

    def push_after_someone_else(self, repo_id, folder, **kwargs):
        calls.append(kwargs.get("expected_parent"))
        if len(calls) == 1:
            push(LocalHub(self.root), "acme/racing", other, message="local push")
        return push(self, repo_id, folder, **kwargs)

    monkeypatch.setattr(LocalHub, "push", push_after_someone_else)
    api.upload_file(path_or_fileobj=b"http", path_in_repo="http.txt", repo_id="acme/racing", commit_message="http")
    monkeypatch.setattr(LocalHub, "push", push)
    hub = LocalHub()
    assert [c.message for c in hub.log("acme/racing")][:2] == ["http", "local push"] and len(calls) == 2
    assert sorted(hub.log("acme/racing")[0].tree) == ["base.txt", "http.txt", "local.txt"]


def test_conditional_local_push_refuses_a_moved_branch(isolated_hub, tmp_path):
    from zoo._core.errors import ParentMovedError

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    hub = LocalHub()
    first = hub.push("acme/cond", folder, expected_parent=None)
    with pytest.raises(ParentMovedError, match="expected parent"):
        hub.push("acme/cond", folder, expected_parent="0" * 40)
    assert hub.push("acme/cond", folder, expected_parent=first) != first
    assert len(hub.log("acme/cond")) == 2 and not [p for p in (hub.repo_dir("acme/cond") / ".staging").iterdir() if p.is_dir()]


def test_push_with_an_existing_tag_over_http_is_refused_before_uploading(served):
    """The tag is checked before the upload: the commit used to land, then the tag call failed with the client's
    raw HfHubHTTPError (409), leaving an untagged commit on main."""
    model = zoo.create("smoke_mlp_tiny")
    first = model.push_to_hub("hf://acme/tagged", tag="v1")
    with pytest.raises(TagExistsError, match="already exists"):
        model.push_to_hub("hf://acme/tagged", tag="v1")
    with pytest.raises(ZooError, match="branch"):
        model.push_to_hub("hf://acme/tagged", tag="main")
    assert LocalHub().refs("acme/tagged") == {"branches": {"main": first}, "tags": {"v1": first}}
