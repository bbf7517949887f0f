"""The YAML feature spec: one-line errors naming the bad value, and the same features as the code it replaced."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from zoo.exfm.data import make_synthetic_stream, movielens_feature_spec, synthetic_feature_spec
from zoo.exfm.features import CategoricalFeature, FeatureSpec, NumericFeature
from zoo.exfm.spec import feature_spec_to_dict, load_feature_spec, save_feature_spec

# -- the code path the YAML specs replaced (zoo/exfm/data.py before the specs), frozen here as the reference --------
COUNT = (0.5, 1.1, 1.7, 2.3, 3.0, 3.7, 4.4, 5.1, 6.0)
MEAN = tuple(round(0.1 * i, 1) for i in range(1, 10))
META = ("label", "example_id", "window", "vertical_mask", "timestamp", "true_probability")
GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western", "unknown")
OCCUPATIONS = ("administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive", "healthcare",
               "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer", "retired", "salesman",
               "scientist", "student", "technician", "writer")


def old_synthetic_spec(categories=16, segments=8, user_buckets=4096, item_buckets=2048):
    return FeatureSpec(
        categorical=(
            CategoricalFeature("user_id", (), user_buckets), CategoricalFeature("item_id", (), item_buckets),
            CategoricalFeature("item_category", tuple(str(i) for i in range(categories)), 1),
            CategoricalFeature("user_segment", tuple(str(i) for i in range(segments)), 1),
            CategoricalFeature("hour", tuple(str(i) for i in range(24)), 1),
        ),
        numeric=(NumericFeature("user_count", COUNT, log1p=True), NumericFeature("item_count", COUNT, log1p=True),
                 NumericFeature("user_click_mean", MEAN), NumericFeature("item_click_mean", MEAN)),
        passthrough=META,
    )


def old_movielens_spec(user_buckets=2048, item_buckets=2048):
    return FeatureSpec(
        categorical=(
            CategoricalFeature("user_id", (), user_buckets), CategoricalFeature("item_id", (), item_buckets),
            CategoricalFeature("gender", ("M", "F"), 1), CategoricalFeature("occupation", OCCUPATIONS, 1),
            CategoricalFeature("zip_prefix", (), 128), CategoricalFeature("primary_genre", GENRES, 1),
            CategoricalFeature("hour", tuple(str(i) for i in range(24)), 1),
            CategoricalFeature("weekday", tuple(str(i) for i in range(7)), 1),
        ),
        numeric=(
            NumericFeature("age", (18, 25, 30, 35, 45, 50, 56)),
            NumericFeature("release_year", (1940, 1960, 1970, 1980, 1990, 1994, 1996, 1997)),
            NumericFeature("user_count", COUNT, log1p=True), NumericFeature("item_count", COUNT, log1p=True),
            NumericFeature("user_click_mean", MEAN), NumericFeature("item_click_mean", MEAN),
        ),
        passthrough=META,
    )


def generated_movielens_rows(n=500, seed=0):
    """Rows shaped like load_movielens_100k's, with values inside and outside every vocabulary (unknown genre,
    occupation and gender, NaN age / year / click means)."""
    rng = np.random.default_rng(seed)
    pick = lambda values: np.asarray(values, dtype=object)[rng.integers(0, len(values), n)]  # noqa: E731
    age = rng.integers(5, 80, n).astype(float)
    age[::17] = np.nan
    year = rng.integers(1920, 1999, n).astype(float)
    year[::23] = np.nan
    mean = rng.random(n)
    mean[::5] = np.nan
    return pa.table({
        "user_id": rng.integers(1, 944, n), "item_id": rng.integers(1, 1683, n), "gender": pick(["M", "F", "?"]),
        "occupation": pick([*OCCUPATIONS, "astronaut"]), "zip_prefix": pick(["55", "94", "0A", "?"]),
        "primary_genre": pick([*GENRES, "Opera"]), "hour": rng.integers(0, 24, n), "weekday": rng.integers(0, 7, n),
        "age": age, "release_year": year, "user_count": rng.integers(0, 300, n).astype(float),
        "item_count": rng.integers(0, 500, n).astype(float), "user_click_mean": mean, "item_click_mean": mean[::-1].copy(),
        "label": rng.integers(0, 2, n), "example_id": np.arange(n), "window": np.zeros(n, dtype=np.int64),
        "vertical_mask": rng.integers(1, 1 << 19, n), "timestamp": np.arange(n),
    })


def write_generated_movielens(folder, n=300, seed=0):
    """RecBole atomic files of generated ratings (users, items, genres, an unknown release year, an unknown occupation)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    lines = [f"{rng.integers(1, 60)}\t{rng.integers(1, 80)}\t{rng.integers(1, 6)}\t{880000000 + int(rng.integers(0, 10**7))}" for _ in range(n)]
    (folder / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "\n".join(lines) + "\n")
    occupations = [*OCCUPATIONS[:5], "astronaut"]
    users = [f"{u}\t{rng.integers(10, 70)}\t{'MF'[u % 2]}\t{occupations[u % 6]}\t{rng.integers(10000, 99999)}" for u in range(1, 60)]
    (folder / "ml-100k.user").write_text("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n" + "\n".join(users) + "\n")
    items = [f"{i}\tMovie {i}\t{'unknown' if i % 9 == 0 else 1930 + i}\t{GENRES[i % 19]} {GENRES[(3 * i) % 19]}" for i in range(1, 80)]
    (folder / "ml-100k.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n" + "\n".join(items) + "\n")


