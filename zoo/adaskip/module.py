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

    def __post_init__(self) -> None:
        if isinstance(self.plan, dict):
            self.plan = SkipPlan(**self.plan)
        if self.calibration_prompts < 0 or self.calibration_tokens < 0:
            raise ValueError(f"calibration counts must be >= 0, got {self.calibration_prompts}, {self.calibration_tokens}")


class AdaSkipPlanModule(ZooModule):
    """Holds a skip plan and its calibration statistics; ``apply(model)`` wraps a model with it."""

    config_class = AdaSkipConfig
    card_template = "adaskip"

    def __init__(self, config: AdaSkipConfig | None = None) -> None:
        super().__init__(config)
        layers = self.config.plan.num_layers
        for name in _STATS:
            self.register_buffer(name, torch.full((layers,), float("nan"), dtype=torch.float64))

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


@register_model("adaskip_plan_tiny")
def adaskip_plan_tiny() -> AdaSkipConfig:
    """An empty plan for a 4-layer tiny Llama (tests, docs)."""
    return AdaSkipConfig()
