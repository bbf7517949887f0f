"""ExFM ablation on streaming CTR data: VM alone, + plain distillation, + Auxiliary Head, + AH + Student Adapter,
and the FM itself, at staleness k in {0, 1, 2}, over several seeds with paired differences.

Protocol (our choices; see /work/shared/methods/exfm.md §5):
- Progressive validation: every window is scored before any model trains on it; metrics are averaged over
  windows >= the preset's ``evaluation_start_window``. NE uses the evaluated rows' own positive rate.
- One stream run trains the FM once and every student side by side (the FM is shared, as in ExFM).
- Equal tuning budget: on a separate tuning seed, every arm is run at every learning rate of the same grid
  (staleness k = 1); each arm keeps the rate with the lowest NE averaged over the verticals. The FM is not tuned.
- Evaluation seeds: each seed changes the stream (synthetic) and the initial weights and shuffles; all arms see the
  same data and order, so differences to "VM alone" are paired per (seed, vertical).
- Transfer ratio = (NE_alone - NE_arm) / (NE_alone - NE_FM), from the seed-averaged NEs, when NE_FM < NE_alone.

    python tools/bench/exfm.py                                   # synthetic + ML-100K (if found), writes benchmarks/exfm.{json,md}
    python tools/bench/exfm.py --datasets synthetic --seeds 0 1 2 --rows 60000
"""

from __future__ import annotations

import argparse
import json
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
    trainer = StreamingTrainer(ExFMSystem(config), progress=args.progress)
    trainer.run(windows)
    return trainer.summary(), time.perf_counter() - started


def verticals(dataset: str) -> list[str]:
    from zoo._core.registry import preset_config

    return [v.name for v in preset_config(PRESETS[dataset]).verticals]


def tune_foundation(dataset: str, args: argparse.Namespace) -> dict[str, Any]:
    """The FM's learning rate: lowest NE over the verticals on the tuning seed (shared by every arm, so fair)."""
    from zoo.exfm import StudentSpec

    students = tuple(StudentSpec(f"{v}_alone", v, "none") for v in verticals(dataset))
    ne = []
    for lr in args.fm_lr_grid:
        summary, seconds = run_stream(dataset, args.tune_seed, students, args, foundation_lr=lr)
        ne.append(statistics.mean(summary[f"foundation/{v}/ne"] for v in verticals(dataset)))
        print(f"[{dataset}] FM lr {lr:g}: NE {ne[-1]:.4f} ({seconds:.0f} s)", file=sys.stderr)
    best = args.fm_lr_grid[min(range(len(ne)), key=ne.__getitem__)]
    args.foundation_lr = best
    return {"seed": args.tune_seed, "lr_grid": list(args.fm_lr_grid), "mean_ne_per_lr": ne, "best_lr": best}


def tune(dataset: str, args: argparse.Namespace) -> tuple[dict[str, float], dict[str, Any]]:
    from zoo.exfm import StudentSpec

    students = tuple(
        StudentSpec(f"{v}_{arm}_lr{i}", v, mode, staleness=1, learning_rate=lr)
        for v in verticals(dataset) for arm, mode in ARMS for i, lr in enumerate(args.lr_grid)
    )
    summary, seconds = run_stream(dataset, args.tune_seed, students, args)
    table = {arm: [statistics.mean(summary[f"{v}_{arm}_lr{i}/ne"] for v in verticals(dataset)) for i in range(len(args.lr_grid))] for arm, _ in ARMS}
    best = {arm: args.lr_grid[min(range(len(ne)), key=ne.__getitem__)] for arm, ne in table.items()}
    print(f"[{dataset}] tuning seed {args.tune_seed} ({seconds:.0f} s): NE per lr {table} -> best {best}", file=sys.stderr)
    return best, {"seed": args.tune_seed, "lr_grid": list(args.lr_grid), "mean_ne_per_lr": table, "best_lr": best, "seconds": seconds}


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


