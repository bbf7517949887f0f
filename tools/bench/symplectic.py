"""Symplectic eigenvalue benchmark: direct dense eigensolver vs zoo Newton-tCG / hybrid / RGD trace minimisation.

Run:  python tools/bench/symplectic.py [--sizes 50 100 200] [--seeds 5] [--p 5]
Writes benchmarks/symplectic.json and benchmarks/symplectic.md. Planted SPD matrices (symplectic eigenvalues
1..n, generator in zoo.symplectic.data); target 2 sum_{j<=p} d_j; CPU = process time; medians over seeds
(seed = matrix and starting point). Stop rule: |grad| <= 1e-10 |M|_F.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from zoo.symplectic import min_trace, planted_spd_matrix, symplectic_eigenvalues


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--p", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=["newton", "hybrid", "rgd"])
    parser.add_argument("--out", default="benchmarks/symplectic.json")
    parser.add_argument("--max-iterations", type=int, default=20000, help="iteration cap (a capped run reports the gap it reached)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="drop rows of other sizes instead of keeping them")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for n in args.sizes:
        results: dict[str, list] = {"dense eigensolver": []}
        for seed in range(args.seeds):
            m, d, _ = planted_spd_matrix(n, seed=seed)
            target = 2 * d[: args.p].sum().item()
            started = time.process_time()
            direct = 2 * symplectic_eigenvalues(m)[: args.p].sum().item()
            results["dense eigensolver"].append((abs(direct - target) / target, time.process_time() - started, 0, 0.0, 0))
            for method in args.methods:
                started = time.process_time()
                r = min_trace(m, args.p, method=method, seed=seed, max_iterations=args.max_iterations)
                results.setdefault(method, []).append((abs(r.value - target) / target, time.process_time() - started,
                                                       r.iterations, r.feasibility, r.hessian_vector_products))
        for solver, runs in results.items():
            rows.append({"n": n, "p": args.p, "solver": solver, "median_relative_gap": statistics.median(x[0] for x in runs),
                         "max_relative_gap": max(x[0] for x in runs), "median_cpu_s": statistics.median(x[1] for x in runs),
                         "median_iterations": statistics.median(x[2] for x in runs), "max_feasibility": max(x[3] for x in runs),
                         "median_hvp": statistics.median(x[4] for x in runs)})
            print(rows[-1], flush=True)
    meta = {"command": "python tools/bench/symplectic.py " + " ".join(sys.argv[1:]),
            "load_average": os.getloadavg(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    for row in rows:
        row["command"] = meta["command"]
    out = Path(args.out)
    if out.exists() and not args.fresh:  # keep the rows of sizes this run did not measure (each row names its command)
        old = json.loads(out.read_text())
        for row in old["rows"]:
            row.setdefault("command", old["meta"]["command"])
        rows = sorted([r for r in old["rows"] if r["n"] not in args.sizes] + rows, key=lambda r: r["n"])
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    commands = list(dict.fromkeys(r["command"] for r in rows))
    lines = ["# Symplectic eigenvalue benchmark\n", "Medians over seeds; CPU = process time. Rows come from these commands:\n"]
    lines += [f"- `{c}`" for c in commands] + [""]
    lines += [
             "| n | p | solver | median rel. gap | max rel. gap | median CPU s | median iterations | median HVPs | max feasibility |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['p']} | {r['solver']} | {r['median_relative_gap']:.1e} | {r['max_relative_gap']:.1e} | "
              f"{r['median_cpu_s']:.3f} | {r['median_iterations']} | {r['median_hvp']} | {r['max_feasibility']:.1e} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
