"""`zoo.init_from`: a run starts from a pushed model (local or hf://), safe overrides only, strict or listed partial
loads, and lineage in the card (base_model + commit, a link, the parent's metrics beside the child's)."""

from __future__ import annotations

import pytest
import torch
from huggingface_hub import ModelCard

import zoo
from zoo._core.errors import StrictLoadError, ZooError
from zoo._core.finetune import config_differences, load_parent_weights, parse_init_from, resolve_parent
from zoo._core.runner import run_recipe
from zoo.hub import LocalHub

from tests.conftest import REPO_ROOT
from tests.hub.test_remote import server  # noqa: F401  (fixture: a loopback Hugging Face Hub test server)

SMOKE = REPO_ROOT / "tests" / "smoke" / "smoke_tiny.yaml"


def push_parent(tmp_path, repo="acme/base", tag="v1", extra=()):
    return run_recipe(SMOKE, ["--trainer.default_root_dir", str(tmp_path / "parent"), "--zoo.repo_id", repo, "--zoo.tag", tag, *extra])


def test_parse_init_from():
    assert parse_init_from("acme/base@v1") == ("acme/base", "v1")
    assert parse_init_from("hf://acme/base") == ("hf://acme/base", None)
    with pytest.raises(ZooError, match="nothing after '@'"):
        parse_init_from("acme/base@")


def test_init_from_round_trip_records_lineage(tmp_path):
    parent = push_parent(tmp_path)
    # max_epochs 0: no training, so the child's weights must be the parent's exactly (a strict load)
    child = run_recipe(SMOKE, ["--trainer.default_root_dir", str(tmp_path / "c0"), "--trainer.max_epochs", "0",
                               "--zoo.init_from", "acme/base@v1", "--zoo.repo_id", "acme/child0", "--model.init_args.config.lr", "0.02"])
    assert child.module.config.lr == 0.02 and child.module.config.in_features == 4
    assert torch.equal(child.module.net.weight, parent.module.net.weight) and torch.equal(child.module.net.bias, parent.module.net.bias)

    trained = run_recipe(SMOKE, ["--trainer.default_root_dir", str(tmp_path / "c1"), "--trainer.max_epochs", "1",
                                 "--zoo.init_from", "acme/base@v1", "--zoo.repo_id", "acme/child"])
    assert trained.loaded_back_equal and not torch.equal(trained.module.net.weight, parent.module.net.weight)
    hub = LocalHub()
    card_path = hub.snapshot("acme/child") / "README.md"
    card = ModelCard.load(card_path)
    assert card.data.base_model == "acme/base" and card.data.base_model_relation == "finetune"
    assert card.data.base_model_revision == parent.commit_id == hub.resolve("acme/base", "v1")
    text = card_path.read_text()
    link = f"../../../../acme/base/snapshots/{parent.commit_id}/README.md"
    assert f"Started from the weights of [`acme/base`]({link})" in text
    assert (card_path.parent / link).resolve() == (hub.snapshot("acme/base") / "README.md").resolve()  # the link works
    # the parent column is this recipe's evaluation applied to the parent on the same test rows: its own test_mse
    row = f"| test_mse | {trained.metrics['test_mse']:.6g} | {parent.metrics['test_mse']:.6g} |"
    assert row in text and "| metric | this model | parent |" in text
    assert f"| init_from | `acme/base@{parent.commit_id}` |" in text


def test_parent_metrics_from_its_card(tmp_path):
    parent = push_parent(tmp_path)
    run_recipe(SMOKE, ["--trainer.default_root_dir", str(tmp_path / "c"), "--trainer.max_epochs", "1", "--zoo.init_from", "acme/base",
                       "--zoo.repo_id", "acme/child", "--zoo.parent_evaluation", "card"])
    text = (LocalHub().snapshot("acme/child") / "README.md").read_text()
    assert f"| {parent.metrics['test_mse']:.6g} |" in text and "parent column: taken from the parent's card" in text


