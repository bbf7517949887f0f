"""AdaSkip timing on a GPU in bf16 with CUDA-event timing; exits 0 with a message when no GPU is there.

    python tools/bench/adaskip_gpu.py [--weights DIR] [--lengths 2048 8192] [--batches 1 16]
                                      [--plans benchmarks/adaskip_shards] [--out benchmarks/adaskip_gpu.json]

Model: SmolLM2-135M's architecture (30 layers, d = 576, 9 / 3 heads, SwiGLU 1536). With ``--weights`` (a folder
made by ``zoo.adaskip.smollm2.load_smollm2``) the real checkpoint is used; without it the weights are random,
which does not change the time of a forward pass: this run measures speed only, never quality. Arms: the unwrapped
model, the wrapper with nothing skipped (overhead), plans that skip 1/8 and 1/4 of the 60 sublayers as
attention-only, FFN-only and whole layers, and, with ``--plans``, the very plans of the CPU quality benchmark
(AdaSkip and every baseline at 1/8 and 1/4, read from its shards; arms that skip the same sublayers as an earlier
arm are timed once). Each shape (batch x prompt length) is timed on its own: prefill = time to first token (one
forward over the prompt, logits of the last position only); decode = mean ms per token over ``--decode`` cached
steps. Each number is the median of interleaved repeats; the FLOP estimate of ``zoo.adaskip.evaluate`` is
reported beside each measured speedup. At batch 1 a 135M model is bound by kernel launches on an H200; a larger
batch makes the prefill bound by arithmetic, where the FLOP estimate is the right yardstick.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def render(summary: dict) -> str:
    """Markdown table of a run, with a summary line per shape (wrapper overhead; measured vs FLOP-estimated speedup)."""
    lines = [f"# AdaSkip GPU timing ({summary['device']}, bf16, {summary['model']})", "",
             f"`{summary['command']}`; medians of {summary['repeats']} interleaved repeats, CUDA events; "
             f"prefill = time to first token, decode = mean of {summary['decode_tokens']} cached steps. "
             "`bench:` arms are the plans of the CPU quality benchmark (`benchmarks/adaskip.md`).", "",
             *[f"{note}\n" for note in summary.get("notes", [])],
             "| batch x prompt | arm | prefill ms | speedup | FLOP estimate | decode ms/token | decode speedup |",
             "|---|---|---|---|---|---|---|"]
    for shape, arms in summary["results"].items():
        for name, r in arms.items():
            lines.append(f"| {shape} | {name} | {r['prefill_ms']:.2f} | {r['prefill_speedup']:.3f} | "
                         f"{r['flop_speedup_estimate']:.3f} | {r['decode_ms_per_token']:.3f} | {r['decode_speedup']:.3f} |")
    lines += ["", "## Per shape", "",
              "Measured prefill speedup over the FLOP estimate's speedup, across the arms that skip something "
              "(1.0 = the time saved is what the FLOPs predict); wrapper overhead = empty wrapper against the unwrapped model.", "",
              "| batch x prompt | wrapper overhead, prefill | wrapper overhead, decode | measured / estimated prefill speedup: median (min-max) |",
              "|---|---|---|---|"]
    for shape, arms in summary["results"].items():
        ratios = sorted(r["prefill_speedup"] / r["flop_speedup_estimate"] for name, r in arms.items()
                        if name not in ("unwrapped", "wrapped_empty"))
        empty = arms["wrapped_empty"]
        lines.append(f"| {shape} | {100 * (1 / empty['prefill_speedup'] - 1):+.1f}% | {100 * (1 / empty['decode_speedup'] - 1):+.1f}% | "
                     f"{statistics.median(ratios):.3f} ({ratios[0]:.3f}-{ratios[-1]:.3f}) |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1])
    parser.add_argument("--plans", type=Path, default=None, help="shard folder of tools/bench/adaskip.py; its plans at 1/8 and 1/4 become arms")
    parser.add_argument("--decode", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "adaskip_gpu.json")
    parser.add_argument("--cpu-dry-run", action="store_true", help="run the same code on the CPU (wall clock) to check it")
    parser.add_argument("--render", type=Path, default=None, help="rewrite the .md beside this JSON from it (no GPU)")
    args = parser.parse_args()
    if args.render:
        args.render.with_suffix(".md").write_text(render(json.loads(args.render.read_text())))
        return 0
    device = "cpu" if args.cpu_dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("adaskip_gpu: no CUDA device here; nothing measured (run it where a GPU is)")
        return 0
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    from zoo.adaskip import AdaSkip, SkipPlan
    from zoo.adaskip.evaluate import flop_fraction

    if args.weights:
        model = LlamaForCausalLM.from_pretrained(args.weights, dtype=torch.bfloat16)
        source = f"weights from {args.weights}"
    else:
        config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                             num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=16384,
                             rope_theta=100000.0, tie_word_embeddings=True, attn_implementation="sdpa")
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).to(torch.bfloat16)
        source = "random weights, SmolLM2-135M architecture (timing only)"
    model = model.to(device).eval()
    L = model.config.num_hidden_layers
    prefill_kw = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    cache_kw = "cache" if "cache" in inspect.signature(model.model.forward).parameters else "past_key_values"
    plans = {"unwrapped": None, "wrapped_empty": SkipPlan("llama", L)}
    for label, count in (("1/8", 8), ("1/4", 15)):
        middle = list(range(2, 2 + count)) if count < L - 2 else list(range(1, L))
        plans[f"attention_only@{label}"] = SkipPlan("llama", L, attention_skip=tuple(middle[:count]))
        plans[f"ffn_only@{label}"] = SkipPlan("llama", L, ffn_skip=tuple(middle[:count]))
        layers = tuple(range(L - 1 - count // 2, L - 1))
        plans[f"whole_layers@{label}"] = SkipPlan("llama", L, attention_skip=layers, ffn_skip=layers)
    if args.plans:
        seen = {tuple(p.sublayers().items()) for p in plans.values() if p is not None}
        for shard in sorted(args.plans.glob("*@1_[48].json")):
            plan = SkipPlan("llama", L, **json.loads(shard.read_text())["plan"])
            key = tuple(plan.sublayers().items())
            if key not in seen:
                seen.add(key)
                method, fraction = shard.stem.split("@")
                plans[f"bench:{method}@{fraction.replace('_', '/')}"] = plan

    def new_cache(skipper):
        if skipper is not None:
            return skipper.new_cache()
        from transformers import DynamicCache

        return DynamicCache(config=model.config)

    class Timer:  # CUDA events on the GPU; wall clock for the CPU dry run
        def __init__(self):
            import time

            self.time = time
            self.cuda = device == "cuda"
            if self.cuda:
                self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def __enter__(self):
            if self.cuda:
                torch.cuda.synchronize()
                self.start.record()
            else:
                self.t0 = self.time.perf_counter()
            return self

        def __exit__(self, *exc):
            if self.cuda:
                self.end.record()
                torch.cuda.synchronize()
                self.ms = self.start.elapsed_time(self.end)
            else:
                self.ms = 1000 * (self.time.perf_counter() - self.t0)

    @torch.no_grad()
    def measure(skipper, ids):
        cache = new_cache(skipper)
        with Timer() as prefill:
            out = model(input_ids=ids, use_cache=True, **prefill_kw, **{cache_kw: cache})
        token = out.logits[:, -1:].argmax(-1)
        with Timer() as decode:
            for _ in range(args.decode):
                out = model(input_ids=token, use_cache=True, **{cache_kw: cache})
                token = out.logits[:, -1:].argmax(-1)
        return prefill.ms, decode.ms / args.decode

    def write(results):  # after every shape, so a run cut short keeps what it measured
        summary = {"command": "python tools/bench/adaskip_gpu.py " + " ".join(sys.argv[1:]),
                   "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (dry run)",
                   "dtype": "bfloat16", "model": source, "torch": torch.__version__,
                   "transformers": transformers.__version__, "repeats": args.repeats, "decode_tokens": args.decode,
                   "plans": {name: None if plan is None else plan.sublayers() for name, plan in plans.items()},
                   "results": results}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(render(summary))

    results = {}
    shapes = [(batch, length) for batch in args.batches for length in args.lengths]
    for batch, length in shapes:
        ids = torch.randint(100, 40000, (batch, length), generator=torch.Generator().manual_seed(length)).to(device)
        rows = {name: [] for name in plans}
        for name, plan in plans.items():  # warm-up, one pass each
            skipper = AdaSkip.wrap(model, plan) if plan is not None else None
            measure(skipper, ids)
            if skipper:
                skipper.unwrap()
        for _ in range(args.repeats):  # interleaved repeats
            for name, plan in plans.items():
                skipper = AdaSkip.wrap(model, plan) if plan is not None else None
                rows[name].append(measure(skipper, ids))
                if skipper:
                    skipper.unwrap()
        base_prefill = statistics.median(r[0] for r in rows["unwrapped"])
        base_decode = statistics.median(r[1] for r in rows["unwrapped"])
        results[f"{batch}x{length}"] = {
            name: {
                "prefill_ms": statistics.median(r[0] for r in rows[name]),
                "decode_ms_per_token": statistics.median(r[1] for r in rows[name]),
                "prefill_speedup": base_prefill / statistics.median(r[0] for r in rows[name]),
                "decode_speedup": base_decode / statistics.median(r[1] for r in rows[name]),
                "flop_speedup_estimate": (1.0 / (1.0 - flop_fraction(model.config, plan, length))) if plan is not None else 1.0,
            }
            for name, plan in plans.items()
        }
        write(results)
        print(f"shape {batch}x{length} done", flush=True)
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
