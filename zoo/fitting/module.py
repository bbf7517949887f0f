"""``FitModule``: the ZooModule base of every physics fitter, and ``SingleBatchData`` to feed it.

A fitter's only weights are its free parameters (an unconstrained vector, ``docs/cores/fitting.md``);
``training_step`` returns the NLL of one batch that holds the whole data set, and ``configure_optimizers``
returns ``torch.optim.LBFGS`` (Lightning calls it with a closure; one training step = one LBFGS call of
up to ``config.max_iterations`` iterations). At the end of training the module computes its ``FitResult``
(values, errors, covariance, goodness of fit) and stores values, errors and covariance as buffers, so they
travel in ``model.safetensors`` and ``zoo.from_pretrained`` brings them back.

A subclass sets ``config_class`` (a dataclass with ``loss``, ``max_iterations``, ``error_method`` and
``scale_covariance`` fields, plus the parameters' start values / bounds) and implements
``parameter_specs()`` and ``expected(batch, params)``. The recipe evaluation ``evaluate_fit`` returns the
card metrics and writes the fit report and plots next to the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import lightning as L
import torch

from zoo._core.module import ZooModule
from zoo.fitting.fit import _release_from_bounds, result_at
from zoo.fitting.losses import check_data, check_model_output, negative_log_likelihood
from zoo.fitting.parameters import Parameter, ParameterSet
from zoo.fitting.result import FitResult

__all__ = ["FitModule", "SingleBatchData", "evaluate_fit"]


class FitModule(ZooModule):
    """Abstract base: a maximum-likelihood fit as a LightningModule (see the module docstring)."""

    single_process_reason = ("a fit minimises the likelihood of the whole data set with full-batch LBFGS line searches; "
                             "there is no batch to split, and each rank would fit the same data alone")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.parameter_set = ParameterSet(self.parameter_specs())
        start = self.parameter_set.start()
        self.unconstrained = torch.nn.Parameter(self.parameter_set.to_unconstrained(start))  # float64 [n_free]
        n_all, n_free = len(self.parameter_set.names), len(self.parameter_set)
        all_start = torch.tensor([self.parameter_set[n].value for n in self.parameter_set.names], dtype=torch.float64)
        self.register_buffer("fitted_values", all_start)  # [n_all] physical units, order of parameter_names
        self.register_buffer("fitted_errors", torch.zeros(n_all, dtype=torch.float64))  # [n_all]
        self.register_buffer("fitted_covariance", torch.zeros(n_free, n_free, dtype=torch.float64))  # free only
        self.fit_result: FitResult | None = None
        self._last_batch: Mapping[str, Any] | None = None
        self._checked = False
        self._evaluations = 0

    # -- to implement ---------------------------------------------------------------------------------
    def parameter_specs(self) -> list[Parameter]:
        """The fit parameters (names, start values, units, bounds, fixed flags) from ``self.config``."""
        raise NotImplementedError

    def expected(self, batch: Mapping[str, Any], params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Expected counts (or values) with the shape of ``batch["counts"]``."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------------------
    @property
    def parameter_names(self) -> list[str]:
        return list(self.parameter_set.names)

    @property
    def loss_kind(self) -> str:
        return getattr(self.config, "loss", "poisson")

    def physical(self) -> dict[str, torch.Tensor]:
        """Current parameter values by name (physical units, differentiable)."""
        return self.parameter_set.as_dict(self.parameter_set.to_physical(self.unconstrained))

    def fitted(self) -> dict[str, tuple[float, float]]:
        """``name -> (value, error)`` from the stored buffers (after a fit or ``from_pretrained``)."""
        return {n: (float(v), float(e)) for n, v, e in zip(self.parameter_names, self.fitted_values, self.fitted_errors)}

    # -- lightning -------------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.expected(batch, self.physical())

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        counts, sigma = batch["counts"], batch.get("sigma")
        if not self._checked:
            check_data(counts, self.loss_kind, sigma)
            with torch.no_grad():
                check_model_output(self(batch), counts, self.loss_kind)
            self._checked = True
        loss = negative_log_likelihood(self(batch), counts, self.loss_kind, sigma)
        self._evaluations += 1  # one LBFGS closure call = one training_step call
        self.log("nll", loss.detach(), prog_bar=True, batch_size=1)
        self._last_batch = batch
        return loss

    def configure_optimizers(self):
        if self.trainer.world_size > 1:  # also when the Trainer is used without `zoo run`
            raise ValueError(f"{type(self).__name__} cannot train data-parallel: {self.single_process_reason}")
        return torch.optim.LBFGS(
            [self.unconstrained], lr=1.0, max_iter=int(getattr(self.config, "max_iterations", 200)), history_size=50,
            tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe",
        )

    def on_train_epoch_end(self) -> None:
        # release parameters that an overshooting line search left at a bound with an inward gradient (fit.py)
        if self._last_batch is None:
            return
        batch = self._last_batch

        def objective() -> torch.Tensor:
            return negative_log_likelihood(self(batch), batch["counts"], self.loss_kind, batch.get("sigma"))

        if _release_from_bounds(objective, self.parameter_set, self.unconstrained):
            for optimizer in self.trainer.optimizers:
                optimizer.state.clear()  # fresh LBFGS history after the jump

    def on_train_end(self) -> None:
        if self._last_batch is not None:
            self.finalize(self._last_batch)

    def finalize(self, batch: Mapping[str, Any]) -> FitResult:
        """Compute the ``FitResult`` at the current parameters and store values/errors/covariance buffers."""
        batch = {k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in batch.items()}
        p_hat = self.parameter_set.to_physical(self.unconstrained.detach().cpu())
        iterations = 0
        if self._trainer is not None:
            for optimizer in self.trainer.optimizers:
                iterations += int(optimizer.state.get(self.unconstrained, {}).get("n_iter", 0))
        self.cpu()
        result = result_at(
            lambda p: self.expected(batch, p), batch["counts"], self.parameter_set, p_hat, loss=self.loss_kind,
            sigma=batch.get("sigma"), error_method=getattr(self.config, "error_method", "hessian"),
            scale_covariance=bool(getattr(self.config, "scale_covariance", False)), method="lbfgs (Lightning)",
            stop_reason=f"trainer finished after {int(self.global_step)} LBFGS steps", iterations=iterations or int(self.global_step),
            function_evaluations=self._evaluations,
        )
        self.fit_result = result
        with torch.no_grad():
            self.fitted_values.copy_(torch.tensor([result.values[n] for n in self.parameter_names], dtype=torch.float64))
            self.fitted_errors.copy_(torch.tensor([result.errors[n] for n in self.parameter_names], dtype=torch.float64))
            self.fitted_covariance.copy_(torch.as_tensor(result.covariance, dtype=torch.float64))
        return result

    def metrics(self, datamodule: Any = None) -> dict[str, float]:
        """Card metrics: fitted values and errors, goodness of fit, and pulls against a known truth."""
        if self.fit_result is None:
            raise RuntimeError("no fit result yet: train the module first")
        out = self.fit_result.to_dict()
        truth = getattr(datamodule, "truth", None) or {}
        for name, value in truth.items():
            if name in self.fit_result.free_names and self.fit_result.errors[name] > 0:
                out[f"{name}_pull"] = (self.fit_result.values[name] - value) / self.fit_result.errors[name]
        return out

    def save_plots(self, folder: Path, datamodule: Any = None) -> list[Path]:
        """Write PNG plots of the fit into ``folder``; subclasses add method-specific views."""
        path = folder / "fit.png"
        import matplotlib.pyplot as plt

        figure = self.fit_result.plot(path=path)
        plt.close(figure)
        return [path]


class SingleBatchData(L.LightningDataModule):
    """Serves one dict batch (the whole data set) per epoch; subclasses fill ``self.batch`` and ``self.truth``."""

    def __init__(self) -> None:
        super().__init__()
        self.batch: dict[str, Any] = {}
        self.truth: dict[str, float] = {}

    def train_dataloader(self):
        return torch.utils.data.DataLoader([self.batch], batch_size=None, collate_fn=lambda x: x)


def evaluate_fit(model: FitModule, datamodule: Any, trainer: Any) -> dict[str, float]:
    """Recipe evaluation (``zoo.fitting.module:evaluate_fit``): metrics + report/plots in the run folder."""
    if model.fit_result is None and datamodule is not None:
        model.finalize(datamodule.batch)
    folder = Path(trainer.default_root_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fit_report.txt").write_text(model.fit_result.report() + "\n")
    plots = model.save_plots(folder, datamodule)
    model.hub_files.update({p.name: p for p in [folder / "fit_report.txt", *plots]})  # shipped with the push
    return model.metrics(datamodule)
