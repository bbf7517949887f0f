"""The ``zoo`` command.

    zoo list [PATTERN]                   presets (from the static table; imports no method code)
    zoo run RECIPE.yaml [ARGS...]        LightningCLI fit + evaluation + push + load back (ARGS go to LightningCLI,
                                         e.g. --trainer.devices 2 --trainer.strategy ddp; --zoo.KEY VALUE edits the zoo block)
    zoo hub ls                           repos in the local hub
    zoo hub log REPO                     commits of a repo, newest first
    zoo hub tag REPO REV TAG             name a commit with an immutable tag
    zoo hub serve [--host H] [--port N] [--token-file F]
                                         the hub over HTTP for Hugging Face clients (writes need a token) and people
    zoo card REPO [--revision REV]       print a model card
    zoo pull REPO DIR [--revision REV]   copy a verified snapshot into DIR (atomically; a folder must be a path: ./x, /x)
    zoo convert CKPT DIR                 turn a trusted Lightning checkpoint of a ZooModule into a safetensors folder
    zoo reproduce REPO[@REV]             re-run the recipe a pushed commit records into a scratch hub, compare metrics

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


REPRODUCE_HELP = """Re-run the recipe a commit pushed by `zoo run` records (recipe, sha256, exact arguments, in its
zoo_run.json) into a scratch hub, then print the card's metrics and the new ones side by side.

Exits non-zero, naming the metric, when a metric differs by more than its tolerance
(|pushed - new| <= max(rtol * max(|pushed|, |new|), atol)), and before running anything when the recipe file
changed since the push (unless --allow-changed-recipe). Metrics named *seconds are wall-clock times: shown, not
compared, unless --tolerance names them. Run it from the folder the push ran in (recipe paths are relative)."""


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
    p = hub.add_parser("serve", help="serve the hub over HTTP: the Hugging Face API and web pages",
                       description="Serve the local hub to unmodified huggingface_hub clients (HF_ENDPOINT=URL) and "
                       "to browsers. Reads are open; writes (push, tag) need a bearer token from --token-file; "
                       "without one the server is read-only. Needs: pip install 'paperzoo[serve]'.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--token-file", default=None, help="file of write tokens, one per line (no file: read-only)")
    p.add_argument("--allow-remote", action="store_true", help="required to listen on an address other than loopback")
    p.add_argument("--max-commit-mb", type=int, default=2048, help="largest commit body accepted, in MB (default 2048)")

    p = sub.add_parser("card", help="print a model card")
    p.add_argument("repo", help="repo id, hf://org/name, or a folder path (./dir, /dir)")
    p.add_argument("--revision", default=None)

    p = sub.add_parser("pull", help="copy a verified snapshot into a folder")
    p.add_argument("repo")
    p.add_argument("dir")
    p.add_argument("--revision", default=None)

    p = sub.add_parser("convert", help="convert a trusted Lightning .ckpt of a ZooModule to safetensors")
    p.add_argument("checkpoint")
    p.add_argument("dir")

    from zoo.hub.reproduce import ATOL, RTOL

    p = sub.add_parser("reproduce", help="re-run the recipe a pushed commit records and compare the card's metrics",
                       description=REPRODUCE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="REPO[@REV]", help="org/name or hf://org/name, optionally @branch, @tag or @commit")
    p.add_argument("--rtol", type=float, default=RTOL, help=f"relative tolerance of every metric (default {RTOL:g})")
    p.add_argument("--atol", type=float, default=ATOL, help=f"absolute floor under which a difference passes (default {ATOL:g})")
    p.add_argument("--tolerance", action="append", default=[], metavar="METRIC=REL",
                   help="relative tolerance of one metric (repeatable); also makes a *seconds metric compared")
    p.add_argument("--allow-changed-recipe", action="store_true", help="re-run even if the recipe file changed since the push")
    p.add_argument("--recipe", default=None, help="the recipe's path now, if it moved since the push")
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
    if ns.command == "hub" and ns.hub_command == "serve":
        _local(ns.hub)  # refuses --hub hf
        try:
            from zoo.hub.server import serve
        except ImportError as error:
            raise ZooError(f"zoo hub serve needs the serve extra ({error.name} is missing): pip install 'paperzoo[serve]'") from None
        serve(ns.hub, host=ns.host, port=ns.port, token_file=ns.token_file, allow_remote=ns.allow_remote,
              max_commit_mb=ns.max_commit_mb)
        return 0
    if ns.command == "hub":
        local = _local(ns.hub)
        if ns.hub_command == "ls":
            local.check_exists()
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
        from zoo._core.files import check_model_folder, read_utf8
        from zoo.hub import snapshot_path
        from zoo.hub.repo_id import local_folder

        folder = snapshot_path(ns.repo, ns.revision, hub=ns.hub)
        if ns.command == "card":
            card = folder / "README.md"
            if not card.is_file():
                raise ZooError(f"{ns.repo} has no README.md")
            sys.stdout.write(read_utf8(card, "model card"))
            return 0
        if local_folder(ns.repo) is not None:  # a plain folder has no manifest: check it is a model before copying
            check_model_folder(folder)
        target = _pull(folder, Path(ns.dir))
        print(f"{ns.repo} -> {target}")
        return 0
    if ns.command == "reproduce":
        from zoo.hub.reproduce import ReproduceError, parse_tolerances, reproduce

        report = reproduce(ns.target, hub=ns.hub, rtol=ns.rtol, atol=ns.atol, tolerances=parse_tolerances(ns.tolerance),
                           allow_changed_recipe=ns.allow_changed_recipe, recipe=ns.recipe)
        changed = " (CHANGED since the push: --allow-changed-recipe)" if report.recipe_changed else ", unchanged since the push"
        print(f"{ns.target} = commit {report.commit_id}; recipe {report.recipe}{changed}")
        print(report.table())
        if not report.ok:
            bad = ", ".join(f"{c.name} (pushed {c.pushed!r}, re-run {c.new!r})" for c in report.mismatches)
            raise ReproduceError(f"{len(report.mismatches)} metric(s) did not reproduce: {bad}")
        print(f"zoo reproduce: all {sum(c.rtol is not None for c in report.checks)} compared metrics reproduce")
        return 0
    if ns.command == "convert":
        from zoo._core.serialization import convert_checkpoint

        print(convert_checkpoint(ns.checkpoint, ns.dir))
        return 0
    raise AssertionError(ns.command)


def _pull(folder: Path, target: Path) -> Path:
    """Copy ``folder`` to ``target`` atomically: into a temp folder beside it, renamed at the end, so a failure
    leaves no half-filled ``target``. ``target`` may be an empty folder; files get the modes the umask gives."""
    import tempfile

    from zoo._core.errors import ZooError
    from zoo._core.files import set_modes

    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ZooError(f"{target} exists and is not empty")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        shutil.copytree(folder, partial, dirs_exist_ok=True, copy_function=shutil.copyfile)
        set_modes(partial)
        if target.exists():
            target.rmdir()
        os.rename(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


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
