"""CTR metrics: log loss, normalised entropy (NE), AUC, and the ExFM transfer ratio.

- log loss: mean_i -[y_i log p_i + (1 - y_i) log(1 - p_i)], computed from logits (stable).
- NE (He et al. 2014, "Practical lessons from predicting clicks on ads at Facebook", Sec. 2.1; the ExFM
  paper's metric [paper]): log loss divided by the entropy of the base rate,
  H(b) = -[b log b + (1 - b) log(1 - b)]. The denominator used here is the positive rate b of the evaluated rows
  themselves (our choice, stated on every card), so a constant predictor of b has NE = 1 exactly.
- AUC: the Mann-Whitney statistic with average ranks for ties.
- transfer ratio (docs/methods/exfm.md, our definition): (NE_VM - NE_arm) / (NE_VM - NE_FM), the share of the FM's NE
  advantage over the VM that the distilled arm recovers; undefined (NaN) unless NE_FM < NE_VM.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["auc", "binary_entropy", "log_loss", "normalized_entropy", "transfer_ratio", "window_metrics"]


def log_loss(labels: np.ndarray, logits: np.ndarray) -> float:
    labels = np.asarray(labels, dtype=np.float64)
    logits = np.asarray(logits, dtype=np.float64)
    if labels.shape != logits.shape or labels.size == 0:
        raise ValueError(f"labels {labels.shape} and logits {logits.shape} must have the same non-empty shape")
    # softplus(z) - y z = -[y log s(z) + (1 - y) log(1 - s(z))]
    return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


def binary_entropy(rate: float) -> float:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    if rate in (0.0, 1.0):
        return 0.0
    return -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))


def normalized_entropy(labels: np.ndarray, logits: np.ndarray, base_rate: float | None = None) -> float:
    """Log loss / H(base_rate); ``base_rate`` defaults to the mean label of ``labels``. NaN if H = 0."""
    labels = np.asarray(labels, dtype=np.float64)
    rate = float(labels.mean()) if base_rate is None else float(base_rate)
    entropy = binary_entropy(rate)
    return log_loss(labels, logits) / entropy if entropy > 0 else float("nan")


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN when one class is absent."""
    import pandas as pd

    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def window_metrics(labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    labels = np.asarray(labels, dtype=np.float64)
    return {
        "ne": normalized_entropy(labels, logits), "auc": auc(labels, logits), "logloss": log_loss(labels, logits),
        "rows": float(labels.size), "positive_rate": float(labels.mean()),
    }


def transfer_ratio(ne_vm: float, ne_arm: float, ne_fm: float) -> float:
    gap = ne_vm - ne_fm
    return (ne_vm - ne_arm) / gap if gap > 0 else float("nan")
