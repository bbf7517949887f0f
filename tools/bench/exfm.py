"""ExFM ablation on streaming CTR data: VM alone, + plain distillation, + Auxiliary Head, + AH + Student Adapter,
and the FM itself, at staleness k in {0, 1, 2}, over several seeds with paired differences.

Protocol (our choices):
- Progressive validation: every window is scored before any model trains on it; metrics are averaged over
  windows >= the preset's ``evaluation_start_window``. NE uses the evaluated rows' own positive rate.
- One stream run trains the FM once and every student side by side (the FM is shared, as in ExFM).
- Equal tuning budget: on a separate tuning seed, the FM's learning rate is tuned first (lowest FM NE averaged
  over the verticals) and then shared by every arm; then every arm is run at every learning rate of the same
  grid (staleness k = 1) and keeps the rate with the lowest NE averaged over the verticals. If any arm's (or the
  FM's) best rate is at an edge of its grid, the grid is extended by one factor-2 step on that side for every
  arm and the new rate is run for every arm (at most ``--extend-edges`` times), so no arm is cut off by the grid.
- Bayes ceiling (synthetic only): the NE of the logged ``true_probability``, on the same rows and windows; the
  gap between it and VM alone is the most any method could gain.
- Evaluation seeds: each seed changes the stream (synthetic) and the initial weights and shuffles; all arms see the
  same data and order, so differences to "VM alone" are paired per (seed, vertical).
- Transfer ratio = (NE_alone - NE_arm) / (NE_alone - NE_FM), from the seed-averaged NEs, when NE_FM < NE_alone.

    python tools/bench/exfm.py                                   # synthetic + ML-100K (if found), writes benchmarks/exfm.{json,md}
    python tools/bench/exfm.py --datasets synthetic                # the synthetic section only (others kept)
    python tools/bench/exfm.py --scale --scale-rows 10000000       # FM + 4 VMs with DAS on a 10M-row stream (rows/s, peak RSS)
    python tools/bench/exfm.py --das-cost                          # DAS (FM scores each row once) vs one FM pass per VM
    python tools/bench/exfm.py --heldout --seeds 0 1 2              # train / valid / test on held-out windows (others kept)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ARMS = (("alone", "none"), ("distill", "plain"), ("ah", "auxiliary_head"), ("ah_sa", "auxiliary_head_adapter"))
PRESETS = {"synthetic": "exfm_synthetic", "ml100k": "exfm_ml100k"}


def load_windows(dataset: str, seed: int, args: argparse.Namespace) -> list[Any]:
    from zoo.exfm.data import load_movielens_100k, make_synthetic_stream

    if dataset == "ml100k":
        return load_movielens_100k(n_windows=args.ml100k_windows)
    return list(make_synthetic_stream(args.rows, args.windows, args.drift, seed, users_active=args.users, items_active=args.items))


def run_stream(dataset: str, seed: int, students: tuple[Any, ...], args: argparse.Namespace,
               foundation_lr: float | None = None) -> tuple[dict[str, float], float]:
    import dataclasses

    from zoo._core.registry import preset_config
    from zoo.exfm import ExFMSystem, StreamingTrainer

    config = preset_config(PRESETS[dataset], students=students, serving_students=(), seed=seed)
    if foundation_lr or getattr(args, "foundation_lr", None):
        config.foundation = dataclasses.replace(config.foundation, learning_rate=foundation_lr or args.foundation_lr)
    windows = load_windows(dataset, seed, args)
    started = time.perf_counter()
    system = ExFMSystem(config)
    trainer = StreamingTrainer(system, progress=args.progress)
    trainer.run(windows)
    summary = trainer.summary()
    if dataset == "synthetic":
        summary.update(bayes_ceiling(system, windows, config.evaluation_start_window))
    return summary, time.perf_counter() - started


def bayes_ceiling(system: Any, windows: list[Any], start: int) -> dict[str, float]:
    """NE / AUC of the logged true click probability per vertical, averaged over the evaluated windows like the
    models' metrics (the best NE any model could reach on those rows, up to label noise)."""
    import numpy as np

    from zoo.exfm.metrics import window_metrics

    out: dict[str, list[float]] = {}
    for t, table in enumerate(windows):
        if t < start:
            continue
        p = np.clip(table["true_probability"].to_numpy(), 1e-12, 1 - 1e-12)
        y = table["label"].to_numpy()
        for v, mask in system.memberships(table).items():
            if mask.any():
                m = window_metrics(y[mask], np.log(p[mask]) - np.log1p(-p[mask]))
                out.setdefault(f"bayes/{v}/ne", []).append(m["ne"])
                out.setdefault(f"bayes/{v}/auc", []).append(m["auc"])
            out.setdefault(f"share/{v}", []).append(float(mask.mean()))
    return {k: float(np.mean(v)) for k, v in out.items()}


def verticals(dataset: str) -> list[str]:
    from zoo._core.registry import preset_config

    return [v.name for v in preset_config(PRESETS[dataset]).verticals]


def edge_extension(grid: list[float], best: list[float]) -> list[float]:
    """Rates to add when a best rate sits at an edge of the (sorted) grid: one factor-2 step beyond that edge."""
    new = []
    if any(b == grid[0] for b in best):
        new.append(grid[0] / 2)
    if any(b == grid[-1] for b in best):
        new.append(grid[-1] * 2)
    return new


def tune_foundation(dataset: str, args: argparse.Namespace) -> dict[str, Any]:
    """The FM's learning rate: lowest NE over the verticals on the tuning seed (shared by every arm, so fair)."""
    from zoo.exfm import StudentSpec

    students = tuple(StudentSpec(f"{v}_alone", v, "none") for v in verticals(dataset))
    ne: dict[float, float] = {}
    todo, extensions = sorted(args.fm_lr_grid), 0
    while todo:
        for lr in todo:
            summary, seconds = run_stream(dataset, args.tune_seed, students, args, foundation_lr=lr)
            ne[lr] = statistics.mean(summary[f"foundation/{v}/ne"] for v in verticals(dataset))
            print(f"[{dataset}] FM lr {lr:g}: NE {ne[lr]:.4f} ({seconds:.0f} s)", file=sys.stderr)
        grid = sorted(ne)
        best = min(grid, key=ne.__getitem__)
        todo = edge_extension(grid, [best]) if extensions < args.extend_edges else []
        extensions += bool(todo)
    args.foundation_lr = best
    return {"seed": args.tune_seed, "initial_lr_grid": sorted(args.fm_lr_grid), "lr_grid": grid,
            "mean_ne_per_lr": [ne[lr] for lr in grid], "best_lr": best, "best_at_edge": best in (grid[0], grid[-1])}


def tune(dataset: str, args: argparse.Namespace) -> tuple[dict[str, float], dict[str, Any]]:
    from zoo.exfm import StudentSpec

    ne: dict[str, dict[float, float]] = {arm: {} for arm, _ in ARMS}
    todo, extensions, seconds = sorted(args.lr_grid), 0, 0.0
    while todo:
        students = tuple(
            StudentSpec(f"{v}_{arm}_lr{i}", v, mode, staleness=1, learning_rate=lr)
            for v in verticals(dataset) for arm, mode in ARMS for i, lr in enumerate(todo)
        )
        summary, took = run_stream(dataset, args.tune_seed, students, args)
        seconds += took
        for arm, _ in ARMS:
            for i, lr in enumerate(todo):
                ne[arm][lr] = statistics.mean(summary[f"{v}_{arm}_lr{i}/ne"] for v in verticals(dataset))
        grid = sorted(ne["alone"])
        best = {arm: min(grid, key=ne[arm].__getitem__) for arm, _ in ARMS}
        print(f"[{dataset}] tuning seed {args.tune_seed} ({took:.0f} s): lr {todo} -> best so far {best}", file=sys.stderr)
        todo = edge_extension(grid, list(best.values())) if extensions < args.extend_edges else []
        extensions += bool(todo)
    table = {arm: [ne[arm][lr] for lr in grid] for arm in ne}
    at_edge = {arm: lr in (grid[0], grid[-1]) for arm, lr in best.items()}
    return best, {"seed": args.tune_seed, "initial_lr_grid": sorted(args.lr_grid), "lr_grid": grid, "mean_ne_per_lr": table,
                  "best_lr": best, "best_at_edge": at_edge, "seconds": seconds}


