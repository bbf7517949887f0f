"""``zoo run RECIPE.yaml``: LightningCLI ``fit``, then the recipe's evaluation, then push and load back.

A recipe is a LightningCLI config (``seed_everything``, ``trainer``, ``model``, ``data``, ...) plus a top-level
``zoo:`` block that ``zoo run`` reads and strips before LightningCLI sees the rest:

.. code-block:: yaml

    zoo:
      preset: exfm_dcn_tiny     # optional: the model's class and config come from this preset;
                                # model.init_args.config in the recipe overrides single fields
      evaluation: test          # "test" | "validate" | "package.module:function" | null
      repo_id: paperzoo/exfm-dcn-tiny   # where to push (org/name, or hf://org/name); null = no push
      tag: null                 # optional immutable tag for the pushed commit
      dataset: ml-100k          # dataset name shown on the card
      init_from: null           # org/name[@rev] or hf://org/name[@rev]: start from a pushed model (zoo._core.finetune)
      init_new_keys: []         # with init_from: weights the recipe adds (glob patterns), left freshly initialised
      parent_evaluation: same   # with init_from: "same" (this recipe's evaluation on the parent too), "card", null
      checkpoint_every: null    # write <default_root_dir>/checkpoints/last.ckpt every N optimizer steps (resume:
                                # --ckpt_path last or a path; zoo._core.resume)

Command-line arguments after the recipe go to LightningCLI (``--trainer.devices 2 --trainer.strategy ddp``),
except ``--zoo.KEY VALUE``, which overrides the ``zoo:`` block. A ``package.module:function`` evaluation is
called as ``function(model, datamodule, trainer) -> dict[str, float]``. Under DDP every rank trains and
evaluates; only global rank 0 pushes, then loads the commit back and checks the weights are bit-identical.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import shlex
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from zoo._core.errors import ZooError

__all__ = ["RunResult", "ZOO_KEYS", "read_recipe", "run_recipe"]

ZOO_KEYS = {"preset", "evaluation", "repo_id", "tag", "commit_message", "hub", "dataset", "load_back",
            "init_from", "init_new_keys", "parent_evaluation", "checkpoint_every"}
DEFAULT_CHECKPOINT_EVERY = 100  # steps between checkpoints of a run resumed with --ckpt_path that set no zoo.checkpoint_every


@dataclasses.dataclass
class RunResult:
    """What ``run_recipe`` did: the trained module, measured metrics, and the commit it pushed (if any)."""

    module: Any
    metrics: dict[str, float]
    repo_id: str | None
    commit_id: str | None
    fit_seconds: float
    loaded_back_equal: bool | None
    is_global_zero: bool


def _split_zoo_overrides(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    import yaml

    zoo_overrides, rest, i = {}, [], 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--zoo."):
            key, eq, value = arg[len("--zoo."):].partition("=")
            if not eq:
                if i + 1 >= len(args):
                    raise ZooError(f"{arg} needs a value")
                value, i = args[i + 1], i + 1
            if key not in ZOO_KEYS:
                raise ZooError(f"unknown recipe key zoo.{key}; known: {sorted(ZOO_KEYS)}")
            zoo_overrides[key] = yaml.safe_load(value)
        else:
            rest.append(arg)
        i += 1
    return zoo_overrides, rest


def read_recipe(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(zoo block, LightningCLI config)`` of a recipe file; unknown zoo keys are an error."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ZooError(f"recipe {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ZooError(f"recipe {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ZooError(f"recipe {path} must be a YAML mapping")
    block = data.pop("zoo", None) or {}
    unknown = sorted(set(block) - ZOO_KEYS)
    if unknown:
        raise ZooError(f"recipe {path}: unknown key(s) {['zoo.' + k for k in unknown]}; known: {sorted(ZOO_KEYS)}")
    return block, data


def _apply_preset(block: dict[str, Any], config: dict[str, Any]) -> None:
    from zoo._core.config import config_to_dict
    from zoo._core.registry import model_class_for_config, preset_config

    preset = block.get("preset")
    if not preset:
        return
    model = config.get("model") or {}
    if model.get("class_path"):  # a preset outside the static table is registered by its class's module
        importlib.import_module(model["class_path"].rpartition(".")[0])
    preset_cfg = preset_config(preset)
    cls = model_class_for_config(preset_cfg)
    config["model"] = model
    dotted = f"{cls.__module__}.{cls.__qualname__}"
    if model.get("class_path") not in (None, dotted):
        raise ZooError(f"recipe model.class_path {model['class_path']!r} disagrees with preset {preset!r} ({dotted})")
    model["class_path"] = dotted
    init_args = model.setdefault("init_args", {}) or {}
    model["init_args"] = init_args
    init_args["config"] = {**config_to_dict(preset_cfg), **(init_args.get("config") or {})}


def _evaluate(spec: str | None, cli: Any) -> dict[str, float]:
    return _evaluate_model(spec, cli.model, cli.datamodule, cli.trainer)


def _evaluate_model(spec: str | None, model: Any, datamodule: Any, trainer: Any) -> dict[str, float]:
    if not spec:
        return {}
    if spec in ("test", "validate"):
        results = getattr(trainer, spec)(model, datamodule=datamodule, verbose=False)
        return {k: float(v) for r in results for k, v in r.items()}
    module_name, _, func_name = spec.partition(":")
    if not func_name:
        raise ZooError(f"zoo.evaluation {spec!r} must be 'test', 'validate' or 'package.module:function'")
    metrics = getattr(importlib.import_module(module_name), func_name)(model, datamodule, trainer)
    return {str(k): float(v) for k, v in metrics.items()}


def _apply_parent(block: dict[str, Any], config: dict[str, Any], parent: Any) -> None:
    """``zoo.init_from``: the model's class and config come from the parent; the recipe's
    ``model.init_args.config`` fields are laid over the parent's (nested dicts merged), and ``zoo.preset`` is not
    used. Whether the result may change those fields is checked once the model is built (``_before_fit``)."""
    model = config.get("model") or {}
    if model.get("class_path") not in (None, parent.class_path):
        raise ZooError(f"recipe model.class_path {model['class_path']!r} disagrees with zoo.init_from {parent.spec} "
                       f"({parent.class_path})")
    if model.get("class_path") is None:
        importlib.import_module(parent.class_path.rpartition(".")[0])
    model["class_path"] = parent.class_path
    init_args = model.get("init_args") or {}
    init_args["config"] = _merged(parent.config, init_args.get("config") or {})
    model["init_args"] = init_args
    config["model"] = model


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _resume_requested(config: dict[str, Any], cli_args: list[str]) -> bool:
    return bool(config.get("ckpt_path")) or any(a == "--ckpt_path" or a.startswith("--ckpt_path=") for a in cli_args)


def _cli_class() -> type:
    """LightningCLI that adds zoo's callbacks (fit clock, periodic checkpoints) and checkpoint writer to the trainer,
    and calls ``before_fit_hook(cli)`` once the model, data and trainer exist (every rank, before ``fit``)."""
    from lightning.fabric.plugins import CheckpointIO
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    from zoo._core.resume import AtomicCheckpointIO

    class ZooCLI(LightningCLI):
        def __init__(self, *args: Any, zoo_callbacks: list[Any] = (), checkpoint_every: int | None = None,
                     before_fit_hook: Any = None, **kwargs: Any) -> None:
            self.zoo_callbacks, self.checkpoint_every, self.before_fit_hook = list(zoo_callbacks), checkpoint_every, before_fit_hook
            super().__init__(*args, **kwargs)

        def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
            extra = list(self.zoo_callbacks)
            if self.checkpoint_every:
                root = Path(config.get("default_root_dir") or ".")
                extra.append(ModelCheckpoint(dirpath=root / "checkpoints", filename="{step}", every_n_train_steps=int(self.checkpoint_every),
                                             save_last=True, save_top_k=1))
                config["enable_checkpointing"] = True
            plugins = config.get("plugins")
            plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
            if not any(isinstance(p, CheckpointIO) for p in plugins):
                config["plugins"] = [*plugins, AtomicCheckpointIO()]
            return super()._instantiate_trainer(config, [*callbacks, *extra])

        def before_fit(self) -> None:
            if self.before_fit_hook is not None:
                self.before_fit_hook(self)

    return ZooCLI


def _before_fit(block: dict[str, Any], parent: Any, cli: Any) -> None:
    """Refuse data parallelism for methods that cannot use it; start from the parent's weights (``init_from``)."""
    model, trainer = cli.model, cli.trainer
    reason = getattr(type(model), "single_process_reason", None)
    if reason and trainer.world_size > 1:
        raise ZooError(f"{type(model).__name__} cannot train data-parallel ({trainer.world_size} processes asked): {reason}; "
                       "run it with --trainer.devices 1 --trainer.num_nodes 1")
    if parent is not None:
        from zoo._core.finetune import check_overrides, load_parent_weights

        new_keys = block.get("init_new_keys") or []
        if isinstance(new_keys, str):
            new_keys = [new_keys]
        check_overrides(parent, model.config, new_keys=new_keys)
        cli.zoo_fresh_keys = load_parent_weights(model, parent, new_keys)


