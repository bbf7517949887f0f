"""``zoo reproduce REPO[@REV]``: re-run the recipe a pushed commit records and compare its metrics with the card's.

At push time ``zoo run`` ships ``zoo_run.json`` in the snapshot: the recipe path as given, the sha256 of the recipe
file, the exact arguments (LightningCLI and ``--zoo.KEY`` overrides) and the training record shown on the card.
``reproduce``

1. reads that record and the metrics of the card's ``model-index`` (what the card claims);
2. refuses, before running anything, if the recipe file's sha256 differs from the recorded one (unless
   ``allow_changed_recipe``): a changed recipe would measure something else;
3. runs ``zoo run RECIPE ARGS...`` in a child process, exactly as recorded, but into a scratch hub (a temp folder,
   never the user's hub: ``--zoo.hub`` and ``$ZOO_HUB`` point there, ``--zoo.repo_id`` drops any ``hf://``) with
   Lightning's logs under the same temp folder; a child process runs DDP recipes the way ``zoo run`` does;
4. compares each metric of the pushed card with the new card: ``|pushed - new| <= max(rtol * max(|pushed|, |new|),
   atol)``.

Defaults: ``rtol = 1e-6`` (a deterministic CPU fit reproduces to the last bit on the machine that pushed it; 1e-6
leaves room for another BLAS), ``atol = 1e-12`` (metrics that are zero up to rounding). A metric whose name ends in
``seconds`` is a wall-clock time: shown, not compared, unless a per-metric tolerance names it. A metric present on
one side only is a mismatch. Per-metric relative tolerances override the global one (``--tolerance NAME=REL``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from zoo._core.errors import ZooError

__all__ = ["ATOL", "RTOL", "RUN_RECORD", "MetricCheck", "ReproduceReport", "card_metrics", "parse_tolerances",
           "recipe_sha256", "reproduce", "run_record"]

RUN_RECORD = "zoo_run.json"
RTOL = 1e-6
ATOL = 1e-12
_TIMING_SUFFIX = "seconds"


class ReproduceError(ZooError):
    """A recipe that cannot be re-run as recorded (missing record, changed recipe) or metrics that differ."""


def recipe_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_record(recipe: str | Path, args: Sequence[str], training: Mapping[str, Any]) -> dict[str, Any]:
    """What ``zoo run`` ships as ``zoo_run.json``: enough to run the same command again and check the recipe."""
    return {
        "format": 1,
        "recipe": str(recipe),
        "recipe_sha256": recipe_sha256(recipe),
        "args": [str(a) for a in args],
        "command": training.get("command"),
        "training": dict(training),
    }


def card_metrics(card_path: Path) -> dict[str, float]:
    """``{metric: value}`` from the ``model-index`` of a card's front matter (what the card claims was measured)."""
    from huggingface_hub import ModelCard

    from zoo._core.files import read_utf8

    text = read_utf8(card_path, "model card")
    try:
        results = ModelCard(text).data.eval_results or []
    except Exception as error:  # malformed YAML or model-index
        raise ReproduceError(f"{card_path}: front matter cannot be read ({type(error).__name__}: {str(error).splitlines()[0]})") from None
    metrics = {}
    for result in results:
        value = result.metric_value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ReproduceError(f"{card_path}: metric {result.metric_type!r} has the non-numeric value {value!r}")
        metrics[str(result.metric_type)] = float(value)
    return metrics


def parse_tolerances(items: Sequence[str]) -> dict[str, float]:
    """``["test_mse=1e-3", ...]`` -> ``{"test_mse": 0.001}``; a malformed item is a one-line error."""
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        try:
            tolerance = float(value)
        except ValueError:
            tolerance = -1.0
        if not eq or not name or not (tolerance >= 0 and math.isfinite(tolerance)):
            raise ReproduceError(f"--tolerance {item!r} must be METRIC=REL with REL a number >= 0, e.g. test_mse=1e-4")
        out[name] = tolerance
    return out


