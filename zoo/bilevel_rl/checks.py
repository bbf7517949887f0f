"""Input checks shared by the bilevel RL functions: one-line ``ValueError``s that name the argument and the bad value.

Why they exist: torch accepts much that is wrong here without a word. A negative index wraps (an action of -1 is
action A-1 in one place and state s-1's last action in a flat ``index_add_``), NaN flows through soft value iteration
into a NaN policy and hypergradient, and ``nan <= 0`` is False, so a NaN step size passes a plain sign check.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "check_distribution_rows",
    "check_finite",
    "check_float_tensor",
    "check_indices",
    "check_nonnegative_finite",
    "check_policy",
    "check_positive_finite",
]

ROW_SUM_ATOL = 1e-6


def where(tensor: torch.Tensor, flat: int) -> str:
    """``'index 3'`` or ``'index (1, 2)'`` for the ``flat``-th entry of ``tensor``."""
    if tensor.dim() == 0:
        return "index ()"
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), tensor.shape))
    return f"index {index[0]}" if len(index) == 1 else f"index {index}"


def number(value: float) -> str:
    """A value as an error message shows it: ``nan``, ``inf``, ``-0.5``, ``2``, ``1.10000001``."""
    return f"{value:.9g}"


def check_finite(name: str, tensor: torch.Tensor) -> None:
    """Every entry finite, else ``'{name} must be finite, got nan at index (i, j)'``."""
    bad = ~torch.isfinite(tensor.detach())
    if bad.any():
        flat = int(torch.nonzero(bad.reshape(-1))[0])
        raise ValueError(f"{name} must be finite, got {number(tensor.detach().reshape(-1)[flat].item())} at {where(tensor, flat)}")


def check_float_tensor(name: str, tensor: Any) -> torch.Tensor:
    """A floating-point tensor with finite entries (e.g. the upper-level variable x); returns it."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not torch.is_floating_point(tensor):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")
    check_finite(name, tensor)
    return tensor


def _check_real(name: str, value: Any, allow_zero: bool) -> float:
    bound = ">= 0" if allow_zero else "> 0"
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number {bound} and finite, got {value!r}") from None
    if not ((value >= 0 if allow_zero else value > 0) and math.isfinite(value)):
        raise ValueError(f"{name} must be {bound} and finite, got {value}")
    return value


def check_positive_finite(name: str, value: Any) -> float:
    """A step size or similar: a real number > 0 and finite (``nan <= 0`` is False, so a sign check alone lets NaN in)."""
    return _check_real(name, value, allow_zero=False)


def check_nonnegative_finite(name: str, value: Any) -> float:
    """A tolerance or penalty: a real number >= 0 and finite."""
    return _check_real(name, value, allow_zero=True)


def check_indices(name: str, tensor: Any, size: int) -> None:
    """An integer (not bool) tensor with every entry in ``[0, size)``: state or action indices of fragments."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be an integer tensor, got {type(tensor).__name__}")
    if tensor.dtype == torch.bool or torch.is_floating_point(tensor) or torch.is_complex(tensor):
        raise ValueError(f"{name} must be an integer tensor, got dtype {tensor.dtype}")
    bad = (tensor < 0) | (tensor >= size)
    if bad.any():
        flat = int(torch.nonzero(bad.reshape(-1))[0])
        raise ValueError(f"{name} must lie in [0, {size}), got {int(tensor.reshape(-1)[flat])} at {where(tensor, flat)}")


def check_policy(policy: Any, num_states: int, num_actions: int, name: str = "policy") -> None:
    """``policy`` is ``[S, A]``, finite, non-negative, and each row sums to 1 (``check_distribution_rows``)."""
    if not isinstance(policy, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [S, A], got {type(policy).__name__}")
    if tuple(policy.shape) != (num_states, num_actions):
        raise ValueError(f"{name} must have shape [S, A] = [{num_states}, {num_actions}], got {tuple(policy.shape)}")
    if not torch.is_floating_point(policy):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {policy.dtype}")
    check_distribution_rows(name, policy.detach())


def check_distribution_rows(name: str, tensor: torch.Tensor) -> None:
    """Finite, non-negative, and summing to 1 over the last axis (a 1-D tensor is one distribution, not rows), within
    ``ROW_SUM_ATOL`` or the rounding of a sum of that many entries in the tensor's dtype, whichever is larger (a float32
    softmax over many actions is a valid policy). The worst row is named."""
    check_finite(name, tensor)
    if (tensor < 0).any():
        flat = int(torch.argmin(tensor.reshape(-1)))
        raise ValueError(f"{name} must be non-negative, got {number(tensor.reshape(-1)[flat].item())} at {where(tensor, flat)}")
    sums = tensor.sum(-1)
    error = (sums - 1).abs()
    tolerance = max(ROW_SUM_ATOL, tensor.shape[-1] * torch.finfo(tensor.dtype).eps)  # worst-case rounding of the sum
    if (error > tolerance).any():
        if tensor.dim() == 1:
            raise ValueError(f"{name} must sum to 1, got {number(sums.item())}")
        index = tuple(int(i) for i in torch.nonzero(error == error.max())[0])
        row = index[0] if len(index) == 1 else index
        raise ValueError(f"{name} rows must sum to 1; row {row} sums to {number(sums[index].item())}")
