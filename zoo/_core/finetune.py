"""Start a run from a pushed model: ``zoo.init_from: org/name[@revision]`` (or ``hf://org/name[@revision]``).

What ``zoo run`` does with it (``zoo._core.runner``):

1. ``resolve_parent`` finds the snapshot (local hub, or the Hugging Face Hub for ``hf://``), its commit id, its
   ``config.json`` and the metrics in its card.
2. The module is built from the parent's class and config; the recipe's ``model.init_args.config`` and the
   command line (``--model.init_args.config.FIELD``) may change only what a fine-tune can safely change.
   ``check_overrides`` compares the built config with the parent's field by field (nested configs by dotted
   path, list items by index): a differing field must match a pattern of the config class's
   ``finetune_safe_fields`` (training hyper-parameters, data, regularisation; never shapes). Fields in
   ``finetune_head_fields`` (those that add a head) may change only in a run that lists its new weights in
   ``zoo.init_new_keys``. Anything else is a ``ZooError`` naming the field, both values and what may change.
3. ``load_parent_weights`` copies the parent's ``model.safetensors`` in strictly: every key, shape and dtype
   must match. With ``zoo.init_new_keys`` (glob patterns), the module's keys matching them are expected to be
   absent from the parent and keep their fresh initial values; any other missing key, any unexpected key, and
   any pattern that matches no new key is an error naming every such key.
4. ``Parent.lineage`` is what the card records: front matter ``base_model: org/name`` (the Hugging Face
   convention), ``base_model_revision: <commit>`` and ``base_model_relation: finetune``; the body links the parent
   and prints its metrics beside the child's.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from pathlib import Path
from typing import Any, Mapping

from zoo._core.errors import ZooError

__all__ = ["Parent", "check_overrides", "config_differences", "load_parent_weights", "parse_init_from", "resolve_parent"]

_COMMIT = re.compile(r"[0-9a-f]{40}")


def parse_init_from(spec: str) -> tuple[str, str | None]:
    """``"org/name@rev"`` -> ``("org/name", "rev")``; ``hf://`` is kept in the repo id."""
    if not isinstance(spec, str) or not spec.strip():
        raise ZooError(f"zoo.init_from must be 'org/name[@revision]' or 'hf://org/name[@revision]', got {spec!r}")
    repo, at, revision = spec.strip().partition("@")
    if at and not revision:
        raise ZooError(f"zoo.init_from {spec!r}: nothing after '@' (give a branch, tag or commit id)")
    return repo, (revision or None)


@dataclasses.dataclass
class Parent:
    """A pushed model a run starts from (see the module docstring)."""

    spec: str  # as given in the recipe or on the command line
    repo_id: str  # org/name, or hf://org/name
    revision: str | None  # as asked (None = main)
    commit_id: str  # the 40-hex commit the weights come from
    folder: Path  # the verified snapshot folder
    zoo_class: str  # "package.module:Class"
    config: dict[str, Any]  # config.json without the zoo_* keys
    card_metrics: dict[str, float]  # the metrics in the parent's card (model-index), as it measured them

    @property
    def class_path(self) -> str:
        """The class as LightningCLI names it (``package.module.Class``)."""
        module, _, qualname = self.zoo_class.partition(":")
        return f"{module}.{qualname}"

    @property
    def remote(self) -> bool:
        return self.repo_id.startswith("hf://")

    @property
    def bare_repo_id(self) -> str:
        return self.repo_id.removeprefix("hf://")

    def url(self) -> str:
        """Where a reader finds the parent: its Hub page at the commit, or its card in the local hub (a path
        relative to the child's snapshot folder ``<org>/<name>/snapshots/<commit>/``)."""
        if self.remote:
            endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
            return f"{endpoint}/{self.bare_repo_id}/tree/{self.commit_id}"
        return f"../../../../{self.bare_repo_id}/snapshots/{self.commit_id}/README.md"

    def load(self, map_location: str = "cpu") -> Any:
        """The parent module itself (strict load, eval mode)."""
        from zoo._core.serialization import load_folder

        return load_folder(self.folder, map_location=map_location)

    def lineage(self, metrics: Mapping[str, float] | None = None, metrics_source: str = "") -> dict[str, Any]:
        """What the child's card records about this parent (``module.card_lineage``)."""
        return {
            "base_model": self.bare_repo_id, "repo_id": self.repo_id, "revision": self.revision or "main",
            "commit_id": self.commit_id, "url": self.url(), "metrics": dict(metrics or {}), "metrics_source": metrics_source,
        }