def evaluate(dataset: str, best: dict[str, float], args: argparse.Namespace) -> dict[str, Any]:
    from zoo.exfm import StudentSpec

    students = []
    for v in verticals(dataset):
        students.append(StudentSpec(f"{v}_alone", v, "none", learning_rate=best["alone"]))
        for arm, mode in ARMS[1:]:
            for k in args.staleness:
                students.append(StudentSpec(f"{v}_{arm}_k{k}", v, mode, staleness=k, learning_rate=best[arm]))
    runs = []
    for seed in args.seeds:
        summary, seconds = run_stream(dataset, seed, tuple(students), args)
        runs.append({"seed": seed, "seconds": seconds, "metrics": summary})
        print(f"[{dataset}] seed {seed}: {seconds:.0f} s", file=sys.stderr)
    return {"students": [s.name for s in students], "runs": runs}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(dataset: str, result: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    runs = [r["metrics"] for r in result["runs"]]
    for v in verticals(dataset):
        fm_ne = mean_std([m[f"foundation/{v}/ne"] for m in runs])
        fm_auc = mean_std([m[f"foundation/{v}/auc"] for m in runs])
        alone = [m[f"{v}_alone/ne"] for m in runs]
        if f"bayes/{v}/ne" in runs[0]:
            rows.append({"vertical": v, "arm": "Bayes (true p)", "k": None, "ne": mean_std([m[f"bayes/{v}/ne"] for m in runs]),
                         "auc": mean_std([m[f"bayes/{v}/auc"] for m in runs]), "d_ne": None, "wins": None, "transfer": None})
        rows.append({"vertical": v, "arm": "FM (teacher)", "k": None, "ne": fm_ne, "auc": fm_auc, "d_ne": None, "wins": None, "transfer": None})
        entries = [("alone", None, f"{v}_alone")] + [(arm, k, f"{v}_{arm}_k{k}") for arm, _ in ARMS[1:] for k in args.staleness]
        for arm, k, name in entries:
            ne = [m[f"{name}/ne"] for m in runs]
            diff = [a - b for a, b in zip(ne, alone)]  # paired: same seed, same data
            transfer = None
            if arm != "alone" and fm_ne[0] < statistics.mean(alone):
                transfer = (statistics.mean(alone) - statistics.mean(ne)) / (statistics.mean(alone) - fm_ne[0])
            rows.append({
                "vertical": v, "arm": arm, "k": k, "ne": mean_std(ne), "auc": mean_std([m[f"{name}/auc"] for m in runs]),
                "d_ne": mean_std(diff) if arm != "alone" else None, "wins": sum(d < 0 for d in diff) if arm != "alone" else None,
                "transfer": transfer,
            })
    return rows


def pooled(rows: list[dict[str, Any]], meta: dict[str, Any], staleness: list[int]) -> list[dict[str, Any]]:
    """Per (arm, k), pooled over the verticals: ΔNE per seed averaged over verticals (mean ± std over seeds),
    seeds better, (seed, vertical) pairs better, and the pooled transfer ratio sum(NE_alone - NE_arm) / sum(NE_alone - NE_FM)."""
    runs = [r["metrics"] for r in meta["evaluation"]["runs"]]
    names = sorted({r["vertical"] for r in rows}, key=[r["vertical"] for r in rows].index)
    out = []
    for arm, _ in ARMS[1:]:
        for k in staleness:
            per_seed = [statistics.mean(m[f"{v}_{arm}_k{k}/ne"] - m[f"{v}_alone/ne"] for v in names) for m in runs]
            pairs = [m[f"{v}_{arm}_k{k}/ne"] - m[f"{v}_alone/ne"] for m in runs for v in names]
            gap = sum(statistics.mean(m[f"{v}_alone/ne"] - m[f"foundation/{v}/ne"] for m in runs) for v in names)
            gain = -sum(statistics.mean(m[f"{v}_{arm}_k{k}/ne"] - m[f"{v}_alone/ne"] for m in runs) for v in names)
            out.append({"arm": arm, "k": k, "d_ne": mean_std(per_seed), "seeds_better": sum(d < 0 for d in per_seed),
                        "pairs_better": sum(d < 0 for d in pairs), "pairs": len(pairs), "transfer": gain / gap if gap > 0 else None})
    return out


def markdown(dataset: str, rows: list[dict[str, Any]], meta: dict[str, Any], seeds: list[int]) -> str:
    tuning, foundation = meta["tuning"], meta["tuning"].get("foundation")

    def grid_text(t: dict[str, Any]) -> str:
        initial = t.get("initial_lr_grid", t["lr_grid"])
        added = [lr for lr in t["lr_grid"] if lr not in initial]
        return f"grid {initial}" + (f", extended at the edges by {added}" if added else "")

    edge = [a for a, e in tuning.get("best_at_edge", {}).items() if e] + (["FM"] if foundation and foundation.get("best_at_edge") else [])
    lines = [f"### {dataset}", "", meta["description"], "", *([meta["note"], ""] if meta.get("note") else []),
             (f"FM learning rate tuned first ({grid_text(foundation)}; seed {foundation['seed']}): {foundation['best_lr']:g}, "
              "shared by all arms. " if foundation else "")
             + f"VM learning rate per arm (same {grid_text(tuning)} for every arm; tuning seed {tuning['seed']}, k = 1): "
             + ", ".join(f"{a} {lr:g}" for a, lr in tuning["best_lr"].items()) + "."
             + (f" Best rate still at a grid edge: {', '.join(edge)}." if edge else
                (" No best rate is at an edge of its grid." if "best_at_edge" in tuning else "")), ""]
    if "best_at_edge" in tuning:
        lines += ["Tuning NE (mean over verticals, seed %d) per learning rate:" % tuning["seed"], "",
                  "| arm | " + " | ".join(f"{lr:g}" for lr in tuning["lr_grid"]) + " |", "|---|" + "---|" * len(tuning["lr_grid"])]
        lines += [f"| {arm} | " + " | ".join(f"{x:.4f}" for x in ne) + " |" for arm, ne in tuning["mean_ne_per_lr"].items()]
        if foundation:
            lines += ["", "| FM lr | " + " | ".join(f"{lr:g}" for lr in foundation["lr_grid"]) + " |", "|---|" + "---|" * len(foundation["lr_grid"]),
                      "| FM NE | " + " | ".join(f"{x:.4f}" for x in foundation["mean_ne_per_lr"]) + " |"]
        lines.append("")
    if meta.get("pooled"):
        n_seeds = len(seeds)
        lines += [f"Pooled over the verticals (ΔNE per seed = mean over verticals of NE_arm - NE_alone; mean ± std over {n_seeds} seeds):", "",
                  "| arm | k | ΔNE vs alone | seeds better | (seed, vertical) pairs better | pooled transfer ratio |", "|---|---|---|---|---|---|"]
        for r in meta["pooled"]:
            transfer = "" if r["transfer"] is None else f"{r['transfer']:.2f}"
            lines.append(f"| {r['arm']} | {r['k']} | {r['d_ne'][0]:+.4f} ± {r['d_ne'][1]:.4f} | {r['seeds_better']}/{n_seeds} | "
                         f"{r['pairs_better']}/{r['pairs']} | {transfer} |")
        lines += ["", "Arm against arm (same pooling; < 0: the first arm is better):", "",
                  "| comparison | k | ΔNE | seeds better | (seed, vertical) pairs better |", "|---|---|---|---|---|"]
        runs = [run["metrics"] for run in meta["evaluation"]["runs"]]
        names = sorted({r["vertical"] for r in rows}, key=[r["vertical"] for r in rows].index)
        for first, second in (("ah", "distill"), ("ah_sa", "ah")):
            for k in sorted({r["k"] for r in meta["pooled"]}):
                per_seed = [statistics.mean(m[f"{v}_{first}_k{k}/ne"] - m[f"{v}_{second}_k{k}/ne"] for v in names) for m in runs]
                pairs = [m[f"{v}_{first}_k{k}/ne"] - m[f"{v}_{second}_k{k}/ne"] for m in runs for v in names]
                d = mean_std(per_seed)
                lines.append(f"| {first} - {second} | {k} | {d[0]:+.4f} ± {d[1]:.4f} | {sum(x < 0 for x in per_seed)}/{n_seeds} | "
                             f"{sum(x < 0 for x in pairs)}/{len(pairs)} |")
        lines.append("")
    lines += [f"| vertical | arm | k | NE (mean ± std, {len(seeds)} seeds) | AUC | log loss | ΔNE vs alone (paired) | seeds better | transfer ratio |",
              "|---|---|---|---|---|---|---|---|---|"]
    runs = [run["metrics"] for run in meta["evaluation"]["runs"]]
    for r in rows:
        k = "-" if r["k"] is None else str(r["k"])
        d = "" if r["d_ne"] is None else f"{r['d_ne'][0]:+.4f} ± {r['d_ne'][1]:.4f}"
        wins = "" if r["wins"] is None else f"{r['wins']}/{len(seeds)}"
        transfer = "" if r["transfer"] is None else f"{r['transfer']:.2f}"
        # log loss from the stored runs (the same progressive-validation rows as NE and AUC)
        name = {"Bayes (true p)": f"bayes/{r['vertical']}", "FM (teacher)": f"foundation/{r['vertical']}",
                "alone": f"{r['vertical']}_alone"}.get(r["arm"], f"{r['vertical']}_{r['arm']}_k{r['k']}")
        losses = [m[f"{name}/logloss"] for m in runs if f"{name}/logloss" in m]
        loss = f"{mean_std(losses)[0]:.4f} ± {mean_std(losses)[1]:.4f}" if len(losses) == len(runs) else "-"
        lines.append(f"| {r['vertical']} | {r['arm']} | {k} | {r['ne'][0]:.4f} ± {r['ne'][1]:.4f} | {r['auc'][0]:.4f} ± {r['auc'][1]:.4f} | "
                     f"{loss} | {d} | {wins} | {transfer} |")
    das = [run["metrics"] for run in meta["evaluation"]["runs"]]
    lines += ["", f"DAS: the FM scored {int(das[0]['das/fm_calls'])} rows per run; calling it per (vertical, staleness) "
              f"would have scored {int(das[0]['das/naive_calls'])}.", ""]
    return "\n".join(lines)


# -- size sweep: the ablation at several stream sizes ---------------------------------------------------------------
def sweep_students() -> tuple[Any, ...]:
    """The ablation's students (every arm at every k in {0, 1, 2}) at the learning rates of preset
    ``exfm_synthetic`` (tuned at 240k rows on seed 100; the same for every arm), not re-tuned per size."""
    from zoo._core.registry import preset_config
    from zoo.exfm import StudentSpec

    lr = preset_config("exfm_synthetic").student.learning_rate
    out = []
    for v in verticals("synthetic"):
        out.append(StudentSpec(f"{v}_alone", v, "none", learning_rate=lr))
        out += [StudentSpec(f"{v}_{arm}_k{k}", v, mode, staleness=k, learning_rate=lr) for arm, mode in ARMS[1:] for k in (0, 1, 2)]
    return tuple(out)


def size_sweep_run(args: argparse.Namespace) -> None:
    """One file per (rows, seed) in ``--sweep-dir`` (existing files are kept, so runs can be split across processes)."""
    import torch

    torch.set_num_threads(args.threads)
    args.foundation_lr = None  # the preset's FM rate
    args.sweep_dir.mkdir(parents=True, exist_ok=True)
    for rows in args.sizes:
        for seed in args.seeds:
            path = args.sweep_dir / f"rows{rows}_seed{seed}.json"
            if path.exists():
                continue
            args.rows = rows
            summary, seconds = run_stream("synthetic", seed, sweep_students(), args)
            path.write_text(json.dumps({"rows": rows, "seed": seed, "seconds": seconds, "windows": args.windows, "drift": args.drift,
                                        "users": args.users, "items": args.items, "metrics": summary}))
            print(f"[sweep] {rows} rows, seed {seed}: {seconds:.0f} s", file=sys.stderr)


def size_sweep_collect(args: argparse.Namespace, report: dict[str, Any]) -> dict[str, Any]:
    """Pool the sweep files per size; the committed ablation's runs count for their size when its protocol matches
    (same stream shape, and its tuned rates equal the preset's, which is what the sweep runs use)."""
    from zoo._core.registry import preset_config

    runs: dict[int, list[dict[str, Any]]] = {}
    for path in sorted(args.sweep_dir.glob("rows*_seed*.json")):
        run = json.loads(path.read_text())
        if (run["windows"], run["drift"], run["users"], run["items"]) != (args.windows, args.drift, args.users, args.items):
            raise SystemExit(f"{path}: another stream shape than --windows/--drift/--users/--items")
        runs.setdefault(run["rows"], []).append({"seed": run["seed"], "seconds": run["seconds"], "metrics": run["metrics"], "source": "sweep"})
    committed = report.get("datasets", {}).get("synthetic")
    sources = {}
    if committed:
        preset = preset_config("exfm_synthetic")
        best = committed["tuning"]["best_lr"]
        fm_lr = (committed["tuning"].get("foundation") or {}).get("best_lr", preset.foundation.learning_rate)
        same = (all(lr == preset.student.learning_rate for lr in best.values()) and fm_lr == preset.foundation.learning_rate
                and "--windows" not in committed["command"] and "--rows" not in committed["command"])
        if same:
            size = 240_000  # the bench's default stream (tools/bench/exfm.py --datasets synthetic)
            seen = {r["seed"] for r in runs.get(size, [])}
            runs.setdefault(size, []).extend({"seed": r["seed"], "seconds": r["seconds"], "metrics": r["metrics"], "source": "ablation"}
                                             for r in committed["evaluation"]["runs"] if r["seed"] not in seen)
            sources[size] = f"the ablation above (`{committed['command']}`)"
    sizes = {}
    for size in sorted(runs):
        evaluation = {"runs": sorted(runs[size], key=lambda r: r["seed"])}
        rows = aggregate("synthetic", evaluation, args)
        sizes[str(size)] = {"seeds": [r["seed"] for r in evaluation["runs"]], "seconds": [r["seconds"] for r in evaluation["runs"]],
                            "pooled": pooled(rows, {"evaluation": evaluation}, [0, 1, 2]), "source": sources.get(size, "sweep runs"),
                            "runs": evaluation["runs"]}
    return {"windows": args.windows, "drift": args.drift, "users": args.users, "items": args.items, "sizes": sizes}


def sweep_markdown(sweep: dict[str, Any]) -> str:
    sizes = sweep["sizes"]
    lines = ["### Ablation over stream size", "",
             f"Synthetic stream with {sweep['windows']} windows (so more rows per window as the stream grows), drift {sweep['drift']}, "
             f"{sweep['users']} active users, {sweep['items']} active items; every arm at the learning rates of preset `exfm_synthetic` "
             "(tuned at 240k rows, seed 100), not re-tuned per size. ΔNE per seed = mean over the 4 verticals of NE_arm - NE_alone; "
             "mean ± std over seeds; \"beats\" = ΔNE < 0 in every seed.", "",
             "| rows | seeds | arm | k | ΔNE vs alone | seeds better | (seed, vertical) pairs better |", "|---|---|---|---|---|---|---|"]
    for size, entry in sizes.items():
        n = len(entry["seeds"])
        for r in entry["pooled"]:
            lines.append(f"| {int(size):,} | {n} | {r['arm']} | {r['k']} | {r['d_ne'][0]:+.4f} ± {r['d_ne'][1]:.4f} | "
                         f"{r['seeds_better']}/{n} | {r['pairs_better']}/{r['pairs']} |")
    lines += ["", "Where each arm beats VM alone in every seed:", ""]
    for arm, _ in ARMS[1:]:
        for k in (0, 1, 2):
            verdict = []
            for size, entry in sizes.items():
                r = next(p for p in entry["pooled"] if p["arm"] == arm and p["k"] == k)
                n = len(entry["seeds"])
                verdict.append(f"{int(size):,}: {'beats' if r['seeds_better'] == n else 'not in every seed'} ({r['seeds_better']}/{n})")
            lines.append(f"- {arm}, k = {k}: " + "; ".join(verdict))
    lines += ["", "Sources: " + "; ".join(f"{int(size):,} rows: {entry['source']}, seeds {entry['seeds']}" for size, entry in sizes.items()) + ".", ""]
    return "\n".join(lines)


# -- speed: (a) end to end through each framework's API; (b) model against model; (c) levers (tools/bench/exfm_speed.py) --
SPEED_CONFIG = {"dim": 16, "cross": 2, "hidden": [256, 128], "lr": 1e-3, "batch": 1024, "score_batch": 8192, "init_std": 0.01}


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """(a): each framework in its own process on the same Arrow file, frameworks rotated over repeats."""
    import subprocess
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    import exfm_speed

    from zoo.exfm.data import make_synthetic_stream, write_arrow_stream

    frameworks = exfm_speed.available_frameworks()
    folder = Path(tempfile.mkdtemp(prefix="exfm-speed-"))
    path = write_arrow_stream(make_synthetic_stream(args.speed_rows, 10, 0.0, 0, users_active=2000, items_active=1000), folder / "s.arrow")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *[p for p in sys.path if p]]), "OMP_NUM_THREADS": str(args.threads)}
    results = []
    for repeat in range(args.speed_repeats):
        for framework in frameworks[repeat % len(frameworks):] + frameworks[:repeat % len(frameworks)]:
            out = subprocess.run([sys.executable, str(Path(__file__).parent / "exfm_speed.py"), "e2e", framework, str(path),
                                  str(args.threads), json.dumps(SPEED_CONFIG), str(folder / framework)],
                                 env=env, capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"{framework} end-to-end run failed:\n{out.stderr[-3000:]}")
            results.append({**json.loads(out.stdout.strip().splitlines()[-1]), "runner": framework, "repeat": repeat})
            print(f"[speed] {framework} repeat {repeat}: total {results[-1]['total_s']:.1f} s, AUC {results[-1]['test_auc']:.4f}", file=sys.stderr)
    path.unlink()
    return {"model": {"architecture": "DCNv2 (matrix cross) + parallel MLP", **SPEED_CONFIG}, "rows": args.speed_rows,
            "held_out": "last of 10 windows", "frameworks": frameworks, "threads": args.threads, "runs": results}