@dataclasses.dataclass(frozen=True)
class MetricCheck:
    """One row of the comparison: the card's value, the re-run's, their relative difference and the verdict."""

    name: str
    pushed: float | None
    new: float | None
    rtol: float | None  # None: not compared (a wall-clock time)
    atol: float

    @property
    def rel_diff(self) -> float | None:
        if self.pushed is None or self.new is None:
            return None
        scale = max(abs(self.pushed), abs(self.new))
        return 0.0 if scale == 0 else abs(self.pushed - self.new) / scale

    @property
    def ok(self) -> bool:
        if self.rtol is None:
            return True
        if self.pushed is None or self.new is None:
            return False
        scale = max(abs(self.pushed), abs(self.new))
        return abs(self.pushed - self.new) <= max(self.rtol * scale, self.atol)

    @property
    def verdict(self) -> str:
        if self.rtol is None:
            return "not compared (wall-clock time)"
        if self.pushed is None or self.new is None:
            return "MISMATCH (missing in the " + ("pushed card" if self.pushed is None else "re-run") + ")"
        return "ok" if self.ok else "MISMATCH"


@dataclasses.dataclass
class ReproduceReport:
    """What ``reproduce`` found: the commit re-run, the recipe, and one ``MetricCheck`` per metric."""

    target: str
    commit_id: str
    recipe: str
    recipe_changed: bool
    checks: list[MetricCheck]

    @property
    def mismatches(self) -> list[MetricCheck]:
        return [c for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def table(self) -> str:
        """The card's metrics and the re-run's side by side, one metric a line."""
        def number(x: float | None) -> str:
            return "-" if x is None else repr(x)

        rows = [("metric", "pushed", "re-run", "rel diff", "rtol", "")]
        for c in self.checks:
            rel = c.rel_diff
            rows.append((c.name, number(c.pushed), number(c.new), "-" if rel is None else f"{rel:.2e}",
                         "-" if c.rtol is None else f"{c.rtol:g}", c.verdict))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:5], widths)) + "  " + r[5] for r in rows]
        return "\n".join(line.rstrip() for line in lines)


def _split_target(target: str) -> tuple[str, str | None]:
    """``org/name@rev`` -> ``("org/name", "rev")``; no ``@`` -> main."""
    repo, at, revision = target.rpartition("@")
    if not at:
        return target, None
    if not repo:
        raise ReproduceError(f"{target!r}: expected REPO[@REVISION], e.g. paperzoo/holevo-depolarizing-tiny@v1")
    return repo, revision


def _read_record(snapshot: Path, target: str) -> dict[str, Any]:
    from zoo._core.files import read_json_object

    path = snapshot / RUN_RECORD
    if not path.is_file():
        raise ReproduceError(f"{target} has no {RUN_RECORD}: it was not pushed by `zoo run` (or by a zoo older than "
                             "`zoo reproduce`), so there is no recorded recipe to re-run")
    record = read_json_object(path, "run record", ReproduceError)
    for key, kind in (("recipe", str), ("recipe_sha256", str), ("args", list)):
        if not isinstance(record.get(key), kind):
            raise ReproduceError(f"{path}: field {key!r} must be a {kind.__name__}, got {type(record.get(key)).__name__}")
    if not all(isinstance(a, str) for a in record["args"]):
        raise ReproduceError(f"{path}: field 'args' must hold strings only")
    return record


def _seed_parent(record: Mapping[str, Any], hub: str | Path | None, scratch_hub: Path) -> list[str]:
    """A fine-tuned model's parent, pinned to the commit the push started from and copied into the scratch hub
    (a local parent; an ``hf://`` parent is read from its endpoint as the push did); the extra run arguments."""
    spec = (record.get("training") or {}).get("init_from")
    if not spec:
        return []
    parent, _, commit = str(spec).rpartition("@")
    if not parent.startswith("hf://"):
        from zoo.hub import LocalHub

        source = LocalHub(hub) if hub is not None else LocalHub()
        try:
            LocalHub(scratch_hub).fetch_commit(source, parent, commit)
        except ZooError as error:
            raise ReproduceError(f"the parent {parent}@{commit} this model was fine-tuned from is needed to re-run it: {error}") from None
    return ["--zoo.init_from", f"{parent}@{commit}"]


