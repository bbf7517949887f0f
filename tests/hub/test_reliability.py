"""Defects a reliability probe found in the hub, each pinned by a test that failed before its fix.

Tag and branch names, leftovers in ``.staging/``, checks before training, what counts as a local folder,
repo ids and revisions, broken files (safetensors header, commit object, card, checkpoints), a missing hub
folder, and file modes under the caller's umask.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import zoo
from zoo._core.errors import IntegrityError, InvalidRepoIdError, RepoNotFoundError, TagExistsError, ZooError
from zoo.cli import main
from zoo.hub import LocalHub

from tests.conftest import REPO_ROOT, subprocess_env


def _one_line_error(argv, capsys) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- tags and branches are separate names ---------------------------------------------------------------
def test_a_tag_cannot_take_a_branch_name(isolated_hub):
    model = zoo.create("smoke_regressor_tiny")
    first = model.push_to_hub("acme/ns")
    with pytest.raises(TagExistsError, match="tag 'main' would take the name of branch 'main' of acme/ns"):
        model.push_to_hub("acme/ns", tag="main")
    hub = LocalHub()
    assert hub.refs("acme/ns") == {"branches": {"main": first}, "tags": {}}
    assert len(hub.log("acme/ns")) == 1  # nothing was committed by the refused push
    second = model.push_to_hub("acme/ns")  # main is still a branch one can push to
    assert hub.resolve("acme/ns", "main") == second
    model.push_to_hub("acme/ns", branch="dev")
    with pytest.raises(TagExistsError, match="name of branch 'dev'"):
        hub.tag("acme/ns", "main", "dev")
    with pytest.raises(ZooError, match="tag and branch must differ"):
        model.push_to_hub("acme/ns", branch="exp", tag="exp")
    hub.tag("acme/ns", "main", "v1")
    with pytest.raises(ZooError, match="'v1' is a tag of acme/ns"):
        model.push_to_hub("acme/ns", branch="v1")
    assert hub.refs("acme/ns")["tags"] == {"v1": second}


# -- nothing staged for a push refused up front; stale staging folders cleaned ------------------------------
@pytest.mark.parametrize("kwargs, error", [
    ({"tag": "bad tag"}, InvalidRepoIdError), ({"branch": "../main"}, InvalidRepoIdError), ({"tag": "main"}, TagExistsError),
    ({"tag": "v1"}, TagExistsError),
])
def test_refused_push_writes_nothing(isolated_hub, kwargs, error):
    model = zoo.create("smoke_regressor_tiny")
    model.push_to_hub("acme/refused", tag="v1")
    staging = isolated_hub / "acme" / "refused" / ".staging"
    before = sorted(p.name for p in staging.iterdir())
    with pytest.raises(error):
        model.push_to_hub("acme/refused", **kwargs)
    assert sorted(p.name for p in staging.iterdir()) == before == []
    with pytest.raises(InvalidRepoIdError):
        model.push_to_hub("acme/fresh", tag="bad tag")
    assert not (isolated_hub / "acme" / "fresh").exists()  # a new repo is not even created


_SLOW_PUSHER = """
import pathlib, sys, time
import tests.smoke.model, zoo, zoo.hub.cards
marker, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
render = zoo.hub.cards.render_card
def paused(*args, **kwargs):  # the weights are in the staging folder by now
    marker.write_text("staged")
    while not go.exists():
        time.sleep(0.05)
    return render(*args, **kwargs)
