"""``ZooModule``: a LightningModule built from one config dataclass, with hub methods.

Subclass it, name the config dataclass in ``config_class`` and build the network in ``__init__``::

    @dataclass
    class MyConfig:
        hidden: int = 64      # width of the hidden layer

    class MyModule(ZooModule):
        config_class = MyConfig
        card_template = "mymethod"          # hub_cards/mymethod.md

        def __init__(self, config: MyConfig | None = None):
            super().__init__(config)
            self.net = torch.nn.Linear(self.config.hidden, 1)

A config class may declare ``finetune_safe_fields`` (and ``finetune_head_fields``): the glob patterns of the fields
that a run started from a pushed model (``zoo.init_from``) may change; see ``zoo._core.finetune``.

The config is what ``config.json`` stores (with ``zoo_class`` naming the class), what Lightning's
``hparams`` hold (so ``load_from_checkpoint`` works), and what LightningCLI fills from a recipe.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any, ClassVar, Mapping

import lightning as L

from zoo._core.config import config_from_dict, config_to_dict
from zoo._core.registry import _register_class, class_path

__all__ = ["ZooModule"]


# True while ``from_pretrained`` builds a module whose weights it loads next: an ``__init__`` that computes an
# expensive starting point (a fit's data-driven start) may build a cheap one of the same shape instead.
_WEIGHTS_FOLLOW: contextvars.ContextVar[bool] = contextvars.ContextVar("zoo_weights_follow", default=False)


def weights_follow() -> bool:
    """Whether the module being built will have every weight overwritten by a strict load right after ``__init__``."""
    return _WEIGHTS_FOLLOW.get()


class ZooModule(L.LightningModule):
    """LightningModule + ``save_pretrained`` / ``push_to_hub`` / ``from_pretrained``."""

    config_class: ClassVar[type | None] = None
    card_template: ClassVar[str] = "_base"  # name of the card template in hub_cards/
    card_metadata: ClassVar[dict[str, Any]] = {}  # extra front matter (license, tags, datasets, arxiv ...)
    # Attribute holding a wrapped transformers model (e.g. "lm"): the saved folder then also opens with
    # transformers' AutoModel*.from_pretrained (its config.json and weight names, see zoo._core.serialization).
    transformers_submodule: ClassVar[str | None] = None
    # Why this method cannot train data-parallel (None = it can): `zoo run` refuses --trainer.devices > 1 with it
    # instead of silently training a different model on each rank.
    single_process_reason: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register_class(cls)

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        config_class = type(self).config_class
        if config_class is None:
            raise TypeError(f"{type(self).__name__} must set the class attribute config_class")
        if config is None:
            config = config_class()
        elif isinstance(config, Mapping):  # from load_from_checkpoint (hparams) or a plain dict
            config = config_from_dict(config_class, config)
        elif not isinstance(config, config_class):
            raise TypeError(f"{type(self).__name__} expects a {config_class.__name__} config, got {type(config).__name__}")
        reserved = [k for k in config_to_dict(config) if k.startswith("zoo_")]
        if reserved:
            raise TypeError(f"config fields {reserved} use the reserved prefix 'zoo_'")
        self.config = config
        self.hub_files: dict[str, Path] = {}  # plots / reports that save_pretrained ships beside the weights
        self.card_reports: dict[str, str] = {}  # {section title: markdown} measured by a run, printed in the card
        self.save_hyperparameters({"config": config_to_dict(config)})

    # -- hub ---------------------------------------------------------------------------------------
    def save_pretrained(
        self,
        save_directory: str | Path,
        *,
        metrics: Mapping[str, float] | None = None,
        training: Mapping[str, Any] | None = None,
        repo_id: str | None = None,
        extra_files: Mapping[str, str | Path] | None = None,
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``README.md`` (the model card) into a folder.

        Args:
            save_directory: folder to write (created if needed; these three files are replaced atomically).
            metrics: measured results for the card (name -> value); the card shows nothing else.
            training: how the weights were made (recipe, command, seed, data, time) for the card.
            repo_id: name shown on the card.
            extra_files: ``{file name: path}`` of plots or reports to ship too (besides ``self.hub_files``); the
                card shows PNG/SVG/JPG images and links the rest.
        """
        from zoo._core.serialization import save_pretrained

        return save_pretrained(self, save_directory, metrics=metrics, training=training, repo_id=repo_id, extra_files=extra_files)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        tag: str | None = None,
        metrics: Mapping[str, float] | None = None,
        training: Mapping[str, Any] | None = None,
        hub: str | None = None,
        branch: str = "main",
        extra_files: Mapping[str, str | Path] | None = None,
    ) -> str:
        """Commit this model to a hub repo and return the commit id (40 hex digits).

        ``repo_id`` is ``org/name`` for the local hub (``hub=`` or ``$ZOO_HUB`` picks the folder) or
        ``hf://org/name`` for the Hugging Face Hub (``$HF_ENDPOINT`` picks the server). ``tag`` names the new
        commit; tags are immutable.
        """
        from zoo.hub import push_module

        return push_module(
            self, repo_id, commit_message=commit_message, tag=tag, metrics=metrics, training=training, hub=hub, branch=branch,
            extra_files=extra_files,
        )

    @classmethod
    def from_pretrained(
        cls, repo_or_path: str | Path, revision: str | None = None, *, hub: str | None = None, map_location: str = "cpu",
        trust_remote_code: bool = False,
    ) -> "ZooModule":
        """Load a saved model (see ``zoo.from_pretrained``); it must be an instance of this class."""
        from zoo._core.serialization import from_pretrained

        return from_pretrained(repo_or_path, revision=revision, hub=hub, map_location=map_location, expected_class=cls,
                               trust_remote_code=trust_remote_code)

    # -- lightning hooks -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lets `zoo convert` rebuild the right class from a Lightning checkpoint.
        checkpoint["zoo_class"] = class_path(type(self))
        # LightningCLI parses a checkpoint's hyper-parameters as the model's init arguments when `--ckpt_path FILE`
        # is given (`zoo run RECIPE --ckpt_path FILE`); a subclass-mode model needs its class path there, which
        # `save_hyperparameters({"config": ...})` does not record (without it the parse fails).
        hparams = checkpoint.get("hyper_parameters")
        if isinstance(hparams, dict):
            hparams["_class_path"] = f"{type(self).__module__}.{type(self).__qualname__}"