def reproduce(
    target: str,
    *,
    hub: str | Path | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
    tolerances: Mapping[str, float] | None = None,
    allow_changed_recipe: bool = False,
    recipe: str | Path | None = None,
    echo: bool = True,
) -> ReproduceReport:
    """Re-run the recipe recorded by ``target`` (``REPO[@REV]``) into a scratch hub and compare metrics.

    Args:
        target: ``org/name`` or ``hf://org/name``, optionally ``@branch``, ``@tag`` or ``@commit``.
        hub: where ``target`` lives (default ``$ZOO_HUB``); the re-run never writes there.
        rtol, atol: the default relative tolerance and absolute floor (module docstring).
        tolerances: ``{metric: rtol}`` overriding ``rtol`` per metric (and making a time metric compared).
        allow_changed_recipe: re-run even if the recipe file's sha256 differs from the recorded one.
        recipe: the recipe's path now, if it is not where the push ran it from.
        echo: print the command run (its own output goes to this process's stdout and stderr).

    Returns:
        A ``ReproduceReport``; the caller decides what a mismatch means (the CLI exits non-zero).
    """
    from zoo.hub import LocalHub, snapshot_path
    from zoo.hub.repo_id import split_remote

    tolerances = dict(tolerances or {})
    repo, revision = _split_target(target)
    snapshot = snapshot_path(repo, revision, hub=hub)
    record = _read_record(snapshot, target)
    pushed = card_metrics(snapshot / "README.md")
    unknown = sorted(set(tolerances) - set(pushed))
    if unknown:
        raise ReproduceError(f"--tolerance names metric(s) {unknown} that the card of {target} does not report; it has {sorted(pushed)}")
    recipe_path = Path(recipe) if recipe is not None else Path(record["recipe"])
    if not recipe_path.is_file():
        raise ReproduceError(f"recipe {recipe_path} that {target} was pushed from is not here; run from the folder the push "
                             "ran in, or pass --recipe PATH")
    digest = recipe_sha256(recipe_path)
    changed = digest != record["recipe_sha256"]
    if changed and not allow_changed_recipe:
        raise ReproduceError(f"recipe {recipe_path} changed since {target} was pushed (sha256 {digest[:12]}..., pushed "
                             f"{record['recipe_sha256'][:12]}...); pass --allow-changed-recipe to re-run it anyway")
    _, bare = split_remote(repo, None if hub is None else str(hub))
    with tempfile.TemporaryDirectory(prefix="zoo-reproduce-") as scratch:
        scratch_hub = Path(scratch) / "hub"
        command = [sys.executable, "-m", "zoo", "run", str(recipe_path), *record["args"],
                   "--zoo.hub", str(scratch_hub), "--zoo.repo_id", bare,
                   "--trainer.default_root_dir", str(Path(scratch) / "runs")]
        command += _seed_parent(record, hub, scratch_hub)
        if echo:
            print("zoo reproduce: zoo run " + " ".join([str(recipe_path), *record["args"]]) + "   (into a scratch hub)",
                  file=sys.stderr, flush=True)
        env = {**os.environ, "ZOO_HUB": str(scratch_hub)}
        run = subprocess.run(command, env=env)
        if run.returncode != 0:
            raise ReproduceError(f"the re-run of {recipe_path} failed (exit {run.returncode}); its output is above")
        new_snapshot = LocalHub(scratch_hub).snapshot(bare)
        new = card_metrics(new_snapshot / "README.md")
    checks = []
    for name in [*pushed, *(k for k in new if k not in pushed)]:
        timing = name.endswith(_TIMING_SUFFIX) and name not in tolerances
        checks.append(MetricCheck(name, pushed.get(name), new.get(name), None if timing else tolerances.get(name, rtol), atol))
    return ReproduceReport(target, snapshot.name, str(recipe_path), changed, checks)
