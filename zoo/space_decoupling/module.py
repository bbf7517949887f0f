"""Space-decoupling applications as ZooModules (Yang, Gao, Yuan, arXiv 2501.13830).

Three fits with known optima, whose parameters ``H [m, r]`` and ``V [n, r]`` form one point of
:class:`~zoo.manifolds.SpaceDecoupling` (one param group ``{"params": [H, V], "manifold": M_h}``) driven by an
unmodified :mod:`zoo.optim` optimizer under Lightning's manual optimization (``training_step`` passes a closure
that returns the graph-attached cost; second-order methods differentiate it twice):

* :class:`SphericalFittingModule`: planted unit-row matrix of rank r*, observed on a sampled mask; the test
  error on a disjoint mask is the recovery measure (presets ``space_decoupling_spherical*``);
* :class:`GraphSimilarityModule`: optimum :math:`2\\lambda_1(A)\\lambda_1(B)` (``space_decoupling_graph_similarity*``);
* :class:`MaxCutModule`: Burer-Monteiro Max-Cut SDP, compared with cvxpy (``space_decoupling_maxcut*``);

and one learning use, :class:`LowRankClassifierModule`: a hidden layer :math:`W = H V^T` with rank :math:`\\le r` and
fixed row norms on scikit-learn's bundled digits, against the same layer unconstrained
(``space_decoupling_digits*``). Instances are rebuilt from the config's seeds, so ``from_pretrained`` restores
everything from ``config.json`` and the weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from zoo import register_model
from zoo._core.module import ZooModule, weights_follow
from zoo.manifolds import FixedRowNorms, SpaceDecoupling
from zoo.optim import OPTIMIZERS
from zoo.space_decoupling.config import (GraphSimilarityConfig, LowRankClassifierConfig, MaxCutConfig, SphericalFittingConfig)
from zoo.space_decoupling.data import load_digits_split, planted_spherical_data, random_graph
from zoo.space_decoupling.problems import GraphSimilarity, MaxCutSDP, SphericalFitting, burer_monteiro_rank

__all__ = ["DigitsData", "FitSteps", "GraphSimilarityModule", "LowRankClassifierModule", "MaxCutModule", "SphericalFittingModule",
           "evaluate_classifier", "evaluate_graph_similarity", "evaluate_maxcut", "evaluate_spherical_fitting"]


class _Steps(IterableDataset):
    def __iter__(self):
        while True:
            yield torch.zeros(1)


class FitSteps(L.LightningDataModule):
    """No data: the instance is in the model's config; one optimizer iteration per training step."""

    def train_dataloader(self):
        return DataLoader(_Steps(), batch_size=None)


