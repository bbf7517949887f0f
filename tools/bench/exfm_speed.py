"""ExFM speed, three tables that are never mixed (benchmarks/exfm.md, sections "Speed"):

(a) End to end, each framework through its usual API on the same Arrow stream on disk: zoo's
    ``ArrowStream`` + ``ExFMSystem`` (a foundation model only) + ``StreamingTrainer`` (it also scores every
    window before training on it: progressive validation is part of its loop) and ``ExFMSystem.score``;
    DeepCTR-Torch's ``fit`` / ``predict``; FuxiCTR's files, data loader and ``fit`` / ``predict`` when it is
    installed. Every framework gets the same encoded ids (zoo's feature spec) and the same DCNv2 shape; each runs
    in its own process, the processes interleaved over repeats. Embedding init std 0.01 everywhere (DeepCTR's
    default is 1e-4, which costs it AUC on this stream), so the AUC columns compare matched inits.
(b) Model against model: zoo's ``CTRNetwork``, DeepCTR-Torch's ``DCN`` module and FuxiCTR's DCNv2 module with
    the same initial weights (copied from one zoo init; the copies' outputs are checked equal before timing),
    fed the same tensor slices (each model's input form prepared outside the timed region), the same Adam, one
    thread, in one process; timed blocks interleaved and rotated over repeats.
(c) Levers, one at a time, against the same model in a plain PyTorch loop (``PlainDCN``: one ``nn.Embedding``
    per field, dense Adam, fp32, eager, scored with autograd on): a fused table with offsets (zoo's
    ``FusedEmbedding``), row-wise sparse Adam on the tables, ``torch.compile``, scoring without autograd
    (``no_grad`` / ``inference_mode``) and bf16 autocast; then zoo's combination. Run at two vocabulary sizes
    (the speed stream's hashed 4,096 users / 2,048 items, and the production-shaped 2^20 / 2^17).

Timing: ``time.process_time`` (one thread; CPU time is robust to other load on the machine) with wall time kept
in the JSON; medians and ranges over repeats. Quality: one full pass over the training windows per arm, then
AUC and log loss on the held-out last window.

    python tools/bench/exfm.py --speed                          # (a): end to end, every framework installed
    python tools/bench/exfm.py --speed-models                   # (b) and (c) at both vocabularies
"""

from __future__ import annotations

import copy
import json
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONFIG = {"dim": 16, "cross": 2, "hidden": [256, 128], "lr": 1e-3, "batch": 1024, "score_batch": 8192, "init_std": 0.01}