def test_yaml_specs_give_the_features_of_the_old_code_on_both_data_sets(tmp_path):
    from zoo.exfm.data import GENRES  # the verticals' genre bitmask: the YAML vocabulary must list the same genres in order

    assert next(f for f in movielens_feature_spec().categorical if f.name == "primary_genre").vocabulary == GENRES
    stream = make_synthetic_stream(3000, 3, seed=5, users_active=80, items_active=40, categories=12, segments=5)
    for new, old in [(synthetic_feature_spec(), old_synthetic_spec()),
                     (synthetic_feature_spec(stream, user_buckets=512, item_buckets=256), old_synthetic_spec(12, 5, 512, 256))]:
        assert new == old and new.field_sizes == old.field_sizes
        for window in stream:
            np.testing.assert_array_equal(new.encode(window), old.encode(window))
    rows = generated_movielens_rows()
    for new, old in [(movielens_feature_spec(), old_movielens_spec()), (load_feature_spec("ml100k"), old_movielens_spec()),
                     (movielens_feature_spec(user_buckets=256, item_buckets=512), old_movielens_spec(256, 512))]:
        assert new == old
        ids = new.encode(rows)
        np.testing.assert_array_equal(ids, old.encode(rows))
        assert (ids[:, 2] == 2).sum() > 0 and (ids[:, 8] == 0).sum() > 0  # OOV gender and NaN age were exercised
    from zoo.exfm.data import load_movielens_100k

    write_generated_movielens(tmp_path / "ml-100k")
    for window in load_movielens_100k(tmp_path / "ml-100k", n_windows=3):  # the reader's rows, encoded by both specs
        np.testing.assert_array_equal(movielens_feature_spec().encode(window), old_movielens_spec().encode(window))


def test_config_names_a_spec_and_stores_the_resolved_one():
    from zoo._core.config import config_from_dict, config_to_dict
    from zoo._core.registry import preset_config
    from zoo.exfm.config import ExFMConfig

    preset = preset_config("exfm_ml100k")
    data = config_to_dict(preset)
    data["features"] = config_to_dict(old_synthetic_spec())  # replaced by the named spec
    data["feature_spec"] = "ml100k"
    config = config_from_dict(ExFMConfig, data)
    assert config.features == old_movielens_spec() and config.feature_spec == ""
    assert config_to_dict(config) == config_to_dict(preset)  # config.json holds the resolved spec, not the name


def spec(*features, passthrough=("label",)):
    return {"passthrough": list(passthrough), "features": list(features)}