zoo.hub.cards.render_card = paused
print(zoo.create("smoke_regressor_tiny", in_features=300).push_to_hub("acme/crash"))
"""


def _start_pusher(tmp_path: Path, name: str, hub: Path) -> tuple[subprocess.Popen, Path, Path]:
    marker, go = tmp_path / f"{name}.staged", tmp_path / f"{name}.go"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_PUSHER, str(marker), str(go)], cwd=REPO_ROOT,
                            env=subprocess_env(ZOO_HUB=str(hub)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, "the pusher never reached its staging step"
        time.sleep(0.05)
    return proc, marker, go


def test_crashed_push_is_cleaned_but_a_live_push_is_not(tmp_path, isolated_hub):
    zoo.create("smoke_regressor_tiny").push_to_hub("acme/crash")
    staging = isolated_hub / "acme" / "crash" / ".staging"
    crashed, _, _ = _start_pusher(tmp_path, "crashed", isolated_hub)
    live, _, go = _start_pusher(tmp_path, "live", isolated_hub)
    try:
        crashed.send_signal(signal.SIGKILL)  # killed mid-push: its weights sit in .staging/
        crashed.communicate(timeout=30)
        folders = [p for p in staging.iterdir() if p.is_dir()]
        assert len(folders) == 2 and all((p / "model.safetensors").is_file() for p in folders)
        zoo.create("smoke_regressor_tiny").push_to_hub("acme/crash")  # any push cleans what dead pushes left
        left = [p for p in staging.iterdir() if p.is_dir()]
        assert len(left) == 1 and (left[0] / "model.safetensors").is_file()  # the live push's folder is kept
        go.write_text("go")
        out, err = live.communicate(timeout=120)
        assert live.returncode == 0, err[-2000:]
    finally:
        for proc in (crashed, live):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    hub = LocalHub()
    commit = out.split()[-1]
    hub.verify("acme/crash", commit)  # the live push landed whole
    assert zoo.from_pretrained("acme/crash", revision=commit).config.in_features == 300
    assert list(staging.iterdir()) == []


def test_stale_legacy_staging_folder_is_cleaned(isolated_hub):
    model = zoo.create("smoke_regressor_tiny")
    model.push_to_hub("acme/legacy")
    staging = isolated_hub / "acme" / "legacy" / ".staging"
    old, recent = staging / ("a" * 32), staging / ("b" * 32)  # folders an older zoo left, without a lock file
    for folder in (old, recent):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"x" * 100)
    stale = time.time() - 2 * 24 * 3600
    os.utime(old, (stale, stale))
    model.push_to_hub("acme/legacy")
    assert not old.exists() and recent.exists()  # a lock-less folder is kept until it is older than the lease


# -- zoo run checks where it will push before it trains -----------------------------------------------------
@pytest.mark.parametrize("override, error, match", [
    (["--zoo.repo_id", "bad id"], InvalidRepoIdError, "invalid repo id 'bad id'"),
    (["--zoo.tag", "v1"], TagExistsError, "tag 'v1' already exists"),
    (["--zoo.tag", "main"], TagExistsError, "name of branch 'main'"),
    (["--zoo.tag", "bad tag"], InvalidRepoIdError, "invalid tag"),
])
def test_zoo_run_checks_repo_and_tag_before_training(monkeypatch, override, error, match):
    zoo.create("smoke_regressor_tiny").push_to_hub("smoke/regressor-tiny", tag="v1")

    class NoTraining:  # a class, so that code subclassing LightningCLI at call time still ends here
        def __init__(self, *args, **kwargs):
            raise AssertionError("training started before the push target was checked")

    monkeypatch.setattr("lightning.pytorch.cli.LightningCLI", NoTraining)
    from zoo._core.runner import run_recipe

    with pytest.raises(error, match=match):
        run_recipe(REPO_ROOT / "tests" / "smoke" / "smoke_tiny.yaml", override)


# -- repo ids, revisions and local folders ------------------------------------------------------------------
@pytest.mark.parametrize("bad, match", [
    ("", "invalid repo id '': it is empty"),
    ("x" * 300, "invalid repo id 'xxxxxxxxxx.*' \\(300 characters\\)"),
    ("a/" + "x" * 300, "\\(302 characters\\)"),
    ("org/name\x00", "invalid repo id"),
])
def test_bad_repo_ids_are_one_line_errors(bad, match):
    with pytest.raises(InvalidRepoIdError, match=match) as info:
        zoo.from_pretrained(bad)
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)


def test_empty_revision_is_refused(isolated_hub):
    zoo.create("smoke_regressor_tiny").push_to_hub("acme/rev")
    with pytest.raises(ZooError, match="revision '' is empty"):
        zoo.from_pretrained("acme/rev", revision="")
    with pytest.raises(ZooError, match="revision must be a string"):
        zoo.from_pretrained("acme/rev", revision=3)


def test_a_folder_is_only_an_explicit_path(tmp_path, monkeypatch):
    model = zoo.create("smoke_regressor_tiny")
    model.save_pretrained(tmp_path / "acme" / "local")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RepoNotFoundError, match="repo 'acme/local' is not in the hub"):
        zoo.from_pretrained("acme/local")  # a repo id, even though a folder of that name is here
    assert torch.equal(zoo.from_pretrained("./acme/local").net.weight, model.net.weight)
    assert torch.equal(zoo.from_pretrained(tmp_path / "acme" / "local").net.weight, model.net.weight)
    with pytest.raises(ZooError, match="(?i)file name too long"):
        zoo.from_pretrained("/" + "x" * 300)


def test_pull_of_a_folder_that_is_no_model_copies_nothing(tmp_path, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "big.txt").write_bytes(b"x" * 1_000_000)
    out = tmp_path / "out"
    err = _one_line_error(["pull", str(notes), str(out)], capsys)
    assert f"{notes} is not a model folder" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_pull_is_atomic(tmp_path, isolated_hub, monkeypatch, capsys):
    zoo.create("smoke_regressor_tiny").push_to_hub("acme/pull")
    import shutil

    copy, calls = shutil.copyfile, []

    def failing_copy(src, dst, *args, **kwargs):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", failing_copy)
    out = tmp_path / "out"
    _one_line_error(["pull", "acme/pull", str(out)], capsys)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["hub"]  # no half copy, no temp dir
    monkeypatch.setattr(shutil, "copyfile", copy)
    out.mkdir()  # an empty folder may be the target
    assert main(["pull", "acme/pull", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    _one_line_error(["pull", "acme/pull", str(out)], capsys)  # now it is not empty


# -- broken files are one-line errors naming the file ---------------------------------------------------
@pytest.mark.parametrize("content, match", [
    (b"", "too short for a safetensors header"),
    (b"\xff" * 16, "header length .* exceeds the file"),
    (b"\x04\x00\x00\x00\x00\x00\x00\x00abcd", "header is not JSON"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x00[]", "header is not a JSON object"),
])
def test_bad_safetensors_header(tmp_path, content, match):
    zoo.create("smoke_regressor_tiny").save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(content)
    with pytest.raises(ZooError, match=match) as info:
        zoo.from_pretrained(tmp_path)
    assert str(tmp_path / "model.safetensors") in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("content, match", [
    ("garbage{", "is not valid JSON"), ("[]", "must be a JSON object, got list"), ('{"id": 1}', "lacks field"),
    (b"\xe9\xff", "is not UTF-8"),
])
def test_garbage_commit_object(isolated_hub, content, match):
    commit = zoo.create("smoke_regressor_tiny").push_to_hub("acme/garbage")
    path = isolated_hub / "acme" / "garbage" / "commits" / f"{commit}.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(IntegrityError, match=match) as info:
        zoo.from_pretrained("acme/garbage")
    assert str(path) in str(info.value)


def test_garbage_ref_is_named(isolated_hub):
    zoo.create("smoke_regressor_tiny").push_to_hub("acme/badref")
    ref = isolated_hub / "acme" / "badref" / "refs" / "main"
    ref.write_text("not a commit\n")
    with pytest.raises(IntegrityError, match=f"{ref} does not hold a commit id"):
        zoo.from_pretrained("acme/badref")


def test_non_utf8_card(tmp_path, capsys):
    folder = tmp_path / "m"
    zoo.create("smoke_regressor_tiny").save_pretrained(folder)
    (folder / "README.md").write_bytes(b"---\nlicense: \xe9\n---\n")
    LocalHub().push("acme/card", folder)  # a committed (so verified) card that is not UTF-8
    err = _one_line_error(["card", "acme/card"], capsys)
    assert "README.md is not UTF-8 text" in err


@pytest.mark.parametrize("kind", ["empty", "text", "plain_pickle", "dict_without_zoo"])
def test_convert_of_a_bad_checkpoint(tmp_path, capsys, kind):
    import pickle

    path = tmp_path / f"{kind}.ckpt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello world\n")
    elif kind == "plain_pickle":
        path.write_bytes(pickle.dumps([1, 2, 3]))
    else:
        torch.save({"state_dict": {}}, path)
    err = _one_line_error(["convert", str(path), str(tmp_path / "out")], capsys)
    assert str(path) in err
    assert not (tmp_path / "out").exists()


# -- the hub folder itself --------------------------------------------------------------------------------
def test_missing_hub_folder_is_an_error(tmp_path, capsys):
    err = _one_line_error(["--hub", str(tmp_path / "nonexistent"), "hub", "ls"], capsys)
    assert f"hub folder {tmp_path / 'nonexistent'} does not exist" in err
    with pytest.raises(RepoNotFoundError, match="does not exist"):
        zoo.from_pretrained("acme/x", hub=tmp_path / "nonexistent")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_hub_files_follow_the_umask(tmp_path, isolated_hub, umask, capsys):
    old = os.umask(umask)
    try:
        model = zoo.create("smoke_regressor_tiny")
        model.push_to_hub("acme/modes", tag="v1", extra_files={"notes.txt": _private_file(tmp_path)})
        model.push_to_hub("acme/modes")
        assert main(["pull", "acme/modes", str(tmp_path / "pulled")]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    paths = [isolated_hub, *isolated_hub.rglob("*"), tmp_path / "pulled", *(tmp_path / "pulled").rglob("*")]
    assert len(paths) > 20
    for path in paths:
        want = (0o777 if path.is_dir() else 0o666) & ~umask
        assert path.stat().st_mode & 0o777 == want, f"{path}: {oct(path.stat().st_mode & 0o777)} != {oct(want)}"


def _private_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("notes")
    path.chmod(0o600)  # the hub copy still follows the umask, not the source file's mode
    return path
