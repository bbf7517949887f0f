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
import time
import warnings
from pathlib import Path
from typing import Any

from zoo._core.errors import ZooError

__all__ = ["RunResult", "ZOO_KEYS", "read_recipe", "run_recipe"]

ZOO_KEYS = {"preset", "evaluation", "repo_id", "tag", "commit_message", "hub", "dataset", "load_back"}


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
    if not spec:
        return {}
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    if spec in ("test", "validate"):
        results = getattr(trainer, spec)(model, datamodule=datamodule, verbose=False)
        return {k: float(v) for r in results for k, v in r.items()}
    module_name, _, func_name = spec.partition(":")
    if not func_name:
        raise ZooError(f"zoo.evaluation {spec!r} must be 'test', 'validate' or 'package.module:function'")
    metrics = getattr(importlib.import_module(module_name), func_name)(model, datamodule, trainer)
    return {str(k): float(v) for k, v in metrics.items()}


def run_recipe(recipe: str | Path, args: list[str] | None = None) -> RunResult:
    """Run a recipe in this process (see the module docstring); ``args`` are extra CLI arguments."""
    import torch
    from lightning.pytorch.cli import LightningCLI

    import zoo

    args = list(args or [])
    zoo_overrides, cli_args = _split_zoo_overrides(args)
    block, config = read_recipe(recipe)
    block.update(zoo_overrides)
    if block.get("repo_id"):  # a bad repo id or an existing tag fails now, not after the fit
        from zoo.hub import check_push_target

        check_push_target(block["repo_id"], tag=block.get("tag"), hub=block.get("hub"))
    _apply_preset(block, config)
    trainer_cfg = config.setdefault("trainer", {}) or {}
    config["trainer"] = trainer_cfg
    trainer_cfg.setdefault("default_root_dir", str(Path("zoo_runs") / Path(recipe).stem))

    import yaml

    with tempfile.TemporaryDirectory(prefix="zoo-recipe-") as tmp:
        stripped = Path(tmp) / Path(recipe).name
        stripped.write_text(yaml.safe_dump(config, sort_keys=False))
        started = time.perf_counter()
        with warnings.catch_warnings():
            # sys.argv must stay as it is (DDP's launcher re-runs it); LightningCLI warns that it is not `args`.
            warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
            cli = LightningCLI(
                args=["fit", "--config", str(stripped), *cli_args],
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"fit": {"description": f"zoo run {recipe}"}},
            )
    fit_seconds = time.perf_counter() - started
    trainer, module = cli.trainer, cli.model
    metrics = _evaluate(block.get("evaluation"), cli)
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
