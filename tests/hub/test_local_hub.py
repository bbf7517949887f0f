"""The local hub: commits, refs, tags, verification, validation, atomicity and concurrent writers."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

import zoo
from zoo._core.errors import (HubLockTimeout, IntegrityError, InvalidRepoIdError, RepoNotFoundError,
                              RevisionNotFoundError, TagExistsError)
from zoo.hub import LocalHub

from tests.conftest import subprocess_env


def _folder(tmp_path, name, **files):
    folder = tmp_path / name
    folder.mkdir()
    for filename, text in files.items():
        (folder / filename.replace("__", ".")).write_text(text)
    return folder


def test_push_layout_and_revisions(tmp_path, isolated_hub):
    model = zoo.create("smoke_regressor_tiny")
    first = model.push_to_hub("acme/smoke", commit_message="first", tag="v1")
    assert re.fullmatch(r"[0-9a-f]{40}", first)
    repo = isolated_hub / "acme" / "smoke"
    assert (repo / "refs" / "main").read_text().strip() == first
    assert (repo / "refs" / "v1").read_text().strip() == first
    snapshot = repo / "snapshots" / first
    assert sorted(p.name for p in snapshot.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    # A snapshot is a plain Hugging Face model folder: readable without zoo.
    from huggingface_hub import ModelCard
    from safetensors.torch import load_file

    assert ModelCard.load(snapshot / "README.md").data.library_name == "paperzoo"
    assert torch.equal(load_file(str(snapshot / "model.safetensors"))["net.weight"], model.net.weight.detach())

    with torch.no_grad():
        model.net.weight.add_(1.0)
    second = model.push_to_hub("acme/smoke", commit_message="second")
    hub = LocalHub()
    assert [c.commit_id for c in hub.log("acme/smoke")] == [second, first]
    assert hub.commit_info("acme/smoke", second).parent == first
    assert hub.resolve("acme/smoke") == second
    v1 = zoo.from_pretrained("acme/smoke", revision="v1")
    head = zoo.from_pretrained("acme/smoke")
    assert torch.equal(head.net.weight, model.net.weight) and torch.equal(v1.net.weight + 1.0, model.net.weight)
    assert torch.equal(zoo.from_pretrained("acme/smoke", revision=first).net.weight, v1.net.weight)
    assert torch.equal(zoo.from_pretrained("acme/smoke", revision=first[:8]).net.weight, v1.net.weight)
    with pytest.raises(RevisionNotFoundError, match=r"'v9' not found in acme/smoke \(branches and tags: main, v1\)"):
        zoo.from_pretrained("acme/smoke", revision="v9")
    with pytest.raises(RepoNotFoundError, match="acme/nothing"):
        zoo.from_pretrained("acme/nothing")


def test_tags_are_immutable(tmp_path):
    hub = LocalHub()
    first = hub.push("acme/t", _folder(tmp_path, "a", x__txt="1"), tag="v1")
    second = hub.push("acme/t", _folder(tmp_path, "b", x__txt="2"))
    with pytest.raises(TagExistsError, match="tag 'v1' already exists"):
        hub.tag("acme/t", second, "v1")
    with pytest.raises(TagExistsError):
        hub.push("acme/t", _folder(tmp_path, "c", x__txt="3"), tag="v1")
    with pytest.raises(TagExistsError, match="branch 'main'"):
        hub.tag("acme/t", first, "main")
    assert hub.resolve("acme/t", "v1") == first
    assert hub.tag("acme/t", "main", "v2") == second
    assert hub.refs("acme/t") == {"branches": {"main": second}, "tags": {"v1": first, "v2": second}}
    assert len(hub.log("acme/t")) == 2  # the refused push left no commit


def test_commit_id_depends_on_content_parent_and_message(tmp_path):
    hub = LocalHub()
    ids = {hub.push("acme/h", _folder(tmp_path, f"f{i}", x__txt="same"), message="m") for i in range(3)}
    assert len(ids) == 3  # same tree and message, other parents/times: other ids
    info = hub.log("acme/h")[0]
    assert set(info.tree) == {"x.txt"} and info.tree["x.txt"]["size"] == 4


@pytest.mark.parametrize("how", ["modify", "add", "delete", "commit_object"])
def test_tampering_is_detected(how, isolated_hub):
    commit = zoo.create("smoke_regressor_tiny").push_to_hub("acme/tamper")
    repo = isolated_hub / "acme" / "tamper"
    snapshot = repo / "snapshots" / commit
    if how == "modify":
        data = bytearray((snapshot / "model.safetensors").read_bytes())
        data[-1] ^= 0x01
        (snapshot / "model.safetensors").write_bytes(bytes(data))
        match = "'model.safetensors' was modified"
    elif how == "add":
        (snapshot / "extra.bin").write_bytes(b"x")
        match = "'extra.bin' was added"
    elif how == "delete":
        (snapshot / "README.md").unlink()
        match = "'README.md' is missing"
    else:
        path = repo / "commits" / f"{commit}.json"
        obj = json.loads(path.read_text())
        obj["message"] = "rewritten history"
        path.write_text(json.dumps(obj))
        match = "was altered"
    with pytest.raises(IntegrityError, match=match):
        zoo.from_pretrained("acme/tamper")


@pytest.mark.parametrize(
    "bad",
    ["noslash", "a/b/c", "/abs/path", "../etc", "org/..", "org/na..me", "org/-lead", "org/trail-", "or g/name",
     "org/name.git", "org/na--me", "~/x", "org/", "/name", "org/nä", "a/" + "x" * 97, "org/name\n"],
)
def test_invalid_repo_ids_are_refused(bad):
    with pytest.raises(InvalidRepoIdError, match="invalid repo id"):
        zoo.create("smoke_regressor_tiny").push_to_hub(bad)


@pytest.mark.parametrize("good", ["org/name", "Org-1/model_v2.1", "a/b"])
def test_valid_repo_ids(good):
    assert re.fullmatch(r"[0-9a-f]{40}", zoo.create("smoke_regressor_tiny").push_to_hub(good))


def test_failed_push_leaves_no_trace(isolated_hub, monkeypatch):
    model = zoo.create("smoke_regressor_tiny")
    first = model.push_to_hub("acme/atomic")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("zoo.hub.cards.render_card", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        model.push_to_hub("acme/atomic")
    repo = isolated_hub / "acme" / "atomic"
    assert [p.name for p in (repo / "snapshots").iterdir()] == [first]
    assert list((repo / ".staging").iterdir()) == []
    assert LocalHub().resolve("acme/atomic") == first


def test_lock_timeout_is_reported(tmp_path):
    from filelock import FileLock

    hub = LocalHub(lock_timeout=0.2)
    hub.push("acme/lock", _folder(tmp_path, "a", x__txt="1"))
    with FileLock(str(hub.repo_dir("acme/lock") / ".lock")):
        with pytest.raises(HubLockTimeout, match="locked by another process"):
            hub.push("acme/lock", _folder(tmp_path, "b", x__txt="2"))


_WRITER = """
import sys, pathlib, time
from zoo.hub import LocalHub
hub, who, n, start = LocalHub(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
while time.time() < start:
    time.sleep(0.001)
for i in range(n):
    folder = pathlib.Path(sys.argv[5]) / f"{who}{i}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"who": "%s", "i": %d}' % (who, i))
    (folder / "model.safetensors").write_bytes(bytes(200_000))
    print(hub.push("acme/race", folder, message=f"{who}{i}"))
"""


def test_two_processes_pushing_at_once_both_land(tmp_path, isolated_hub):
    import time

    start = time.time() + 1.5
    n = 12
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(isolated_hub), who, str(n), str(start), str(tmp_path / "src")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
        for who in ("a", "b")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outputs]
    pushed = [line for out, _ in outputs for line in out.split()]
    hub = LocalHub()
    history = hub.log("acme/race")
    assert len(pushed) == 2 * n and sorted(c.commit_id for c in history) == sorted(pushed)
    assert history[-1].parent is None and all(c.parent == history[i + 1].commit_id for i, c in enumerate(history[:-1]))
    for info in history:
        hub.verify("acme/race", info.commit_id)  # every snapshot is whole
    assert {c.message for c in history} == {f"{w}{i}" for w in 'ab' for i in range(n)}
    assert list((isolated_hub / "acme" / "race" / ".staging").iterdir()) == []  # no folder or lock file left behind
