"""The ``zoo`` command.

    zoo list [PATTERN]                   presets (from the static table; imports no method code)
    zoo run RECIPE.yaml [ARGS...]        LightningCLI fit + evaluation + push + load back (ARGS go to LightningCLI,
                                         e.g. --trainer.devices 2 --trainer.strategy ddp; --zoo.KEY VALUE edits the zoo block)
    zoo hub ls                           repos in the local hub
    zoo hub log REPO                     commits of a repo, newest first
    zoo hub tag REPO REV TAG             name a commit with an immutable tag
    zoo card REPO [--revision REV]       print a model card
    zoo pull REPO DIR [--revision REV]   copy a verified snapshot into DIR
    zoo convert CKPT DIR                 turn a trusted Lightning checkpoint of a ZooModule into a safetensors folder

Lightning 2.6 has no ``lightning run`` command (``fabric run`` launches Fabric scripts): ``zoo run`` fills that role.
Errors are printed as one line; set ZOO_TRACEBACK=1 to see the traceback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

__all__ = ["main"]

RUN_HELP = """Run a recipe: LightningCLI `fit`, then the recipe's evaluation, then push to the hub and load back.

Arguments after RECIPE go to LightningCLI (e.g. --trainer.devices 2 --trainer.strategy ddp
--model.init_args.config.hidden 16); `zoo run RECIPE --help` shows them all. --zoo.KEY VALUE edits the
recipe's zoo: block (preset, evaluation, repo_id, tag, commit_message, hub, dataset, load_back, init_from,
init_new_keys, parent_evaluation, checkpoint_every).

  zoo run RECIPE --zoo.init_from org/name[@rev]   start from a pushed model (hf://org/name for the Hugging Face Hub)
  zoo run RECIPE --ckpt_path last                 resume a killed run from <default_root_dir>/checkpoints/last.ckpt"""


def _parser() -> argparse.ArgumentParser:
    from zoo._core.registry import list_models

    parser = argparse.ArgumentParser(
        prog="zoo",
        epilog=f"{len(list_models())} model presets are registered; `zoo list` names them.",
        description="paperzoo: research methods as Lightning modules, recipes, and a versioned model hub. "
        "`zoo run` plays the role of the old `lightning run` (Lightning 2.6 has none).",
    )
    parser.add_argument("--hub", default=None, help="local hub folder (default $ZOO_HUB or ~/.cache/zoo/hub), or 'hf'")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list model presets")
    p.add_argument("pattern", nargs="?", default=None, help="glob, e.g. '*_tiny'")

    p = sub.add_parser("run", help="run a recipe: fit, evaluate, push, load back", description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="recipe YAML, e.g. recipes/<method>/<task>_tiny.yaml")
    p.add_argument("args", nargs=argparse.REMAINDER, help="LightningCLI arguments and --zoo.KEY VALUE overrides")

    hub = sub.add_parser("hub", help="inspect and tag the local hub").add_subparsers(dest="hub_command", metavar="ACTION", required=True)
    hub.add_parser("ls", help="list repos")
    p = hub.add_parser("log", help="commits of a repo, newest first")
    p.add_argument("repo")
    p.add_argument("--revision", default=None)
    p = hub.add_parser("tag", help="tag a revision (tags are immutable)")
    p.add_argument("repo")
    p.add_argument("revision")
    p.add_argument("tag")
    p.add_argument("-m", "--message", default=None)

    p = sub.add_parser("card", help="print a model card")
    p.add_argument("repo", help="repo id, hf://org/name, or a folder")
    p.add_argument("--revision", default=None)

    p = sub.add_parser("pull", help="copy a verified snapshot into a folder")
    p.add_argument("repo")
    p.add_argument("dir")
    p.add_argument("--revision", default=None)

    p = sub.add_parser("convert", help="convert a trusted Lightning .ckpt of a ZooModule to safetensors")
    p.add_argument("checkpoint")
    p.add_argument("dir")
    return parser


def _local(hub):
    from zoo.hub import LocalHub
    from zoo._core.errors import ZooError

    if (hub or os.environ.get("ZOO_HUB")) == "hf":
        raise ZooError("this command works on the local hub; for the Hugging Face Hub use its web page or `hf` CLI")
    return LocalHub(hub)


def _dispatch(ns: argparse.Namespace) -> int:
    from zoo._core.errors import ZooError

    if ns.command == "list":
        import zoo

        for name in zoo.list_models(ns.pattern):
            print(name)
        return 0
    if ns.command == "run":
        if os.getcwd() not in sys.path:  # like `python -m`: classes in the working directory are importable
            sys.path.insert(0, os.getcwd())
        from zoo._core.runner import run_recipe

        if ns.hub is not None:
            ns.args = [*ns.args, "--zoo.hub", ns.hub]
        run_recipe(ns.recipe, ns.args)
        return 0
    if ns.command == "hub":
        local = _local(ns.hub)
        if ns.hub_command == "ls":
            for repo in local.list_repos():
                refs = local.refs(repo)
                main = refs["branches"].get("main", "")
                tags = " ".join(sorted(refs["tags"]))
                print(f"{repo}\tmain={main[:12]}\t{len(local.log(repo)) if main else 0} commits\t{tags}")
            return 0
        if ns.hub_command == "log":
            refs = local.refs(ns.repo)
            names: dict[str, list[str]] = {}
            for kind in ("branches", "tags"):
                for name, commit in refs[kind].items():
                    names.setdefault(commit, []).append(name)
            for info in local.log(ns.repo, ns.revision):
                label = f" ({', '.join(sorted(names[info.commit_id]))})" if info.commit_id in names else ""
                print(f"{info.commit_id}{label}\t{info.iso_time}\t{info.message}")
            return 0
        if ns.hub_command == "tag":
            commit = local.tag(ns.repo, ns.revision, ns.tag, ns.message)
            print(f"{ns.repo}: tag {ns.tag} -> {commit}")
            return 0
    if ns.command in ("card", "pull"):
        from zoo.hub import snapshot_path

        folder = snapshot_path(ns.repo, ns.revision, hub=ns.hub)
        if ns.command == "card":
            card = folder / "README.md"
            if not card.is_file():
                raise ZooError(f"{ns.repo} has no README.md")
            sys.stdout.write(card.read_text())
            return 0
        target = Path(ns.dir)
        if target.exists() and any(target.iterdir()):
            raise ZooError(f"{target} exists and is not empty")
        shutil.copytree(folder, target, dirs_exist_ok=True)
        print(f"{ns.repo} -> {target}")
        return 0
    if ns.command == "convert":
        from zoo._core.serialization import convert_checkpoint

        print(convert_checkpoint(ns.checkpoint, ns.dir))
        return 0
    raise AssertionError(ns.command)


def main(argv: list[str] | None = None) -> int:
    from zoo._core.errors import ZooError

    ns = _parser().parse_args(argv)
    try:
        return _dispatch(ns)
    except (ZooError, ValueError, TypeError, OSError) as error:
        if os.environ.get("ZOO_TRACEBACK"):
            raise
        print(f"zoo: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