def markdown(dataset: str, rows: list[dict[str, Any]], meta: dict[str, Any], seeds: list[int]) -> str:
    lines = [f"### {dataset}", "", meta["description"], "",
             f"Tuning (seed {meta['tuning']['seed']}, grid {meta['tuning']['lr_grid']}): best VM learning rate per arm "
             + ", ".join(f"{a} {lr:g}" for a, lr in meta["tuning"]["best_lr"].items()) + "."
             + (f" FM learning rate (grid {meta['tuning']['foundation']['lr_grid']}, tuned first, shared by all arms): "
                f"{meta['tuning']['foundation']['best_lr']:g}." if meta["tuning"].get("foundation") else ""), "",
             f"| vertical | arm | k | NE (mean ± std, {len(seeds)} seeds) | AUC | ΔNE vs alone (paired) | seeds better | transfer ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        k = "-" if r["k"] is None else str(r["k"])
        d = "" if r["d_ne"] is None else f"{r['d_ne'][0]:+.4f} ± {r['d_ne'][1]:.4f}"
        wins = "" if r["wins"] is None else f"{r['wins']}/{len(seeds)}"
        transfer = "" if r["transfer"] is None else f"{r['transfer']:.2f}"
        lines.append(f"| {r['vertical']} | {r['arm']} | {k} | {r['ne'][0]:.4f} ± {r['ne'][1]:.4f} | {r['auc'][0]:.4f} ± {r['auc'][1]:.4f} | {d} | {wins} | {transfer} |")
    das = [run["metrics"] for run in meta["evaluation"]["runs"]]
    lines += ["", f"DAS: the FM scored {int(das[0]['das/fm_calls'])} rows per run; calling it per (vertical, staleness) "
              f"would have scored {int(das[0]['das/naive_calls'])}.", ""]
    return "\n".join(lines)


# -- speed: zoo's fused-table DCNv2 vs DeepCTR-Torch's DCN on the same rows ----------------------------------------
SPEED_WORKER = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
torch.manual_seed(0)
from zoo.exfm.data import ArrowStream, synthetic_feature_spec
from zoo.exfm.metrics import auc
stream = ArrowStream(sys.argv[2])
spec = synthetic_feature_spec()
windows = [stream[t] for t in range(len(stream))]
train, test = windows[:-1], windows[-1]
x_train = np.concatenate([spec.encode(w, strict=False) for w in train]); y_train = np.concatenate([w["label"].to_numpy() for w in train]).astype(np.float32)
x_test = spec.encode(test, strict=False); y_test = test["label"].to_numpy().astype(np.float32)
cfg = json.loads(sys.argv[4])
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[1] == "zoo":
    from zoo.exfm.model import CTRNetwork
    net = CTRNetwork(spec.field_sizes, "dcnv2", cfg["dim"], cfg["cross"], tuple(cfg["hidden"]))
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    start = time.perf_counter()
    for i in range(0, len(yt), cfg["batch"]):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[i:i + cfg["batch"]]), yt[i:i + cfg["batch"]])
        loss.backward(); opt.step()
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        net.eval(); scores = torch.cat([net(torch.from_numpy(x_test[i:i + 8192])) for i in range(0, len(x_test), 8192)]).numpy()
    score_s = time.perf_counter() - start
else:
    from deepctr_torch.inputs import SparseFeat
    from deepctr_torch.models import DCN
    columns = [SparseFeat(f.name, size, embedding_dim=cfg["dim"]) for f, size in zip(spec.features, spec.field_sizes)]
    model = DCN(columns, columns, cross_num=cfg["cross"], cross_parameterization="matrix", dnn_hidden_units=tuple(cfg["hidden"]),
                l2_reg_linear=0, l2_reg_embedding=0, l2_reg_cross=0, l2_reg_dnn=0, dnn_dropout=0, device="cpu", seed=0)
    model.compile(torch.optim.Adam(model.parameters(), lr=cfg["lr"]), "binary_crossentropy")
    as_dict = lambda x: {f.name: x[:, j] for j, f in enumerate(spec.features)}
    start = time.perf_counter()
    model.fit(as_dict(x_train), y_train, batch_size=cfg["batch"], epochs=1, verbose=0, shuffle=False)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = model.predict(as_dict(x_test), batch_size=8192).reshape(-1)
    score_s = time.perf_counter() - start