# -- the same DCNv2 written plainly --------------------------------------------------------------------------------
class PlainDCN(nn.Module):
    """zoo's DCNv2 (``CTRNetwork(..., "dcnv2", ...)``, serving head) written the plain way: one ``nn.Embedding`` per
    field and one 1-wide per field for the first-order term, instead of one fused table with offsets.

    logit = w . [x_L, MLP(x_0)] + b + sum_f w_{x_f},  x_0 = [e_1(x_1), ..., e_F(x_F)],
    x_{l+1} = x_0 * (W_l x_l + b_l) + x_l   (DCNv2, Wang et al. 2021, arXiv 2008.13535, Eq. 1).
    """

    def __init__(self, field_sizes: list[int], dim: int, cross: int, hidden: list[int], *, sparse: bool = False) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(n, dim, sparse=sparse) for n in field_sizes)
        self.first = nn.ModuleList(nn.Embedding(n, 1, sparse=sparse) for n in field_sizes)
        width = len(field_sizes) * dim
        self.cross = nn.ModuleList(nn.Linear(width, width) for _ in range(cross))
        layers: list[nn.Module] = []
        for a, b in zip([width, *hidden], hidden):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.mlp = nn.Sequential(*layers)
        self.head = nn.Linear(width + hidden[-1], 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x0 = torch.cat([table(ids[:, j]) for j, table in enumerate(self.tables)], dim=1)
        first = torch.cat([table(ids[:, j]) for j, table in enumerate(self.first)], dim=1).sum(1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.head(torch.cat([x, self.mlp(x0)], dim=1)).squeeze(-1) + first

    @classmethod
    def from_zoo(cls, net: nn.Module, field_sizes: list[int], *, sparse: bool = False) -> "PlainDCN":
        """The plain model holding ``net``'s weights (a ``CTRNetwork`` with DCNv2 and a serving head)."""
        dim = net.embedding.table.embedding_dim
        hidden = [m.out_features for m in net.mlp if isinstance(m, nn.Linear)]
        plain = cls(field_sizes, dim, len(net.cross), hidden, sparse=sparse)
        with torch.no_grad():
            for j, start in enumerate(net.embedding.offsets.tolist()):
                plain.tables[j].weight.copy_(net.embedding.table.weight[start:start + field_sizes[j]])
                plain.first[j].weight.copy_(net.embedding.bias.weight[start:start + field_sizes[j]])
            plain.cross.load_state_dict(net.cross.state_dict())
            plain.mlp.load_state_dict(net.mlp.state_dict())
            plain.head.load_state_dict(net.heads["serving"].state_dict())
        return plain


def zoo_network(field_sizes: list[int], cfg: dict[str, Any], seed: int = 0) -> nn.Module:
    from zoo.exfm.model import CTRNetwork

    torch.manual_seed(seed)
    return CTRNetwork(field_sizes, "dcnv2", cfg["dim"], cfg["cross"], tuple(cfg["hidden"]))


# -- DeepCTR-Torch's DCN with zoo's weights ---------------------------------------------------------------------------
def deepctr_dcn(spec: Any, cfg: dict[str, Any]) -> nn.Module:
    """DeepCTR-Torch's ``DCN`` (matrix cross = DCNv2) of the same shape, no regularisation, dropout or batch norm."""
    from deepctr_torch.inputs import SparseFeat
    from deepctr_torch.models import DCN

    columns = [SparseFeat(f.name, size, embedding_dim=cfg["dim"]) for f, size in zip(spec.features, spec.field_sizes)]
    return DCN(columns, columns, cross_num=cfg["cross"], cross_parameterization="matrix", dnn_hidden_units=tuple(cfg["hidden"]),
               l2_reg_linear=0, l2_reg_embedding=0, l2_reg_cross=0, l2_reg_dnn=0, dnn_dropout=0, init_std=cfg["init_std"],
               device="cpu", seed=0)


def copy_zoo_into_deepctr(model: nn.Module, net: nn.Module, spec: Any) -> None:
    """DeepCTR's DCN computes sigmoid(linear_model(X) + dnn_linear([crossnet(x0), dnn(x0)]) + out.bias), with the
    cross kernels applied as W x_l and the first-order term one 1-wide embedding per field: every zoo weight maps."""
    with torch.no_grad():
        for f, size, start in zip(spec.features, spec.field_sizes, net.embedding.offsets.tolist()):
            model.embedding_dict[f.name].weight.copy_(net.embedding.table.weight[start:start + size])
            model.linear_model.embedding_dict[f.name].weight.copy_(net.embedding.bias.weight[start:start + size])
        for i, layer in enumerate(net.cross):
            model.crossnet.kernels[i].copy_(layer.weight)
            model.crossnet.bias[i].copy_(layer.bias[:, None])
        linears = [m for m in net.mlp if isinstance(m, nn.Linear)]
        for mine, theirs in zip(linears, model.dnn.linears):
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)
        model.dnn_linear.weight.copy_(net.heads["serving"].weight)
        model.out.bias.copy_(net.heads["serving"].bias)


# -- arms -------------------------------------------------------------------------------------------------------------
@dataclass
class Arm:
    """One way to train and score the model: ``build(init)`` -> (module, optimizer factory); ``inputs(ids)`` turns
    local ids into the module's input (done outside timing); ``output`` is "logit" or "probability"."""

    name: str
    table: str  # "models" (b) or "levers" (c)
    build: Callable[[nn.Module], tuple[nn.Module, Callable[[nn.Module], Any]]]
    inputs: Callable[[torch.Tensor], Any] = lambda ids: ids
    output: str = "logit"
    autocast: bool = False
    compiled: bool = False
    note: str = ""


def _adam(cfg: dict[str, Any], fused: bool = False) -> Callable[[nn.Module], Any]:
    return lambda module: torch.optim.Adam(module.parameters(), lr=cfg["lr"], fused=fused or None)


class _SplitAdam:
    """Adam on dense parameters, SparseAdam on the sparse embedding weights (row-wise: only the batch's rows move)."""

    def __init__(self, module: nn.Module, lr: float, fused: bool = False) -> None:
        rows = [m.weight for m in module.modules() if isinstance(m, nn.Embedding) and m.sparse]
        dense = [p for p in module.parameters() if all(p is not q for q in rows)]
        self.optimizers = [torch.optim.Adam(dense, lr=lr, fused=fused or None), torch.optim.SparseAdam(rows, lr=lr)]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()


def make_arms(spec: Any, cfg: dict[str, Any], frameworks: bool = True) -> list[Arm]:
    sizes = list(spec.field_sizes)

    def optimizer(sparse: bool, fused_adam: bool) -> Callable[[nn.Module], Any]:
        return (lambda m: _SplitAdam(m, cfg["lr"], fused_adam)) if sparse else _adam(cfg, fused_adam)

    def plain(sparse: bool = False, fused_adam: bool = False) -> Callable[[nn.Module], tuple[nn.Module, Any]]:
        return lambda init: (PlainDCN.from_zoo(init, sizes, sparse=sparse), optimizer(sparse, fused_adam))

    def fused(sparse: bool = False, fused_adam: bool = False) -> Callable[[nn.Module], tuple[nn.Module, Any]]:
        def build(init: nn.Module) -> tuple[nn.Module, Any]:
            net = copy.deepcopy(init)
            net.embedding.table.sparse = net.embedding.bias.sparse = sparse
            return net, optimizer(sparse, fused_adam)
        return build

    arms = [
        Arm("zoo CTRNetwork (fused table)", "models", fused()),
        Arm("plain PyTorch (one table per field)", "models", plain()),
    ]
    if frameworks:
        if not _installed("deepctr-torch"):
            print("[speed] DeepCTR-Torch model skipped: not installed", file=sys.stderr)
        else:
            def build_deepctr(init: nn.Module) -> tuple[nn.Module, Any]:
                model = deepctr_dcn(spec, cfg)
                copy_zoo_into_deepctr(model, init, spec)
                return model, _adam(cfg)
            arms.append(Arm("DeepCTR-Torch DCN module", "models", build_deepctr, inputs=lambda ids: ids.float(), output="probability",
                            note="input: a float tensor of ids (its model's contract); output: sigmoid, so its loss is BCE on probabilities"))
        if not _installed("fuxictr"):
            print("[speed] FuxiCTR model skipped: not installed", file=sys.stderr)
        else:
            exfm_fuxictr = _fuxictr()

            def build_fuxi(init: nn.Module) -> tuple[nn.Module, Any]:
                model = exfm_fuxictr.build_dcnv2(sizes, cfg, names=[f.name for f in spec.features])
                exfm_fuxictr.copy_from_zoo(model, init)
                return model, _adam(cfg)
            arms.append(Arm("FuxiCTR DCNv2 module", "models", build_fuxi, output="fuxictr",
                            note="no first-order term (zoo's starts at zero, so the initial outputs agree; it then trains in zoo "
                                 "and not in FuxiCTR); input: a dict of per-feature columns (views); loss: BCE on its logits"))
    arms += [
        Arm("plain (baseline)", "levers", plain()),
        Arm("+ fused table with offsets", "levers", fused()),
        Arm("+ row-wise sparse Adam", "levers", plain(sparse=True)),
        Arm("+ torch.compile", "levers", plain(), compiled=True),
        Arm("+ fused Adam step", "levers", plain(fused_adam=True)),
        Arm("+ bf16 autocast", "levers", plain(), autocast=True),
        Arm("zoo: fused table + bf16", "levers", fused(), autocast=True),
        Arm("zoo: fused table + bf16 + row-wise sparse Adam", "levers", fused(sparse=True), autocast=True),
    ]
    return arms


# -- the timed loops --------------------------------------------------------------------------------------------------
def _output(arm: Arm, module: nn.Module, x: Any) -> torch.Tensor:
    """The model's output [batch]: logits, or probabilities for an arm whose ``output`` is "probability"."""
    if arm.output == "fuxictr":
        import exfm_fuxictr

        return exfm_fuxictr.logits(module, x)
    out = module(x)
    return out.squeeze(-1) if arm.output == "probability" else out


def _loss(arm: Arm, module: nn.Module, x: Any, y: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=arm.autocast):
        out = _output(arm, module, x)
    out = out.float()
    if arm.output == "probability":
        return nn.functional.binary_cross_entropy(out, y)
    return nn.functional.binary_cross_entropy_with_logits(out, y)


def train_pass(arm: Arm, module: nn.Module, optimizer: Any, x: Any, y: torch.Tensor, batch: int) -> None:
    module.train()
    for i in range(0, len(y), batch):
        optimizer.zero_grad(set_to_none=True)
        _loss(arm, module, x[i:i + batch], y[i:i + batch]).backward()
        optimizer.step()


SCORE_MODES = ("grad", "no_grad", "inference_mode")


def score(arm: Arm, module: nn.Module, x: Any, n: int, batch: int, mode: str) -> np.ndarray:
    """Probabilities of rows [0, n) in batches; ``mode``: autograd on ("grad"), ``no_grad`` or ``inference_mode``."""
    module.eval()
    context = {"grad": torch.enable_grad, "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}[mode]
    out = []
    with context(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=arm.autocast):
        for i in range(0, n, batch):
            rows = x[i:min(i + batch, n)]
            z = _output(arm, module, rows).float()
            out.append((z if arm.output == "probability" else torch.sigmoid(z)).detach())
    return torch.cat(out).numpy()


def _clock() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def encoded_split(stream: Any, spec: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training windows (all but the last) and the held-out last window, encoded by ``spec``."""
    windows = list(stream)
    x = [spec.encode(w, strict=False) for w in windows]
    y = [np.asarray(w.column("label").to_numpy(), dtype=np.float32) for w in windows]
    return (torch.from_numpy(np.concatenate(x[:-1])), torch.from_numpy(np.concatenate(y[:-1])),
            torch.from_numpy(x[-1]), torch.from_numpy(y[-1]))


def run_models(spec: Any, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
               cfg: dict[str, Any], *, repeats: int, train_batches: int, score_batches: int, frameworks: bool = True,
               quality: bool = True, only: list[str] | None = None, log: Callable[[str], None] = print,
               score_passes: int = 1) -> dict[str, Any]:
    """Tables (b) and (c) on one encoded stream: equality check, warm-up, interleaved timed blocks, full passes."""
    import torch._dynamo

    # compiled graphs of an earlier call (another vocabulary) count toward the per-function recompile limit, past
    # which dynamo silently runs the function eagerly: start clean, with room for the variants one run needs
    # (train / eval x grad / no_grad / inference_mode x static / dynamic batch)
    torch._dynamo.reset()
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    torch._dynamo.config.fail_on_recompile_limit_hit = True  # never an eager run in a compiled arm's row
    init = zoo_network(list(spec.field_sizes), cfg)
    with torch.no_grad():  # the zoo init with the shared init std (its default is 0.01 too; set so the copies agree)
        init.embedding.table.weight.normal_(0, cfg["init_std"], generator=torch.Generator().manual_seed(0))
    arms = [a for a in make_arms(spec, cfg, frameworks) if only is None or a.name in only]
    modules, inputs, factories, state = {}, {}, {}, {}
    for arm in arms:
        module, factories[arm.name] = arm.build(init)
        modules[arm.name] = torch.compile(module) if arm.compiled else module
        state[arm.name] = copy.deepcopy(module.state_dict())
        inputs[arm.name] = (arm.inputs(x_train), arm.inputs(x_test))
    # same weights: every copy's probabilities on 4096 test rows equal the zoo network's (before any timing)
    reference = torch.sigmoid(init(x_test[:4096])).detach().numpy()
    agreement = {}
    for arm in arms:
        p = score(arm, modules[arm.name], inputs[arm.name][1], 4096, cfg["score_batch"], "no_grad")
        agreement[arm.name] = float(np.max(np.abs(p - reference)))
        tolerance = 2e-2 if arm.autocast else 1e-5
        if agreement[arm.name] > tolerance:
            raise RuntimeError(f"{arm.name}: initial probabilities differ from zoo's by {agreement[arm.name]:.2e} (> {tolerance})")
    log("[speed] initial agreement with zoo's network: " + ", ".join(f"{k}: {v:.1e}" for k, v in agreement.items()))

    batch, sbatch = cfg["batch"], cfg["score_batch"]
    n_train, n_score = min(train_batches * batch, len(y_train) // batch * batch), min(score_batches * sbatch, len(y_test))

    def reset(arm: Arm) -> nn.Module:
        """The arm's module back at the shared initial weights (in place: a compiled module keeps its graphs)."""
        module = modules[arm.name]
        (module._orig_mod if arm.compiled else module).load_state_dict(state[arm.name])
        return module

    def optimizer_for(arm: Arm, module: nn.Module) -> Any:
        return factories[arm.name](module._orig_mod if arm.compiled else module)

    warmup = {}
    for arm in arms:  # compile and warm caches: 3 training batches and one scoring batch per mode, not timed
        module = reset(arm)
        t0 = _clock()
        train_pass(arm, module, optimizer_for(arm, module), inputs[arm.name][0][:3 * batch], y_train[:3 * batch], batch)
        for mode in SCORE_MODES:
            score(arm, module, inputs[arm.name][1], sbatch, sbatch, mode)
        warmup[arm.name] = _clock()[0] - t0[0]
    runs: list[dict[str, Any]] = []
    for repeat in range(repeats):
        order = arms[repeat % len(arms):] + arms[:repeat % len(arms)]  # rotate who goes first
        for arm in order:
            module = reset(arm)
            optimizer = optimizer_for(arm, module)
            t0 = _clock()
            train_pass(arm, module, optimizer, inputs[arm.name][0][:n_train], y_train[:n_train], batch)
            t1 = _clock()
            row = {"arm": arm.name, "repeat": repeat, "train_cpu_s": t1[0] - t0[0], "train_wall_s": t1[1] - t0[1]}
            for mode in SCORE_MODES:
                s0 = _clock()
                for _ in range(score_passes):  # several passes over the scored rows: a longer, steadier timing
                    score(arm, module, inputs[arm.name][1], n_score, sbatch, mode)
                s1 = _clock()
                row[f"score_{mode}_cpu_s"], row[f"score_{mode}_wall_s"] = s1[0] - s0[0], s1[1] - s0[1]
            runs.append(row)
        log(f"[speed] repeat {repeat + 1}/{repeats}: " + ", ".join(f"{r['arm']}: {r['train_cpu_s']:.2f} s"
                                                                for r in runs if r["repeat"] == repeat))
    quality_rows = {}
    if quality:
        y = y_test.numpy().astype(np.float64)
        for arm in arms:
            module = reset(arm)
            t0 = _clock()
            train_pass(arm, module, optimizer_for(arm, module), inputs[arm.name][0], y_train, batch)
            t1 = _clock()
            p = score(arm, module, inputs[arm.name][1], len(y_test), sbatch, "no_grad")
            from zoo.exfm.metrics import auc

            quality_rows[arm.name] = {"test_auc": auc(y, p), "test_logloss": _logloss(y, p), "full_pass_cpu_s": t1[0] - t0[0]}
            log(f"[speed] full pass {arm.name}: AUC {quality_rows[arm.name]['test_auc']:.4f} "
                f"log loss {quality_rows[arm.name]['test_logloss']:.4f} in {t1[0] - t0[0]:.1f} CPU s")
    return {"arms": [{"name": a.name, "table": a.table, "note": a.note, "compiled": a.compiled, "bf16": a.autocast} for a in arms],
            "train_rows_timed": n_train, "score_rows_timed": n_score * score_passes, "score_passes": score_passes, "train_rows": len(y_train), "test_rows": len(y_test),
            "field_sizes": list(spec.field_sizes), "table_rows": int(sum(spec.field_sizes)), "repeats": repeats,
            "initial_max_abs_probability_difference": agreement, "warmup_cpu_s": warmup, "runs": runs, "quality": quality_rows}


# -- what the end-to-end AUC gap comes from: the linear layers' init and the first-order term ---------------------------
INIT_ARMS = ("PyTorch default (zoo, DeepCTR-Torch)", "xavier-normal weights, zero biases (FuxiCTR)",
             "xavier-normal, no first-order term (FuxiCTR's model)", "PyTorch default, no first-order term")


def init_study(spec: Any, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
               cfg: dict[str, Any], seeds: list[int], log: Callable[[str], None] = print) -> dict[str, Any]:
    """zoo's network trained one pass (plain loop, Adam, fp32) from each init in ``INIT_ARMS``, per seed: test AUC
    and log loss. Embeddings are N(0, 0.01) in every arm; only the linear layers' init and the first-order term vary."""
    from zoo.exfm.metrics import auc

    arm = Arm("init", "init", lambda init: (init, _adam(cfg)))
    y = y_test.numpy().astype(np.float64)
    rows = []
    for seed in seeds:
        for name in INIT_ARMS:
            net = zoo_network(list(spec.field_sizes), cfg, seed)
            if "xavier" in name:
                for module in net.modules():
                    if isinstance(module, nn.Linear):
                        nn.init.xavier_normal_(module.weight)
                        nn.init.zeros_(module.bias)
            if "no first-order" in name:
                net.embedding.bias.weight.requires_grad_(False)  # stays at its zero init
            optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg["lr"])
            train_pass(arm, net, optimizer, x_train, y_train, cfg["batch"])
            p = score(arm, net, x_test, len(y_test), cfg["score_batch"], "no_grad")
            rows.append({"seed": seed, "init": name, "test_auc": auc(y, p), "test_logloss": _logloss(y, p)})
            log(f"[init] seed {seed} {name}: AUC {rows[-1]['test_auc']:.4f}")
    return {"seeds": seeds, "rows": rows}


def init_markdown(result: dict[str, Any]) -> str:
    lines = ["| linear layers' init | test AUC | test log loss |", "|---|---|---|"]
    for name in INIT_ARMS:
        auc_ = [r["test_auc"] for r in result["rows"] if r["init"] == name]
        loss = [r["test_logloss"] for r in result["rows"] if r["init"] == name]
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
        lines.append(f"| {name} | {statistics.mean(auc_):.4f} ± {sd(auc_):.4f} | {statistics.mean(loss):.4f} ± {sd(loss):.4f} |")
    return "\n".join(lines)


# -- markdown ---------------------------------------------------------------------------------------------------------
def _stats(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def models_markdown(result: dict[str, Any], table: str, title: str) -> str:
    """Table (b) or (c) of one vocabulary setting from ``run_models``' result."""
    arms = [a for a in result["arms"] if a["table"] == table]
    base_name = arms[0]["name"] if table == "models" else "plain (baseline)"
    runs = result["runs"]
    per = {a["name"]: [r for r in runs if r["arm"] == a["name"]] for a in arms}

    def rate(name: str, key: str, rows: int) -> list[float]:
        return [rows / r[key] for r in per[name]]

    def ratio(name: str, key: str, base_key: str) -> tuple[float, float, float]:
        # paired per repeat: the base arm and this arm ran in the same repeat
        base = {r["repeat"]: r[base_key] for r in per[base_name]}
        return _stats([base[r["repeat"]] / r[key] for r in per[name]])

    nt, ns = result["train_rows_timed"], result["score_rows_timed"]
    lines = [title, "",
             "| arm | train rows/CPU s | × " + ("zoo" if table == "models" else "plain") + " (paired) | score rows/CPU s, no_grad | "
             "score, autograd on | score, inference_mode | × (no_grad, paired) | test AUC | test log loss | full pass CPU s (one run) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for a in arms:
        name = a["name"]
        q = result["quality"].get(name, {})
        tr, sc = _stats(rate(name, "train_cpu_s", nt)), _stats(rate(name, "score_no_grad_cpu_s", ns))
        sg, si = _stats(rate(name, "score_grad_cpu_s", ns)), _stats(rate(name, "score_inference_mode_cpu_s", ns))
        rt, rs = ratio(name, "train_cpu_s", "train_cpu_s"), ratio(name, "score_no_grad_cpu_s", "score_no_grad_cpu_s")
        lines.append(f"| {name} | {tr[0]:,.0f} ({tr[1]:,.0f}-{tr[2]:,.0f}) | {rt[0]:.2f} ({rt[1]:.2f}-{rt[2]:.2f}) | "
                     f"{sc[0]:,.0f} ({sc[1]:,.0f}-{sc[2]:,.0f}) | {sg[0]:,.0f} | {si[0]:,.0f} | {rs[0]:.2f} ({rs[1]:.2f}-{rs[2]:.2f}) | "
                     f"{q.get('test_auc', float('nan')):.4f} | {q.get('test_logloss', float('nan')):.4f} | {q.get('full_pass_cpu_s', float('nan')):.1f} |")
    return "\n".join(lines)


# -- (a) end to end, each framework through its usual API ------------------------------------------------------------
def _split_windows(arrow_path: str) -> tuple[list[Any], Any]:
    from zoo.exfm.data import ArrowStream

    stream = ArrowStream(arrow_path)
    windows = [stream[t] for t in range(len(stream))]
    return windows[:-1], windows[-1]


def _result(framework: str, version: str, y_train: int, y_test: np.ndarray, scores: np.ndarray, phases: dict[str, float]) -> dict[str, Any]:
    from zoo.exfm.metrics import auc

    y = np.asarray(y_test, dtype=np.float64)
    return {"framework": framework, "version": version, "train_rows": int(y_train), "test_rows": int(len(y)), **phases,
            "total_s": phases["prep_s"] + phases.get("load_s", 0.0) + phases["fit_s"] + phases["score_s"],
            "train_examples_per_s": y_train / phases["train_s"], "score_examples_per_s": len(y) / phases["score_s"],
            "test_auc": auc(y, scores), "test_logloss": _logloss(y, scores),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def end_to_end_zoo(arrow_path: str, cfg: dict[str, Any], threads: int, workdir: str, *, precision: str = "32-true",
                   sparse_embeddings: bool = False) -> dict[str, Any]:
    """zoo's usual API: ``ArrowStream`` windows -> ``ExFMSystem`` (the DCNv2 as a foundation model trained alone) ->
    ``StreamingTrainer.run`` (encodes each window, scores it before training on it, trains one pass) ->
    ``ExFMSystem.score`` on the raw held-out window."""
    import zoo
    from zoo.exfm import ExFMSystem, StreamingTrainer
    from zoo.exfm.config import ExFMConfig, NetworkConfig, VerticalSpec
    from zoo.exfm.data import synthetic_feature_spec

    torch.set_num_threads(threads)
    start = time.perf_counter()
    train, test = _split_windows(arrow_path)
    network = NetworkConfig(architecture="dcnv2", embedding_dim=cfg["dim"], cross_layers=cfg["cross"], hidden=tuple(cfg["hidden"]),
                            learning_rate=cfg["lr"], batch_size=cfg["batch"], passes=1)
    config = ExFMConfig(features=synthetic_feature_spec(), verticals=(VerticalSpec("all", (1 << 62) - 1),), foundation=network,
                        students=(), shuffle_within_window=False, seed=0)
    system = ExFMSystem(config)
    trainer = StreamingTrainer(system, precision=precision, sparse_embeddings=sparse_embeddings)
    evaluation = [0.0]  # wall seconds of the loop's progressive validation (scoring each window before training on it)

    def timed_evaluate(*args: Any, _inner: Any = trainer._evaluate) -> Any:
        t0 = time.perf_counter()
        try:
            return _inner(*args)
        finally:
            evaluation[0] += time.perf_counter() - t0

    trainer._evaluate = timed_evaluate
    prep_s = time.perf_counter() - start
    start = time.perf_counter()
    trainer.run(train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    with trainer._autocast():
        scores = system.score(test, model="foundation")
    score_s = time.perf_counter() - start
    name = "zoo" + (f" ({precision})" if precision != "32-true" else "") + (" (sparse rows)" if sparse_embeddings else "")
    return _result(name, zoo.__version__, sum(len(w) for w in train),
                   test.column("label").to_numpy(), scores, {"prep_s": prep_s, "fit_s": fit_s, "train_s": fit_s, "score_s": score_s,
                                                             "progressive_validation_s": evaluation[0]})


def _installed(distribution: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def end_to_end_deepctr(arrow_path: str, cfg: dict[str, Any], threads: int, workdir: str) -> dict[str, Any]:
    """DeepCTR-Torch's usual API: a dict of encoded feature columns -> ``DCN(...).fit`` (one epoch, no shuffle) ->
    ``predict``; the same zoo feature encoding as every framework, embedding init std 0.01 (``init_std``)."""
    import importlib.metadata

    from zoo.exfm.data import synthetic_feature_spec

    torch.set_num_threads(threads)
    start = time.perf_counter()
    train, test = _split_windows(arrow_path)
    spec = synthetic_feature_spec()
    x_train = np.concatenate([spec.encode(w, strict=False) for w in train])
    y_train = np.concatenate([w.column("label").to_numpy() for w in train]).astype(np.float32)
    model = deepctr_dcn(spec, cfg)
    model.compile(torch.optim.Adam(model.parameters(), lr=cfg["lr"]), "binary_crossentropy")
    columns = lambda x: {f.name: x[:, j] for j, f in enumerate(spec.features)}  # noqa: E731
    prep_s = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(columns(x_train), y_train, batch_size=cfg["batch"], epochs=1, verbose=0, shuffle=False)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = model.predict(columns(spec.encode(test, strict=False)), batch_size=cfg["score_batch"]).reshape(-1)
    score_s = time.perf_counter() - start
    return _result("deepctr_torch", importlib.metadata.version("deepctr-torch"), len(y_train), test.column("label").to_numpy(), scores,
                   {"prep_s": prep_s, "fit_s": fit_s, "train_s": fit_s, "score_s": score_s})


END_TO_END = {
    "zoo": lambda *a: end_to_end_zoo(*a),
    "zoo_bf16": lambda *a: end_to_end_zoo(*a, precision="bf16-mixed"),
    "deepctr_torch": lambda *a: end_to_end_deepctr(*a),
    "fuxictr": lambda path, cfg, threads, workdir: _with_total(_fuxictr().end_to_end(path, cfg, threads, workdir)),
}


def _with_total(result: dict[str, Any]) -> dict[str, Any]:
    """FuxiCTR's runner times setup, loading, fit and predict; the end-to-end total is their sum, as for the others."""
    return {**result, "total_s": result["prep_s"] + result.get("load_s", 0.0) + result["fit_s"] + result["score_s"]}


def _fuxictr() -> Any:
    sys.path.insert(0, str(Path(__file__).parent))
    import exfm_fuxictr

    return exfm_fuxictr


def available_frameworks() -> list[str]:
    """The end-to-end runners whose framework is installed (zoo always)."""
    names = ["zoo", "zoo_bf16"]
    if _installed("deepctr-torch"):
        names.append("deepctr_torch")
    if _installed("fuxictr"):
        names.append("fuxictr")
    return names


def goal_lines(result: dict[str, Any]) -> list[str]:
    """The issue's goal, per zoo row of table (c): training and scoring as zoo runs them (scoring under
    ``inference_mode``) against the plain loop (scoring under ``no_grad``), paired per repeat, and the AUC gap."""
    per = {}
    for r in result["runs"]:
        per.setdefault(r["arm"], {})[r["repeat"]] = r
    base = per.get("plain (baseline)", {})
    lines = []
    for name in [a["name"] for a in result["arms"] if a["name"].startswith("zoo:")]:
        rows = per.get(name, {})
        train = _stats([base[k]["train_cpu_s"] / rows[k]["train_cpu_s"] for k in rows if k in base])
        scoring = _stats([base[k]["score_no_grad_cpu_s"] / rows[k]["score_inference_mode_cpu_s"] for k in rows if k in base])
        gap = result["quality"].get(name, {}).get("test_auc", float("nan")) - result["quality"].get("plain (baseline)", {}).get("test_auc", float("nan"))
        lines.append(f"- {name} against plain: training {train[0]:.2f}x ({train[1]:.2f}-{train[2]:.2f}), scoring {scoring[0]:.2f}x "
                     f"({scoring[1]:.2f}-{scoring[2]:.2f}; zoo under inference_mode, plain under no_grad), test AUC {gap:+.4f} "
                     f"({'within' if abs(gap) <= 0.001 else 'outside'} 0.001)")
    return lines


def worker_main() -> None:
    """``python tools/bench/exfm_speed.py e2e FRAMEWORK ARROW THREADS CFG_JSON WORKDIR``: one end-to-end run, one JSON line."""
    if len(sys.argv) != 7 or sys.argv[1] != "e2e" or sys.argv[2] not in END_TO_END:
        raise SystemExit(f"usage: exfm_speed.py e2e {{{','.join(END_TO_END)}}} ARROW THREADS CFG_JSON WORKDIR")
    torch.manual_seed(0)
    result = END_TO_END[sys.argv[2]](sys.argv[3], json.loads(sys.argv[5]), int(sys.argv[4]), sys.argv[6])
    print(json.dumps(result))


if __name__ == "__main__":
    worker_main()