def one_line_error(source, match, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        load_feature_spec(source, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_bad_specs_fail_with_one_line_errors_naming_the_value(tmp_path):
    one_line_error(spec({"name": "age", "type": "numerical"}), r"feature 'age': unknown type 'numerical'; expected one of categorical, numeric")
    one_line_error(spec({"name": "hist", "type": "sequence"}), r"'hist': unknown type 'sequence'.*not supported")
    one_line_error(spec({"name": "u", "type": "categorical", "hash_bucket": 4}), r"'u': unknown key 'hash_bucket'")
    one_line_error(spec({"name": "u", "type": "categorical", "min_count": 0}), r"'u': min_count must be an integer >= 1, got 0")
    one_line_error(spec({"name": "u", "type": "categorical", "min_count": 2.5}), r"min_count must be an integer >= 1, got 2.5")
    one_line_error(spec({"name": "u", "type": "categorical", "max_size": -3}), r"max_size must be an integer >= 1, got -3")
    one_line_error(spec({"name": "u", "type": "categorical", "hash_buckets": 0}), r"hash_buckets must be an integer >= 1, got 0")
    one_line_error(spec({"name": "u", "type": "categorical", "oov": "drop"}), r"oov must be 'hash' or 'error', got 'drop'")
    one_line_error(spec({"name": "a", "type": "numeric", "boundaries": [3, 2]}), r"'a': boundaries must be strictly increasing, got \[3, 2\]")
    one_line_error(spec({"name": "u", "type": "categorical", "embedding_dim": 16}), r"'u': embedding_dim 16 is not supported")
    one_line_error(spec({"name": "u", "type": "categorical", "min_count": 2}), r"'u': min_count 2 / max_size None build the vocabulary from data")
    one_line_error(spec({"name": "h", "type": "categorical", "vocabulary": {"range": 0}}), r"'h': vocabulary range must be")
    one_line_error(spec({"name": "g", "type": "categorical", "vocabulary": ["M", "F", "M"]}), r"'g': vocabulary has duplicate value 'M'")
    rows = {"user": np.array([1, 2]), "age": np.array([3.0, 4.0])}
    message = one_line_error(spec({"name": "user", "type": "categorical"}, {"name": "agee", "type": "numeric"}),
                             r"feature 'agee' has no column in the data \(columns: user, age\)", data=rows)
    assert message.startswith("feature spec: ")
    path = tmp_path / "bad.yaml"
    path.write_text("features:\n  - {name: ok, type: categorical, vocabulary: [yes, no, 1.50]}\n")
    one_line_error(path, r"'ok': vocabulary value True was read by YAML as a bool: quote it")  # was silently 'True'
    path.write_text("features:\n  - {name: v, type: categorical, vocabulary: [a, 1.50]}\n")
    one_line_error(path, r"'v': vocabulary value 1.5 was read by YAML as a float")
    path.write_text("features:\n  - {name: x, type: catgorical}\n")
    one_line_error(path, rf"feature spec {path}: feature 'x': unknown type 'catgorical'")
    one_line_error(tmp_path / "absent.yaml", r"no such file")


def test_min_count_vocabulary_and_oov_error_and_yaml_round_trip(tmp_path):
    rows = {"zip": np.array(["a", "b", "a", "c", "b", "a", "d"], dtype=object), "age": np.arange(7.0)}
    fitted = load_feature_spec(spec({"name": "zip", "type": "categorical", "min_count": 2, "hash_buckets": 3},
                                    {"name": "age", "type": "numeric", "boundaries": [2, 4]}), data=[rows])
    assert fitted.categorical[0].vocabulary == ("a", "b") and fitted.field_sizes == [2 + 3, 4]
    ids = fitted.encode({**rows, "label": np.zeros(7)})
    assert ids[:, 0].tolist()[:3] == [0, 1, 0] and all(2 <= i < 5 for i in ids[[3, 6], 0])  # c, d seen once: hashed
    top = load_feature_spec(spec({"name": "zip", "type": "categorical", "max_size": 1}), data=rows)
    assert top.categorical[0].vocabulary == ("a",)
    strict = load_feature_spec(spec({"name": "g", "type": "categorical", "vocabulary": ["M", "F"], "oov": "error"}))
    assert strict.field_sizes == [2]
    with pytest.raises(ValueError, match=r"column 'g' has '\?' at row 1, outside its vocabulary \(oov: error\)"):
        strict.encode({"g": np.array(["F", "?"], dtype=object)})
    saved = save_feature_spec(fitted, tmp_path / "fitted.yaml")
    assert load_feature_spec(saved) == fitted  # a fitted spec saved once is what a recipe can name
    assert load_feature_spec(feature_spec_to_dict(movielens_feature_spec())) == movielens_feature_spec()
