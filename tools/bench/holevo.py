"""Holevo capacity benchmark: zoo RGD / RTR vs pymanopt 2.2.1 TrustRegions vs Blahut-Arimoto (cq channels).

Run:  python tools/bench/holevo.py [--seeds 5] [--out benchmarks/holevo.json]
Writes JSON and a markdown table (benchmarks/holevo.md). CPU time is time.process_time of the solver call;
medians over seeds (seed = random initial states). pymanopt uses p = x^2 on a sphere and states as real
vectors on an oblique manifold (the notes' formulation), with a torch cost using eigvalsh entropies (its
autodiff Hessian needs double backward) and min_gradient_norm 1e-8.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch

from zoo.holevo import amplitude_damping, blahut_arimoto, cq_channel, depolarizing, holevo_capacity
from zoo.holevo.model import channel_outputs
from zoo.holevo.reference import amplitude_damping_chi, depolarizing_chi


def _entropy_eigvalsh(rho):
    values = torch.linalg.eigvalsh(rho).clamp_min(1e-300)
    return -(values * torch.log2(values)).sum(-1)


def pymanopt_tr(kraus, seed):
    import numpy as np
    import pymanopt

    d = kraus.shape[2]
    m = d * d
    manifold = pymanopt.manifolds.Product([pymanopt.manifolds.Sphere(m), pymanopt.manifolds.Oblique(2 * d, m)])

    @pymanopt.function.pytorch(manifold)
    def cost(x, s):
        states = torch.complex(s[:d].T, s[d:].T)
        weights = x * x
        outputs = channel_outputs(kraus, states)
        average = torch.einsum("m,mab->ab", weights.to(outputs.dtype), outputs)
        return (weights * _entropy_eigvalsh(outputs)).sum() - _entropy_eigvalsh(average)

    problem = pymanopt.Problem(manifold, cost)
    rng = np.random.default_rng(seed)
    x0 = [np.full(m, 1 / math.sqrt(m)), rng.standard_normal((2 * d, m))]
    x0[1] /= np.linalg.norm(x0[1], axis=0, keepdims=True)
    optimizer = pymanopt.optimizers.TrustRegions(verbosity=0, min_gradient_norm=1e-8, max_time=120)
    started = time.process_time()
    result = optimizer.run(problem, initial_point=x0)
    return -float(result.cost), time.process_time() - started, int(result.iterations)


def ours(kraus, seed, method):
    started = time.process_time()
    result = holevo_capacity(kraus, method=method, tol=1e-8, seed=seed)
    return result.capacity, time.process_time() - started, result.iterations


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/holevo.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    instances = [
        ("depolarizing d=2 q=0.3", depolarizing(2, 0.3), depolarizing_chi(2, 0.3)),
        ("amplitude damping 0.5", amplitude_damping(0.5), amplitude_damping_chi(0.5)[0]),
        ("depolarizing d=3 q=0.5", depolarizing(3, 0.5), depolarizing_chi(3, 0.5)),
        ("depolarizing d=4 q=0.2", depolarizing(4, 0.2), depolarizing_chi(4, 0.2)),
    ]
    rows = []
    for name, kraus, truth in instances:
        for solver in ("zoo rgd", "zoo trust_region", "pymanopt TrustRegions"):
            runs = []
            for seed in range(args.seeds):
                try:
                    if solver == "pymanopt TrustRegions":
                        value, cpu, iterations = pymanopt_tr(kraus, seed)
                    else:
                        value, cpu, iterations = ours(kraus, seed, solver.split()[1])
                    runs.append((abs(value - truth), cpu, iterations))
                except Exception as error:  # noqa: BLE001 - record the failure in the table
                    runs.append((math.nan, math.nan, -1))
                    print(f"{name} {solver} seed {seed}: {type(error).__name__}: {error}")
            rows.append({"instance": name, "solver": solver, "median_abs_error": statistics.median(r[0] for r in runs),
                         "max_abs_error": max(r[0] for r in runs), "median_cpu_s": statistics.median(r[1] for r in runs),
                         "median_iterations": statistics.median(r[2] for r in runs)})
            print(rows[-1], flush=True)
    generator = torch.Generator().manual_seed(0)
    for letters, d in ((2, 2), (3, 3)):
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
    meta = {"command": "python tools/bench/holevo.py --seeds %d" % args.seeds, "load_average": os.getloadavg(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "note": "errors vs closed forms (BA rows: its own bracket width; cq zoo row: gap to BA)"}
    out = Path(args.out)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"# Holevo capacity benchmark\n\n`{meta['command']}` (load average {meta['load_average'][0]:.2f}, "
             f"{meta['threads']} torch threads; medians over seeds; CPU = process time)\n",
             "| instance | solver | median abs error | max abs error | median CPU s | median iterations |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['instance']} | {r['solver']} | {r['median_abs_error']:.2e} | {r['max_abs_error']:.2e} | "
              f"{r['median_cpu_s']:.3f} | {r['median_iterations']} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