def test_unsafe_override_is_refused_naming_the_field(tmp_path):
    push_parent(tmp_path)
    with pytest.raises(ZooError, match=r"SmokeConfig field\(s\) that a fine-tune may not change .*: in_features: 4 -> 5\. "
                                       r"A fine-tune may change \['lr'\]"):
        run_recipe(SMOKE, ["--trainer.default_root_dir", str(tmp_path / "c"), "--zoo.init_from", "acme/base",
                           "--model.init_args.config.in_features", "5"])
    with pytest.raises(ZooError, match=r"aux_outputs: 0 -> 2.*\['aux_outputs'\] only with zoo.init_new_keys"):
        run_recipe(SMOKE, ["--trainer.default_root_dir", str(tmp_path / "c"), "--zoo.init_from", "acme/base",
                           "--model.init_args.config.aux_outputs", "2"])


def test_new_head_is_a_listed_partial_load(tmp_path):
    parent = push_parent(tmp_path)
    child = run_recipe(SMOKE, ["--trainer.default_root_dir", str(tmp_path / "c"), "--trainer.max_epochs", "0", "--zoo.init_from", "acme/base",
                               "--model.init_args.config.aux_outputs", "2", "--zoo.init_new_keys", "[aux.*]", "--zoo.repo_id", "acme/aux"])
    assert torch.equal(child.module.net.weight, parent.module.net.weight)
    torch.manual_seed(0)  # the recipe's seed_everything: the head keeps the values it was initialised with
    fresh = zoo.create("smoke_regressor_tiny", aux_outputs=2)
    assert child.module.aux.weight.shape == (2, 4) and torch.equal(child.module.aux.weight, fresh.aux.weight)
    assert zoo.from_pretrained("acme/aux").config.aux_outputs == 2


def test_partial_load_names_every_missing_and_unexpected_key(tmp_path):
    push_parent(tmp_path)  # net.weight, net.bias
    parent = resolve_parent("acme/base")
    wider = zoo.create("smoke_mlp_tiny")  # net.0.*, net.2.*
    with pytest.raises(StrictLoadError) as error:
        load_parent_weights(wider, parent, ["net.0.*"])
    message = str(error.value)
    assert "missing keys ['net.2.bias', 'net.2.weight']" in message and "unexpected keys ['net.bias', 'net.weight']" in message
    assert "net.0.weight" not in message  # listed as new: allowed to be missing
    with pytest.raises(StrictLoadError, match=r"pattern\(s\) \['head.\*'\] match no key that is new"):
        load_parent_weights(zoo.create("smoke_regressor_tiny"), parent, ["head.*"])
    same = zoo.create("smoke_regressor_tiny")
    assert load_parent_weights(same, parent) == [] and torch.equal(same.net.weight, zoo.from_pretrained("acme/base").net.weight)


def test_config_differences_by_dotted_path():
    parent = {"a": 1, "net": {"lr": 0.1, "width": 8}, "students": [{"name": "x", "w": 1.0}]}
    child = {"a": 1, "net": {"lr": 0.2, "width": 8}, "students": [{"name": "x", "w": 2.0}, {"name": "y", "w": 1.0}]}
    assert config_differences(parent, child) == {
        "net.lr": (0.1, 0.2), "students.#": (1, 2), "students.0.w": (1.0, 2.0),
        "students.1.name": ("<absent>", "y"), "students.1.w": ("<absent>", 1.0),
    }


def test_init_from_an_hf_repo(tmp_path, server):
    parent = push_parent(tmp_path, repo="hf://acme/base")
    child = run_recipe(SMOKE, ["--trainer.default_root_dir", str(tmp_path / "c"), "--trainer.max_epochs", "0",
                               "--zoo.init_from", "hf://acme/base@v1", "--zoo.repo_id", "acme/local-child"])
    assert torch.equal(child.module.net.weight, parent.module.net.weight)
    card = ModelCard.load(LocalHub().snapshot("acme/local-child") / "README.md")
    assert card.data.base_model == "acme/base" and card.data.base_model_revision == parent.commit_id
    assert f"({server.endpoint}/acme/base/tree/{parent.commit_id})" in card.text
