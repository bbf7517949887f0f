"""Feature spec: vocabularies, hashing of unseen ids, bucketing, saved in the config, clear errors on bad rows."""

from __future__ import annotations

import numpy as np
import pytest

from zoo._core.config import config_from_dict, config_to_dict
from zoo.exfm.features import CategoricalFeature, FeatureSpec, NumericFeature, build_vocabulary

SPEC = FeatureSpec(
    categorical=(CategoricalFeature("user", ("7", "3"), 5), CategoricalFeature("genre", ("a", "b", "c"), 1)),
    numeric=(NumericFeature("age", (18.0, 30.0)), NumericFeature("count", (0.5, 1.5), log1p=True)),
    passthrough=("label",),
)


def rows(**overrides):
    base = {"user": np.array([7, 3, 99, 12345]), "genre": np.array(["a", "c", "b", "zzz"], dtype=object),
            "age": np.array([10.0, 18.0, 29.9, np.nan]), "count": np.array([0, 1, 3, 100]), "label": np.array([0, 1, 0, 1])}
    base.update(overrides)
    return base


def test_vocabulary_hashing_and_buckets_follow_the_spec():
    ids = SPEC.encode(rows())
    assert ids.dtype == np.int64 and ids.shape == (4, 4)
    assert ids[:2, 0].tolist() == [0, 1]  # vocabulary positions
    assert all(2 <= i < 2 + 5 for i in ids[2:, 0])  # unseen ids land in the hash buckets
    assert ids[:, 1].tolist() == [0, 2, 1, 3]  # "zzz" -> the single OOV bucket (3 = len(vocabulary))
    # age: bucket 1 + #(boundaries <= value); NaN -> 0 (documented fallback)
    assert ids[:, 2].tolist() == [1, 2, 2, 0]
    # log1p(count): log1p(0)=0 -> 1, log1p(1)=0.69 -> 2, log1p(3)=1.39 -> 2, log1p(100)=4.6 -> 3
    assert ids[:, 3].tolist() == [1, 2, 2, 3]
    assert SPEC.field_sizes == [7, 4, 4, 4]


def test_hashing_is_deterministic_and_type_insensitive():
    a = SPEC.encode(rows())
    b = SPEC.encode(rows(user=np.array(["7", "3", "99", "12345"], dtype=object)))
    c = SPEC.encode(rows(user=np.array([7.0, 3.0, 99.0, 12345.0])))
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_bad_rows_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown column.*'typo'"):
        SPEC.encode({**rows(), "typo": np.zeros(4)})
    with pytest.raises(ValueError, match="missing feature column.*'age'"):
        SPEC.encode({k: v for k, v in rows().items() if k != "age"})
    with pytest.raises(ValueError, match="'user' has NaN"):
        SPEC.encode(rows(user=np.array([1.0, np.nan, 2.0, 3.0])))
    with pytest.raises(ValueError, match="'genre' has a missing value"):
        SPEC.encode(rows(genre=np.array(["a", None, "b", "c"], dtype=object)))
    with pytest.raises(ValueError, match="'user' has a negative id -4"):
        SPEC.encode(rows(user=np.array([1, -4, 2, 3])))
    with pytest.raises(ValueError, match="'age' has non-numeric"):
        SPEC.encode(rows(age=np.array(["x", "y", "z", "w"], dtype=object)))
    with pytest.raises(ValueError, match="'count' .log1p. has a negative value"):
        SPEC.encode(rows(count=np.array([0, -1, 0, 0])))
    assert SPEC.encode({**rows(), "extra": np.zeros(4)}, strict=False).shape == (4, 4)


def test_spec_validation_and_round_trip():
    with pytest.raises(ValueError, match="hash_buckets must be >= 1, got 0"):
        CategoricalFeature("x", (), 0)
    with pytest.raises(ValueError, match="strictly increasing"):
        NumericFeature("x", (2.0, 1.0))
    with pytest.raises(ValueError, match="duplicated"):
        FeatureSpec(categorical=(CategoricalFeature("x"),), numeric=(NumericFeature("x"),))
    again = config_from_dict(FeatureSpec, config_to_dict(SPEC))
    assert again == SPEC and np.array_equal(again.encode(rows()), SPEC.encode(rows()))


def test_build_vocabulary_orders_by_count_then_value():
    assert build_vocabulary(["b", "a", "b", "c", "a", "b"], min_count=2) == ("b", "a")
    assert build_vocabulary(np.array([3, 1, 1, 2]), max_size=2) == ("1", "2")
