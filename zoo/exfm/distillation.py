"""ExFM losses (Auxiliary Head, Student Adapter, plain distillation) and the Data Augmentation Service (DAS).

Paper: Liang, Liu et al., "External Large Foundation Model: How to Efficiently Serve Trillions of Parameters for
Online Ads Recommendation", arXiv 2502.17494 (WWW '25 Companion). Tags: [paper] = stated in the readable part of
the paper; [reimpl] = known only from the re-implementation doogkong/ad_ranking (ExFM/exfm.py), which cites the
paper's equation numbers but was not checked against the PDF; [ours] = our choice.

Write l(z, t) for binary cross-entropy of logit z against target t in [0, 1].

- VM alone: l(y_S, y).
- Plain distillation (Eq. 2 not seen, [ours]): l(y_S, y) + w l(y_S, p_F), the FM probability on the serving head.
- Auxiliary Head [paper: the component; reimpl: Eq. 3-5]: the backbone h feeds the serving head y_S and a
  separate distillation head y_D that reads h through gradient scaling (identity forward, beta x gradient):

      L_AH = l(y_S, y) + w l(y_D, min(alpha p_F, 1))

  So the serving head's parameters get gradient from the true label only, and the FM's gradient reaches the
  shared backbone multiplied by beta. The first-order (embedding bias) term belongs to the backbone and is
  gradient-scaled the same way [ours].
- Student Adapter [paper: the component; reimpl: Eq. 6-7, Algorithm 1]: per batch, (1) one step of the adapter's
  own optimizer on l(SA(z_F), y) with fresh true labels, (2) stop-gradient of sigma(SA(z_F)) after the step,
  (3) add w l(y_D', SG(sigma(SA(z_F)))) through a second gradient-scaled head y_D' (two heads as in the
  re-implementation; whether the paper uses one or two is [unknown]; the weight w on this term is [ours]).
- DAS [paper: FM predictions logged into the VM training rows; reimpl: once per unique example across VMs]: see
  ``DataAugmentationService``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.exfm.model import CTRNetwork, StudentAdapter, gradient_scale

__all__ = ["DataAugmentationService", "adapter_step", "student_loss"]


def student_loss(network: CTRNetwork, ids: torch.Tensor, labels: torch.Tensor, *, distillation: str,
                 foundation_logit: torch.Tensor | None = None, adapter_target: torch.Tensor | None = None,
                 label_scale: float = 1.0, loss_weight: float = 1.0, gradient_scale_beta: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one vertical-model batch (see the module docstring); returns (loss, parts).

    ``foundation_logit`` is the DAS-logged FM logit (None: no FM snapshot yet, distillation terms are skipped);
    ``adapter_target`` the stop-gradiented SA probability (AH + SA mode only).
    """
    h, first_order = network.representation(ids)  # [batch, r], [batch]
    serving = network.heads["serving"](h).squeeze(-1) + first_order
    loss = F.binary_cross_entropy_with_logits(serving, labels)
    parts = {"serving": float(loss.detach())}
    if distillation == "none" or foundation_logit is None:
        return loss, parts
    foundation_probability = torch.sigmoid(foundation_logit.detach())
    if distillation == "plain":
        term = F.binary_cross_entropy_with_logits(serving, foundation_probability)
        parts["distill"] = float(term.detach())
        return loss + loss_weight * term, parts
    if distillation not in ("auxiliary_head", "auxiliary_head_adapter"):
        raise ValueError(f"distillation must be none, plain, auxiliary_head or auxiliary_head_adapter, got {distillation!r}")
    scaled_h = gradient_scale(h, gradient_scale_beta)  # identity forward; beta x gradient into the backbone
    scaled_first = gradient_scale(first_order, gradient_scale_beta)
    auxiliary = network.heads["auxiliary"](scaled_h).squeeze(-1) + scaled_first
    target = torch.clamp(label_scale * foundation_probability, max=1.0)  # label scaling min(alpha p_F, 1)
    term = F.binary_cross_entropy_with_logits(auxiliary, target)
    parts["auxiliary"] = float(term.detach())
    loss = loss + loss_weight * term
    if distillation == "auxiliary_head_adapter":
        if adapter_target is None:
            raise ValueError("distillation 'auxiliary_head_adapter' needs adapter_target")
        adapter_logit = network.heads["adapter"](scaled_h).squeeze(-1) + scaled_first
        term = F.binary_cross_entropy_with_logits(adapter_logit, adapter_target.detach())
        parts["adapter"] = float(term.detach())
        loss = loss + loss_weight * term
    return loss, parts