def speed_markdown(result: dict[str, Any]) -> str:
    if "frameworks" not in result:  # the report written before the tables were split
        return ""
    cfg = result["model"]
    lines = ["### Speed (a): end to end, each framework through its own API (not model against model)", "",
             f"The same Arrow stream on disk ({result['rows']:,} synthetic rows, 10 windows, drift 0): train one pass on the "
             f"first 9 windows in order, score the last. Same feature encoding (zoo's spec) and the same DCNv2 shape for all "
             f"(embedding dim {cfg['dim']}, {cfg['cross']} matrix cross layers, MLP {cfg['hidden']}, Adam lr {cfg['lr']}, batch "
             f"{cfg['batch']}), embedding init std {cfg['init_std']} everywhere (DeepCTR's own default is 1e-4). Each framework in "
             f"its own process, {result['threads']} thread, the order rotated over {max(r['repeat'] for r in result['runs']) + 1} "
             "repeats; wall-clock medians (range). What each framework's API does (and so what its columns include):", "",
             "- zoo: `ArrowStream` windows -> `ExFMSystem` (the DCNv2 as a foundation model trained alone) -> "
             "`StreamingTrainer.run`, which encodes each window and also scores it before training on it (progressive "
             "validation, part of zoo's loop: " + _share_text(result) + ") -> `ExFMSystem.score`. "
             "`zoo (bf16-mixed)`: the same with `precision=\"bf16-mixed\"`.",
             "- DeepCTR-Torch: encode (in setup) -> `DCN(...).fit(dict of columns, epochs=1, shuffle=False)` (its DataLoader "
             "fetches rows one at a time) -> `predict`.",
             "- FuxiCTR: encode and write its npz files and feature map (setup) -> `RankDataLoader` (load) -> a DCNv2 built "
             "from its layers as in its model zoo (no first-order term; its own xavier init of the linear layers) -> `fit` "
             "(it needs validation data: one batch of training rows, whose evaluation and checkpoint reload are left out "
             "of its train column) -> `predict`.", "",
             "| framework | setup s | train rows/s | score rows/s | total s end to end | test AUC | test log loss | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|---|"]
    for framework in result["frameworks"]:
        runs = [r for r in result["runs"] if r["runner"] == framework]
        if not runs:
            continue
        stat = lambda key: (statistics.median(r[key] for r in runs), min(r[key] for r in runs), max(r[key] for r in runs))  # noqa: E731
        setup = stat("prep_s")[0] + statistics.median(r.get("load_s", 0.0) for r in runs)
        tr, sc, tot = stat("train_examples_per_s"), stat("score_examples_per_s"), stat("total_s")
        lines.append(f"| {runs[0]['framework']} {runs[0]['version']} | {setup:.1f} | {tr[0]:,.0f} ({tr[1]:,.0f}-{tr[2]:,.0f}) | "
                     f"{sc[0]:,.0f} ({sc[1]:,.0f}-{sc[2]:,.0f}) | {tot[0]:.1f} ({tot[1]:.1f}-{tot[2]:.1f}) | {stat('test_auc')[0]:.4f} | "
                     f"{stat('test_logloss')[0]:.4f} | {stat('peak_rss_mb')[0]:,.0f} |")
    lines += ["", "The AUC column compares the frameworks' models as each builds them: FuxiCTR's DCNv2 initialises its linear "
              "layers xavier-normal with zero biases and has no first-order term; zoo's and DeepCTR's use PyTorch's default "
              "linear init. The next table isolates the two differences on zoo's network; with the same weights the three "
              "models train to the same AUC (table (b))."]
    return "\n".join(lines) + "\n"


