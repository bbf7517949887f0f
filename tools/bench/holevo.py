"""Holevo capacity benchmark: zoo RGD / RTR vs pymanopt 2.2.1 TrustRegions vs Blahut-Arimoto (cq channels).

Run:  python tools/bench/holevo.py [--seeds 5] [--out benchmarks/holevo.json] [--families closed random cq boundary]
Writes JSON and a markdown table (benchmarks/holevo.md). CPU time is time.process_time of the solver call;
medians over seeds (seed = random initial states). pymanopt uses p = x^2 on a sphere and states as real
vectors on an oblique manifold (the formulation of docs/methods/holevo.md), exact gradients, finite-difference Hessian-vector
products, min_gradient_norm 1e-8 and a time cap (``--max-time``).

Boundary family (``--families boundary``): random cq channels whose letter states are rank-deficient (rank 1..d-1),
d = 2..4 and 3..5 letters drawn per instance (``--boundary-instances``), so that some letters get zero weight at the
optimum. Rows: Blahut-Arimoto (tol 1e-12) and zoo's solvers at their defaults (tol 1e-10, active set on), errors are
gaps to Blahut-Arimoto over the instances (median and max), and how many reported converged.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from zoo.holevo import (amplitude_damping, blahut_arimoto, cq_channel, depolarizing, holevo_capacity, random_channel,
                        rank_deficient_cq_states)
from zoo.holevo.reference import amplitude_damping_chi, depolarizing_chi


def boundary_rows(instances: int, methods: list[str]) -> list[dict]:
    name = f"rank-deficient cq, d=2..4, 3..5 letters ({instances} instances)"
    ba_runs, runs = [], {method: [] for method in methods}
    for instance in range(instances):
        states = rank_deficient_cq_states(instance)
        started = time.process_time()
        ba = blahut_arimoto(states, tol=1e-12)
        ba_runs.append((ba.upper_bound - ba.capacity, time.process_time() - started, ba.iterations, ba.converged))
        for method in methods:
            started = time.process_time()
            result = holevo_capacity(cq_channel(states), method=method)
            runs[method].append((abs(result.capacity - ba.capacity), time.process_time() - started, result.iterations,
                                 result.converged))
            print(name, instance, method, runs[method][-1], result.stop_reason, flush=True)
    rows = []
    for solver, data in [("Blahut-Arimoto", ba_runs)] + [(f"zoo {m} (active set)", runs[m]) for m in methods]:
        rows.append({"instance": name, "solver": solver, "median_abs_error": statistics.median(r[0] for r in data),
                     "max_abs_error": max(r[0] for r in data), "median_cpu_s": statistics.median(r[1] for r in data),
                     "median_iterations": statistics.median(r[2] for r in data),
                     "converged": f"{sum(r[3] for r in data)}/{len(data)}"})
    return rows


def pymanopt_tr(kraus, seed, max_time: float = 120.0):
    """pymanopt TrustRegions on the oblique formulation: p = x^2 with x on a sphere, states as real 2d-vectors on an
    oblique manifold. Cost and exact Euclidean gradient from zoo's entropy (its backward is finite at repeated
    eigenvalues, where ``eigh``'s autograd - pymanopt's torch backend - gives nan); Euclidean Hessian-vector products by
    a forward difference of that gradient (as Manopt's ``getHessianFD``; zoo's second-order solvers instead take central
    differences of the transported Riemannian gradient, ``zoo/optim/base.py``)."""
    import numpy as np
    import pymanopt

    from zoo.holevo.model import holevo_cost

    d = kraus.shape[2]
    m = d * d
    manifold = pymanopt.manifolds.Product([pymanopt.manifolds.Sphere(m), pymanopt.manifolds.Oblique(2 * d, m)])

    def torch_cost(x, s):
        states = torch.complex(s[:d].T, s[d:].T)
        return holevo_cost(kraus, x * x, states)

    def value_and_grad(x, s):
        xt = torch.tensor(x, requires_grad=True)
        st = torch.tensor(s, requires_grad=True)
        value = torch_cost(xt, st)
        gx, gs = torch.autograd.grad(value, (xt, st))
        return float(value.detach()), gx.numpy(), gs.numpy()

    @pymanopt.function.numpy(manifold)
    def cost(x, s):
        with torch.no_grad():
            return float(torch_cost(torch.as_tensor(x), torch.as_tensor(s)))

    @pymanopt.function.numpy(manifold)
    def euclidean_gradient(x, s):
        _, gx, gs = value_and_grad(x, s)
        return [gx, gs]

    @pymanopt.function.numpy(manifold)
    def euclidean_hessian(x, s, vx, vs):
        norm = math.sqrt(float((vx * vx).sum() + (vs * vs).sum())) or 1.0
        step = 1e-6 / norm
        _, gx0, gs0 = value_and_grad(x, s)
        _, gx1, gs1 = value_and_grad(x + step * vx, s + step * vs)
        return [(gx1 - gx0) / step, (gs1 - gs0) / step]

    problem = pymanopt.Problem(manifold, cost, euclidean_gradient=euclidean_gradient, euclidean_hessian=euclidean_hessian)
    rng = np.random.default_rng(seed)
    x0 = [np.full(m, 1 / math.sqrt(m)), rng.standard_normal((2 * d, m))]
    x0[1] /= np.linalg.norm(x0[1], axis=0, keepdims=True)
    optimizer = pymanopt.optimizers.TrustRegions(verbosity=0, min_gradient_norm=1e-8, max_time=max_time)
    started = time.process_time()
    result = optimizer.run(problem, initial_point=x0)
    return -float(result.cost), time.process_time() - started, int(result.iterations)


def ours(kraus, seed, method):
    started = time.process_time()
    result = holevo_capacity(kraus, method=method, tol=1e-8, seed=seed)
    return result.capacity, time.process_time() - started, result.iterations


SOLVERS = ("zoo rgd", "zoo trust_region", "pymanopt TrustRegions")


def solve(kraus, solver, seed, max_time, name):
    """(capacity, CPU s, iterations) of one solver run; a failure is recorded as (nan, nan, -1) and printed."""
    try:
        if solver == "pymanopt TrustRegions":
            return pymanopt_tr(kraus, seed, max_time)
        return ours(kraus, seed, solver.split()[1])
    except Exception as error:  # noqa: BLE001 - record the failure in the table
        print(f"{name} {solver} seed {seed}: {type(error).__name__}: {error}")
        return math.nan, math.nan, -1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/holevo.json")
    parser.add_argument("--dims", type=int, nargs="*", default=[2, 3, 4, 8, 16], help="input dimensions of the depolarizing channels")
    parser.add_argument("--max-time", type=float, default=120.0, help="pymanopt time cap per run (s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--random-dims", type=int, nargs="*", default=[2, 4, 8, 16], help="random channels d -> d, Kraus rank 2")
    parser.add_argument("--rows-from", type=Path, default=None,
                        help="JSON rows of an earlier (partial) run to keep ahead of this run's rows; each keeps its own command")
    parser.add_argument("--cq-letters", type=int, nargs="+", default=[2, 3, 4, 8], help="random cq channels: letters = output dimension")
    parser.add_argument("--families", nargs="+", default=["closed", "random", "cq", "boundary"],
                        choices=["closed", "random", "cq", "boundary"], help="instance families to run")
    parser.add_argument("--boundary-instances", type=int, default=10)
    parser.add_argument("--boundary-methods", nargs="+", default=["rgd", "newton"])
    args = parser.parse_args()
    if "closed" not in args.families:
        args.dims = []
    if "random" not in args.families:
        args.random_dims = []
    if "cq" not in args.families:
        args.cq_letters = []
    torch.set_num_threads(args.threads)
    noise = {2: 0.3, 3: 0.5, 4: 0.2}
    instances = [("amplitude damping 0.5", amplitude_damping(0.5), amplitude_damping_chi(0.5)[0])] if "closed" in args.families else []
    instances += [(f"depolarizing d={d} q={noise.get(d, 0.3)}", depolarizing(d, noise.get(d, 0.3)), depolarizing_chi(d, noise.get(d, 0.3)))
                  for d in args.dims]
    rows = []
    for name, kraus, truth in instances:
        for solver in SOLVERS:
            runs = []
            for seed in range(args.seeds):
                value, cpu, iterations = solve(kraus, solver, seed, args.max_time, name)
                runs.append((abs(value - truth), cpu, iterations))
            rows.append({"instance": name, "solver": solver, "median_abs_error": statistics.median(r[0] for r in runs),
                         "max_abs_error": max(r[0] for r in runs), "median_cpu_s": statistics.median(r[1] for r in runs),
                         "median_iterations": statistics.median(r[2] for r in runs)})
            print(rows[-1], flush=True)
    # random channels (no closed form): error = gap to the best value any solver reached on the same seed
    for d in args.random_dims:
        kraus = random_channel(d, d, 2, seed=d)
        name = f"random channel d={d} (Kraus rank 2)"
        values: dict[str, list] = {}
        for solver in SOLVERS:
            for seed in range(args.seeds):
                values.setdefault(solver, []).append(solve(kraus, solver, seed, args.max_time, name))
        best = [max(v[seed][0] for v in values.values() if not math.isnan(v[seed][0])) for seed in range(args.seeds)]
        for solver, runs in values.items():
            gaps = [best[seed] - runs[seed][0] for seed in range(args.seeds)]
            rows.append({"instance": name, "solver": solver, "median_abs_error": statistics.median(gaps), "max_abs_error": max(gaps),
                         "median_cpu_s": statistics.median(r[1] for r in runs), "median_iterations": statistics.median(r[2] for r in runs)})
            print(rows[-1], flush=True)
    generator = torch.Generator().manual_seed(0)
    for letters in args.cq_letters:
        d = letters
        g = torch.randn(letters, d, d, dtype=torch.complex128, generator=generator)
        states = g @ g.mH
        states = states / states.diagonal(dim1=-2, dim2=-1).sum(-1).real[:, None, None]
        started = time.process_time()
        ba = blahut_arimoto(states, tol=1e-10)
        ba_cpu = time.process_time() - started
        started = time.process_time()
        riemannian = holevo_capacity(cq_channel(states), tol=1e-9)
        cpu = time.process_time() - started
        name = f"random cq {letters} letters d={d}"
        rows.append({"instance": name, "solver": "Blahut-Arimoto", "median_abs_error": ba.upper_bound - ba.capacity,
                     "max_abs_error": ba.upper_bound - ba.capacity, "median_cpu_s": ba_cpu, "median_iterations": ba.iterations})
        rows.append({"instance": name, "solver": "zoo rgd", "median_abs_error": abs(riemannian.capacity - ba.capacity),
                     "max_abs_error": abs(riemannian.capacity - ba.capacity), "median_cpu_s": cpu,
                     "median_iterations": riemannian.iterations})
        print(rows[-2:], flush=True)
    if "boundary" in args.families:
        rows += boundary_rows(args.boundary_instances, args.boundary_methods)
    meta = {"command": "python tools/bench/holevo.py " + " ".join(sys.argv[1:]), "load_average": os.getloadavg(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "note": "errors vs closed forms; random channels: gap to the best value any solver reached on the seed; BA rows: its own bracket width; cq zoo row: gap to BA"}
    for row in rows:
        row.setdefault("command", meta["command"])
    if args.rows_from:
        earlier = json.loads(args.rows_from.read_text())
        rows = merge_rows(earlier["rows"] if isinstance(earlier, dict) else earlier, rows)  # a full JSON or its rows
    out = Path(args.out)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    write_markdown(out, meta, rows)


def merge_rows(earlier: list[dict], later: list[dict]) -> list[dict]:
    """One row per (instance, solver): a later run's row replaces an earlier one in place."""
    merged = {(r["instance"], r["solver"]): r for r in earlier}
    merged.update({(r["instance"], r["solver"]): r for r in later})
    return list(merged.values())


def write_markdown(out: Path, meta: dict, rows: list[dict]) -> None:
    commands = list(dict.fromkeys(r["command"] for r in rows))
    lines = ["# Holevo capacity benchmark\n", f"Medians over seeds; CPU = process time; {meta['threads']} torch thread(s); "
             f"load average {meta['load_average'][0]:.2f} at the end (a shared machine: compare times within a row group). "
             "Errors: against closed forms (depolarizing, amplitude damping); random channels: gap to the best value any "
             "solver reached on the same seed; Blahut-Arimoto rows: its own bracket width; cq zoo rows (random and rank-deficient "
             "cq): gap to Blahut-Arimoto; converged: instances reported converged (boundary family only). "
             "Rows come from:\n"] + [f"- `{c}`" for c in commands] + ["",
             "| instance | solver | median abs error | max abs error | median CPU s | median iterations | converged |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['instance']} | {r['solver']} | {r['median_abs_error']:.2e} | {r['max_abs_error']:.2e} | "
              f"{r['median_cpu_s']:.3f} | {r['median_iterations']} | {r.get('converged', '')} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
