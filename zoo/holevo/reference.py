"""Closed-form Holevo capacities (bits) used as ground truth (see ``docs/methods/holevo.md``; King's additivity results).

* qubit depolarising :math:`1 - h_2(q/2)`; d-dim depolarising
  :math:`\\log_2 d + (1-q+q/d)\\log_2(1-q+q/d) + (d-1)(q/d)\\log_2(q/d)` (King 2003);
* unital qubit with Pauli-diagonal contractions l: :math:`1 - h_2((1 + \\max|l_i|)/2)` (King 2002);
* erasure: :math:`(1 - \\epsilon)\\log_2 d`;
* amplitude damping (eta = 1 - gamma): :math:`\\max_{t\\in[0,1]} h_2(\\eta t) - h_2((1 + \\sqrt{1 - 4\\eta(1-\\eta)t^2})/2)`
  (two equiprobable inputs :math:`\\sqrt{1-t}|0\\rangle \\pm \\sqrt t|1\\rangle`; cf. Giovannetti and Fazio 2005),
  maximised by bounded Brent search to 1e-14.
"""

from __future__ import annotations

import math

__all__ = ["amplitude_damping_chi", "binary_entropy", "depolarizing_chi", "erasure_chi", "unital_qubit_chi"]


def binary_entropy(x: float) -> float:
    """:math:`h_2(x)` in bits with :math:`0\\log 0 = 0`."""
    return -sum(v * math.log2(v) for v in (x, 1 - x) if v > 0)


def depolarizing_chi(d: int, q: float) -> float:
    a, b = 1 - q + q / d, q / d
    return math.log2(d) + sum(w * math.log2(v) for w, v in ((a, a), ((d - 1) * b, b)) if v > 0)


def unital_qubit_chi(l1: float, l2: float, l3: float) -> float:
    return 1 - binary_entropy((1 + max(abs(l1), abs(l2), abs(l3))) / 2)


def erasure_chi(d: int, epsilon: float) -> float:
    return (1 - epsilon) * math.log2(d)


def amplitude_damping_chi(gamma: float) -> tuple[float, float]:
    """``(chi, t*)`` by bounded scalar maximisation over the |1>-population t."""
    from scipy.optimize import minimize_scalar

    eta = 1 - gamma

    def negative(t: float) -> float:
        root = math.sqrt(max(1 - 4 * eta * (1 - eta) * t * t, 0.0))
        return -(binary_entropy(eta * t) - binary_entropy((1 + root) / 2))

    found = minimize_scalar(negative, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-14})
    return -found.fun, found.x