def _share_text(result: dict[str, Any]) -> str:
    """The share of zoo's train column spent in progressive validation, from the runs that measured it."""
    runs = [r for r in result["runs"] if r["runner"] == "zoo" and "progressive_validation_s" in r]
    if not runs:
        return "its share not measured"
    share = statistics.median(r["progressive_validation_s"] / r["train_s"] for r in runs)
    rate = statistics.median(r["train_rows"] / (r["train_s"] - r["progressive_validation_s"]) for r in runs)
    return (f"{100 * share:.0f} % of its train column here, median over repeats; without it zoo trains {rate:,.0f} rows/s, "
            "window encoding still included, which the other frameworks do in setup")


def speed_models(args: argparse.Namespace, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """(b) and (c) at the speed stream's vocabulary and at the production-shaped one, in this process; settings of
    ``previous`` (the report's section) that are not rerun are kept, each with the command that made it."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    import exfm_speed

    from zoo.exfm.data import (SCALE_ITEM_BUCKETS, SCALE_USER_BUCKETS, make_scale_stream, make_synthetic_stream,
                               synthetic_feature_spec)

    torch.set_num_threads(args.threads)
    settings = {vocab: {"command": (previous or {}).get("command", ""), **entry}  # a kept setting keeps its own command
                for vocab, entry in (previous or {}).get("settings", {}).items() if vocab not in args.speed_vocab}
    for vocab in args.speed_vocab:
        if vocab == "small":
            stream = make_synthetic_stream(args.speed_rows, 10, 0.0, 0, users_active=2000, items_active=1000)
            spec = synthetic_feature_spec()
            description = f"{args.speed_rows:,} rows of the end-to-end stream (10 windows); hashed vocabularies 4,096 users, 2,048 items"
        else:
            stream = make_scale_stream(args.speed_production_rows, seed=0)
            spec = synthetic_feature_spec(stream, user_buckets=SCALE_USER_BUCKETS, item_buckets=SCALE_ITEM_BUCKETS)
            description = (f"{args.speed_production_rows:,} rows of the production-shaped stream ({stream.n_windows} windows of "
                           f"100k rows, 500k active users and 50k active items per window); hashed vocabularies 2^20 users, 2^17 items")
        x_train, y_train, x_test, y_test = exfm_speed.encoded_split(stream, spec)
        result = exfm_speed.run_models(spec, x_train, y_train, x_test, y_test, SPEED_CONFIG, repeats=args.speed_repeats,
                                       train_batches=args.speed_train_batches, score_batches=args.speed_score_batches,
                                       log=lambda line: print(line, file=sys.stderr), score_passes=args.speed_score_passes)
        settings[vocab] = {"description": description, "command": "python tools/bench/exfm.py " + " ".join(sys.argv[1:]), **result}
    settings = {vocab: settings[vocab] for vocab in ("small", "production") if vocab in settings}
    return {"model": {"architecture": "DCNv2 (matrix cross) + parallel MLP", **SPEED_CONFIG}, "threads": args.threads,
            "settings": settings}


def speed_init(args: argparse.Namespace) -> dict[str, Any]:
    """Where the end-to-end AUC gap comes from: zoo's network from each linear-layer init, one pass, several seeds."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    import exfm_speed

    from zoo.exfm.data import make_synthetic_stream, synthetic_feature_spec

    torch.set_num_threads(args.threads)
    stream = make_synthetic_stream(args.speed_rows, 10, 0.0, 0, users_active=2000, items_active=1000)
    spec = synthetic_feature_spec()
    result = exfm_speed.init_study(spec, *exfm_speed.encoded_split(stream, spec), SPEED_CONFIG, list(args.seeds),
                                   log=lambda line: print(line, file=sys.stderr))
    return {"rows_in_stream": args.speed_rows, **result}


def _agreement_text(result: dict[str, Any]) -> str:
    diffs = {k: v for setting in result["settings"].values() for k, v in setting["initial_max_abs_probability_difference"].items()}
    exact = max(v for k, v in diffs.items() if "bf16" not in k)
    rounded = [v for k, v in diffs.items() if "bf16" in k]
    return f"{exact:.0e}" + (f"; the bf16 arms to {max(rounded):.0e}, their rounding" if rounded else "")


def speed_models_markdown(result: dict[str, Any]) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    import exfm_speed

    lines = []
    for table, title in (("models", "### Speed (b): model against model"), ("levers", "### Speed (c): levers, one at a time")):
        lines += [title, ""]
        if table == "models":
            lines += ["zoo's `CTRNetwork`, DeepCTR-Torch's `DCN` module and FuxiCTR's DCNv2 module (built from its layers) with the "
                      "same initial weights (copied from one zoo init; their initial probabilities agree with zoo's to "
                      + _agreement_text(result) + "), fed the same id tensor slices (each model's input form made outside the timed region), plain Adam, "
                      f"one loop, {result['threads']} thread, one process. FuxiCTR's DCNv2 has no first-order term (zoo's starts at "
                      "zero, so the initial outputs agree; then it trains in zoo and DeepCTR and not in FuxiCTR). DeepCTR's module "
                      "outputs probabilities, so its loss is BCE on them; the others BCE on logits.", ""]
        else:
            lines += ["Against the same model in a plain PyTorch loop: `PlainDCN` (one `nn.Embedding` per field, dense Adam, fp32, "
                      "eager), the same weights as zoo's network (checked equal before timing). Each lever alone, then zoo's "
                      "combinations (what `StreamingTrainer(precision=\"bf16-mixed\", sparse_embeddings=...)` runs). "
                      "Scoring columns: the same model scored under `no_grad`, with autograd on (what a loop without a guard pays) "
                      "and under `inference_mode`; zoo scores under `inference_mode`.", ""]
        for vocab, setting in result["settings"].items():
            lines += [exfm_speed.models_markdown(setting, table, f"{setting['description']}; table rows {setting['table_rows']:,}; "
                                                 f"timed blocks of {setting['train_rows_timed']:,} training rows and "
                                                 f"{setting['score_rows_timed']:,} scored rows"
                                                 + (f" (the held-out rows {setting['score_passes']} times)" if setting.get("score_passes", 1) > 1 else "")
                                                 + f", {setting['repeats']} repeats "
                                                 f"interleaved; AUC after one full pass over {setting['train_rows']:,} rows, on "
                                                 f"{setting['test_rows']:,} held-out rows:"), ""]
            if table == "levers":
                lines += ["Goal (>= 1.5x the plain loop in training and scoring at equal AUC, within 0.001), paired per repeat, "
                          "median (range):", "", *exfm_speed.goal_lines(setting), ""]
    lines += ["Rates: rows per CPU second (one thread), median (range) over repeats; × = paired per repeat against the first row "
              "of the table. The machine (2 cores, AMD EPYC with AVX-512 BF16, shared with other work) makes the ranges wide; "
              "a scoring block of one pass over the held-out rows lasts only 0.2-0.5 CPU s, so read the scoring columns of a "
              "setting scored in one pass to about ±30 %. bf16 pays only on CPUs with bf16 arithmetic. torch.compile's one-off compile time is left out of its timed rows (warm-up: "
              + ", ".join(f"{vocab} {s['warmup_cpu_s'].get('+ torch.compile', float('nan')):.0f} CPU s" for vocab, s in result["settings"].items())
              + " of this process; inductor's compile workers not counted) but not out of its full-pass column, which includes "
              "recompiling for the partial last batch."]
    return "\n".join(lines) + "\n"


# -- scale: FM + 4 VMs with DAS on a production-shaped stream, window by window ------------------------------------
def _rss_mb() -> float:
    """Current resident set size of this process (Linux /proc; NaN elsewhere)."""
    import os

    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def _load() -> float:
    import os

    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def scale_config(seed: int, args: argparse.Namespace) -> Any:
    """Preset ``exfm_synthetic`` with hashed id vocabularies sized for ~10^6 users / 10^5 items, one AH + SA student
    per vertical (4 VMs, k = 1) and the FM at ``--scale-fm-passes`` passes of ``--scale-fm-batch`` rows."""
    import dataclasses

    from zoo._core.registry import preset_config
    from zoo.exfm import StudentSpec
    from zoo.exfm.data import SCALE_ITEM_BUCKETS, SCALE_USER_BUCKETS, synthetic_feature_spec

    base = preset_config("exfm_synthetic")
    return preset_config(
        "exfm_synthetic", seed=seed, features=synthetic_feature_spec(user_buckets=SCALE_USER_BUCKETS, item_buckets=SCALE_ITEM_BUCKETS),
        foundation=dataclasses.replace(base.foundation, passes=args.scale_fm_passes, batch_size=args.scale_fm_batch),
        students=tuple(StudentSpec(f"{v.name}_ah_sa", v.name, "auxiliary_head_adapter", staleness=1) for v in base.verticals),
        serving_students=(),
    )


def _score_rows(network: Any, ids: Any, index: Any, batch: int) -> Any:
    """FM logits of the rows ``index`` (as DAS scores them: eval mode, no autograd, ``batch`` rows per forward)."""
    import torch

    with torch.no_grad():
        parts = [network(ids[torch.from_numpy(index[i:i + batch])]) for i in range(0, len(index), batch)]
    return torch.cat(parts) if parts else torch.zeros(0)


def das_passes(network: Any, ids: Any, memberships: dict[str, Any], batch: int) -> dict[str, tuple[float, int]]:
    """Time the two ways to give N VMs the FM's logit for their rows, on one window: ``das``, the union of the
    VMs' rows scored once (what ``DataAugmentationService`` does), and ``per_vm``, one FM pass per VM over its
    own rows. Returns {way: (seconds, rows scored)}; the order alternates with the caller (see ``scale``)."""
    import numpy as np

    def das() -> tuple[float, int]:
        started = time.perf_counter()
        needed = np.zeros(len(ids), dtype=bool)
        for mask in memberships.values():
            needed |= mask
        index = np.flatnonzero(needed)
        _score_rows(network, ids, index, batch)
        return time.perf_counter() - started, len(index)

    def per_vm() -> tuple[float, int]:
        started, rows = time.perf_counter(), 0
        for mask in memberships.values():
            index = np.flatnonzero(mask)
            _score_rows(network, ids, index, batch)
            rows += len(index)
        return time.perf_counter() - started, rows

    return {"das": das(), "per_vm": per_vm()}


def scale(args: argparse.Namespace) -> dict[str, Any]:
    """One stream run at ``--scale-rows`` rows, generated and consumed window by window (nothing but the current
    window is held), with a per-stage time split, the DAS-vs-per-VM scoring comparison on every window (timed
    outside the loop's clock, order alternating between windows), and peak RSS. ``--scale-log`` gets one JSON
    line per window, so a run stopped early still leaves its measured prefix."""
    import os

    import torch

    from zoo.exfm import ExFMSystem, StreamingTrainer
    from zoo.exfm.data import make_scale_stream

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.scale_seed)
    stream = make_scale_stream(args.scale_rows, args.scale_seed)
    config = scale_config(args.scale_seed, args)
    rss_start = _rss_mb()
    system = ExFMSystem(config)
    trainer = StreamingTrainer(system, sparse_embeddings=not args.scale_dense_adam)
    parameters = {"foundation": sum(p.numel() for p in system.foundation.parameters()),
                  "student": sum(p.numel() for p in system.students[config.students[0].name].parameters())}
    rss_model = _rss_mb()
    stages = {k: 0.0 for k in ("generate", "encode", "evaluate", "train_fm", "das", "train_vms", "other")}
    extra = {"das": [0.0, 0], "per_vm": [0.0, 0]}  # the comparison, timed outside the loop's clock
    pairs: list[dict[str, float]] = []

    def timed(stage: str, function: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                stages[stage] += time.perf_counter() - started
        return wrapper

    features = config.features
    features.encode = timed("encode", features.encode)  # instance attribute: this run's spec only
    trainer._evaluate = timed("evaluate", trainer._evaluate)
    trainer._train_foundation = timed("train_fm", trainer._train_foundation)
    trainer._train_student = timed("train_vms", trainer._train_student)
    loop_annotate = timed("das", trainer._annotate)
    comparison_seconds = [0.0]

    def annotate_and_compare(t: int, table: Any, ids: Any, memberships: dict[str, Any]) -> Any:
        out = loop_annotate(t, table, ids, memberships)
        compare = args.scale_compare_every and t % args.scale_compare_every == 0
        if compare and (t - 1) in trainer.snapshots:  # the snapshot the k = 1 students use, as the loop just loaded it
            started = time.perf_counter()
            needed = {s.vertical: memberships[s.vertical] for s in config.students}
            order = ("das", "per_vm") if t % 2 == 0 else ("per_vm", "das")
            timing = {}
            for way in order:  # alternate which way runs first, so drift in machine load does not favour one
                timing[way] = das_passes(trainer.annotator, ids, needed, trainer.das.batch_size)[way]
            for way, (seconds, rows) in timing.items():
                extra[way][0] += seconds
                extra[way][1] += rows
            pairs.append({"window": t, "das_s": timing["das"][0], "per_vm_s": timing["per_vm"][0],
                          "das_rows": timing["das"][1], "per_vm_rows": timing["per_vm"][1]})
            comparison_seconds[0] += time.perf_counter() - started
        return out

    trainer._annotate = annotate_and_compare
    log = open(args.scale_log, "w") if args.scale_log else None
    loads: list[float] = []  # 1-minute load average after each window: the machine is shared
    windows, rows, stream_bytes = stream.windows(), 0, 0
    print(f"[scale] {args.scale_rows} rows in {stream.n_windows} windows; user ids < {stream.user_id_bound}, item ids < "
          f"{stream.item_id_bound}; FM {parameters['foundation']:,} parameters, each VM {parameters['student']:,}", file=sys.stderr)
    started = time.perf_counter()
    for t in range(stream.n_windows):
        before = time.perf_counter()
        table = next(windows)
        stages["generate"] += time.perf_counter() - before
        stream_bytes += table.nbytes
        trainer.process_window(t, table)
        rows += table.num_rows
        del table
        elapsed = time.perf_counter() - started - comparison_seconds[0]
        line = {"window": t, "rows": rows, "seconds": elapsed, "rss_mb": _rss_mb(), "peak_rss_mb": _peak_rss_mb(), "load1": _load(),
                **{f"{k}_s": v for k, v in stages.items()}, **({"das_pair": pairs[-1]} if pairs and pairs[-1]["window"] == t else {})}
        loads.append(line["load1"])
        if log:
            log.write(json.dumps(line) + "\n")
            log.flush()
        if t % 5 == 0 or t == stream.n_windows - 1:
            eta = elapsed / rows * (args.scale_rows - rows)
            print(f"[scale] window {t}: {rows:,} rows, {rows / elapsed:,.0f} rows/s, RSS {line['rss_mb']:,.0f} MB "
                  f"(peak {line['peak_rss_mb']:,.0f}), ETA {eta / 60:.1f} min", file=sys.stderr)
    seconds = time.perf_counter() - started - comparison_seconds[0]
    stages["other"] = seconds - sum(v for k, v in stages.items() if k != "other")
    summary = trainer.summary()
    ratio = [p["per_vm_s"] / p["das_s"] for p in pairs]
    return {
        "rows": rows, "windows": stream.n_windows, "seed": args.scale_seed, "threads": args.threads, "cores": os.cpu_count(), "compare_every": args.scale_compare_every,
        "stream": {"users_active": stream.users_active, "items_active": stream.items_active, "churn": stream.churn,
                   "drift": stream.drift, "user_ids": stream.user_id_bound, "item_ids": stream.item_id_bound,
                   "arrow_bytes_if_materialised": stream_bytes},
        "model": {"user_buckets": config.features.categorical[0].hash_buckets, "item_buckets": config.features.categorical[1].hash_buckets,
                  "foundation": {"embedding_dim": config.foundation.embedding_dim, "hidden": list(config.foundation.hidden),
                                 "passes": config.foundation.passes, "batch_size": config.foundation.batch_size, "parameters": parameters["foundation"]},
                  "students": [s.name for s in config.students], "student_parameters": parameters["student"],
                  "optimizer": "Adam (dense)" if args.scale_dense_adam else "SparseAdam on embeddings + Adam on the rest"},
        "seconds": seconds, "rows_per_s": rows / seconds, "stages_s": stages, "load1": _summary(loads),
        "rss_mb": {"start": rss_start, "after_model": rss_model, "end": _rss_mb(), "peak": _peak_rss_mb()},
        "das": {"fm_rows_scored": trainer.das.calls, "per_vm_rows": trainer.das.naive_calls,
                "compared_windows": len(pairs), "das_s": extra["das"][0], "per_vm_s": extra["per_vm"][0],
                "das_rows": extra["das"][1], "per_vm_rows_compared": extra["per_vm"][1],
                "ratio_total": extra["per_vm"][0] / extra["das"][0] if extra["das"][0] else None,
                "ratio_per_window": _summary(ratio), "pairs": pairs},
        "metrics": {k: v for k, v in summary.items() if k.endswith(("/ne", "/auc"))},
    }


def scale_from_log(args: argparse.Namespace) -> dict[str, Any]:
    """The ``scale`` result of a run that was stopped before its end, from its ``--scale-log`` lines (the measured
    prefix; no model metrics). ``projected_seconds``: the prefix's seconds per row times the planned rows, an
    estimate (later windows cost about what earlier ones cost: the sizes do not grow)."""
    from zoo.exfm import ExFMSystem
    from zoo.exfm.data import make_scale_stream

    lines = [json.loads(line) for line in Path(args.scale_from_log).read_text().splitlines() if line.strip()]
    if not lines:
        raise SystemExit(f"{args.scale_from_log}: no windows logged")
    last = lines[-1]
    stream = make_scale_stream(args.scale_rows, args.scale_seed)
    config = scale_config(args.scale_seed, args)
    system = ExFMSystem(config)
    stages = {k[:-2]: v for k, v in last.items() if k.endswith("_s") and k != "other_s"}
    stages["other"] = last["seconds"] - sum(stages.values())
    pairs = [line["das_pair"] for line in lines if "das_pair" in line]
    das_s, per_vm_s = sum(p["das_s"] for p in pairs), sum(p["per_vm_s"] for p in pairs)
    loads = [line["load1"] for line in lines if "load1" in line]
    return {
        "partial": True, "run_command": f"python tools/bench/exfm.py --scale --scale-rows {args.scale_rows} --scale-log {Path(args.scale_from_log).name}",
        "planned_rows": args.scale_rows, "planned_windows": stream.n_windows,
        "rows": last["rows"], "windows": len(lines), "seed": args.scale_seed, "threads": args.threads, "cores": os.cpu_count(),
        "compare_every": args.scale_compare_every,
        "stream": {"users_active": stream.users_active, "items_active": stream.items_active, "churn": stream.churn, "drift": stream.drift,
                   "user_ids": stream.user_id_bound, "item_ids": stream.item_id_bound,
                   "arrow_bytes_if_materialised": None},
        "model": {"user_buckets": config.features.categorical[0].hash_buckets, "item_buckets": config.features.categorical[1].hash_buckets,
                  "foundation": {"embedding_dim": config.foundation.embedding_dim, "hidden": list(config.foundation.hidden),
                                 "passes": config.foundation.passes, "batch_size": config.foundation.batch_size,
                                 "parameters": sum(p.numel() for p in system.foundation.parameters())},
                  "students": [s.name for s in config.students],
                  "student_parameters": sum(p.numel() for p in system.students[config.students[0].name].parameters()),
                  "optimizer": "Adam (dense)" if args.scale_dense_adam else "SparseAdam on embeddings + Adam on the rest"},
        "seconds": last["seconds"], "rows_per_s": last["rows"] / last["seconds"], "stages_s": stages, "load1": _summary(loads),
        "projected_seconds": last["seconds"] / last["rows"] * args.scale_rows,
        "rss_mb": {"start": None, "after_model": None, "end": last["rss_mb"], "peak": last["peak_rss_mb"],
                   "per_window": [round(line["rss_mb"]) for line in lines]},
        "das": {"fm_rows_scored": None, "per_vm_rows": None, "compared_windows": len(pairs), "das_s": das_s, "per_vm_s": per_vm_s,
                "das_rows": sum(p["das_rows"] for p in pairs), "per_vm_rows_compared": sum(p["per_vm_rows"] for p in pairs),
                "ratio_total": per_vm_s / das_s if das_s else None,
                "ratio_per_window": _summary([p["per_vm_s"] / p["das_s"] for p in pairs]), "pairs": pairs},
        "metrics": {},
    }


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"n": len(values), "median": statistics.median(values), "mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "min": ordered[0], "max": ordered[-1]}


def das_cost(args: argparse.Namespace) -> dict[str, Any]:
    """DAS vs one FM pass per VM, scoring only: the ``--das-windows`` first windows of the scale stream, the FM of
    ``scale_config`` (weights do not change the cost), ``--das-repeats`` rounds, the two ways alternating first."""
    import torch

    from zoo.exfm import ExFMSystem
    from zoo.exfm.data import make_scale_stream

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = scale_config(0, args)
    system = ExFMSystem(config)
    network = system.foundation.eval()
    stream = make_scale_stream(args.das_windows * 100_000, 0)
    prepared = []
    for table in stream.windows():
        memberships = system.memberships(table)
        prepared.append((torch.from_numpy(config.features.encode(table, strict=False)),
                         {s.vertical: memberships[s.vertical] for s in config.students}))
    das_passes(network, *prepared[0], 4096)  # warm-up
    runs = []
    for repeat in range(args.das_repeats):
        for t, (ids, needed) in enumerate(prepared):
            order = ("das", "per_vm") if (repeat + t) % 2 == 0 else ("per_vm", "das")
            timing = {way: das_passes(network, ids, needed, 4096)[way] for way in order}
            runs.append({"repeat": repeat, "window": t, "first": order[0], "load1": _load(), "das_s": timing["das"][0], "per_vm_s": timing["per_vm"][0],
                         "das_rows": timing["das"][1], "per_vm_rows": timing["per_vm"][1]})
            print(runs[-1], file=sys.stderr)
    per_repeat = [sum(r["per_vm_s"] for r in runs if r["repeat"] == k) / sum(r["das_s"] for r in runs if r["repeat"] == k)
                  for k in range(args.das_repeats)]
    return {"windows": args.das_windows, "rows_per_window": 100_000, "repeats": args.das_repeats, "threads": args.threads,
            "verticals": [s.vertical for s in config.students], "fm_parameters": sum(p.numel() for p in network.parameters()),
            "das_rows": sum(r["das_rows"] for r in runs if r["repeat"] == 0), "per_vm_rows": sum(r["per_vm_rows"] for r in runs if r["repeat"] == 0),
            "ratio_per_repeat": per_repeat, "ratio": _summary(per_repeat), "load1": _summary([r["load1"] for r in runs]), "cores": os.cpu_count(),
            "runs": runs}


def _rss_text(per_window: list[float]) -> str:
    """RSS after each window, summarised: the first window, then the range over the rest (flat = bounded)."""
    if len(per_window) < 3:
        return "RSS after each window (MB): " + ", ".join(f"{v:,.0f}" for v in per_window) + "."
    rest = per_window[2:]
    return (f"RSS after window 0: {per_window[0]:,.0f} MB, after window 1: {per_window[1]:,.0f} MB, after windows 2-{len(per_window) - 1}: "
            f"{min(rest):,.0f}-{max(rest):,.0f} MB (the last {per_window[-1]:,.0f} MB).")


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def _load_text(result: dict[str, Any]) -> str:
    if result.get("load1"):
        load = result["load1"]
        return f"{result.get('cores', 2)} cores, 1-minute load average {load['min']:.1f}-{load['max']:.1f}, median {load['median']:.1f}, over the run"
    return result.get("load_note", "load not recorded")


def scale_markdown(result: dict[str, Any] | None, das: dict[str, Any] | None) -> str:
    lines = []
    if result:
        m, st = result["model"], result["stream"]
        fm = m["foundation"]
        partial = result.get("partial")
        size = (f"the first {result['rows']:,} rows of a {result['planned_rows']:,}-row stream (not ended: {result['windows']} of "
                f"{result['planned_windows']} windows done)" if partial else f"a {result['rows']:,}-row stream")
        held = (f"as Arrow tables it would be {st['arrow_bytes_if_materialised'] / 2**30:.2f} GiB"
                if st.get("arrow_bytes_if_materialised") else "about 11 MB of Arrow per window")
        lines += [f"### Scale: FM + {len(m['students'])} VMs with DAS on {size}", "",
                  f"Stream `make_scale_stream` (seed {result['seed']}): windows of 100,000 rows generated and "
                  f"consumed one at a time (never materialised: {held}); "
                  f"{st['users_active']:,} active users and {st['items_active']:,} active items per window with {st['churn']:.0%} churn, "
                  f"so {st['user_ids']:,} user ids and {st['item_ids']:,} item ids over the stream; drift {st['drift']} rad per window. "
                  f"Ids hashed into {m['user_buckets']:,} user and {m['item_buckets']:,} item embedding rows. FM: preset `exfm_synthetic`'s "
                  f"DCNv2 (d = {fm['embedding_dim']}, MLP {fm['hidden']}, {fm['parameters']:,} parameters), {fm['passes']} pass(es) of "
                  f"{fm['batch_size']}-row batches; VMs: {', '.join(m['students'])} (AH + SA, k = 1, {m['student_parameters']:,} "
                  f"parameters each). Optimizer: {m['optimizer']}. Progressive validation on every window (the FM on all rows, every model "
                  f"on its vertical). {result['threads']} torch thread on a machine shared with other jobs ({_load_text(result)}), "
                  "so the times are upper bounds of what the code needs on a free core.", "",
                  "| rows | windows | wall time | rows/s end to end | peak RSS | RSS after building the models | RSS at the end |",
                  "|---|---|---|---|---|---|---|",
                  f"| {result['rows']:,} | {result['windows']} | {result['seconds'] / 60:.1f} min | {result['rows_per_s']:,.0f} | "
                  f"{result['rss_mb']['peak']:,.0f} MB | {_mb(result['rss_mb']['after_model'])} | {_mb(result['rss_mb']['end'])} |", "",
                  *([f"**Estimate, not a measurement**: at the prefix's rate the {result['planned_rows']:,} rows would take "
                     f"{result['projected_seconds'] / 60:.0f} min on this machine under the same load; the run had not ended at the "
                     "time of this table.", ""] if partial else []),
                  *([_rss_text(result["rss_mb"]["per_window"]), ""] if result["rss_mb"].get("per_window") else []),
                  *([f"CPU time of the process (user + sys, read from /proc while it ran, setup and the DAS comparison "
                     f"included): {result['cpu']['seconds']:,.0f} s after {result['cpu']['rows']:,} rows, "
                     f"{result['cpu']['rows'] / result['cpu']['seconds']:,.0f} rows per CPU-second: the wall time above is "
                     "mostly waiting for the shared cores.", ""] if result.get("cpu") else []),
                  "Where the time goes (seconds; end to end = all of them; the DAS-vs-per-VM comparison below is timed outside this clock):", "",
                  "| " + " | ".join(result["stages_s"]) + " |", "|" + "---|" * len(result["stages_s"]),
                  "| " + " | ".join(f"{v:,.0f}" for v in result["stages_s"].values()) + " |", ""]
        das_ = result["das"]
        if das_["compared_windows"]:
            r = das_["ratio_per_window"]
            counted = (f"the FM scored {das_['fm_rows_scored']:,} rows for the {len(m['students'])} VMs; one FM pass per VM would have "
                       f"scored {das_['per_vm_rows']:,}" if das_.get("fm_rows_scored") else
                       f"on the compared windows DAS scored {das_['das_rows']:,} rows, one FM pass per VM {das_['per_vm_rows_compared']:,}")
            lines += [f"DAS in this run: {counted}. Both ways timed on {das_['compared_windows']} windows (every "
                      f"{result.get('compare_every', 5)}th from window 5; same snapshot as the loop's, order alternating between windows): DAS {das_['das_s']:,.1f} s, one pass per VM {das_['per_vm_s']:,.1f} s, ratio "
                      f"{das_['ratio_total']:.3f} (per window: median {r['median']:.3f}, min {r['min']:.3f}, max {r['max']:.3f}).", ""]
        metrics = result["metrics"]
        names = [s for s in m["students"]]
        lines += [] if not metrics else ["Progressive-validation NE / AUC (mean over windows >= 2): " + "; ".join(
            f"{n} {metrics.get(n + '/ne', float('nan')):.4f} / {metrics.get(n + '/auc', float('nan')):.4f}" for n in names)
            + f"; FM on all rows {metrics.get('foundation/all/ne', float('nan')):.4f} / {metrics.get('foundation/all/auc', float('nan')):.4f}. "
            "One seed, no tuning at this size: not an ablation.", ""]
    if das:
        r = das["ratio"]
        lines += ["### DAS cost: FM scoring once for all VMs vs one FM pass per VM", "",
                  f"FM of the scale run, {das['windows']} windows of {das['rows_per_window']:,} rows of the scale stream, VMs on verticals "
                  f"{das['verticals']} (a and b share a category); {das['repeats']} repeats, the two ways alternating which runs first; "
                  f"{das['threads']} thread. Rows scored per repeat: DAS {das['das_rows']:,}, one pass per VM {das['per_vm_rows']:,} "
                  f"({das['per_vm_rows'] / das['das_rows']:.3f}x).", "",
                  "| time of one pass per VM / time of DAS | median | mean ± std | min | max |", "|---|---|---|---|---|",
                  f"| over {r['n']} repeats | {r['median']:.3f} | {r['mean']:.3f} ± {r['std']:.3f} | {r['min']:.3f} | {r['max']:.3f} |", "",
                  f"Machine: {_load_text(das)}. Scoring time should follow the rows scored (batches of 4,096 rows; our "
                  f"inference, not timed separately), so the saving DAS can make here is about the row ratio ({das['per_vm_rows'] / das['das_rows']:.3f}x), and it comes only from rows that several VMs share (a and b "
                  "overlap on one category; with disjoint verticals both ways score the same rows). The timed ratio is that "
                  "saving seen through the load's noise" + (" (the lowest repeat is below 1)." if r["min"] < 1 else "."), ""]
    return "\n".join(lines)


# -- held-out split: train / valid / test AUC, log loss and NE (zoo.exfm.validation) -----------------------------------
def heldout(args: argparse.Namespace) -> dict[str, Any]:
    """The synthetic ablation stream (preset arms at k = 1) followed by two held-out windows of the same size: one
    validation, one test; early stopping on the serving students' mean validation AUC (patience 3) restores the best
    window, as ``recipes/exfm/synthetic.yaml`` does. One run per seed; metrics pooled over each set's rows."""
    import torch

    from zoo._core.registry import preset_config
    from zoo.exfm import EarlyStoppingSpec, ExFMSystem, StreamingTrainer, make_synthetic_stream

    torch.set_num_threads(args.threads)
    windows = args.windows + 2
    rows = args.rows // args.windows * windows
    runs = []
    for seed in args.seeds:
        config = preset_config("exfm_synthetic", seed=seed)
        stream = list(make_synthetic_stream(rows, windows, args.drift, seed, users_active=args.users, items_active=args.items))
        started = time.perf_counter()
        trainer = StreamingTrainer(ExFMSystem(config), progress=args.progress, valid_windows=1, test_windows=1,
                                   early_stopping=EarlyStoppingSpec("valid/serving/auc", patience=3))
        trainer.run(stream)
        summary = trainer.summary()
        runs.append({"seed": seed, "seconds": time.perf_counter() - started,
                     "metrics": {k: v for k, v in summary.items() if k.split("/")[0] in ("train", "valid", "test", "split", "early_stopping")}})
        print(f"held-out seed {seed}: best window {summary.get('early_stopping/best_window')}, "
              f"test serving AUC {summary['test/serving/auc']:.4f}", file=sys.stderr)
    config = preset_config("exfm_synthetic")
    models = [("all", "FM (teacher)", "foundation/all"), ("all", "serving (mean)", "serving")]
    for v in config.verticals:
        models.append((v.name, "FM (teacher)", f"foundation/{v.name}"))
        models += [(v.name, s.name[len(v.name) + 1:], s.name) for s in config.students if s.vertical == v.name]
    table = []
    for vertical, label, key in models:
        row: dict[str, Any] = {"vertical": vertical, "model": label}
        for split in ("train", "valid", "test"):
            for metric in ("auc", "logloss", "ne"):
                values = [r["metrics"][f"{split}/{key}/{metric}"] for r in runs]
                row[f"{split}/{metric}"] = [statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0]
        table.append(row)
    return {"rows": rows, "windows": windows, "seeds": list(args.seeds), "runs": runs, "table": table,
            "best_windows": [r["metrics"].get("early_stopping/best_window") for r in runs],
            "description": f"Synthetic stream of {rows} rows in {windows} windows (drift {args.drift}, {args.users} active users, "
                           f"{args.items} active items): windows 0-{windows - 3} train (the ablation's stream), window "
                           f"{windows - 2} validation, window {windows - 1} test; preset `exfm_synthetic` (arms at k = 1). "
                           "Early stopping on valid/serving/auc (patience 3) restores the best window."}


def heldout_markdown(result: dict[str, Any]) -> str:
    n = len(result["seeds"])
    stopped = [r["metrics"].get("early_stopping/stopped_window") for r in result["runs"]]
    lines = ["### Train / valid / test (held-out windows)", "", result["description"], "",
             f"Mean ± std over {n} seeds (not paired: for arm against arm, use the paired ablation above); each metric "
             "pooled over the rows of its set (NE against the set's own positive rate); `train` is in-sample (the final "
             "weights on the windows they trained on). Best (restored) window per seed: "
             f"{', '.join(str(int(w)) if w is not None else '-' for w in result['best_windows'])}; early stopping stopped "
             + (f"{sum(w is not None for w in stopped)} of {n} runs." if any(w is not None for w in stopped) else "none of the runs."), "",
             "| vertical | model | train AUC | train log loss | train NE | valid AUC | valid log loss | valid NE | test AUC | test log loss | test NE |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["table"]:
        cells = [f"{row[f'{s}/{m}'][0]:.4f} ± {row[f'{s}/{m}'][1]:.4f}" for s in ("train", "valid", "test") for m in ("auc", "logloss", "ne")]
        lines.append(f"| {row['vertical']} | {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(report: dict[str, Any], out: Path) -> None:
    """benchmarks/exfm.md from everything in the report (ablations per dataset, then speed)."""
    sections = []
    for dataset, meta in report.get("datasets", {}).items():
        command = meta.get("command", report.get("command"))  # older reports kept one command for all datasets
        seeds = meta.get("seeds") or [run["seed"] for run in meta["evaluation"]["runs"]]
        sections += [f"Command: `{command}`", "", markdown(dataset, meta["table"], meta, seeds)]
    if "heldout" in report:
        sections += [f"Command: `{report['heldout']['command']}`", "", heldout_markdown(report["heldout"]), ""]
    if "speed" in report and speed_markdown(report["speed"]):
        sections.append(f"Command: `{report['speed']['command']}`\n\n" + speed_markdown(report["speed"]))
    if "speed_init" in report:
        sys.path.insert(0, str(Path(__file__).parent))
        import exfm_speed

        init = report["speed_init"]
        sections.append(f"Command: `{init['command']}`\n\n### Speed (a), its AUC column: the linear layers' init\n\n"
                        f"zoo's network on the end-to-end stream ({init['rows_in_stream']:,} rows), one pass in a plain loop (Adam, "
                        f"fp32, the same batches), embeddings N(0, 0.01) in every row; mean ± std over init seeds {init['seeds']}:\n\n"
                        + exfm_speed.init_markdown(init) + "\n")
    if "speed_models" in report:
        commands = sorted({s.get("command", report["speed_models"]["command"]) for s in report["speed_models"]["settings"].values()})
        sections.append("Command" + ("s" if len(commands) > 1 else "") + ": " + "; ".join(f"`{c}`" for c in commands) + "\n\n"
                        + speed_models_markdown(report["speed_models"]))
    if "size_sweep" in report:
        sweep = report["size_sweep"]
        swept = {int(size): entry["seeds"] for size, entry in sweep["sizes"].items() if entry["source"] == "sweep runs"}
        runs = "; ".join(f"`python tools/bench/exfm.py --size-sweep --sizes {size} --seeds {' '.join(map(str, seeds))}`"
                         for size, seeds in swept.items())
        sections.append(f"Commands: {runs} (seeds may run as separate processes), then `{sweep['command']}`\n\n" + sweep_markdown(sweep))
    if "scale" in report:
        scale_ = report["scale"]
        command = (f"`{scale_['run_command']}` (not ended when this table was made), this table from its log by `{scale_['command']}`" if scale_.get("partial")
                   else f"`{scale_['command']}`")
        sections.append(f"Command: {command}\n\n" + scale_markdown(scale_, None))
    if "das_cost" in report:
        sections.append(f"Command: `{report['das_cost']['command']}`\n\n" + scale_markdown(None, report["das_cost"]))
    header = ["# ExFM ablation (progressive validation, next-window NE)", "",
              "NE: log loss / entropy of the evaluated rows' positive rate (lower is better). ΔNE < 0: the arm beats "
              "VM alone on the same seed and data. k: FM staleness in windows (0 = the FM has trained on the rows it "
              "labels, an optimistic bound). One CPU thread; small models; not the paper's scale.", ""]
    (out / "exfm.md").write_text("\n".join(header + sections))
    card = ROOT / "hub_cards" / "exfm.md"
    if out.resolve() == (ROOT / "benchmarks").resolve() and card.is_file():  # the committed tables also go on every card
        text = card.read_text()
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        if start in text and end in text:
            body = "\n".join(sections).replace("### ", "#### ")
            text = text.split(start)[0] + start + "\n{% raw %}\n" + body + "\n{% endraw %}\n" + end + text.split(end)[1]
            card.write_text(text)


def merge_section(args, key: str, compute, **extra) -> dict:
    """Run one section (``compute(report) -> dict``) and merge it, with the command line and ``extra``, into
    ``<out>/exfm.json`` (the other sections are kept), then rewrite ``exfm.md`` and the card's table."""
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "exfm.json"
    report = json.loads(json_path.read_text()) if json_path.is_file() else {}
    report[key] = {**compute(report), "command": "python tools/bench/exfm.py " + " ".join(sys.argv[1:]), **extra}
    json_path.write_text(json.dumps(report, indent=1))
    write_markdown(report, args.out)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["synthetic", "ml100k"], choices=sorted(PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--tune-seed", type=int, default=100)
    parser.add_argument("--lr-grid", nargs="+", type=float, default=[2.5e-3, 5e-3, 1e-2, 2e-2, 4e-2, 8e-2, 1.6e-1],
                        help="VM learning rates, the same for every arm")
    parser.add_argument("--fm-lr-grid", nargs="*", type=float, default=[1.25e-3, 2.5e-3, 5e-3, 1e-2, 2e-2],
                        help="FM learning rates tried on the tuning seed before the arms (empty: keep the preset's)")
    parser.add_argument("--extend-edges", type=int, default=4,
                        help="times a grid may grow by one factor-2 step when a best rate sits at its edge (0: never)")
    parser.add_argument("--staleness", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rows", type=int, default=240_000, help="synthetic stream rows")
    parser.add_argument("--windows", type=int, default=12, help="synthetic stream windows")
    parser.add_argument("--drift", type=float, default=0.1)
    parser.add_argument("--users", type=int, default=500, help="synthetic active users per window")
    parser.add_argument("--items", type=int, default=300, help="synthetic active items per window")
    parser.add_argument("--ml100k-windows", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these tiny networks)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--speed", action="store_true", help="run only the end-to-end speed table, every framework installed (merged into the outputs)")
    parser.add_argument("--speed-init", action="store_true", help="run only the init study behind the end-to-end AUC column (merged into the outputs)")
    parser.add_argument("--speed-models", action="store_true", help="run only the model-against-model and levers tables (merged into the outputs)")
    parser.add_argument("--speed-rows", type=int, default=1_000_000)
    parser.add_argument("--speed-repeats", type=int, default=5)
    parser.add_argument("--speed-vocab", nargs="+", default=["small", "production"], choices=["small", "production"])
    parser.add_argument("--speed-production-rows", type=int, default=500_000)
    parser.add_argument("--speed-train-batches", type=int, default=200, help="training batches per timed block")
    parser.add_argument("--speed-score-batches", type=int, default=12, help="scoring batches (8192 rows) per timed block")
    parser.add_argument("--speed-score-passes", type=int, default=1, help="passes over those rows per timed scoring block")
    parser.add_argument("--scale", action="store_true", help="run only the FM + 4 VMs scale run (merged into the outputs)")
    parser.add_argument("--scale-rows", type=int, default=10_000_000)
    parser.add_argument("--scale-seed", type=int, default=0)
    parser.add_argument("--scale-fm-passes", type=int, default=1, help="FM passes per window in the scale run")
    parser.add_argument("--scale-fm-batch", type=int, default=1024, help="FM batch size in the scale run")
    parser.add_argument("--scale-dense-adam", action="store_true", help="dense Adam on the embedding tables (slow at 10^6 rows)")
    parser.add_argument("--scale-compare-every", type=int, default=5,
                        help="time DAS against one FM pass per VM on every n-th window (0: never)")
    parser.add_argument("--scale-log", type=Path, default=None, help="JSON line per window (the measured prefix of a stopped run)")
    parser.add_argument("--scale-from-log", type=Path, default=None,
                        help="write the scale result of a stopped run from its --scale-log lines (with --scale-rows as planned)")
    parser.add_argument("--das-cost", action="store_true", help="run only the DAS-vs-per-VM scoring comparison (merged into the outputs)")
    parser.add_argument("--das-windows", type=int, default=3)
    parser.add_argument("--das-repeats", type=int, default=7)
    parser.add_argument("--size-sweep", action="store_true", help="run the ablation at --sizes rows for --seeds (one file each in --sweep-dir)")
    parser.add_argument("--size-sweep-render", action="store_true", help="pool --sweep-dir (and the committed 240k ablation) into the outputs")
    parser.add_argument("--sizes", nargs="+", type=int, default=[120_000, 240_000, 1_000_000])
    parser.add_argument("--sweep-dir", type=Path, default=Path("exfm-size-sweep"))
    parser.add_argument("--render", action="store_true", help="only rewrite exfm.md (and the card's table) from exfm.json")
    parser.add_argument("--heldout", action="store_true",
                        help="run only the held-out split (train / valid / test, early stopping; merged into the outputs)")
    args = parser.parse_args()
    if args.render:
        write_markdown(json.loads((args.out / "exfm.json").read_text()), args.out)
        return
    if args.size_sweep:
        size_sweep_run(args)
        return
    if args.size_sweep_render:
        report = merge_section(args, "size_sweep", lambda report: size_sweep_collect(args, report))
        print(sweep_markdown(report["size_sweep"]))
        return
    if args.scale or args.das_cost or args.scale_from_log:
        import torch

        if args.scale or args.scale_from_log:
            key, result = "scale", (scale_from_log(args) if args.scale_from_log else scale(args))
        else:
            key, result = "das_cost", das_cost(args)
        report = merge_section(args, key, lambda report: result, torch=torch.__version__, platform=platform.platform())
        print(scale_markdown(report.get("scale") if key == "scale" else None, report.get("das_cost") if key == "das_cost" else None))
        return
    if args.heldout:
        report = merge_section(args, "heldout", lambda report: heldout(args))
        print(heldout_markdown(report["heldout"]))
        return
    if args.speed:
        import torch

        report = merge_section(args, "speed", lambda report: speed(args), torch=torch.__version__, platform=platform.platform())
        print(speed_markdown(report["speed"]))
        return
    if args.speed_init:
        report = merge_section(args, "speed_init", lambda report: speed_init(args))
        print(report["speed_init"])
        return
    if args.speed_models:
        import torch

        report = merge_section(args, "speed_models", lambda report: speed_models(args, report.get("speed_models")), torch=torch.__version__,
                               platform=platform.platform())
        print(speed_models_markdown(report["speed_models"]))
        return

    import torch

    from zoo._core.registry import preset_config
    from zoo.exfm.data import find_movielens_100k, make_synthetic_stream

    torch.set_num_threads(args.threads)
    command = "python tools/bench/exfm.py " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "exfm.json"
    report: dict[str, Any] = json.loads(json_path.read_text()) if json_path.is_file() else {}
    report.update({
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(), "threads": args.threads},
        "protocol": __doc__.split("\n\n")[1],
    })
    report.setdefault("datasets", {})
    for dataset in args.datasets:
        if dataset == "ml100k":
            try:
                find_movielens_100k()
            except FileNotFoundError as error:
                print(f"skipping ml100k: {error}", file=sys.stderr)
                continue
        args.foundation_lr = None
        foundation_tuning = tune_foundation(dataset, args) if args.fm_lr_grid else None
        best, tuning = tune(dataset, args)
        tuning["foundation"] = foundation_tuning
        evaluation = evaluate(dataset, best, args)
        rows = aggregate(dataset, evaluation, args)
        stream = make_synthetic_stream(args.rows, args.windows, args.drift, 0, users_active=args.users, items_active=args.items)
        share = {v: statistics.mean(r["metrics"].get(f"share/{v}", float("nan")) for r in evaluation["runs"]) for v in verticals(dataset)}
        description = (
            f"Synthetic stream: {args.rows} rows, {args.windows} windows, drift {args.drift}, {args.users} active users, "
            f"{args.items} active items, {stream.categories} item categories, individual weight {stream.individual} "
            "(seed = stream seed = model seed); preset `exfm_synthetic`: the FM trains on every row, each VM only on its "
            "vertical's rows (verticals " + ", ".join(f"{v.name} = categories {[c for c in range(63) if v.mask >> c & 1]} "
                                                     f"({100 * share[v.name]:.1f} % of rows)" for v in preset_config(PRESETS[dataset]).verticals)
            + "). Bayes (true p): the NE of the logged click probability, the floor no model can beat in expectation."
            if dataset == "synthetic" else
            f"MovieLens-100K, {args.ml100k_windows} time-ordered equal-count windows, label rating >= 4, genre-group "
            "verticals `action` / `drama` (overlapping); preset `exfm_ml100k`. Seeds change weights and shuffles only."
        )
        # each dataset keeps the command that produced it; other datasets already in the report are kept
        report["datasets"][dataset] = {"command": command, "seeds": list(args.seeds), "description": description,
                                       "tuning": tuning, "evaluation": evaluation, "table": rows}
        report["datasets"][dataset]["pooled"] = pooled(rows, report["datasets"][dataset], list(args.staleness))
        json_path.write_text(json.dumps(report, indent=1))
    write_markdown(report, args.out)
    print((args.out / "exfm.md").read_text())


if __name__ == "__main__":
    main()