def _parent_metrics(block: dict[str, Any], parent: Any, cli: Any) -> tuple[dict[str, float], str]:
    """The parent's numbers for the card: measured again by this recipe's evaluation on the same data ("same"),
    or as its own card reports them ("card")."""
    mode = block.get("parent_evaluation", "same")
    if mode in (None, "none", False):
        return {}, ""
    if mode == "card":
        return dict(parent.card_metrics), "taken from the parent's card (measured by the run that pushed it, on its own data)"
    if mode != "same":
        raise ZooError(f"zoo.parent_evaluation must be 'same', 'card' or null, got {mode!r}")
    metrics = _evaluate_model(block.get("evaluation"), parent.load(), cli.datamodule, cli.trainer)
    return metrics, "measured by this run's evaluation applied to the parent, on the same data"


def run_recipe(recipe: str | Path, args: list[str] | None = None) -> RunResult:
    """Run a recipe in this process (see the module docstring); ``args`` are extra CLI arguments."""
    import functools

    import torch

    import zoo
    from zoo._core.resume import FitClock

    args = list(args or [])
    zoo_overrides, cli_args = _split_zoo_overrides(args)
    block, config = read_recipe(recipe)
    block.update(zoo_overrides)
    if block.get("repo_id"):  # a bad repo id or an existing tag fails now, not after the fit
        from zoo.hub import check_push_target

        check_push_target(block["repo_id"], tag=block.get("tag"), hub=block.get("hub"))
    parent = None
    if block.get("init_from"):
        from zoo._core.finetune import resolve_parent

        parent = resolve_parent(str(block["init_from"]), hub=block.get("hub"))
        _apply_parent(block, config, parent)
    else:
        _apply_preset(block, config)
    trainer_cfg = config.setdefault("trainer", {}) or {}
    config["trainer"] = trainer_cfg
    trainer_cfg.setdefault("default_root_dir", str(Path("zoo_runs") / Path(recipe).stem))
    resume = _resume_requested(config, cli_args)
    checkpoint_every = block.get("checkpoint_every")
    if checkpoint_every is None and resume:
        checkpoint_every = DEFAULT_CHECKPOINT_EVERY
    if checkpoint_every is not None and (isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise ZooError(f"zoo.checkpoint_every must be a number of steps >= 1, got {checkpoint_every!r}")
    clock = FitClock()

    import yaml

    with tempfile.TemporaryDirectory(prefix="zoo-recipe-") as tmp:
        stripped = Path(tmp) / Path(recipe).name
        stripped.write_text(yaml.safe_dump(config, sort_keys=False))
        with warnings.catch_warnings():
            # sys.argv must stay as it is (DDP's launcher re-runs it); LightningCLI warns that it is not `args`.
            warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
            cli = _cli_class()(
                args=["fit", "--config", str(stripped), *cli_args],
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"fit": {"description": f"zoo run {recipe}"}},
                zoo_callbacks=[clock], checkpoint_every=checkpoint_every,
                before_fit_hook=functools.partial(_before_fit, block, parent),
            )
    fit_seconds = clock.seconds()  # the whole run's, across resumes
    trainer, module = cli.trainer, cli.model
    metrics = _evaluate(block.get("evaluation"), cli)
    if parent is not None:
        parent_metrics, source = _parent_metrics(block, parent, cli)
        module.card_lineage = parent.lineage(parent_metrics, source)
    repo_id, commit_id, equal = block.get("repo_id"), None, None
    if repo_id and trainer.is_global_zero:
        fit_cfg = cli.config.get("fit", cli.config)
        datamodule = cli.datamodule
        training = {
            "recipe": str(recipe),
            "command": "zoo run " + shlex.join([str(recipe), *args]),
            "seed": fit_cfg.get("seed_everything"),
            "data": type(datamodule).__qualname__ if datamodule is not None else None,
            "dataset": block.get("dataset"),
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "devices": f"{trainer.world_size} process(es), {type(trainer.accelerator).__name__}, {type(trainer.strategy).__name__}",
            "fit_seconds": round(fit_seconds, 2),
            "resumes": clock.resumes or None,
            "init_from": f"{parent.repo_id}@{parent.commit_id}" if parent is not None else None,
            "zoo_version": zoo.__version__,
            "torch_version": torch.__version__,
        }
        training = {k: v for k, v in training.items() if v is not None}
        from zoo.hub.reproduce import RUN_RECORD, run_record

        record = run_record(recipe, args, training)  # what `zoo reproduce` re-runs: the recipe, its sha256, the arguments
        training["recipe_sha256"] = record["recipe_sha256"]
        with tempfile.TemporaryDirectory(prefix="zoo-run-") as record_dir:
            (Path(record_dir) / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
            commit_id = module.push_to_hub(
                repo_id, commit_message=block.get("commit_message") or f"zoo run {recipe}", tag=block.get("tag"),
                metrics=metrics, training=training, hub=block.get("hub"), extra_files={RUN_RECORD: Path(record_dir) / RUN_RECORD},
            )
        if block.get("load_back", True):
            loaded = zoo.from_pretrained(repo_id, revision=commit_id, hub=block.get("hub"))
            ours = {k: v.detach().cpu() for k, v in module.state_dict().items()}
            theirs = loaded.state_dict()
            equal = ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
            if not equal:
                raise ZooError(f"{repo_id}@{commit_id} loaded back with different weights")
        print(
            f"zoo run: pushed {repo_id}@{commit_id}"
            + (f" (tag {block['tag']})" if block.get("tag") else "")
            + (f"; loaded back bit-identical" if equal else "")
            + (f"; metrics {metrics}" if metrics else ""),
            file=sys.stderr,
        )
    return RunResult(module, metrics, repo_id, commit_id, fit_seconds, equal, trainer.is_global_zero)