def _card_metrics(card_path: Path) -> dict[str, float]:
    if not card_path.is_file():
        return {}
    from huggingface_hub import ModelCard

    data = ModelCard.load(card_path).data
    return {str(r.metric_type): float(r.metric_value) for r in (data.eval_results or []) if isinstance(r.metric_value, (int, float))}


def resolve_parent(spec: str, hub: str | None = None) -> Parent:
    """Find the parent named by ``spec`` (see ``parse_init_from``) and read its config and card."""
    from zoo.hub import snapshot_path

    repo, revision = parse_init_from(spec)
    if Path(repo).expanduser().is_dir():
        raise ZooError(f"zoo.init_from {spec!r} is a folder; give a hub repo (org/name[@rev] or hf://org/name[@rev]) so the "
                       "card can name the parent and its commit")
    folder = snapshot_path(repo, revision=revision, hub=hub)
    commit_id = folder.name
    if not _COMMIT.fullmatch(commit_id):
        raise ZooError(f"zoo.init_from {spec!r}: snapshot folder {folder} is not named by a commit id")
    from zoo._core.serialization import read_model_config

    zoo_class, config, _ = read_model_config(folder)
    return Parent(spec, repo, revision, commit_id, folder, zoo_class, config, _card_metrics(folder / "README.md"))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths of a JSON-like config: nested dicts by key, lists of dicts by index (``students.0.loss_weight``);
    a list of dicts also records its length (``students.#``), other lists are single values."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        out = {f"{prefix}#": len(value)}
        for i, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: value}


def config_differences(parent: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{dotted field: (parent value, child value)}`` for every field that differs (``<absent>`` if missing)."""
    a, b = _flatten(dict(parent)), _flatten(dict(child))
    absent = "<absent>"
    return {k: (a.get(k, absent), b.get(k, absent)) for k in sorted(set(a) | set(b)) if a.get(k, absent) != b.get(k, absent)}


def check_overrides(parent: Parent, config: Any, *, new_keys: list[str] | None = None) -> list[str]:
    """Refuse a config that changes a field a fine-tune may not change; return the changed fields.

    The parent's config is first rebuilt through the same dataclass (so fields added since it was pushed take
    their defaults on both sides), then compared with ``config`` by dotted path.
    """
    from zoo._core.config import config_from_dict, config_to_dict

    cls = type(config)
    try:
        parent_config = config_to_dict(config_from_dict(cls, parent.config))
    except (TypeError, ValueError) as error:
        raise ZooError(f"zoo.init_from {parent.spec}: its config.json does not build a {cls.__name__}: {error}") from None
    differences = config_differences(parent_config, config_to_dict(config))
    safe = tuple(getattr(cls, "finetune_safe_fields", ()))
    heads = tuple(getattr(cls, "finetune_head_fields", ())) if new_keys else ()
    bad = [k for k in differences if not any(fnmatch.fnmatchcase(k, p) for p in (*safe, *heads))]
    if bad:
        shown = "; ".join(f"{k}: {differences[k][0]!r} -> {differences[k][1]!r}" for k in bad)
        head_note = ""
        if getattr(cls, "finetune_head_fields", ()) and not new_keys:
            head_note = f"; {list(cls.finetune_head_fields)} only with zoo.init_new_keys listing the new head's weights"
        raise ZooError(f"zoo.init_from {parent.spec}: {cls.__name__} field(s) that a fine-tune may not change (they set the "
                       f"architecture or what the weights mean): {shown}. A fine-tune may change {list(safe) or 'nothing'}"
                       f" ({cls.__name__}.finetune_safe_fields){head_note}")
    return list(differences)


def load_parent_weights(module: Any, parent: Parent, new_keys: list[str] | None = None) -> list[str]:
    """Copy the parent's weights into ``module`` (see the module docstring); return the keys left fresh."""
    from zoo._core.serialization import WEIGHTS_NAME, load_weights

    return load_weights(module, parent.folder / WEIGHTS_NAME, new_keys=[str(p) for p in (new_keys or [])],
                        context=f"zoo.init_from {parent.spec}: the parent's weights")
