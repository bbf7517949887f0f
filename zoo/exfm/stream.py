"""The ExFM streaming loop: per window, evaluate then train (one pass), FM and VMs in the same stream, resumable.

For window t (all [ours] unless tagged; the paper states single-pass streaming training as the norm [reimpl]):

1. encode the raw rows once (feature spec), shared by the FM and all VMs;
2. progressive validation: score window t with the FM (on all rows and on each vertical's rows) and with every
   student (on its vertical's rows) *before* any of them trains on t; record NE, AUC, log loss;
3. train the FM on t (``foundation.passes`` passes), then keep its snapshot "t" (weights after window t);
4. DAS: for every staleness k used by a distilling student, the snapshot t - k (if it exists) scores the union
   of the rows its verticals need, once per row, and the logits are logged as columns [paper + reimpl];
   k = 0 is the optimistic bound (the FM has trained on the rows it labels), k = 1 the freshest realistic case;
5. train every student on its vertical's rows, one pass (rows shuffled inside the window with a generator seeded
   by (seed, t, student)); SA students first step their adapter on each batch (Algorithm 1 [reimpl]);
6. write a checkpoint (weights, all optimizer states, FM snapshots, DAS counters, history) atomically.

Every random draw is seeded by (seed, window), and optimizer states are carried across windows, so a run killed
after window t and resumed from its checkpoint produces bit-identical weights and metrics.

A checkpoint belongs to one run: its file name and contents carry a fingerprint, the sha256 of the system's config
(``config.json``'s fields) and of ``data_key`` (what identifies the stream: source, sizes, seed, first window). Only
a checkpoint with the current fingerprint is resumed; any other in the folder (a rerun with another seed, preset or
stream) is moved into ``stale-<its fingerprint>/`` with a message, and the run starts fresh: weights of two runs
are never mixed.

Data parallel (``zoo run ... --trainer.strategy ddp --trainer.devices N``, or any initialised
``torch.distributed`` group): every rank reads every window, scores it and annotates it (deterministic, so all ranks
agree), and each optimizer step of every network splits its batch across ranks (rank r takes rows r, r + N, ...):
a rank's loss is the batch mean over its rows times its share of the rows, and the gradients are summed over ranks
before the step, so every rank takes the step one process would take on the whole batch, up to the order of float
additions (the ranks' partial sums). A parameter with no gradient on any rank is left without one, so the optimizer
skips it as it does in one process. Only rank 0 writes checkpoints. ``emulated_ranks`` runs N ranks as N threads of
one process (no process group): a 2-process gloo run ends bit for bit where it ends, so it checks the data-parallel
path, and measures its distance from one process, without launching processes.

``sparse_embeddings`` (our choice, off by default): each network's fused embedding table and first-order weights produce
sparse gradients and are stepped by ``torch.optim.SparseAdam`` (lazy, row-wise: only the rows a batch touches move,
and only their moments decay), the other parameters by Adam as before. Dense Adam reads and writes the whole table on
every step, so with realistic vocabularies it costs several times the model (the FM of ``exfm_synthetic``, one thread:
16k training rows/s with 2^12 user buckets, 3.6k with 2^17; row-wise at 2^20 user buckets ran 7.2k against 6.3k for
dense Adam at 2^12, measured side by side on a loaded machine); the row-wise step is what production CTR systems use. It changes the optimisation (not bit-identical to dense Adam), is part of
the checkpoint fingerprint, and is single-process only. Each trainer sets the networks' gradient mode from its own flag.

``precision="bf16-mixed"`` (our choice, off by default; Lightning's name for it): the networks' forward passes in
training, scoring and DAS annotation run under ``torch.autocast`` with bfloat16 (matrix products in bf16, weights,
optimizer states and the losses in float32). The matrix products are most of a DCNv2 step on a CPU, so on a CPU with
bf16 arithmetic it is the largest single lever at small vocabularies (``benchmarks/exfm.md``, "levers"); it changes the numbers (not bit-identical to float32), is
part of the checkpoint fingerprint, and is refused for a float64 system.

``start_window`` continues a system that was trained on windows before it (a pushed model started with
``zoo.init_from``): processing starts there, and the current foundation weights serve as snapshot
``start_window - 1`` (they are the FM trained through that window), so k = 1 students are supervised from the first
window on. Optimizer states start fresh (a pushed repo holds weights only).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from zoo.exfm.distillation import DataAugmentationService, adapter_step, student_loss
from zoo.exfm.metrics import transfer_ratio, window_metrics

__all__ = ["PRECISIONS", "StreamingTrainer", "emulated_ranks"]

PRECISIONS = ("32-true", "bf16-mixed")


class _RowWiseAdam:
    """Adam on a network's dense parameters, ``SparseAdam`` on its embedding table and first-order weights (which
    are switched to sparse gradients). The optimizer interface the trainer uses: zero_grad, step, state_dict."""

    def __init__(self, network: torch.nn.Module, lr: float) -> None:
        embedding = network.embedding
        embedding.table.sparse = True
        embedding.bias.sparse = True
        rows = [embedding.table.weight, embedding.bias.weight]
        dense = [p for p in network.parameters() if all(p is not q for q in rows)]
        self.dense = torch.optim.Adam(dense, lr=lr)
        self.rows = torch.optim.SparseAdam(rows, lr=lr)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.dense.zero_grad(set_to_none=set_to_none)
        self.rows.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.dense.step()
        self.rows.step()  # skips a table without a gradient, as Adam skips a dense parameter

    def state_dict(self) -> dict[str, Any]:
        return {"dense": self.dense.state_dict(), "rows": self.rows.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dense.load_state_dict(state["dense"])
        self.rows.load_state_dict(state["rows"])


class StreamingTrainer:
    """Runs an ``ExFMSystem`` over a stream of windows (see the module docstring).

    Args:
        system: the ``ExFMSystem`` whose networks are trained in place.
        checkpoint_dir: folder for per-window checkpoints; an existing checkpoint there with this run's fingerprint is
            resumed from (others are set aside, see the module docstring).
        keep_checkpoints: how many of the newest checkpoints to keep.
        progress: show a tqdm bar over windows.
        data_key: what identifies the stream (part of the checkpoint fingerprint).
        start_window: the first window to process (a system already trained on the windows before it).
        sparse_embeddings: row-wise SparseAdam for the embedding tables (see the module docstring); one process only.
        valid_windows, test_windows: hold out the stream's last windows as validation and test sets, never trained
            on (``zoo.exfm.validation``); ``run`` then reports train / valid / test metrics at the end.
        early_stopping: an ``EarlyStoppingSpec`` (needs ``valid_windows >= 1``): stop the stream when the monitored
            validation score stops improving, and restore the best window's weights.
        precision: ``"32-true"`` (default) or ``"bf16-mixed"`` (bfloat16 autocast of the forward passes; see the
            module docstring).
    """

    def __init__(self, system: Any, checkpoint_dir: str | Path | None = None, *, keep_checkpoints: int = 2, progress: bool = False,
                 data_key: str = "", start_window: int = 0, valid_windows: int = 0, test_windows: int = 0,
                 early_stopping: Any = None, sparse_embeddings: bool = False, precision: str = "32-true") -> None:
        from zoo._core.config import config_to_dict
        from zoo.exfm.validation import StreamValidation

        self.system = system
        config = system.config
        if start_window < 0:
            raise ValueError(f"start_window must be >= 0, got {start_window}")
        self.validation = None
        if valid_windows or test_windows or early_stopping is not None:
            self.validation = StreamValidation(system, valid_windows, test_windows, early_stopping)
        self.start_window = start_window
        key = {"config": config_to_dict(config), "data": data_key, "start_window": start_window}
        for network in ("foundation", "student"):  # added later: the default leaves earlier runs' fingerprints unchanged
            if key["config"][network].get("linear_init") == "default":
                del key["config"][network]["linear_init"]
        if self.validation is not None:
            key["validation"] = self.validation.key()
        if sparse_embeddings:  # only when set, so fingerprints (and checkpoints) of dense runs are unchanged
            key["sparse_embeddings"] = True
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "bf16-mixed" and next(system.foundation.parameters()).dtype == torch.float64:
            raise ValueError("precision='bf16-mixed' needs a float32 system (this one is float64)")
        self.precision = precision
        if precision != "32-true":  # as above: float32 fingerprints are unchanged
            key["precision"] = precision
        self.fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.world, self.rank = 1, 0
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            self.world, self.rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        self.keep_checkpoints = keep_checkpoints
        self.progress = progress
        if sparse_embeddings and self.world > 1:
            raise ValueError("sparse_embeddings is single-process only (the gradient all-reduce sums dense gradients)")
        self.sparse_embeddings = sparse_embeddings
        for network in (system.foundation, *(system.students[s.name] for s in config.students)):
            # set in both modes: a system once trained with sparse_embeddings=True would otherwise keep producing
            # sparse gradients, which plain Adam refuses
            network.embedding.table.sparse = network.embedding.bias.sparse = bool(sparse_embeddings)
        optimizer = (lambda net, lr: _RowWiseAdam(net, lr)) if sparse_embeddings else (lambda net, lr: torch.optim.Adam(net.parameters(), lr=lr))
        self.foundation_optimizer = optimizer(system.foundation, config.foundation.learning_rate)
        self.student_optimizers = {
            s.name: optimizer(system.students[s.name], s.learning_rate or config.student.learning_rate) for s in config.students
        }
        self.adapter_optimizers = {
            name: torch.optim.Adam(adapter.parameters(), lr=config.adapter_learning_rate) for name, adapter in system.adapters.items()
        }
        self.das = DataAugmentationService()
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        self.history: list[dict[str, Any]] = []
        self.next_window = start_window
        self.annotator = copy.deepcopy(system.foundation).requires_grad_(False)
        self.max_staleness = max([s.staleness for s in config.students if s.distillation != "none"], default=0)
        if start_window > 0:  # the FM as given was trained through window start_window - 1
            self.snapshots[start_window - 1] = {k: v.detach().clone() for k, v in system.foundation.state_dict().items()}
        if self.checkpoint_dir is not None:
            self.resume()

    # -- the loop ------------------------------------------------------------------------------------------------
    def run(self, windows: Iterable[Any], *, stop_after: int | None = None) -> list[dict[str, Any]]:
        """Process the windows in order (skipping those a resumed checkpoint already holds); ``stop_after``
        stops after that many newly processed windows (to simulate a kill in tests). With held-out windows, the
        training windows end before them (or where early stopping stops) and ``finish`` runs at the end."""
        n_train = self.validation.prepare(windows, self.start_window) if self.validation is not None else None
        iterator: Iterable[Any] = enumerate(windows)
        if self.progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, total=len(windows) if hasattr(windows, "__len__") else None, desc="ExFM stream", unit="window")
        done = 0
        for t, table in iterator:
            if n_train is not None and (t >= n_train or self.validation.stopped):
                break
            if t < self.next_window:
                continue
            self.process_window(t, table)
            done += 1
            if stop_after is not None and done >= stop_after:
                return self.history
        if self.validation is not None:
            self.finish(windows)
        return self.history

    @property
    def stopped(self) -> bool:
        """Whether early stopping has ended the training stream."""
        return self.validation is not None and self.validation.stopped

    def finish(self, windows: Any) -> dict[str, float]:
        """End of the training stream: restore the best weights (early stopping), then measure train / valid / test."""
        if self.validation is None:
            return {}
        self.validation.prepare(windows, self.start_window)
        with self._autocast():
            return self.validation.finish(windows, self.start_window, self.next_window - 1)

    def process_window(self, t: int, table: Any) -> list[dict[str, Any]]:
        if t != self.next_window:
            raise ValueError(f"expected window {self.next_window}, got window {t} (windows must come in order)")
        if self.validation is not None and self.validation.n_train is not None and t >= self.validation.n_train:
            raise ValueError(f"window {t} is held out (the validation / test windows start at {self.validation.n_train})")
        system, config = self.system, self.system.config
        ids_np = config.features.encode(table, strict=False)
        ids = torch.from_numpy(ids_np)
        # the system's float type: a float64 system (system.double()) trains in float64 throughout
        labels = torch.from_numpy(np.asarray(table.column("label").to_numpy(), dtype=np.float32)).to(self._float_dtype())
        if not torch.all((labels == 0) | (labels == 1)):
            raise ValueError(f"window {t}: label must be 0 or 1")
        memberships = system.memberships(table)
        with self._autocast():
            records = self._evaluate(t, ids, labels, memberships)
        self._train_foundation(t, ids, labels)
        self.snapshots[t] = {k: v.detach().clone() for k, v in system.foundation.state_dict().items()}
        for old in [s for s in self.snapshots if s < t - self.max_staleness]:
            del self.snapshots[old]
        annotated = self._annotate(t, table, ids, memberships)
        for index, student in enumerate(config.students):
            self._train_student(t, index, student, ids, labels, memberships[student.vertical], annotated)
        self.history.extend(records)
        self.next_window = t + 1
        if self.validation is not None:
            with self._autocast():  # the validation curve in the precision of every other score
                self.validation.after_window(t)
        if self.checkpoint_dir is not None and self.rank == 0:
            self.save_checkpoint()
        return records

    # -- steps ------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _evaluate(self, t: int, ids: torch.Tensor, labels: torch.Tensor, memberships: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        system, config = self.system, self.system.config
        system.eval()
        records = []
        foundation_logits = system.predict_logits(ids, "foundation")
        y = labels.double().numpy()
        records.append({"window": t, "model": "foundation", "traffic": "all", **window_metrics(y, foundation_logits)})
        for vertical, mask in memberships.items():
            if mask.any():
                records.append({"window": t, "model": "foundation", "traffic": vertical, **window_metrics(y[mask], foundation_logits[mask])})
        for student in config.students:
            mask = memberships[student.vertical]
            if mask.any():
                logits = system.predict_logits(ids[torch.from_numpy(mask)], student.name)
                records.append({"window": t, "model": student.name, "traffic": student.vertical, **window_metrics(y[mask], logits)})
        system.train()
        return records

    def _autocast(self) -> Any:
        """bfloat16 autocast on the networks' device when ``precision == "bf16-mixed"``, else a no-op context."""
        device = next(self.system.foundation.parameters()).device.type
        # no cast cache: autocast keeps a weight's bf16 copy until its outermost context exits, and inside an outer
        # context (Lightning's bf16-mixed wraps the whole training step) every batch after an optimizer step
        # would reuse the previous weights' copy
        return torch.autocast(device, dtype=torch.bfloat16, enabled=self.precision == "bf16-mixed", cache_enabled=False)

    def _float_dtype(self) -> torch.dtype:
        return next(self.system.foundation.parameters()).dtype

    def _batches(self, rows: np.ndarray, batch_size: int, generator_seed: list[int]) -> list[tuple[np.ndarray, float]]:
        """The window's batches as ``(this rank's rows, its share of the batch)``; one process: ``(batch, 1.0)``."""
        if self.system.config.shuffle_within_window:
            rows = rows[np.random.default_rng(generator_seed).permutation(len(rows))]
        batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
        return [(b[self.rank::self.world], len(b[self.rank::self.world]) / len(b)) for b in batches]

    def _reduce_gradients(self, module: torch.nn.Module) -> None:
        """Sum the gradients of ``module`` over the ranks (one all-reduce of the flattened gradients).

        A parameter that has no gradient on any rank (outside this step's graph, e.g. a distillation head before
        the first FM snapshot exists) keeps ``grad = None``, so Adam skips it as it does in one process: a zero
        gradient instead would advance its step count and decay its moments, and its later updates would differ.
        A rank with no rows of the batch has no gradients at all; it still joins the sum (with zeros), as every rank
        must. Each parameter's "has a gradient" flag travels in the same all-reduce."""
        if self.world == 1:
            return
        if self.sparse_embeddings:
            raise ValueError("sparse_embeddings is single-process only (the gradient all-reduce sums dense gradients)")
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            return
        dtype = next((p.grad.dtype for p in params if p.grad is not None), params[0].dtype)
        flags = torch.tensor([float(p.grad is not None) for p in params], dtype=dtype)
        flat = torch.cat([flags, *(p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel(), dtype=dtype) for p in params)])
        self._all_reduce(flat)
        offset = len(params)
        for p, present in zip(params, (flat[:len(params)] > 0).tolist()):
            if present:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
            else:
                p.grad = None
            offset += p.numel()

    def _all_reduce(self, tensor: torch.Tensor) -> None:
        """Sum ``tensor`` over the ranks in place (``emulated_ranks`` replaces this per trainer)."""
        torch.distributed.all_reduce(tensor)

    def _train_foundation(self, t: int, ids: torch.Tensor, labels: torch.Tensor) -> None:
        config = self.system.config.foundation
        network, optimizer = self.system.foundation, self.foundation_optimizer
        network.train()
        for p in range(config.passes):
            for batch, share in self._batches(np.arange(len(labels)), config.batch_size, [self.system.config.seed, t, 1_000_003, p]):
                index = torch.from_numpy(batch)
                optimizer.zero_grad(set_to_none=True)
                if len(index):
                    with self._autocast():
                        loss = torch.nn.functional.binary_cross_entropy_with_logits(network(ids[index]), labels[index])
                    (loss * share).backward()
                self._reduce_gradients(network)
                optimizer.step()

    def _annotate(self, t: int, table: Any, ids: torch.Tensor, memberships: dict[str, np.ndarray]) -> Any:
        config = self.system.config
        by_staleness: dict[int, set[str]] = {}
        for s in config.students:
            if s.distillation != "none":
                by_staleness.setdefault(s.staleness, set()).add(s.vertical)
        for k in sorted(by_staleness):
            snapshot = t - k
            foundation = None
            if snapshot in self.snapshots:
                self.annotator.load_state_dict(self.snapshots[snapshot])
                foundation = self.annotator
            needed = {v: memberships[v] for v in sorted(by_staleness[k])}
            with self._autocast():
                table = self.das.annotate(table, ids, needed, k, foundation, snapshot, t)
        return table

    def _train_student(self, t: int, index: int, student: Any, ids: torch.Tensor, labels: torch.Tensor,
                       mask: np.ndarray, annotated: Any) -> None:
        system, config = self.system, self.system.config
        network, optimizer = system.students[student.name], self.student_optimizers[student.name]
        adapter = system.adapters[student.name] if student.name in system.adapters else None
        foundation_logit = None
        if student.distillation != "none":
            column = annotated.column(f"fm_logit_k{student.staleness}").to_numpy()
            if annotated.column(f"fm_snapshot_k{student.staleness}")[0].as_py() >= 0:
                foundation_logit = torch.from_numpy(np.nan_to_num(column)).to(labels.dtype)  # logged in float64
        network.train()
        for batch, share in self._batches(np.flatnonzero(mask), config.student.batch_size, [config.seed, t, index]):
            rows = torch.from_numpy(batch)
            batch_fm = foundation_logit[rows] if foundation_logit is not None else None
            target = None
            if adapter is not None and batch_fm is not None:
                adapter_optimizer = self.adapter_optimizers[student.name]
                if len(rows):  # the adapter (a 1-16-1 MLP on a logit) stays in float32
                    target, _ = adapter_step(adapter, adapter_optimizer, batch_fm, labels[rows], loss_scale=share,
                                             reduce_gradients=self._reduce_gradients if self.world > 1 else None)
                else:  # no rows of this batch on this rank: it still joins the gradient sum and the step
                    adapter_optimizer.zero_grad(set_to_none=True)
                    self._reduce_gradients(adapter)
                    adapter_optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if len(rows):
                with self._autocast():
                    loss, _ = student_loss(
                        network, ids[rows], labels[rows], distillation=student.distillation, foundation_logit=batch_fm,
                        adapter_target=target, label_scale=student.label_scale, loss_weight=student.loss_weight,
                        gradient_scale_beta=student.gradient_scale,
                    )
                (loss * share).backward()
            self._reduce_gradients(network)
            optimizer.step()

    def evaluate_only(self, windows: Iterable[Any], start_window: int = 0) -> list[dict[str, Any]]:
        """Score windows >= ``start_window`` with the system as it is, training on none of them (a frozen model, e.g.
        the parent of a continued run); the records go to ``history`` as ``run`` would put them."""
        for t, table in enumerate(windows):
            if t < start_window:
                continue
            ids = torch.from_numpy(self.system.config.features.encode(table, strict=False))
            labels = torch.from_numpy(np.asarray(table.column("label").to_numpy(), dtype=np.float32))
            self.history.extend(self._evaluate(t, ids, labels, self.system.memberships(table)))
            self.next_window = t + 1
        return self.history

    # -- results -----------------------------------------------------------------------------------------------------
    def summary(self, start_window: int | None = None) -> dict[str, float]:
        """Metrics averaged over windows >= ``start_window`` (default: the config's evaluation_start_window).

        Keys: ``<student>/{ne,auc,logloss}``, ``foundation/<vertical>/{ne,auc,logloss}``, ``foundation/all/...``,
        ``<student>/transfer_ratio`` (against the vertical's ``none`` student, if there is one), ``das/...``.
        """
        import pandas as pd

        config = self.system.config
        start = config.evaluation_start_window if start_window is None else start_window
        frame = pd.DataFrame(self.history)
        if frame.empty:
            return {}
        frame = frame[frame["window"] >= start]
        if frame.empty:
            raise ValueError(f"no evaluated windows at or after window {start}; processed {self.next_window}")
        means = frame.groupby(["model", "traffic"])[["ne", "auc", "logloss"]].mean()
        out: dict[str, float] = {}
        for (model, traffic), row in means.iterrows():
            prefix = f"foundation/{traffic}" if model == "foundation" else model
            for metric in ("ne", "auc", "logloss"):
                out[f"{prefix}/{metric}"] = float(row[metric])
        alone = {s.vertical: s.name for s in config.students if s.distillation == "none"}
        for s in config.students:
            if s.distillation != "none" and s.vertical in alone and f"{s.name}/ne" in out:
                ratio = transfer_ratio(out[f"{alone[s.vertical]}/ne"], out[f"{s.name}/ne"], out[f"foundation/{s.vertical}/ne"])
                if np.isfinite(ratio):
                    out[f"{s.name}/transfer_ratio"] = ratio
        if self.das.naive_calls:
            out["das/fm_calls"] = float(self.das.calls)
            out["das/naive_calls"] = float(self.das.naive_calls)
        out["windows"] = float(self.next_window)
        if self.validation is not None:
            out.update(self.validation.final)  # train / valid / test, after finish()
        return out

    # -- checkpoints ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "next_window": self.next_window,
            "system": {k: v.detach().clone() for k, v in self.system.state_dict().items()},
            "foundation_optimizer": self.foundation_optimizer.state_dict(),
            "student_optimizers": {k: o.state_dict() for k, o in self.student_optimizers.items()},
            "adapter_optimizers": {k: o.state_dict() for k, o in self.adapter_optimizers.items()},
            "snapshots": self.snapshots,
            "das": self.das.state_dict(),
            "history": self.history,
            "fingerprint": self.fingerprint,
            **({"validation": self.validation.state_dict()} if self.validation is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("fingerprint") != self.fingerprint:
            raise ValueError(f"checkpoint fingerprint {state.get('fingerprint')!r} is not this run's {self.fingerprint!r} "
                             "(another config or stream); it is never loaded")
        self.system.load_state_dict(state["system"])
        self.foundation_optimizer.load_state_dict(state["foundation_optimizer"])
        for k, o in self.student_optimizers.items():
            o.load_state_dict(state["student_optimizers"][k])
        for k, o in self.adapter_optimizers.items():
            o.load_state_dict(state["adapter_optimizers"][k])
        self.snapshots = {int(k): v for k, v in state["snapshots"].items()}
        self.das.load_state_dict(state["das"])
        self.history = list(state["history"])
        self.next_window = int(state["next_window"])
        if self.validation is not None:
            self.validation.load_state_dict(state["validation"])

    def save_checkpoint(self) -> Path:
        assert self.checkpoint_dir is not None
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        tag = self.fingerprint[:16]
        path = self.checkpoint_dir / f"window-{self.next_window - 1:06d}-{tag}.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)  # atomic: a kill leaves either the old or the new checkpoint, never half of one
        for old in sorted(self.checkpoint_dir.glob(f"window-*-{tag}.pt"))[:-self.keep_checkpoints]:
            old.unlink()
        return path

    def resume(self) -> bool:
        """Load the newest checkpoint of this run (same fingerprint) in ``checkpoint_dir``; False if there is none.
        Checkpoints of other runs are moved into ``stale-<fingerprint>/`` (see the module docstring)."""
        if self.checkpoint_dir is None or not self.checkpoint_dir.is_dir():
            return False
        tag = self.fingerprint[:16]
        others = sorted(p for p in self.checkpoint_dir.glob("window-*.pt") if not p.name.endswith(f"-{tag}.pt"))
        for path in others:
            parts = path.stem.split("-")
            stale = self.checkpoint_dir / f"stale-{parts[2] if len(parts) == 3 else 'unknown'}"
            stale.mkdir(exist_ok=True)
            os.replace(path, stale / path.name)
        if others:
            print(f"ExFM stream: {len(others)} checkpoint(s) in {self.checkpoint_dir} belong to another config or stream "
                  f"(fingerprint is not {tag}); moved to stale-*/ and not resumed", file=sys.stderr)
        found = sorted(self.checkpoint_dir.glob(f"window-*-{tag}.pt"))
        if not found:
            return False
        # weights_only: plain tensors, dicts, lists and numbers; nothing is unpickled beyond that
        self.load_state_dict(torch.load(found[-1], map_location="cpu", weights_only=True))
        return True


def emulated_ranks(make_trainer: Callable[[], StreamingTrainer], windows: Any, world: int = 2) -> list[StreamingTrainer]:
    """Run ``world`` data-parallel ranks in this process, one thread each, and return their trainers.

    ``make_trainer()`` builds each rank's trainer (its own copy of the system, the same for every call); rank r then
    runs ``windows`` as a member of a ``world``-rank group, except that the all-reduce of each optimizer step adds
    the ranks' tensors in rank order in this process instead of over ``torch.distributed``. For two ranks that is
    what gloo computes (one float addition per element, and a + b == b + a), so a 2-process run with the same
    threads per process ends bit for bit where rank 0 here ends (``tests/exfm/test_ddp.py``); for more ranks the
    order of a real all-reduce may differ. Every thread runs with the caller's number of torch threads.
    """
    if world < 1:
        raise ValueError(f"world must be >= 1, got {world}")
    trainers = [make_trainer() for _ in range(world)]
    slots: list[torch.Tensor | None] = [None] * world
    barrier = threading.Barrier(world)
    threads_per_rank = torch.get_num_threads()

    def make_all_reduce(rank: int) -> Callable[[torch.Tensor], None]:
        def all_reduce(tensor: torch.Tensor) -> None:
            slots[rank] = tensor.clone()
            barrier.wait()
            total = slots[0].clone()
            for other in slots[1:]:
                total += other
            barrier.wait()  # every rank has read the slots before any rank writes the next ones
            tensor.copy_(total)

        return all_reduce

    errors: list[BaseException] = []

    def work(rank: int) -> None:
        try:
            torch.set_num_threads(threads_per_rank)
            trainer = trainers[rank]
            trainer.world, trainer.rank, trainer._all_reduce = world, rank, make_all_reduce(rank)
            trainer.run(windows)
        except BaseException as error:  # re-raised below; the other ranks must not wait at the barrier forever
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(rank,), name=f"exfm-rank-{rank}") for rank in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first = next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0] if errors else None)
    if first is not None:
        raise first
    return trainers
