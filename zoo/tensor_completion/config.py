"""Config dataclasses of the tensor-completion modules (one per format) and their presets.

A config names the tensor to complete (a seeded planted tensor of given true ranks, or scikit-learn's bundled
photograph), the mask (sample count from ``oversampling`` x the sample floor of the working ranks, i.e. the dimension of the
manifold, or a fraction of all entries), the working ranks (over-estimating them is what the desingularisation is for) and the solver.
"""

from __future__ import annotations

import dataclasses
import math

from zoo.manifolds.tt_desingularization import check_tt_ranks
from zoo.manifolds.tucker_desingularization import check_tucker_ranks

__all__ = ["TTCompletionConfig", "TuckerCompletionConfig"]

_OPTIMIZERS = ("rgd", "rcg", "trust_region")
_DATA = ("planted", "image")
_INITS = ("spectral", "random")


@dataclasses.dataclass
class _CompletionConfig:
    shape: tuple[int, ...] = (30, 32, 34)  # tensor shape (n_1, ..., n_d); for data = image set by the image
    true_ranks: tuple[int, ...] = (2, 3, 2)  # ranks of the planted tensor (ignored for data = image)
    ranks: tuple[int, ...] = (4, 5, 4)  # working ranks (may exceed the true ranks)
    omega: float = 1.0  # slack weight of the metric relative to ||A||^2 (estimated from the samples): scale-free
    data: str = "planted"  # planted | image (scikit-learn's china.jpg / flower.jpg)
    image: str = "china.jpg"  # china.jpg | flower.jpg (data = image)
    image_block: int = 4  # block-average the 427 x 640 photo over block x block pixels (data = image)
    oversampling: float = 5.0  # |Omega| = oversampling x sample floor of the working ranks (dim of the manifold)
    sample_fraction: float = 0.0  # if > 0: |Omega| = this fraction of all entries (overrides oversampling)
    test_count: int = 10000  # held-out entries (disjoint from Omega), at most the unobserved entries
    data_seed: int = 0  # seeds the planted tensor and the masks
    init: str = "spectral"  # spectral (diagonal-deleted HOSVD / TT-SVD of the rescaled samples) | random
    seed: int = 0  # seeds the random start (init = random)
    start_scale: float = 1.0  # norm of the random start / the norm the samples suggest (init = random)
    optimizer: str = "rgd"  # rgd (default: fastest measured from the spectral start) | rcg | trust_region
    tolerance: float = 1e-12  # stop at this relative training error
    stagnation: float = 1e-10  # stop when the training error changes by less than this (relative)
    chunk_size: int = 65536  # observed entries per chunk of the sparse evaluation

    format = "tucker"

    def __post_init__(self) -> None:
        self.shape, self.true_ranks, self.ranks = tuple(self.shape), tuple(self.true_ranks), tuple(self.ranks)
        if self.data not in _DATA:
            raise ValueError(f"data must be one of {_DATA}, got {self.data!r}")
        if self.data == "image":
            if self.image not in ("china.jpg", "flower.jpg"):
                raise ValueError(f"image must be 'china.jpg' or 'flower.jpg', got {self.image!r}")
            if self.image_block < 1:
                raise ValueError(f"image_block must be >= 1, got {self.image_block}")
            self.shape = (427 // self.image_block, 640 // self.image_block, 3)
            if self.sample_fraction <= 0:
                raise ValueError("data = image needs sample_fraction > 0 (there is no true rank to oversample)")
        self._check_ranks(self.ranks)
        if self.data == "planted":
            self._check_ranks(self.true_ranks)
        if not math.isfinite(self.omega) or self.omega <= 0:
            raise ValueError(f"omega must be > 0, got {self.omega}")
        if not 0 <= self.sample_fraction < 1:
            raise ValueError(f"sample_fraction must be in [0, 1), got {self.sample_fraction}")
        if self.sample_fraction == 0 and self.oversampling <= 0:
            raise ValueError(f"oversampling must be > 0, got {self.oversampling}")
        if self.test_count < 0:
            raise ValueError(f"test_count must be >= 0, got {self.test_count}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if self.tolerance <= 0:
            raise ValueError(f"tolerance must be > 0, got {self.tolerance}")
        if self.stagnation < 0:
            raise ValueError(f"stagnation must be >= 0, got {self.stagnation}")
        if self.init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {self.init!r}")
        if self.start_scale <= 0:
            raise ValueError(f"start_scale must be > 0, got {self.start_scale}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        count = self.sample_count()
        if count + self.test_count > math.prod(self.shape):
            raise ValueError(f"{count} samples + test_count {self.test_count} exceed the {math.prod(self.shape)} entries")

    def _check_ranks(self, ranks) -> None:
        check_tucker_ranks(self.shape, ranks)

    def sample_count(self) -> int:
        """|Omega| (training entries)."""
        from zoo.tensor_completion.data import sample_floor

        if self.sample_fraction > 0:
            return max(1, round(self.sample_fraction * math.prod(self.shape)))
        return math.ceil(self.oversampling * sample_floor(self.format, self.shape, self.ranks))


@dataclasses.dataclass
class TuckerCompletionConfig(_CompletionConfig):
    """Completion on the desingularised Tucker manifold (ranks: one per mode)."""

    format = "tucker"


@dataclasses.dataclass
class TTCompletionConfig(_CompletionConfig):
    """Completion on the desingularised TT manifold (ranks: the d - 1 interface ranks)."""

    shape: tuple[int, ...] = (8, 8, 8, 8, 8)
    true_ranks: tuple[int, ...] = (2, 3, 3, 2)
    ranks: tuple[int, ...] = (3, 4, 4, 3)

    format = "tt"

    def _check_ranks(self, ranks) -> None:
        check_tt_ranks(self.shape, ranks)
