"""Seeded planted low-rank tensors, uniform masks as index tensors, sample floors, and a real image tensor.

* :func:`planted_tucker` / :func:`planted_tt`: Gaussian core(s) with orthonormal factors (QR of Gaussian
  matrices; as the official ``makeRandnTensor``), scaled to ``||A||_F = 1``, float64. Only the factors are kept:
  entries are evaluated where they are needed.
* :func:`sample_entries`: a training mask Omega drawn uniformly without replacement and a disjoint test mask
  Gamma, as ``[m, d]`` int64 index tensors; redrawn (next seed) until every index of every mode is observed.
* :func:`sample_floor`: the dimension of the fixed-rank model, the number of samples below which completion
  cannot be unique (Tucker: ``prod r + sum (n_k r_k - r_k^2)``; TT: ``sum r_(k-1) n_k r_k - sum r_k^2``).
* :func:`sample_image`: a colour photograph bundled with scikit-learn (``china.jpg`` or ``flower.jpg``, 427 x 640
  x 3, CC BY 2.0, see ``sklearn/datasets/images/README.txt``), block-averaged and scaled to [0, 1]: a real
  order-3 tensor that ships offline.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from zoo.manifolds.tt_desingularization import check_tt_ranks
from zoo.manifolds.tucker_desingularization import check_tucker_ranks

__all__ = ["planted_tt", "planted_tucker", "sample_entries", "sample_floor", "sample_image"]


def planted_tucker(shape: Sequence[int], ranks: Sequence[int], seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(core, factors)`` of a random Tucker tensor of multilinear rank ``ranks`` with ``||A||_F = 1``."""
    shape, ranks = check_tucker_ranks(shape, ranks)
    generator = torch.Generator().manual_seed(seed)
    factors = [torch.linalg.qr(torch.randn(n, r, dtype=torch.float64, generator=generator))[0] for n, r in zip(shape, ranks)]
    core = torch.randn(ranks, dtype=torch.float64, generator=generator)
    return core / core.norm(), factors


def planted_tt(shape: Sequence[int], ranks: Sequence[int], seed: int = 0) -> list[torch.Tensor]:
    """Cores of a random tensor train with interface ranks ``ranks``, left-orthogonal, ``||A||_F = 1``."""
    shape, ranks = check_tt_ranks(shape, ranks)
    generator = torch.Generator().manual_seed(seed)
    bond = (1, *ranks, 1)
    cores = []
    for k, n in enumerate(shape[:-1]):
        q = torch.linalg.qr(torch.randn(bond[k] * n, bond[k + 1], dtype=torch.float64, generator=generator))[0]
        cores.append(q.reshape(bond[k], n, bond[k + 1]))
    last = torch.randn(bond[-2], shape[-1], 1, dtype=torch.float64, generator=generator)
    cores.append(last / last.norm())
    return cores


def sample_floor(format: str, shape: Sequence[int], ranks: Sequence[int]) -> int:
    """Number of parameters of the fixed-rank model (the sample count below which recovery cannot be unique)."""
    if format == "tucker":
        shape, ranks = check_tucker_ranks(shape, ranks)
        return math.prod(ranks) + sum(n * r - r * r for n, r in zip(shape, ranks))
    if format == "tt":
        shape, ranks = check_tt_ranks(shape, ranks)
        bond = (1, *ranks, 1)
        return sum(bond[k] * n * bond[k + 1] for k, n in enumerate(shape)) - sum(r * r for r in ranks)
    raise ValueError(f"format must be 'tucker' or 'tt', got {format!r}")


def _unravel(flat: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    out = []
    for n in reversed(shape):
        out.append(flat % n)
        flat = flat // n
    return torch.stack(out[::-1], dim=1)


def sample_entries(shape: Sequence[int], count: int, test_count: int = 0, seed: int = 0,
                   max_redraws: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, test)`` index tensors ``[count, d]`` and ``[test_count, d]``, disjoint, uniform without replacement.

    The training mask is redrawn (seed + 1, ...) until every index of every mode is observed at least once.
    """
    shape = tuple(int(n) for n in shape)
    total = math.prod(shape)
    if count < 1:
        raise ValueError(f"count must be >= 1 (an empty mask observes nothing), got {count}")
    if test_count < 0 or count + test_count > total:
        raise ValueError(f"count + test_count = {count + test_count} must be at most the number of entries {total}")
    for attempt in range(max_redraws):
        generator = torch.Generator().manual_seed(seed + attempt)
        if total <= 50_000_000:
            flat = torch.randperm(total, generator=generator)[: count + test_count]
        else:  # rejection: draw with replacement until enough distinct entries
            flat = torch.empty(0, dtype=torch.int64)
            while flat.numel() < count + test_count:
                draw = torch.randint(total, (2 * (count + test_count),), generator=generator)
                flat = torch.cat([flat, draw]).unique(sorted=False)
            flat = flat[torch.randperm(flat.numel(), generator=generator)[: count + test_count]]
        train = _unravel(flat[:count], shape)
        if all(int(train[:, k].unique().numel()) == n for k, n in enumerate(shape)):
            return train, _unravel(flat[count:], shape)
    raise ValueError(f"{count} samples never observed every index of every mode of {shape} in {max_redraws} draws")


def sample_image(name: str = "china.jpg", block: int = 4) -> torch.Tensor:
    """scikit-learn's bundled photograph ``name``, averaged over ``block x block`` pixel blocks, in [0, 1]
    (float64, ``[height, width, 3]``). Needs scikit-learn and Pillow (no download)."""
    if name not in ("china.jpg", "flower.jpg"):
        raise ValueError(f"name must be 'china.jpg' or 'flower.jpg' (the images scikit-learn ships), got {name!r}")
    if not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a positive int, got {block!r}")
    try:
        from sklearn.datasets import load_sample_image
    except ImportError as error:  # pragma: no cover - the extra is missing
        raise ImportError("sample_image needs scikit-learn: pip install 'paperzoo[tensor_completion]'") from error
    pixels = torch.tensor(load_sample_image(name).copy(), dtype=torch.float64) / 255.0
    height, width = (pixels.shape[0] // block) * block, (pixels.shape[1] // block) * block
    pixels = pixels[:height, :width].reshape(height // block, block, width // block, block, 3)
    return pixels.mean(dim=(1, 3))
