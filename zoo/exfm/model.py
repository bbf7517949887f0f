"""CTR networks for ExFM (arXiv 2502.17494): one fused embedding table, DCNv2 or DeepFM backbone, several heads.

The ExFM paper does not name its FM / VM architectures in the readable part ([unknown]); the zoo offers the two
standard CTR families (docs/methods/exfm.md), with a foundation model (FM) and vertical models (VMs) built from the
same code at different sizes (our choice):

- DCNv2 (Wang et al. 2021, arXiv 2008.13535, Eq. 1): x_{l+1} = x_0 * (W_l x_l + b_l) + x_l on the flattened
  embeddings x_0, in parallel with an MLP; the representation is [x_L, MLP(x_0)].
- DeepFM (Guo et al. 2017, arXiv 1703.04247): the FM second-order interaction of the field embeddings
  e_f (Eq. 3 via the square-of-sum trick) v = 1/2 [(sum_f e_f)^2 - sum_f e_f^2], a d-vector, in parallel with an
  MLP on the flattened embeddings x_0; the representation is h = [v, MLP(x_0)]. Each head is a learned linear
  layer on h, so its logit is w_v . v + w_m . MLP(x_0) + b + sum_f w_{x_f} (the first-order term, added
  unweighted). DeepFM as published (and DeepCTR-Torch's DeepFM) adds the FM term unweighted, sum_k v_k; here the
  per-dimension weights w_v are learned, one set per head (our choice): the published model is the special case
  w_v = 1. There is no option for the fixed sum (hub checkpoints hold w_v).

``CTRNetwork`` = backbone h(x) plus named linear heads. The serving head is the only one used at inference; the
ExFM auxiliary heads read h through ``gradient_scale`` (identity forward, beta * gradient backward) [reimpl].
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["CTRNetwork", "FusedEmbedding", "StudentAdapter", "gradient_scale"]


class FusedEmbedding(nn.Module):
    """All fields in one ``nn.Embedding`` with per-field offsets (one gather instead of a loop over fields)."""

    def __init__(self, field_sizes: Sequence[int], dim: int) -> None:
        super().__init__()
        sizes = torch.tensor([0, *field_sizes], dtype=torch.long)
        self.register_buffer("offsets", torch.cumsum(sizes, 0)[:-1], persistent=False)
        self.table = nn.Embedding(int(sizes.sum()), dim)
        self.bias = nn.Embedding(int(sizes.sum()), 1)  # first-order weights (DeepFM / LR term)
        nn.init.normal_(self.table.weight, std=0.01)
        nn.init.zeros_(self.bias.weight)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids [batch, fields] local per field -> embeddings [batch, fields, dim], first-order [batch]."""
        flat = ids + self.offsets  # [batch, fields] global rows of the fused table
        return self.table(flat), self.bias(flat).sum(dim=(1, 2))


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class _GradientScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad * ctx.scale, None


def gradient_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``scale`` (ExFM's beta) in the backward [reimpl]."""
    return _GradientScale.apply(x, float(scale))


class CTRNetwork(nn.Module):
    """Backbone (fused embeddings + DCNv2 or DeepFM) and linear heads producing logits.

    Args:
        field_sizes: ids per field (``FeatureSpec.field_sizes``).
        architecture: ``"dcnv2"`` or ``"deepfm"``.
        embedding_dim: width d of every field embedding.
        cross_layers: DCNv2 cross layers L (ignored by DeepFM).
        hidden: MLP widths.
        heads: names of the linear heads (the first is the serving head).
        linear_init: ``"default"`` (PyTorch's init of ``nn.Linear``) or ``"xavier_normal"`` (Glorot & Bengio 2010:
            W ~ N(0, 2 / (fan_in + fan_out)), zero biases, for every linear layer: cross, MLP and heads).
    """

    def __init__(self, field_sizes: Sequence[int], architecture: str, embedding_dim: int, cross_layers: int,
                 hidden: Sequence[int], heads: Sequence[str] = ("serving",), linear_init: str = "default") -> None:
        super().__init__()
        if architecture not in ("dcnv2", "deepfm"):
            raise ValueError(f"architecture must be 'dcnv2' or 'deepfm', got {architecture!r}")
        self.architecture = architecture
        self.embedding = FusedEmbedding(field_sizes, embedding_dim)
        width = len(field_sizes) * embedding_dim
        self.mlp = _mlp([width, *hidden])
        if architecture == "dcnv2":
            self.cross = nn.ModuleList(nn.Linear(width, width) for _ in range(cross_layers))
            self.representation_size = width + (hidden[-1] if hidden else width)
        else:
            self.cross = nn.ModuleList()
            self.representation_size = embedding_dim + (hidden[-1] if hidden else width)
        self.heads = nn.ModuleDict({name: nn.Linear(self.representation_size, 1) for name in heads})
        if linear_init == "xavier_normal":
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.xavier_normal_(module.weight)
                    nn.init.zeros_(module.bias)
        elif linear_init != "default":
            raise ValueError(f"linear_init must be 'default' or 'xavier_normal', got {linear_init!r}")

    def representation(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h(x) [batch, representation_size] and the first-order term [batch]."""
        embedded, first_order = self.embedding(ids)  # [batch, fields, dim], [batch]
        x0 = embedded.flatten(1)  # [batch, fields * dim]
        deep = self.mlp(x0) if len(self.mlp) else x0
        if self.architecture == "dcnv2":
            x = x0
            for layer in self.cross:
                x = x0 * layer(x) + x  # DCNv2 Eq. 1
            return torch.cat([x, deep], dim=1), first_order
        summed = embedded.sum(1)  # [batch, dim]
        interaction = 0.5 * (summed * summed - (embedded * embedded).sum(1))  # DeepFM Eq. 3 (square-of-sum trick)
        return torch.cat([interaction, deep], dim=1), first_order

    def forward(self, ids: torch.Tensor, head: str = "serving") -> torch.Tensor:
        """Logits [batch] of one head."""
        h, first_order = self.representation(ids)
        return self.heads[head](h).squeeze(-1) + first_order


class StudentAdapter(nn.Module):
    """ExFM Student Adapter [paper: the component; reimpl: Eq. 6-7]: a tiny MLP on the FM logit -> adapted logit.

    Input: the FM logit clamped to [-clamp, clamp] (our choice, as in the re-implementation's prototype). It is
    initialised to the identity map (our choice: the residual form ``z + MLP(z)`` with a zero last layer), so a
    fresh adapter passes the FM prediction through unchanged.
    """

    def __init__(self, hidden: int = 16, clamp: float = 15.0) -> None:
        super().__init__()
        self.clamp = float(clamp)
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, foundation_logit: torch.Tensor) -> torch.Tensor:
        z = foundation_logit.clamp(-self.clamp, self.clamp).unsqueeze(-1)  # [batch, 1]
        return (z + self.net(z)).squeeze(-1)