class _ManifoldFit(ZooModule):
    """Shared by the three fits: H and V on M_h, one optimizer iteration per step, a per-iteration history."""

    card_template = "space_decoupling"

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.automatic_optimization = False
        self.problem = self.build_problem()
        self.manifold = self.problem.manifold(self.rank, omega=self.config.omega, retraction=self.config.retraction)
        H, V = self.start()
        self.H, self.V = torch.nn.Parameter(H), torch.nn.Parameter(V)
        self.history: list[dict[str, float]] = []

    @property
    def rank(self) -> int:
        return self.config.rank

    def build_problem(self):
        raise NotImplementedError

    def start(self):
        return self.manifold.random(generator=torch.Generator().manual_seed(self.config.seed))

    def monitor(self) -> dict[str, float]:
        """Quantities recorded after every iteration (outside the optimizer's timing)."""
        return {}

    def forward(self) -> torch.Tensor:
        """The cost at the current point (graph-attached)."""
        return self.problem.cost(self.H, self.V)

    def on_fit_start(self) -> None:
        self.problem.to(self.device)

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        inner = optimizer.optimizer
        before = inner.iterations
        optimizer.step(closure=self.forward)
        if inner.iterations > before:
            record = dict(inner.history[-1], process_time=inner.process_time, wall_time=inner.wall_time)
            record.update(self.monitor())
            self.history.append(record)
            self.log("cost", record["cost"], prog_bar=True)
            if self.stop_now(record):
                inner.stop_reason = "monitor target reached"
        if inner.stopped:
            self.trainer.should_stop = True
        return None

    def stop_now(self, record: dict[str, float]) -> bool:
        return False

    def configure_optimizers(self):
        c = self.config
        return OPTIMIZERS[c.optimizer]([{"params": [self.H, self.V], "manifold": self.manifold}],
                                       max_iterations=c.max_iterations, gradient_tolerance=c.gradient_tolerance)

    def point(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.H.detach(), self.V.detach()


class SphericalFittingModule(_ManifoldFit):
    """Spherical data fitting on planted data (see the module docstring)."""

    config_class = SphericalFittingConfig

    def build_problem(self) -> SphericalFitting:
        c = self.config
        data = planted_spherical_data(c.rows, c.columns, c.true_rank, c.sample_rate, test_rate=c.test_rate, seed=c.data_seed)
        return SphericalFitting.from_data(data)

    def start(self):
        if weights_follow():  # from_pretrained overwrites H and V: skip the data-driven start (15 s at the official size)
            return super().start()
        return self.problem.initial_point(self.config.rank, seed=self.config.seed, init=self.config.init)

    def monitor(self):
        H, V = self.point()
        return {"train_error": self.problem.train_error(H, V), "test_error": self.problem.test_error(H, V)}

    def stop_now(self, record):
        return self.config.target_test_error > 0 and record["test_error"] <= self.config.target_test_error


class GraphSimilarityModule(_ManifoldFit):
    """Low-rank graph similarity with the closed-form optimum 2 lambda_1(A) lambda_1(B)."""

    config_class = GraphSimilarityConfig

    def build_problem(self) -> GraphSimilarity:
        c = self.config
        return GraphSimilarity(random_graph(c.nodes_a, c.edge_probability, seed=c.graph_seed),
                               random_graph(c.nodes_b, c.edge_probability, seed=c.graph_seed + 1))


class MaxCutModule(_ManifoldFit):
    """Burer-Monteiro Max-Cut SDP relaxation on M_h (unit rows, rank <= r)."""

    config_class = MaxCutConfig

    @property
    def rank(self) -> int:
        return self.config.rank or burer_monteiro_rank(self.config.nodes)

    def build_problem(self) -> MaxCutSDP:
        c = self.config
        return MaxCutSDP(random_graph(c.nodes, c.edge_probability, seed=c.graph_seed))


def _fit_metrics(model: _ManifoldFit, trainer) -> dict[str, float]:
    record = trainer.optimizers[0].result
    return {"iterations": float(record.iterations), "gradient_norm": float(record.gradient_norm),
            "converged": float(record.converged), "feasibility": model.manifold.feasibility(model.point()),
            "optimizer_cpu_seconds": float(record.process_time), "optimizer_wall_seconds": float(record.wall_time),
            "hessian_vector_products": float(record.hessian_vector_products), "rank_bound": float(model.rank)}


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}


