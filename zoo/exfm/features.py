"""Feature spec for streaming CTR rows: vocabularies, hashing for unseen ids, bucketing; one fused id space.

The spec is a plain dataclass stored inside the model config (so ``config.json`` carries it and
``zoo.from_pretrained`` gives a model that scores raw, un-encoded rows). Every feature becomes one id into a
single fused embedding table (our choice, following the DLRM/TorchRec practice of one table with per-field
offsets; the ExFM paper does not describe its feature processing):

- ``CategoricalFeature``: value -> position in ``vocabulary`` (compared as strings); a value outside the
  vocabulary is hashed into ``hash_buckets`` extra slots (deterministic: ``pandas.util.hash_array`` of the
  string form, a fixed-key SipHash). With an empty vocabulary the feature is purely hashed. With
  ``oov="error"`` there are no extra slots and a value outside the vocabulary raises.
- ``NumericFeature``: value -> bucket ``1 + searchsorted(boundaries, value, side="right")``; NaN goes to the
  documented fallback bucket 0 ("missing"), which is how a running mean over zero earlier events arrives.

Bad input never reaches torch: a missing column, an unknown column (when ``strict``), NaN / None in a
categorical column, a negative integer id, or a non-numeric value in a numeric column raise ``ValueError``
naming the column and the offending value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["CategoricalFeature", "FeatureSpec", "NumericFeature", "build_vocabulary"]


@dataclass
class CategoricalFeature:
    name: str  # raw column name
    vocabulary: tuple[str, ...] = ()  # known values (string form); position i -> local id i
    hash_buckets: int = 1  # extra slots for values outside the vocabulary (hashed); >= 1 (0 with oov="error")
    oov: str = "hash"  # values outside the vocabulary: "hash" into the extra slots, or "error" (raise)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError(f"CategoricalFeature.name must be non-empty, got {self.name!r}")
        if self.oov not in ("hash", "error"):
            raise ValueError(f"CategoricalFeature.oov must be 'hash' or 'error', got {self.oov!r} ({self.name})")
        if self.oov == "error":
            self.hash_buckets = 0
            if not self.vocabulary:
                raise ValueError(f"CategoricalFeature {self.name!r}: oov='error' needs a non-empty vocabulary")
        elif self.hash_buckets < 1:
            raise ValueError(f"CategoricalFeature.hash_buckets must be >= 1, got {self.hash_buckets} ({self.name})")
        self.vocabulary = tuple(str(v) for v in self.vocabulary)
        if len(set(self.vocabulary)) != len(self.vocabulary):
            raise ValueError(f"CategoricalFeature.vocabulary of {self.name!r} has duplicates")

    @property
    def size(self) -> int:
        return len(self.vocabulary) + self.hash_buckets


@dataclass
class NumericFeature:
    name: str  # raw column name
    boundaries: tuple[float, ...] = ()  # increasing bucket edges; bucket 0 = missing (NaN)
    log1p: bool = False  # bucket log1p(value) instead of value (counts)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError(f"NumericFeature.name must be non-empty, got {self.name!r}")
        self.boundaries = tuple(float(b) for b in self.boundaries)
        if any(b >= c for b, c in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"NumericFeature.boundaries of {self.name!r} must be strictly increasing, got {self.boundaries}")

    @property
    def size(self) -> int:
        return len(self.boundaries) + 2


@dataclass
class FeatureSpec:
    categorical: tuple[CategoricalFeature, ...] = ()  # id-like columns
    numeric: tuple[NumericFeature, ...] = ()  # bucketed numeric columns
    passthrough: tuple[str, ...] = ()  # non-feature columns a row may carry (labels, masks, FM logs, ...)

    def __post_init__(self) -> None:
        self.categorical = tuple(CategoricalFeature(**c) if isinstance(c, Mapping) else c for c in self.categorical)
        self.numeric = tuple(NumericFeature(**c) if isinstance(c, Mapping) else c for c in self.numeric)
        self.passthrough = tuple(self.passthrough)
        names = [f.name for f in self.features]
        if not names:
            raise ValueError("FeatureSpec needs at least one feature, got none")
        duplicates = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(self.passthrough)))
        if duplicates:
            raise ValueError(f"FeatureSpec column names must be unique, duplicated: {duplicates}")

    @property
    def features(self) -> list[CategoricalFeature | NumericFeature]:
        return [*self.categorical, *self.numeric]

    @property
    def field_sizes(self) -> list[int]:
        return [f.size for f in self.features]

    @property
    def num_fields(self) -> int:
        return len(self.features)

    def encode(self, columns: Mapping[str, Any], *, strict: bool = True) -> np.ndarray:
        """Raw columns (name -> 1-D array-like; a dict, pandas DataFrame or Arrow table) -> int64 ids [rows, fields].

        Ids are local to each field; the model adds the fused-table offsets. ``strict`` makes a column that is
        neither a feature nor listed in ``passthrough`` an error (a typo would otherwise be silently dropped).
        """
        names = list(columns.column_names) if hasattr(columns, "column_names") else list(columns.keys())
        if strict:
            known = {f.name for f in self.features} | set(self.passthrough)
            unknown = sorted(set(names) - known)
            if unknown:
                raise ValueError(f"unknown column(s) {unknown}; the feature spec knows {sorted(known)}")
        missing = [f.name for f in self.features if f.name not in names]
        if missing:
            raise ValueError(f"missing feature column(s) {missing}")
        encoded = [_encode_categorical(f, _column(columns, f.name)) for f in self.categorical]
        encoded += [_encode_numeric(f, _column(columns, f.name)) for f in self.numeric]
        lengths = {len(e) for e in encoded}
        if len(lengths) != 1:
            raise ValueError(f"feature columns have different lengths {sorted(lengths)}")
        return np.stack(encoded, axis=1).astype(np.int64)


def _column(columns: Any, name: str) -> np.ndarray:
    value = columns[name]
    if hasattr(value, "to_numpy"):  # pandas Series / Arrow ChunkedArray
        try:
            return value.to_numpy(zero_copy_only=False)
        except TypeError:
            return value.to_numpy()
    return np.asarray(value)


def _string_form(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "iu":
        return values.astype(str).astype(object)
    if values.dtype.kind == "f":  # integral floats ("5.0") must match the vocabulary "5"
        integral = np.isfinite(values) & (values == np.round(values))
        if integral.all():
            return values.astype(np.int64).astype(str).astype(object)
        return values.astype(str).astype(object)
    return np.asarray([str(v) for v in values], dtype=object)


def _encode_categorical(feature: CategoricalFeature, values: np.ndarray) -> np.ndarray:
    import pandas as pd

    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"column {feature.name!r} must be 1-D, got shape {values.shape}")
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ValueError(f"column {feature.name!r} has NaN at row {int(np.flatnonzero(np.isnan(values))[0])}; ids must be present")
    if values.dtype.kind == "O":
        bad = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and np.isnan(v))]
        if bad:
            raise ValueError(f"column {feature.name!r} has a missing value (None/NaN) at row {bad[0]}; ids must be present")
    if values.dtype.kind in "if" and (values < 0).any():
        row = int(np.flatnonzero(values < 0)[0])
        raise ValueError(f"column {feature.name!r} has a negative id {values[row]} at row {row}")
    if values.dtype.kind not in "iufOUSb":
        raise ValueError(f"column {feature.name!r} has unsupported dtype {values.dtype}")
    strings = _string_form(values)
    local = pd.Index(feature.vocabulary, dtype=object).get_indexer(strings) if feature.vocabulary else np.full(len(strings), -1)
    unseen = local < 0
    if unseen.any() and feature.oov == "error":
        row = int(np.flatnonzero(unseen)[0])
        raise ValueError(f"column {feature.name!r} has {strings[row]!r} at row {row}, outside its vocabulary (oov: error)")
    if unseen.any():
        hashed = pd.util.hash_array(strings[unseen], categorize=False) % np.uint64(feature.hash_buckets)
        local = local.astype(np.int64)
        local[unseen] = len(feature.vocabulary) + hashed.astype(np.int64)
    return local.astype(np.int64)


def _encode_numeric(feature: NumericFeature, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "O":
        try:
            values = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"numeric column {feature.name!r} has non-numeric values, e.g. {values[:3].tolist()}") from None
    if values.dtype.kind not in "iufb":
        raise ValueError(f"numeric column {feature.name!r} has dtype {values.dtype}, expected numbers")
    values = values.astype(np.float64)
    if feature.log1p:
        if (values < 0).any():
            row = int(np.flatnonzero(values < 0)[0])
            raise ValueError(f"numeric column {feature.name!r} (log1p) has a negative value {values[row]} at row {row}")
        values = np.log1p(values)
    bucket = 1 + np.searchsorted(np.asarray(feature.boundaries, dtype=np.float64), values, side="right")
    return np.where(np.isnan(values), 0, bucket).astype(np.int64)  # documented fallback: NaN -> bucket 0


def build_vocabulary(values: Iterable[Any], *, min_count: int = 1, max_size: int | None = None) -> tuple[str, ...]:
    """The most frequent values (string form, ties broken by value) seen at least ``min_count`` times."""
    import pandas as pd

    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts = pd.Series(_string_form(np.asarray(list(values) if not hasattr(values, "__array__") else values))).value_counts()
    counts = counts[counts >= min_count]
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if max_size is not None:
        order = order[:max_size]
    return tuple(k for k, _ in order)
