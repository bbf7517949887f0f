"""How far two data-parallel ExFM ranks end from one process, and why: float32 against float64, on the recipes' streams.

For the system of ``recipes/exfm/synthetic.yaml`` (trained from scratch on 12 windows of 20,000 rows) and its
continuation ``recipes/exfm/synthetic_finetune.yaml`` (6 more windows, started from the first case's one-process
float32 weights, as ``zoo run`` starts it from the pushed parent), each in float32 and in float64:

- one process: ``StreamingTrainer.run`` over the windows (what ``zoo run RECIPE`` computes, bit for bit);
- two ranks: ``zoo.exfm.stream.emulated_ranks`` (two threads; what ``zoo run RECIPE --trainer.devices 2
  --trainer.strategy ddp`` computes on CPU with one thread per process, bit for bit: ``tests/exfm/test_ddp.py``).

Reported: the largest weight difference (two ranks - one process) and the tensor holding it, the largest difference
of the stream metrics (NE, AUC, log loss of every model, averaged as the card averages them), and, in float32, when
the foundation model's first layer leaves rounding level: the first FM step at which its gap exceeds 100 times its
gap after step 1, the hidden unit holding the largest gap then, and that unit's smallest |pre-activation| on that
step's batch in the one-process run (a value within rounding of zero sits on the ReLU's kink: the two runs can put
it on opposite sides, and that row's gradient then counts for the unit in one run only), beside the median over
all steps of that unit's smallest |pre-activation|.

    python tools/bench/exfm_ddp.py          # about 7 minutes on one CPU thread; writes benchmarks/exfm_ddp.{json,md}
    python tools/bench/exfm_ddp.py --render # rewrite the .md from the .json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CASES = (("from scratch", "synthetic.yaml"), ("continuation", "synthetic_finetune.yaml"))


def stream_of(recipe: Path, cache_dir: str | None) -> Any:
    from zoo._core.runner import read_recipe
    from zoo.exfm import ExFMStreamData

    block, config = read_recipe(recipe)
    arguments = dict(config["data"]["init_args"])
    arguments.update(cache_dir=cache_dir, checkpoint_dir=None)
    held_out = arguments.pop("valid_windows", 0) + arguments.pop("test_windows", 0)
    if held_out:  # the recipe's training windows only (the same rows: every window has n_rows / n_windows of them)
        size = arguments["n_rows"] // arguments["n_windows"]
        arguments["n_windows"] -= held_out
        arguments["n_rows"] = size * arguments["n_windows"]
    return block, ExFMStreamData(**arguments)


def run(parent_state: dict[str, Any] | None, preset: str, data: Any, dtype: Any, ranks: int, trace: bool) -> dict[str, Any]:
    """One stream run (``ranks`` 1: one process; 2: two emulated ranks); returns the rank-0 system and its records."""
    import torch

    from zoo._core.registry import preset_config
    from zoo.exfm import ExFMSystem, StreamingTrainer
    from zoo.exfm.stream import emulated_ranks

    weights: list[torch.Tensor] = []
    smallest: list[torch.Tensor] = []  # per FM step: min over the batch of |pre-activation| of each first-layer unit

    def make_trainer(record: bool = False) -> StreamingTrainer:
        system = ExFMSystem(preset_config(preset))
        if parent_state is not None:
            system.load_state_dict(parent_state)
        system = system.to(dtype)
        trainer = StreamingTrainer(system, data_key=data.data_key(), start_window=data.start_window)
        if record:
            layer, step = system.foundation.mlp[0], trainer.foundation_optimizer.step

            def recorded_step(*args: Any, **kwargs: Any) -> Any:
                out = step(*args, **kwargs)
                weights.append(layer.weight.detach().clone())
                return out

            def pre_activation(module: Any, inputs: Any, output: torch.Tensor) -> None:
                if torch.is_grad_enabled():  # training forward passes only (scoring runs under no_grad)
                    smallest.append(output.detach().abs().amin(0))

            trainer.foundation_optimizer.step = recorded_step
            layer.register_forward_hook(pre_activation)
        return trainer

    windows = data.windows()
    if ranks == 1:
        trainer = make_trainer(record=trace)
        trainer.run(windows)
    else:
        built = iter(range(ranks))
        trainers = emulated_ranks(lambda: make_trainer(record=trace and next(built) == 0), windows, world=ranks)
        states = [t.system.state_dict() for t in trainers]
        if not all(torch.equal(states[0][k], s[k]) for s in states[1:] for k in states[0]):
            raise AssertionError("the emulated ranks ended with different weights")
        trainer = trainers[0]
    return {"system": trainer.system, "summary": trainer.summary(), "weights": weights, "smallest": smallest}


def difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    sa, sb = a["system"].state_dict(), b["system"].state_dict()
    gaps = {k: (sa[k].double() - sb[k].double()).abs() for k in sa if sa[k].is_floating_point()}
    worst = max(gaps, key=lambda k: float(gaps[k].max()))
    metrics = [k for k in a["summary"] if k.rsplit("/", 1)[-1] in ("ne", "auc", "logloss")]
    return {
        "max_weight_difference": float(gaps[worst].max()),
        "tensor": worst,
        "tensor_median_difference": float(gaps[worst].median()),
        "identical_tensors": sum(int(float(g.max()) == 0.0) for g in gaps.values()),
        "tensors": len(gaps),
        "max_metric_difference": max(abs(a["summary"][k] - b["summary"][k]) for k in metrics),
    }


def kink(single: dict[str, Any], ranks: dict[str, Any]) -> dict[str, Any]:
    """When the FM's first layer leaves rounding level (float32 runs), and what sat on a ReLU kink then."""
    import torch

    gaps = [(a.double() - b.double()).abs() for a, b in zip(single["weights"], ranks["weights"])]
    per_step = [float(g.max()) for g in gaps]
    out: dict[str, Any] = {"fm_steps": len(per_step), "gap_after_step_1": per_step[0], "gap_at_end": per_step[-1]}
    threshold = 100 * max(per_step[0], 1e-12)
    jump = next((s for s, g in enumerate(per_step) if g > threshold), None)
    if jump is None:
        return out
    unit = int(gaps[jump].max(1).values.argmax())
    smallest = torch.stack(single["smallest"])[:, unit].double()  # [fm steps]
    out.update({
        "jump_step": jump + 1,
        "gap_before_jump": per_step[jump - 1] if jump else 0.0,
        "gap_after_jump": per_step[jump],
        "unit": unit,
        "unit_smallest_pre_activation_at_jump": float(smallest[jump]),
        "unit_smallest_pre_activation_median": float(smallest.median()),
    })
    return out