def adapter_step(adapter: StudentAdapter, optimizer: torch.optim.Optimizer, foundation_logit: torch.Tensor,
                 labels: torch.Tensor, *, loss_scale: float = 1.0, reduce_gradients: Any = None) -> tuple[torch.Tensor, float]:
    """Student Adapter Algorithm 1 [reimpl]: one step on fresh labels, then the stop-gradiented target.

    Data-parallel use: each rank passes its share of the batch, ``loss_scale`` = its share of the rows, and
    ``reduce_gradients(module)`` sums the gradients over ranks before the step (see ``StreamingTrainer``).
    Returns (sigma(SA(z_F)) after the step, detached; the adapter's loss before the step).
    """
    optimizer.zero_grad(set_to_none=True)
    loss = F.binary_cross_entropy_with_logits(adapter(foundation_logit.detach()), labels)
    (loss * loss_scale).backward()
    if reduce_gradients is not None:
        reduce_gradients(adapter)
    optimizer.step()
    with torch.no_grad():
        target = torch.sigmoid(adapter(foundation_logit))
    return target.detach(), float(loss.detach())


@dataclass
class DataAugmentationService:
    """DAS: the FM scores each example once, whatever the number of VMs, and logs the logit as a column.

    For window t and staleness k, the FM snapshot trained through window t - k labels the union of the rows of
    every vertical whose students use k; each row is scored once and the window gains two columns,
    ``fm_logit_k{k}`` (NaN for rows no vertical needs) and ``fm_snapshot_k{k}`` (the snapshot's window id, -1 when
    no snapshot existed yet). ``calls`` counts rows the FM actually scored; ``naive_calls`` what each vertical
    calling the FM on its own rows would have cost (the sum of vertical sizes). [paper + reimpl; counting ours]
    """

    batch_size: int = 4096  # rows per FM forward pass
    calls: int = 0  # rows scored by the FM (after de-duplication across verticals)
    naive_calls: int = 0  # rows a per-vertical FM call would have scored
    log: list[dict[str, Any]] = field(default_factory=list)  # one record per (window, staleness)

    @torch.no_grad()
    def annotate(self, table: Any, ids: torch.Tensor, memberships: dict[str, np.ndarray], staleness: int,
                 foundation: CTRNetwork | None, snapshot: int, window: int) -> Any:
        """Return ``table`` with the two DAS columns for ``staleness`` added (see the class docstring)."""
        import pyarrow as pa

        rows = len(ids)
        logits = np.full(rows, np.nan, dtype=np.float64)
        if foundation is not None and memberships:
            needed = np.zeros(rows, dtype=bool)
            for mask in memberships.values():
                needed |= mask
            index = np.flatnonzero(needed)  # each row once, however many verticals hold it
            was_training = foundation.training
            foundation.eval()
            scored = [foundation(ids[torch.from_numpy(index[i:i + self.batch_size])]) for i in range(0, len(index), self.batch_size)]
            foundation.train(was_training)
            if scored:
                logits[index] = torch.cat(scored).double().numpy()
            self.calls += len(index)
            self.naive_calls += int(sum(int(m.sum()) for m in memberships.values()))
            self.log.append({"window": window, "staleness": staleness, "snapshot": snapshot, "scored": len(index)})
        table = table.append_column(f"fm_logit_k{staleness}", pa.array(logits))
        return table.append_column(f"fm_snapshot_k{staleness}", pa.array(np.full(rows, snapshot if foundation is not None else -1, dtype=np.int64)))

    def state_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "naive_calls": self.naive_calls, "log": list(self.log)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls, self.naive_calls, self.log = int(state["calls"]), int(state["naive_calls"]), list(state["log"])
