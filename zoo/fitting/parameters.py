"""Fit parameters with bounds, fixed flags and transforms; values always in physical units.

The optimiser works on an unconstrained vector ``u``; every reported quantity is in physical units ``p``
(see ``docs/cores/fitting.md``, our design):

| bounds       | map ``u -> p``                               | inverse (start value)                      |
|--------------|----------------------------------------------|--------------------------------------------|
| none         | ``p = u``                                     | ``u = p``                                  |
| lower only   | ``p = lower + softplus(u)``                   | ``u = log(expm1(p - lower))``              |
| upper only   | ``p = upper - softplus(u)``                   | ``u = log(expm1(upper - p))``              |
| both         | ``p = lower + (upper - lower) sigmoid(u)``    | ``u = logit((p - lower) / (upper - lower))``|
| fixed        | not optimised; stored as a constant          | -                                          |
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import torch

__all__ = ["FIT_OPTION_FIELDS", "check_fit_options", "Parameter", "ParameterSet"]

_NONE, _LOWER, _UPPER, _BOTH = 0, 1, 2, 3


@dataclasses.dataclass
class Parameter:
    """One fit parameter, in physical units.

    Args:
        name: identifier used in results and cards (``J_perp``).
        value: start value (physical units).
        unit: unit string shown in reports (``meV``).
        lower, upper: optional bounds; a free parameter's start must lie strictly inside them.
        fixed: ``True`` keeps it at ``value`` (not optimised, no error reported).
    """

    name: str
    value: float
    unit: str = ""
    lower: float | None = None
    upper: float | None = None
    fixed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"parameter name must be an identifier, got {self.name!r}")
        self.value = float(self.value)
        if not math.isfinite(self.value):
            raise ValueError(f"parameter {self.name}: value must be finite, got {self.value}")
        for side in ("lower", "upper"):
            bound = getattr(self, side)
            if bound is not None:
                bound = float(bound)
                if math.isnan(bound):
                    raise ValueError(f"parameter {self.name}: {side} bound is NaN")
                setattr(self, side, None if math.isinf(bound) else bound)
        if self.lower is not None and self.upper is not None and not self.lower < self.upper:
            raise ValueError(f"parameter {self.name}: lower bound {self.lower} must be < upper bound {self.upper}")
        if self.fixed:
            return
        if (self.lower is not None and self.value <= self.lower) or (self.upper is not None and self.value >= self.upper):
            raise ValueError(
                f"parameter {self.name}: start value {self.value} lies outside its bounds "
                f"({self.lower}, {self.upper}); a free parameter must start strictly inside them"
            )

    @property
    def kind(self) -> int:
        return (_LOWER if self.lower is not None else 0) | (_UPPER if self.upper is not None else 0)


class ParameterSet:
    """An ordered set of ``Parameter``s and the map between unconstrained and physical free values.

    ``free`` parameters are optimised; ``fixed`` ones enter the model as constants. Shapes: ``u`` and the
    physical free vector ``p`` are ``[..., n_free]`` (a leading batch axis for many problems at once).
    """

    def __init__(self, parameters: Iterable[Parameter]) -> None:
        self.parameters = list(parameters)
        if not self.parameters:
            raise ValueError("a fit needs at least one parameter, got none")
        names = [p.name for p in self.parameters]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"parameter names must be unique, repeated: {duplicates}")
        self.free = [p for p in self.parameters if not p.fixed]
        self.fixed = [p for p in self.parameters if p.fixed]
        if not self.free:
            raise ValueError("every parameter is fixed; nothing to fit")
        self.names = names
        self.free_names = [p.name for p in self.free]
        self.units = {p.name: p.unit for p in self.parameters}
        inf = float("inf")
        self._lower = torch.tensor([p.lower if p.lower is not None else -inf for p in self.free], dtype=torch.float64)
        self._upper = torch.tensor([p.upper if p.upper is not None else inf for p in self.free], dtype=torch.float64)
        self._kind = torch.tensor([p.kind for p in self.free])

    def __len__(self) -> int:
        return len(self.free)

    def __getitem__(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(f"no parameter {name!r}; known: {self.names}")

    @property
    def lower(self) -> torch.Tensor:
        return self._lower

    @property
    def upper(self) -> torch.Tensor:
        return self._upper

    def start(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Physical start values of the free parameters, ``[n_free]``."""
        return torch.tensor([p.value for p in self.free], dtype=dtype)

    def to_physical(self, u: torch.Tensor) -> torch.Tensor:
        """``p(u)``, elementwise by bound kind (module table); ``u`` is ``[..., n_free]``."""
        kind, lower, upper = self._kind.to(u.device), self._lower.to(u), self._upper.to(u)
        lo = torch.where(torch.isfinite(lower), lower, torch.zeros_like(lower))
        hi = torch.where(torch.isfinite(upper), upper, torch.zeros_like(upper))
        soft = torch.nn.functional.softplus(u)
        out = torch.where(kind == _LOWER, lo + soft, u)
        out = torch.where(kind == _UPPER, hi - soft, out)
        return torch.where(kind == _BOTH, lo + (hi - lo) * torch.sigmoid(u), out)

    def to_unconstrained(self, p: torch.Tensor) -> torch.Tensor:
        """``u(p)``, the inverse of ``to_physical``; ``p`` must lie strictly inside the bounds."""
        kind, lower, upper = self._kind.to(p.device), self._lower.to(p), self._upper.to(p)
        lo = torch.where(torch.isfinite(lower), lower, torch.zeros_like(lower))
        hi = torch.where(torch.isfinite(upper), upper, torch.ones_like(upper))
        # log(expm1(x)) = x + log(-expm1(-x)) is stable for large x
        inv_softplus = lambda x: x + torch.log(-torch.expm1(-x))  # noqa: E731
        out = torch.where(kind == _LOWER, inv_softplus((p - lo).clamp_min(1e-300)), p)
        out = torch.where(kind == _UPPER, inv_softplus((hi - p).clamp_min(1e-300)), out)
        span = torch.where(kind == _BOTH, hi - lo, torch.ones_like(hi))
        fraction = ((p - lo) / span).clamp(1e-300, 1 - 1e-16)
        return torch.where(kind == _BOTH, torch.logit(fraction), out)

    def jacobian_diagonal(self, u: torch.Tensor) -> torch.Tensor:
        """``dp/du`` elementwise, ``[..., n_free]``."""
        kind, lower, upper = self._kind.to(u.device), self._lower.to(u), self._upper.to(u)
        lo = torch.where(torch.isfinite(lower), lower, torch.zeros_like(lower))
        hi = torch.where(torch.isfinite(upper), upper, torch.zeros_like(upper))
        sig = torch.sigmoid(u)
        out = torch.where(kind == _NONE, torch.ones_like(u), sig)
        out = torch.where(kind == _UPPER, -sig, out)
        return torch.where(kind == _BOTH, (hi - lo) * sig * (1 - sig), out)

    def at_bound(self, p: torch.Tensor, relative: float = 1e-6) -> torch.Tensor:
        """``True`` where a free value is within ``relative`` (of max(1, |bound|)) of a bound, ``[..., n_free]``."""
        lower, upper = self._lower.to(p), self._upper.to(p)
        near_lower = (p - lower).abs() <= relative * lower.abs().clamp_min(1.0)
        near_upper = (upper - p).abs() <= relative * upper.abs().clamp_min(1.0)
        return (near_lower & torch.isfinite(lower)) | (near_upper & torch.isfinite(upper))

    def as_dict(self, p_free: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every parameter by name (free from ``p_free [..., n_free]``, fixed as constants of the same shape)."""
        values = {name: p_free[..., i] for i, name in enumerate(self.free_names)}
        template = p_free[..., 0]
        for p in self.fixed:
            values[p.name] = torch.full_like(template, p.value)
        return {name: values[name] for name in self.names}

    def with_fixed(self, name: str, value: float) -> "ParameterSet":
        """A copy in which ``name`` is fixed at ``value`` (used by profile intervals)."""
        return ParameterSet(
            dataclasses.replace(p, value=value, fixed=True) if p.name == name else dataclasses.replace(p)
            for p in self.parameters
        )

    def with_values(self, values: dict[str, float]) -> "ParameterSet":
        """A copy with new start values (free ones clipped strictly inside their bounds)."""
        out = []
        for p in self.parameters:
            v = float(values.get(p.name, p.value))
            if not p.fixed:
                span = (p.upper - p.lower) if p.lower is not None and p.upper is not None else max(1.0, abs(v))
                eps = 1e-9 * span
                if p.lower is not None:
                    v = max(v, p.lower + eps)
                if p.upper is not None:
                    v = min(v, p.upper - eps)
            out.append(dataclasses.replace(p, value=v))
        return ParameterSet(out)


def as_parameter_set(parameters: ParameterSet | Sequence[Parameter]) -> ParameterSet:
    return parameters if isinstance(parameters, ParameterSet) else ParameterSet(parameters)


# What a refit started from a pushed fit (zoo.init_from) may change in any fitter's config: how it minimises and how
# it reports errors. Start values are not listed (the parent's fitted values replace them), nor anything that
# changes the model, the bounds or which parameters are free.
FIT_OPTION_FIELDS = ("max_iterations", "loss", "error_method", "scale_covariance")


def check_fit_options(config: object, losses: tuple[str, ...] = ("poisson", "gaussian")) -> None:
    """Validate the fit options every fitter config shares: ``loss``, ``error_method``, ``max_iterations``."""
    if config.loss not in losses:
        raise ValueError(f"loss must be one of {losses}, got {config.loss!r}")
    if config.error_method not in ("hessian", "fisher"):
        raise ValueError(f"error_method must be 'hessian' or 'fisher', got {config.error_method!r}")
    if config.max_iterations < 1:
        raise ValueError(f"max_iterations must be >= 1, got {config.max_iterations}")