def render(result: dict[str, Any]) -> str:
    lines = [
        "# ExFM data parallelism: two ranks against one process",
        "",
        "Written by `python tools/bench/exfm_ddp.py` (see its docstring for the protocol). Two ranks are emulated by two",
        "threads (`zoo.exfm.stream.emulated_ranks`), which a 2-process gloo run reproduces bit for bit (checked on the",
        "tiny continuation by `tests/exfm/test_ddp.py`). Differences are two ranks minus one process, over every weight",
        "of the system (foundation model, students, adapters) and every stream metric of the card (NE, AUC, log loss).",
        "",
        f"Machine: {result['machine']}; torch {result['torch']}, {result['threads']} thread(s); {result['seconds']:.0f} s.",
        "",
        "| case | dtype | max weight difference | in tensor (median there) | identical tensors | max metric difference |",
        "|---|---|---|---|---|---|",
    ]
    for case in result["cases"]:
        for dtype in ("float32", "float64"):
            d = case[dtype]
            lines.append(f"| {case['case']} | {dtype} | {d['max_weight_difference']:.3g} | `{d['tensor']}` ({d['tensor_median_difference']:.2g}) "
                         f"| {d['identical_tensors']} of {d['tensors']} | {d['max_metric_difference']:.2g} |")
    lines += ["", "One process, float32 against float64 (the size of float32 rounding itself, grown by training):", "",
              "| case | max weight difference | in tensor | max metric difference |", "|---|---|---|---|"]
    for case in result["cases"]:
        d = case["float32_vs_float64"]
        lines.append(f"| {case['case']} | {d['max_weight_difference']:.3g} | `{d['tensor']}` | {d['max_metric_difference']:.2g} |")
    lines += ["", "When the foundation model's first layer (float32) leaves rounding level:", "",
              "| case | FM steps | gap after step 1 | first step with 100x that gap | gap before / after it | unit | its smallest pre-activation then (median over steps) | gap at the end |",
              "|---|---|---|---|---|---|---|---|"]
    for case in result["cases"]:
        k = case["kink"]
        if "jump_step" in k:
            lines.append(f"| {case['case']} | {k['fm_steps']} | {k['gap_after_step_1']:.2g} | {k['jump_step']} | {k['gap_before_jump']:.2g} / "
                         f"{k['gap_after_jump']:.2g} | {k['unit']} | {k['unit_smallest_pre_activation_at_jump']:.2g} "
                         f"({k['unit_smallest_pre_activation_median']:.2g}) | {k['gap_at_end']:.2g} |")
        else:
            lines.append(f"| {case['case']} | {k['fm_steps']} | {k['gap_after_step_1']:.2g} | none | | | | {k['gap_at_end']:.2g} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", default=str(ROOT / "zoo_runs" / "exfm" / "data"), help="where the synthetic streams are cached")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "exfm_ddp"), help="output path without extension")
    parser.add_argument("--render", action="store_true", help="only rewrite OUT.md from OUT.json")
    args = parser.parse_args()
    if args.render:
        Path(args.out + ".md").write_text(render(json.loads(Path(args.out + ".json").read_text())))
        return

    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    cases, parent_state = [], None
    for name, recipe in CASES:
        block, data = stream_of(ROOT / "recipes" / "exfm" / recipe, args.cache_dir)
        preset = block.get("preset") or "exfm_synthetic"  # the continuation's parent is the first case's system
        runs = {}
        for dtype in (torch.float32, torch.float64):
            for ranks in (1, 2):
                print(f"{name}: {dtype} {ranks} rank(s)", flush=True)
                runs[dtype, ranks] = run(parent_state, preset, data, dtype, ranks, trace=dtype == torch.float32)
        cases.append({
            "case": name, "recipe": f"recipes/exfm/{recipe}",
            "float32": difference(runs[torch.float32, 2], runs[torch.float32, 1]),
            "float64": difference(runs[torch.float64, 2], runs[torch.float64, 1]),
            "float32_vs_float64": difference(runs[torch.float32, 1], runs[torch.float64, 1]),
            "kink": kink(runs[torch.float32, 1], runs[torch.float32, 2]),
        })
        parent_state = {k: v.detach().clone() for k, v in runs[torch.float32, 1]["system"].state_dict().items()}
        del runs
    result = {"machine": f"{platform.processor() or platform.machine()}, {platform.system()}", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "seconds": time.perf_counter() - started, "cases": cases}
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    Path(args.out + ".md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
