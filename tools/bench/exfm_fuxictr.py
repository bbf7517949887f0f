"""FuxiCTR as a third framework in the ExFM speed table: its DCNv2 ("parallel" structure) through its own user API.

FuxiCTR (reczoo/FuxiCTR, https://github.com/reczoo/FuxiCTR, Apache-2.0; this module targets the 2.3.10 release)
is used as a library only: the model below is our own ``fuxictr.pytorch.models.BaseModel`` subclass built from
FuxiCTR's public layers (``FeatureEmbedding``, ``CrossNetV2``, ``MLP_Block``) with the structure of the
``model_zoo/DCNv2/src/DCNv2.py`` "parallel" model of the FuxiCTR repository (embeddings flattened to x0, CrossNetV2
on x0 in parallel with an MLP on x0, ``fc`` = Linear on cat([cross, mlp]), sigmoid). No FuxiCTR code is copied.

Two entry points:

- ``end_to_end(arrow_path, cfg, threads, workdir)``: the bench row. The Arrow stream is encoded with the zoo
  feature spec (same ids for every framework), written the way FuxiCTR's data loaders read it (one ``.npz`` per
  split with one array per feature plus ``label``, and a ``feature_map.json`` loaded back through
  ``FeatureMap.load``), then ``RankDataLoader(data_format="npz", shuffle=False)`` -> ``model.fit`` ->
  ``model.predict`` on the test window's file.
- ``build_dcnv2`` / ``copy_from_zoo`` / ``logits``: the same module built from an in-memory ``FeatureMap`` and
  loaded with a zoo ``CTRNetwork("dcnv2")``'s weights, to check that the two compute the same function.

Differences from zoo's ``CTRNetwork("dcnv2")`` (also in the report of the issue):

- FuxiCTR's DCNv2 has no first-order (LR) term; zoo adds ``sum_f w_{x_f}``. ``copy_from_zoo`` copies everything
  else and returns the names of the zoo parameters it could not map; the twin equals zoo only when zoo's first-order
  table is zero (it is at zoo's init, but it trains).
- One ``nn.Embedding`` per feature instead of zoo's fused table with offsets (same rows, field-major concat).
- Init: FuxiCTR's ``BaseModel.reset_parameters`` gives every ``nn.Linear`` xavier-normal weights and zero bias (zoo:
  PyTorch's default Linear init); embeddings here use ``partial(nn.init.normal_, std=0.01)`` like zoo (FuxiCTR's
  default would be std 1e-4).
- Training loss: ``F.binary_cross_entropy`` on the sigmoid probabilities (zoo: BCE-with-logits), and ``fit`` clips
  the gradient norm (``max_gradient_norm``, FuxiCTR default 10; the bench passes ``inf``, still computing the norm).
- ``fit`` always evaluates on validation data at the end of each epoch, saves a checkpoint and reloads it; the
  bench gives it a tiny validation slice and reports that time separately (``fit_overhead_s``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import resource
import time
from collections import OrderedDict
from typing import Any, Sequence

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from exfm_speed import _logloss  # noqa: E402  (the speed bench's log loss: one definition for every framework's row)

__all__ = ["build_dcnv2", "copy_from_zoo", "end_to_end", "feature_map_for", "logits"]

DEFAULT_CFG = {"dim": 16, "cross": 2, "hidden": [256, 128], "lr": 1e-3, "batch": 1024}
EMBEDDING_INIT = "partial(nn.init.normal_, std=0.01)"  # evaluated by fuxictr.pytorch.torch_utils.get_initializer


def feature_map_for(names: Sequence[str], field_sizes: Sequence[int], dim: int, *, dataset_id: str = "exfm",
                    data_dir: str = "") -> Any:
    """An in-memory ``fuxictr.features.FeatureMap``: one categorical feature per field (vocab = field size), label
    column ``label``. (FuxiCTR's own ``FeatureProcessor`` would also reserve padding / OOV ids; zoo's ids are
    already dense, so the vocab is exactly the field size and there is no ``padding_idx``.)"""
    from fuxictr.features import FeatureMap

    feature_map = FeatureMap(dataset_id, data_dir)
    feature_map.features = OrderedDict(
        (str(name), {"source": "", "type": "categorical", "vocab_size": int(size)}) for name, size in zip(names, field_sizes))
    feature_map.labels = ["label"]
    feature_map.num_fields = feature_map.get_num_fields()
    feature_map.total_features = int(sum(field_sizes))
    feature_map.default_emb_dim = int(dim)
    feature_map.set_column_index()
    return feature_map


def _model_class() -> type:
    from fuxictr.pytorch.layers import CrossNetV2, FeatureEmbedding, MLP_Block
    from fuxictr.pytorch.models import BaseModel

    class FuxiDCNv2(BaseModel):
        """DCNv2, "parallel" structure, from FuxiCTR's layers (our code; structure as FuxiCTR's model_zoo DCNv2)."""

        def __init__(self, feature_map: Any, model_id: str = "ExFM_DCNv2", gpu: int = -1, learning_rate: float = 1e-3,
                     embedding_dim: int = 16, num_cross_layers: int = 2, parallel_dnn_hidden_units: Sequence[int] = (256, 128),
                     embedding_initializer: str = EMBEDDING_INIT, **kwargs: Any) -> None:
            options = {"verbose": 0, "model_root": "", "metrics": ["logloss"], "optimizer": "adam",
                       "loss": "binary_crossentropy", "monitor": "logloss", "monitor_mode": "min",
                       "reduce_lr_on_plateau": False, **kwargs}
            optimizer, loss = options.pop("optimizer"), options.pop("loss")
            super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_regularizer=None, net_regularizer=None,
                             **options)
            hidden = [int(h) for h in parallel_dnn_hidden_units]
            self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim, embedding_initializer=embedding_initializer)
            input_dim = feature_map.sum_emb_out_dim()
            self.crossnet = CrossNetV2(input_dim, num_cross_layers)
            self.parallel_dnn = MLP_Block(input_dim=input_dim, hidden_units=hidden, hidden_activations="ReLU",
                                          output_dim=None, output_activation=None, dropout_rates=0.0, batch_norm=False)
            self.fc = nn.Linear(input_dim + hidden[-1], 1)
            self.compile(optimizer, loss, learning_rate)
            self.reset_parameters()
            self.model_to_device()
            self.fit_overhead_s = 0.0  # time fit spends in validation, checkpoint save and reload

        def logit(self, inputs: dict) -> torch.Tensor:
            """Pre-sigmoid output [batch, 1]."""
            feature_emb = self.embedding_layer(self.get_inputs(inputs), flatten_emb=True)  # [batch, fields * dim]
            final = torch.cat([self.crossnet(feature_emb), self.parallel_dnn(feature_emb)], dim=-1)
            return self.fc(final)

        def forward(self, inputs: dict) -> dict:
            return {"y_pred": self.output_activation(self.logit(inputs))}

        def eval_step(self) -> None:  # timed: fit evaluates on the validation data every epoch
            start = time.perf_counter()
            super().eval_step()
            self.fit_overhead_s += time.perf_counter() - start

        def load_weights(self, checkpoint: str) -> None:  # timed: fit reloads the best checkpoint at its end
            start = time.perf_counter()
            super().load_weights(checkpoint)
            self.fit_overhead_s += time.perf_counter() - start

    return FuxiDCNv2


def _build(feature_map: Any, cfg: dict, **kwargs: Any) -> Any:
    return _model_class()(feature_map, learning_rate=cfg["lr"], embedding_dim=cfg["dim"], num_cross_layers=cfg["cross"],
                          parallel_dnn_hidden_units=cfg["hidden"], **kwargs)


def build_dcnv2(field_sizes: Sequence[int], cfg: dict, names: Sequence[str] | None = None) -> nn.Module:
    """The FuxiCTR DCNv2 module for these fields, from an in-memory FeatureMap (no files). Its optimizer is Adam
    with ``cfg["lr"]`` (``model.optimizer``); ``model_root`` is unset, so call ``fit`` only through ``end_to_end``."""
    names = list(names) if names is not None else [f"f{j}" for j in range(len(field_sizes))]
    return _build(feature_map_for(names, field_sizes, cfg["dim"]), cfg)


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def copy_from_zoo(fuxi_model: nn.Module, zoo_net: nn.Module, head: str = "serving") -> list[str]:
    """Copy a zoo ``CTRNetwork(field_sizes, "dcnv2", ...)`` into ``fuxi_model`` (fields in the FeatureMap's order =
    zoo's field order). Returns the zoo parameters that have no FuxiCTR counterpart and were not copied:
    ``embedding.bias.weight`` (the first-order term) and any heads other than ``head``."""
    if getattr(zoo_net, "architecture", None) != "dcnv2":
        raise ValueError("copy_from_zoo needs a zoo CTRNetwork with architecture 'dcnv2'")
    names = list(fuxi_model.feature_map.features)
    offsets = zoo_net.embedding.offsets.tolist()
    layers = fuxi_model.embedding_layer.embedding_layer.embedding_layers
    table = zoo_net.embedding.table.weight
    for j, name in enumerate(names):
        target = layers[name].weight
        target.copy_(table[offsets[j]:offsets[j] + target.shape[0]])
    if len(zoo_net.cross) != len(fuxi_model.crossnet.cross_layers):
        raise ValueError(f"cross layers differ: zoo {len(zoo_net.cross)}, FuxiCTR {len(fuxi_model.crossnet.cross_layers)}")
    for source, target in zip(zoo_net.cross, fuxi_model.crossnet.cross_layers):
        target.load_state_dict(source.state_dict())
    zoo_mlp, fuxi_mlp = _linears(zoo_net.mlp), _linears(fuxi_model.parallel_dnn)
    if len(zoo_mlp) != len(fuxi_mlp):
        raise ValueError(f"MLP depths differ: zoo {len(zoo_mlp)}, FuxiCTR {len(fuxi_mlp)}")
    for source, target in zip(zoo_mlp, fuxi_mlp):
        target.load_state_dict(source.state_dict())
    fuxi_model.fc.load_state_dict(zoo_net.heads[head].state_dict())
    return ["embedding.bias.weight"] + [f"heads.{name}" for name in zoo_net.heads if name != head]


def _batch(fuxi_model: nn.Module, ids: torch.Tensor) -> dict:
    return {name: ids[:, j] for j, name in enumerate(fuxi_model.feature_map.features)}


def logits(fuxi_model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Pre-sigmoid logits [batch] for local ids [batch, fields] (passed to FuxiCTR as a dict of per-feature columns,
    the form its data loaders yield)."""
    return fuxi_model.logit(_batch(fuxi_model, ids)).squeeze(-1)


@contextlib.contextmanager
def _quiet_logging(level: int = logging.WARNING):
    """FuxiCTR logs through the root logger (``logging.info``); raise its level while it runs, then restore."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(max(level, previous))
    try:
        yield
    finally:
        root.setLevel(previous)


def _write_npz(path: str, names: Sequence[str], ids: np.ndarray, labels: np.ndarray) -> str:
    np.savez(path, **{name: ids[:, j] for j, name in enumerate(names)}, label=labels)
    return path


def end_to_end(arrow_path: str, cfg: dict, threads: int, workdir: str, *, num_workers: int = 0) -> dict:
    """One FuxiCTR run on the Arrow stream: train one pass on windows[:-1] (in order), score windows[-1].

    ``num_workers`` goes to FuxiCTR's ``NpzDataLoader`` (a ``torch.utils.data.DataLoader``; FuxiCTR's default is 1
    worker process, its model_zoo configs use 3); 0 keeps batching in this process, like the other frameworks.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from fuxictr.features import FeatureMap
    from fuxictr.pytorch.dataloaders import RankDataLoader

    from zoo.exfm.data import ArrowStream, synthetic_feature_spec
    from zoo.exfm.metrics import auc

    cfg = {**DEFAULT_CFG, **cfg}
    dataset_id = "exfm_synthetic"
    data_dir = os.path.join(workdir, "data", dataset_id)
    os.makedirs(data_dir, exist_ok=True)
    with _quiet_logging():
        # -- prep: Arrow -> zoo ids -> FuxiCTR's npz files + feature_map.json -------------------------------------
        start = time.perf_counter()
        stream = ArrowStream(arrow_path)
        spec = synthetic_feature_spec()
        names = [f.name for f in spec.features]
        windows = [stream[t] for t in range(len(stream))]
        train, test = windows[:-1], windows[-1]
        x_train = np.concatenate([spec.encode(w, strict=False) for w in train])
        y_train = np.concatenate([w["label"].to_numpy() for w in train]).astype(np.float32)
        x_test = spec.encode(test, strict=False)
        y_test = test["label"].to_numpy().astype(np.float32)
        # fit() evaluates on validation data at every epoch end and reloads the checkpoint it saves then; it cannot
        # run without it. A tiny slice (the first batch of the training rows: no test rows, no effect on training).
        n_valid = min(len(y_train), cfg["batch"])
        train_file = _write_npz(os.path.join(data_dir, "train.npz"), names, x_train, y_train)
        valid_file = _write_npz(os.path.join(data_dir, "valid.npz"), names, x_train[:n_valid], y_train[:n_valid])
        test_file = _write_npz(os.path.join(data_dir, "test.npz"), names, x_test, y_test)
        map_file = os.path.join(data_dir, "feature_map.json")
        feature_map_for(names, spec.field_sizes, cfg["dim"], dataset_id=dataset_id, data_dir=data_dir).save(map_file)
        feature_map = FeatureMap(dataset_id, data_dir)
        feature_map.load(map_file, {"embedding_dim": cfg["dim"]})
        prep_s = time.perf_counter() - start

        # -- load: FuxiCTR's loaders read the npz files into memory (column_stack into one float64 array) ---------
        start = time.perf_counter()
        model_root = os.path.join(workdir, "checkpoints")
        model = _build(feature_map, cfg, model_root=model_root)
        os.makedirs(model.model_dir, exist_ok=True)
        loader_options = {"batch_size": cfg["batch"], "shuffle": False, "data_format": "npz", "num_workers": num_workers}
        train_gen, valid_gen = RankDataLoader(feature_map, stage="train", train_data=train_file, valid_data=valid_file,
                                              **loader_options)
        load_s = time.perf_counter() - start

        # -- train: model.fit, one epoch --------------------------------------------------------------------------
        start = time.perf_counter()
        model.fit(train_gen, epochs=1, validation_data=valid_gen, max_gradient_norm=float("inf"))
        fit_s = time.perf_counter() - start
        train_s = fit_s - model.fit_overhead_s

        # -- score: loader on the test file + model.predict --------------------------------------------------------
        start = time.perf_counter()
        test_gen = RankDataLoader(feature_map, stage="test", test_data=test_file, **loader_options)
        scores = model.predict(test_gen)
        score_s = time.perf_counter() - start
    return {"framework": "fuxictr", "version": importlib.metadata.version("fuxictr"),
            "train_rows": int(len(y_train)), "test_rows": int(len(y_test)), "valid_rows": int(n_valid),
            "prep_s": prep_s, "load_s": load_s, "train_s": train_s, "fit_s": fit_s, "fit_overhead_s": model.fit_overhead_s,
            "score_s": score_s, "train_examples_per_s": len(y_train) / train_s, "score_examples_per_s": len(y_test) / score_s,
            "test_auc": auc(y_test, scores), "test_logloss": _logloss(y_test, scores),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":  # python tools/bench/exfm_fuxictr.py ARROW_PATH [THREADS]
    import json
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(end_to_end(sys.argv[1], DEFAULT_CFG, int(sys.argv[2]) if len(sys.argv) > 2 else 1, tmp), indent=1))