print(json.dumps({"framework": sys.argv[1], "train_rows": len(y_train), "test_rows": len(y_test),
                  "train_examples_per_s": len(y_train) / train_s, "score_examples_per_s": len(y_test) / score_s,
                  "test_auc": auc(y_test, scores), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_training_mb": base_rss / 1024}))
"""


def speed(args: argparse.Namespace) -> dict[str, Any]:
    import os
    import subprocess
    import tempfile

    from zoo.exfm.data import make_synthetic_stream, write_arrow_stream

    config = {"dim": 16, "cross": 2, "hidden": [256, 128], "lr": 1e-3, "batch": 1024}
    folder = Path(tempfile.mkdtemp(prefix="exfm-speed-"))
    path = write_arrow_stream(make_synthetic_stream(args.speed_rows, 10, 0.0, 0, users_active=2000, items_active=1000), folder / "s.arrow")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *[p for p in sys.path if p]])}
    results = []
    for repeat in range(args.speed_repeats):
        for framework in ("zoo", "deepctr_torch"):
            out = subprocess.run([sys.executable, "-c", SPEED_WORKER, framework, str(path), str(args.threads), json.dumps(config)],
                                 env=env, capture_output=True, text=True, check=True)
            results.append({**json.loads(out.stdout.strip().splitlines()[-1]), "repeat": repeat})
            print(results[-1], file=sys.stderr)
    path.unlink()
    return {"model": {"architecture": "DCNv2 (matrix cross) + parallel MLP", **config},
            "rows": args.speed_rows, "held_out": "last of 10 windows", "runs": results}


def speed_markdown(result: dict[str, Any]) -> str:
    lines = ["### Speed: zoo vs DeepCTR-Torch 0.3.0 (same DCN model, same rows, 1 pass)", "",
             f"Synthetic stream of {result['rows']} rows (drift 0), trained on the first 9 windows, scored and AUC on the "
             f"last; model {result['model']}. Each framework in its own process, one CPU thread; medians over repeats. "
             "Peak RSS includes the encoded arrays both frameworks are given.", "",
             "| framework | train examples/s | score examples/s | test AUC | peak RSS (MB) |", "|---|---|---|---|---|"]
    for framework in ("zoo", "deepctr_torch"):
        runs = [r for r in result["runs"] if r["framework"] == framework]
        med = lambda key: statistics.median(r[key] for r in runs)
        lines.append(f"| {framework} | {med('train_examples_per_s'):,.0f} | {med('score_examples_per_s'):,.0f} | {med('test_auc'):.4f} | {med('peak_rss_mb'):,.0f} |")
    return "\n".join(lines) + "\n"


def write_markdown(report: dict[str, Any], out: Path) -> None:
    """benchmarks/exfm.md from everything in the report (ablations per dataset, then speed)."""
    sections = []
    for dataset, meta in report.get("datasets", {}).items():
        command = meta.get("command", report.get("command"))  # older reports kept one command for all datasets
        seeds = meta.get("seeds") or [run["seed"] for run in meta["evaluation"]["runs"]]
        sections += [f"Command: `{command}`", "", markdown(dataset, meta["table"], meta, seeds)]
    if "speed" in report:
        sections.append(f"Command: `{report['speed']['command']}`\n\n" + speed_markdown(report["speed"]))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["synthetic", "ml100k"], choices=sorted(PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--tune-seed", type=int, default=100)
    parser.add_argument("--lr-grid", nargs="+", type=float, default=[5e-3, 1e-2, 2e-2, 4e-2])
    parser.add_argument("--fm-lr-grid", nargs="*", type=float, default=[2e-3, 5e-3, 1e-2, 2e-2],
                        help="FM learning rates tried on the tuning seed before the arms (empty: keep the preset's)")
    parser.add_argument("--staleness", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rows", type=int, default=60_000, help="synthetic stream rows")
    parser.add_argument("--windows", type=int, default=12, help="synthetic stream windows")
    parser.add_argument("--drift", type=float, default=0.1)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--ml100k-windows", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these tiny networks)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--speed", action="store_true", help="run only the DeepCTR-Torch speed comparison (merged into the outputs)")
    parser.add_argument("--speed-rows", type=int, default=1_000_000)
    parser.add_argument("--speed-repeats", type=int, default=2)
    args = parser.parse_args()
    if args.speed:
        import torch

        result = speed(args)
        args.out.mkdir(parents=True, exist_ok=True)
        json_path, md_path = args.out / "exfm.json", args.out / "exfm.md"
        report = json.loads(json_path.read_text()) if json_path.is_file() else {}
        report["speed"] = {**result, "command": "python tools/bench/exfm.py " + " ".join(sys.argv[1:]), "torch": torch.__version__}
        json_path.write_text(json.dumps(report, indent=1))
        write_markdown(report, args.out)
        print(speed_markdown(result))
        return

    import torch

    from zoo.exfm.data import find_movielens_100k

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
        description = (
            f"Synthetic stream: {args.rows} rows, {args.windows} windows, drift {args.drift}, {args.users} active users, "
            f"{args.items} active items (seed = stream seed = model seed); preset `exfm_synthetic`."
            if dataset == "synthetic" else
            f"MovieLens-100K, {args.ml100k_windows} time-ordered equal-count windows, label rating >= 4, genre-group "
            "verticals `action` / `drama` (overlapping); preset `exfm_ml100k`. Seeds change weights and shuffles only."
        )
        # each dataset keeps the command that produced it; other datasets already in the report are kept
        report["datasets"][dataset] = {"command": command, "seeds": list(args.seeds), "description": description,
                                       "tuning": tuning, "evaluation": evaluation, "table": rows}
        json_path.write_text(json.dumps(report, indent=1))
    write_markdown(report, args.out)
    print((args.out / "exfm.md").read_text())
    print((args.out / "exfm.md").read_text())


if __name__ == "__main__":
    main()
