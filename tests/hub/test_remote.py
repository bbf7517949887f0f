"""hf:// push and pull through the unmodified huggingface_hub client, against `zoo hub serve` on loopback, and
against the in-test fake that follows huggingface.co's conventions where ours differ (see hf_server.py)."""

from __future__ import annotations

import time

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, snapshot_download

import zoo
from zoo._core.errors import ZooError

from .hf_server import HFTestServer


@pytest.fixture(params=["zoo_hub_serve", "hf_conventions_fake"])
def server(request, monkeypatch, hf_client):
    if request.param == "zoo_hub_serve":
        yield request.getfixturevalue("served")  # the real server over the test's hub, HF_ENDPOINT/HF_TOKEN set
        return
    monkeypatch.setenv("HF_TOKEN", "fake-token")
    with HFTestServer() as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.endpoint)
        yield srv
    assert not srv.errors, srv.errors[0]


def _head(server, repo_id: str) -> str:
    return HfApi(endpoint=server.endpoint).model_info(repo_id).sha


def test_push_and_pull_through_hf(server, tmp_path):
    model = zoo.create("smoke_mlp_tiny")
    first = model.push_to_hub("hf://acme/smoke", commit_message="first", tag="v1", metrics={"test_mse": 0.5})
    assert first == _head(server, "acme/smoke")
    with torch.no_grad():
        model.net[0].bias.add_(1.0)
    second = model.push_to_hub("hf://acme/smoke", commit_message="second")
    assert second != first

    head = zoo.from_pretrained("hf://acme/smoke")
    v1 = zoo.from_pretrained("hf://acme/smoke", revision="v1")
    assert torch.equal(head.net[0].bias, model.net[0].bias)
    assert torch.equal(v1.net[0].bias + 1.0, model.net[0].bias)
    assert torch.equal(zoo.from_pretrained("hf://acme/smoke", revision=first).net[0].bias, v1.net[0].bias)
    # The remote repo is a plain Hugging Face model repo: the client alone reads its card.
    folder = snapshot_download("acme/smoke", revision="v1", endpoint=server.endpoint, cache_dir=tmp_path / "plain")
    card = ModelCard.load(f"{folder}/README.md")
    assert card.data.library_name == "paperzoo"
    assert card.data.eval_results[0].metric_value == 0.5
    # ZOO_HUB=hf makes a bare org/name mean the Hugging Face Hub.
    assert torch.equal(zoo.from_pretrained("acme/smoke", hub="hf").net[0].bias, model.net[0].bias)


def test_missing_remote_repo_and_revision_are_clear(server):
    with pytest.raises(ZooError, match="hf://acme/none was not found"):
        zoo.from_pretrained("hf://acme/none")
    zoo.create("smoke_regressor_tiny").push_to_hub("hf://acme/r")
    with pytest.raises(ZooError, match="revision 'v7' not found in hf://acme/r"):
        zoo.from_pretrained("hf://acme/r", revision="v7")


def test_offline_use_never_waits(server, monkeypatch):
    model = zoo.create("smoke_regressor_tiny")
    commit = model.push_to_hub("hf://acme/off", tag="v1")
    zoo.from_pretrained("hf://acme/off")  # online once: main is cached
    server.stop()  # the endpoint is dead from here on

    started = time.perf_counter()
    pinned = zoo.from_pretrained("hf://acme/off", revision=commit)  # immutable commit in the cache: no network
    assert time.perf_counter() - started < 2.0
    assert torch.equal(pinned.net.weight, model.net.weight)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    assert torch.equal(zoo.from_pretrained("hf://acme/off").net.weight, model.net.weight)
    with pytest.raises(ZooError, match="not in the local cache and HF_HUB_OFFLINE is set"):
        zoo.from_pretrained("hf://acme/off", revision="v1")  # never downloaded
    with pytest.raises(ZooError, match="HF_HUB_OFFLINE is set"):
        model.push_to_hub("hf://acme/off")
    assert time.perf_counter() - started < 2.0
