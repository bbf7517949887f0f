"""``TuckerCompletion`` and ``TTCompletion``: low-rank tensor completion as LightningModules (arXiv 2411.14093).

The parameters are the point of the desingularised manifold (Tucker: ``core`` and ``factor_k``; TT: ``core_k``),
one structured parameter group of a zoo Riemannian optimizer (RGD, RCG or the trust region with the closed-form
Riemannian Hessian). The tensor to complete and the masks are rebuilt from the config (seeded planted tensor or
scikit-learn's bundled photograph), kept as non-persistent buffers: the hub stores only the fitted point.
Lightning runs manual optimization: ``training_step`` hands the optimizer a closure that accumulates the
chunked gradients with ``manual_backward``; one optimizer iteration per step, and training stops at the
configured relative training error. ``evaluate_completion`` measures the errors and writes the card's plots.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from zoo import register_model
from zoo._core.module import ZooModule, weights_follow
from zoo.tensor_completion.config import TTCompletionConfig, TuckerCompletionConfig
from zoo.tensor_completion.data import planted_tt, planted_tucker, sample_entries, sample_floor, sample_image
from zoo.tensor_completion.model import (CompletionProblem, build_optimizer, core_singular_values, entries,
                                         linearised_step, make_manifold, random_start, spectral_start)

__all__ = ["CompletionData", "TTCompletion", "TuckerCompletion", "build_observations", "evaluate_completion"]


def build_observations(config) -> dict[str, torch.Tensor]:
    """Training and test entries of the configured tensor: ``indices``, ``values``, ``test_indices``, ``test_values``."""
    count = config.sample_count()
    train, test = sample_entries(config.shape, count, config.test_count, seed=config.data_seed)
    if config.data == "image":
        image = sample_image(config.image, config.image_block)

        def evaluate(idx):
            return image[tuple(idx.T)]
    elif config.format == "tucker":
        core, factors = planted_tucker(config.shape, config.true_ranks, seed=config.data_seed)

        def evaluate(idx):
            return entries("tucker", (core, *factors), idx)
    else:
        cores = planted_tt(config.shape, config.true_ranks, seed=config.data_seed)

        def evaluate(idx):
            return entries("tt", cores, idx)
    return {"indices": train, "values": evaluate(train), "test_indices": test, "test_values": evaluate(test)}


class _CompletionModule(ZooModule):
    """Shared body of the two formats (see module docstring)."""

    card_template = "tensor_completion"

    def __init__(self, config=None) -> None:
        super().__init__(config)
        c = self.config
        self.automatic_optimization = False
        observed = build_observations(c)
        for name, value in observed.items():
            self.register_buffer(name, value, persistent=False)
        # ||A|| estimated from the samples: scales omega (scale-free metric, see complete()) and the random start
        norm = math.sqrt(float(observed["values"].pow(2).sum()) * math.prod(c.shape) / observed["indices"].shape[0])
        self.manifold = make_manifold(c.format, c.shape, c.ranks, c.omega * norm ** 2)
        if c.init == "spectral" and not weights_follow():  # from_pretrained overwrites the start: skip its SVDs
            start = spectral_start(c.format, c.shape, observed["indices"], observed["values"], c.ranks, c.chunk_size)
        else:
            start = random_start(self.manifold, c.format, c.start_scale * norm, c.seed)
        self.names = self._parameter_names()
        for name, value in zip(self.names, start):
            self.register_parameter(name, torch.nn.Parameter(value))
        self.history: list[dict[str, float]] = []

    def _parameter_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def point(self) -> list[torch.nn.Parameter]:
        return [getattr(self, name) for name in self.names]

    @property
    def problem(self) -> CompletionProblem:
        """The cost on the observed entries (built once per device)."""
        cached = getattr(self, "_problem", None)
        if cached is not None and cached.indices.device == self.indices.device:
            return cached
        c = self.config
        self._problem = CompletionProblem(c.format, c.shape, self.indices, self.values, self.test_indices if c.test_count else None,
                                          self.test_values if c.test_count else None, c.chunk_size)
        return self._problem

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """Entries of the completed tensor at ``indices`` (``[m, d]``)."""
        return entries(self.config.format, self.point, indices)

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        problem = self.problem
        cost = optimizer.step(closure=lambda: problem.cost(self.point, backward=self.manual_backward))
        train, test = problem.relative_errors(self.point)
        inner = optimizer.optimizer
        self.history.append({"iteration": inner.iterations, "train_error": train, "test_error": test,
                             "process_time": inner.result.process_time})
        self.log("train_error", train, prog_bar=True)
        stagnated = len(self.history) > 1 and abs(self.history[-2]["train_error"] - train) <= \
            self.config.stagnation * self.history[-2]["train_error"]
        if inner.stopped or train < self.config.tolerance or stagnated:
            self.trainer.should_stop = True
        return cost

    def configure_optimizers(self):
        first = linearised_step(self.problem, self.manifold, self.point) if self.config.optimizer != "trust_region" else None
        return build_optimizer(self.config.optimizer, self.point, self.manifold, self.problem, 10**9, math.inf, first)


class TuckerCompletion(_CompletionModule):
    """Tucker completion: parameters ``core`` ``[r_1, ..., r_d]`` and ``factor_k`` ``[n_k, r_k]`` (orthonormal)."""

    config_class = TuckerCompletionConfig

    def _parameter_names(self) -> list[str]:
        return ["core"] + [f"factor_{k}" for k in range(len(self.config.shape))]


class TTCompletion(_CompletionModule):
    """TT completion: parameters ``core_k`` ``[r_(k-1), n_k, r_k]`` (left-orthogonal except the last)."""

    config_class = TTCompletionConfig

    def _parameter_names(self) -> list[str]:
        return [f"core_{k}" for k in range(len(self.config.shape))]


class _Steps(IterableDataset):
    def __iter__(self):
        while True:
            yield torch.zeros(1)


class CompletionData(L.LightningDataModule):
    """No batches: the observed entries live in the model (rebuilt from its config); one iteration per step."""

    def train_dataloader(self):
        return DataLoader(_Steps(), batch_size=None)


def _plots(model, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    c = model.config
    history = model.history
    paths = []
    figure, axis = plt.subplots(figsize=(5.5, 3.6))
    iterations = [h["iteration"] for h in history]
    axis.semilogy(iterations, [h["train_error"] for h in history], label="training (Omega)")
    if c.test_count:
        axis.semilogy(iterations, [h["test_error"] for h in history], label="test (held out)")
    axis.set_xlabel(f"{c.optimizer} iteration")
    axis.set_ylabel("relative error")
    axis.set_title(f"{c.format} completion, working ranks {c.ranks}")
    axis.legend()
    figure.tight_layout()
    paths.append(folder / "errors.png")
    figure.savefig(paths[-1], dpi=90)
    plt.close(figure)
    values = core_singular_values(c.format, model.point)
    figure, axes = plt.subplots(1, len(values), figsize=(1.6 * len(values) + 1.5, 3.2), sharey=True)
    for k, (axis, s) in enumerate(zip(axes, values)):
        s = s.clamp_min(1e-18).tolist()
        axis.semilogy(range(1, len(s) + 1), s, "o-")
        if c.data == "planted":
            axis.axvline(c.true_ranks[k] + 0.5, color="grey", linestyle=":")
        axis.set_title(f"{'mode' if c.format == 'tucker' else 'interface'} {k + 1}", fontsize=9)
        axis.set_xticks(range(1, len(s) + 1))
    axes[0].set_ylabel("singular value")
    figure.suptitle("singular values of the fitted tensor's unfoldings (dotted: true rank)", fontsize=9)
    figure.tight_layout()
    paths.append(folder / "singular_values.png")
    figure.savefig(paths[-1], dpi=90)
    plt.close(figure)
    return paths


def evaluate_completion(model, datamodule, trainer) -> dict[str, float]:
    """Recipe evaluation: relative training and test errors, iterations, CPU time, singular values, plots."""
    c = model.config
    record = trainer.optimizers[0].result
    train, test = model.problem.relative_errors(model.point)
    metrics = {"train_relative_error": train, "iterations": float(record.iterations),
               "optimizer_cpu_seconds": float(record.process_time), "samples": float(model.indices.shape[0]),
               "sampling_rate": model.indices.shape[0] / math.prod(c.shape),
               "hessian_vector_products": float(record.hessian_vector_products),
               "feasibility": float(model.manifold.feasibility([p.detach() for p in model.point]))}
    if c.test_count:
        metrics["test_relative_error"] = test
    if c.data == "planted":
        metrics["oversampling_true_rank"] = model.indices.shape[0] / sample_floor(c.format, c.shape, c.true_ranks)
    metrics["oversampling_working_rank"] = model.indices.shape[0] / model.manifold.dimension
    for k, s in enumerate(core_singular_values(c.format, model.point)):
        kept = c.true_ranks[k] if c.data == "planted" else len(s)
        if c.data == "planted" and kept < len(s):  # the extra singular values the over-estimated rank should kill
            metrics[f"extra_singular_value_{k + 1}"] = float(s[kept] / s[0])
    folder = Path(trainer.default_root_dir)
    folder.mkdir(parents=True, exist_ok=True)
    model.hub_files.update({p.name: p for p in _plots(model, folder)})
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


# -- presets (the static table zoo/_core/model_table.py points here) ------------------------------------------------
@register_model("tensor_completion_tucker_tiny")
def tensor_completion_tucker_tiny() -> TuckerCompletionConfig:
    return TuckerCompletionConfig(shape=(16, 18, 20), true_ranks=(2, 3, 2), ranks=(3, 4, 3), oversampling=8.0,
                                  test_count=2000)


@register_model("tensor_completion_tucker")
def tensor_completion_tucker() -> TuckerCompletionConfig:
    """The official example's setting: 100 x 150 x 200, true rank (2, 3, 4), working rank (5, 6, 7), 5 % samples."""
    return TuckerCompletionConfig(shape=(100, 150, 200), true_ranks=(2, 3, 4), ranks=(5, 6, 7), sample_fraction=0.05,
                                  test_count=150000)


@register_model("tensor_completion_tt_tiny")
def tensor_completion_tt_tiny() -> TTCompletionConfig:
    return TTCompletionConfig(shape=(6, 6, 6, 6, 6), true_ranks=(2, 3, 3, 2), ranks=(3, 4, 4, 3), oversampling=8.0,
                              test_count=2000, optimizer="rgd")


@register_model("tensor_completion_tt")
def tensor_completion_tt() -> TTCompletionConfig:
    return TTCompletionConfig(shape=(10, 10, 10, 10, 10), true_ranks=(3, 3, 3, 3), ranks=(4, 5, 5, 4), oversampling=5.0,
                              test_count=10000)


@register_model("tensor_completion_image_tucker")
def tensor_completion_image_tucker() -> TuckerCompletionConfig:
    return TuckerCompletionConfig(data="image", image_block=4, ranks=(20, 20, 3), sample_fraction=0.3, test_count=5000,
                                  tolerance=1e-6, optimizer="rgd")


@register_model("tensor_completion_image_tt")
def tensor_completion_image_tt() -> TTCompletionConfig:
    return TTCompletionConfig(data="image", image_block=4, ranks=(20, 3), sample_fraction=0.3, test_count=5000,
                              tolerance=1e-6, optimizer="rgd")