def _run_folder(trainer) -> Path:
    folder = Path(trainer.default_root_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def plot_convergence(history: list[dict[str, float]], path: Path, title: str, keys=("train_error", "test_error")) -> Path:
    """Semilog plot of the recorded errors against iteration and CPU time (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for key in keys:
        values = [h[key] for h in history if key in h]
        if not values:
            continue
        axes[0].semilogy([h["iteration"] for h in history if key in h], values, label=key.replace("_", " "))
        axes[1].semilogy([h["process_time"] for h in history if key in h], values, label=key.replace("_", " "))
    axes[0].set_xlabel("iteration")
    axes[1].set_xlabel("optimizer CPU seconds")
    for axis in axes:
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def attach_benchmark(model: ZooModule, benchmark_dir: str | Path = "benchmarks") -> None:
    """Put ``benchmarks/space_decoupling.md`` (tools/bench/space_decoupling.py) in the card as a report and ship its
    plots, when the files are there (a source checkout)."""
    root = Path(benchmark_dir)
    table = root / "space_decoupling.md"
    if not table.is_file():
        return
    model.card_reports["Benchmark: zoo vs pymanopt, and the phase transition"] = table.read_text().split("\n", 1)[1].strip()
    for png in sorted(root.glob("space_decoupling*.png")):
        model.hub_files[png.name] = png


def evaluate_spherical_fitting(model: SphericalFittingModule, datamodule, trainer) -> dict[str, float]:
    """Recipe evaluation: relative train / test errors, feasibility, oversampling, time; a convergence plot and the
    benchmark report go with the push."""
    H, V = model.point()
    metrics = {"test_error": model.problem.test_error(H, V), "train_error": model.problem.train_error(H, V),
               "oversampling": model.problem.oversampling(model.rank), "training_entries": float(len(model.problem.pattern)),
               **_fit_metrics(model, trainer)}
    if model.history:
        c = model.config
        path = plot_convergence(model.history, _run_folder(trainer) / "convergence.png",
                                f"{c.rows} x {c.columns}, r = {c.rank} (r* = {c.true_rank}), {100 * c.sample_rate:g} % samples, {c.optimizer}")
        model.hub_files["convergence.png"] = path
    attach_benchmark(model)
    return _finite(metrics)


def evaluate_graph_similarity(model: GraphSimilarityModule, datamodule, trainer) -> dict[str, float]:
    """Recipe evaluation: value found, closed-form optimum 2 lambda_1(A) lambda_1(B), relative gap, numerical rank."""
    H, V = model.point()
    value = -float(model.problem.cost(H, V))
    optimum = model.problem.optimum()
    singular = torch.linalg.svdvals(H)  # X = H V^T with V orthonormal: the singular values of X
    metrics = {"similarity_value": value, "closed_form_optimum": optimum, "relative_gap": abs(value - optimum) / optimum,
               "numerical_rank": float((singular > 1e-6 * singular[0]).sum()), **_fit_metrics(model, trainer)}
    if model.history:
        model.hub_files["convergence.png"] = plot_convergence(
            [dict(h, value_gap=abs(-h["cost"] - optimum) / optimum) for h in model.history],
            _run_folder(trainer) / "convergence.png", "graph similarity: relative gap to 2 lambda_1(A) lambda_1(B)", keys=("value_gap",))
    return _finite(metrics)


def evaluate_maxcut(model: MaxCutModule, datamodule, trainer) -> dict[str, float]:
    """Recipe evaluation: SDP value on M_h, the convex solver's value (cvxpy + Clarabel), relative gap, rounded cut."""
    from zoo.space_decoupling.problems import maxcut_sdp_reference

    H, V = model.point()
    value = -float(model.problem.cost(H, V))
    metrics = {"sdp_value": value, "rounded_cut": model.problem.cut_value(H), **_fit_metrics(model, trainer)}
    try:
        reference = maxcut_sdp_reference(model.problem.adjacency)
    except ImportError:  # cvxpy is in the test / bench / space_decoupling extras
        reference = math.nan
    metrics.update({"cvxpy_clarabel_value": reference, "relative_gap": abs(value - reference) / abs(reference)})
    return _finite(metrics)


# -- the learning use ---------------------------------------------------------------------------------------------
class _FullBatch(IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        while True:
            yield self.x, self.y


class DigitsData(L.LightningDataModule):
    """scikit-learn's bundled digits (offline), standardised; the split (``test_fraction``, ``split_seed``) is read
    from the model's config at ``setup``, so the config is the one place that names it. Full batch every step."""

    def setup(self, stage: str) -> None:
        config = self.trainer.lightning_module.config
        self.x_train, self.y_train, self.x_test, self.y_test = load_digits_split(
            config.test_fraction, seed=config.split_seed, dtype=torch.float64)

    def train_dataloader(self):
        return DataLoader(_FullBatch(self.x_train, self.y_train), batch_size=None)


class LowRankClassifierModule(ZooModule):
    """64 -> hidden -> 10 classifier; the hidden weight is :math:`W = H V^T` on M_h (rank <= r, every row of norm
    ``row_norm``) or, with ``layer="unconstrained"``, a plain dense weight. Full-batch zoo RGD / RCG through
    Lightning's automatic optimization (the closure calls backward; the optimizer line-searches)."""

    config_class = LowRankClassifierConfig
    card_template = "space_decoupling"

    def __init__(self, config: LowRankClassifierConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        generator = torch.Generator().manual_seed(c.seed)
        norms = FixedRowNorms(torch.full((c.hidden,), c.row_norm, dtype=torch.float64))
        self.manifold = SpaceDecoupling(c.hidden, 64, c.rank, norms, omega=c.omega) if c.layer == "space_decoupling" else None
        if self.manifold is not None:
            H, V = self.manifold.random(generator=generator)
            self.H, self.V = torch.nn.Parameter(H), torch.nn.Parameter(V)
        else:
            weight = torch.randn(c.hidden, 64, dtype=torch.float64, generator=generator)
            self.weight = torch.nn.Parameter(norms.projH(weight))
        self.bias = torch.nn.Parameter(torch.zeros(c.hidden, dtype=torch.float64))
        self.head = torch.nn.Linear(c.hidden, 10, dtype=torch.float64)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(10, c.hidden, dtype=torch.float64, generator=generator) / math.sqrt(c.hidden))
            self.head.bias.zero_()
        self.history: list[dict[str, float]] = []

    def hidden_weight(self) -> torch.Tensor:
        """W ``[hidden, 64]`` (= H V^T for the constrained layer)."""
        return self.H @ self.V.T if self.manifold is not None else self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch, 10]``."""
        hidden = x @ self.V @ self.H.T if self.manifold is not None else x @ self.weight.T  # [batch, hidden]
        return self.head(torch.relu(hidden + self.bias))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss.detach(), prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        optimizer = self.trainer.optimizers[0]
        if optimizer.history and (not self.history or self.history[-1]["iteration"] != optimizer.history[-1]["iteration"]):
            self.history.append(dict(optimizer.history[-1], process_time=optimizer.process_time))
        if optimizer.stopped:
            self.trainer.should_stop = True

    def configure_optimizers(self):
        c = self.config
        others = [self.bias, *self.head.parameters()]
        groups = ([{"params": [self.H, self.V], "manifold": self.manifold}, {"params": others}] if self.manifold is not None
                  else [{"params": [self.weight, *others]}])
        return OPTIMIZERS[c.optimizer](groups, max_iterations=c.iterations, gradient_tolerance=1e-10)

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float((self(x.to(self.device, torch.float64)).argmax(1).cpu() == y).double().mean())


def _train_classifier(config: LowRankClassifierConfig, data: DigitsData, folder: Path) -> LowRankClassifierModule:
    model = LowRankClassifierModule(config)
    trainer = L.Trainer(max_steps=config.iterations, accelerator="cpu", devices=1, precision="64-true", logger=False,
                        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
                        default_root_dir=str(folder))
    trainer.fit(model, data)
    return model


def evaluate_classifier(model: LowRankClassifierModule, datamodule: DigitsData, trainer) -> dict[str, float]:
    """Recipe evaluation: train / test accuracy of this layer and of its twin with the other ``layer`` setting
    (same seed, split, optimizer and iterations), the constraint residuals, a training-loss plot of both."""
    import dataclasses

    c = model.config
    twin_layer = "unconstrained" if c.layer == "space_decoupling" else "space_decoupling"
    folder = _run_folder(trainer)
    twin = _train_classifier(dataclasses.replace(c, layer=twin_layer), datamodule, folder / "twin")
    weight = model.hidden_weight().detach()
    metrics = {"test_accuracy": model.accuracy(datamodule.x_test, datamodule.y_test),
               "train_accuracy": model.accuracy(datamodule.x_train, datamodule.y_train),
               f"{twin_layer}_twin_test_accuracy": twin.accuracy(datamodule.x_test, datamodule.y_test),
               f"{twin_layer}_twin_train_accuracy": twin.accuracy(datamodule.x_train, datamodule.y_train),
               "row_norm_max_deviation": float((weight.norm(dim=1) - c.row_norm).abs().max()),
               "weight_rank": float(torch.linalg.matrix_rank(weight)), "iterations": float(len(model.history)),
               "test_examples": float(len(datamodule.y_test))}
    if model.manifold is not None:
        metrics["feasibility"] = model.manifold.feasibility((model.H.detach(), model.V.detach()))
    if model.history and twin.history:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(5, 3.4))
        for label, record in ((c.layer, model.history), (twin_layer, twin.history)):
            axis.semilogy([h["iteration"] for h in record], [h["cost"] for h in record], label=label.replace("_", " "))
        axis.set_xlabel("iteration (full batch)")
        axis.set_ylabel("training cross-entropy")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
        figure.tight_layout()
        figure.savefig(folder / "training_loss.png", dpi=90)
        plt.close(figure)
        model.hub_files["training_loss.png"] = folder / "training_loss.png"
    return _finite(metrics)


# -- presets ------------------------------------------------------------------------------------------------------------
@register_model("space_decoupling_spherical")
def space_decoupling_spherical() -> SphericalFittingConfig:
    """The official experiment (``experiment_exact.m``): 5000 x 6000, r = r* = 6, 1 % samples (OS = |Omega| / dim = 4.9),
    from the rank-continuation start (observed entries only; ``init="planted_columns"`` is the official experiments'
    oracle warm start); stop at a relative test error of 1e-10."""
    return SphericalFittingConfig(init="continuation", gradient_tolerance=0.0, target_test_error=1e-10, max_iterations=3000)


@register_model("space_decoupling_spherical_r10")
def space_decoupling_spherical_r10() -> SphericalFittingConfig:
    """The official over-estimated-rank experiment (``experiment_overestimate.m``): r = 10 > r* = 6, 10 % samples, from
    the rank-continuation start."""
    return SphericalFittingConfig(rank=10, sample_rate=0.1, test_rate=0.1, init="continuation", gradient_tolerance=0.0,
                                  target_test_error=1e-10, max_iterations=3000)


@register_model("space_decoupling_spherical_tiny")
def space_decoupling_spherical_tiny() -> SphericalFittingConfig:
    """A random start on purpose: the continuation start already meets the gradient tolerance here (test error 4e-13),
    so the optimizer would take no step and the recipe would show no convergence."""
    return SphericalFittingConfig(rows=60, columns=80, rank=3, true_rank=3, sample_rate=0.3, test_rate=0.2, init="random",
                                  gradient_tolerance=1e-11, max_iterations=1000)


@register_model("space_decoupling_graph_similarity")
def space_decoupling_graph_similarity() -> GraphSimilarityConfig:
    return GraphSimilarityConfig(nodes_a=300, nodes_b=200, edge_probability=0.05, rank=3, gradient_tolerance=1e-10)


@register_model("space_decoupling_graph_similarity_tiny")
def space_decoupling_graph_similarity_tiny() -> GraphSimilarityConfig:
    return GraphSimilarityConfig(nodes_a=20, nodes_b=15, edge_probability=0.3, rank=2, gradient_tolerance=1e-10)


@register_model("space_decoupling_maxcut")
def space_decoupling_maxcut() -> MaxCutConfig:
    return MaxCutConfig(nodes=60, edge_probability=0.2, gradient_tolerance=1e-9)


@register_model("space_decoupling_maxcut_tiny")
def space_decoupling_maxcut_tiny() -> MaxCutConfig:
    return MaxCutConfig(nodes=12, edge_probability=0.5, gradient_tolerance=1e-9)


@register_model("space_decoupling_digits")
def space_decoupling_digits() -> LowRankClassifierConfig:
    return LowRankClassifierConfig(hidden=64, rank=8, iterations=400)


@register_model("space_decoupling_digits_tiny")
def space_decoupling_digits_tiny() -> LowRankClassifierConfig:
    return LowRankClassifierConfig(hidden=16, rank=4, iterations=30)
