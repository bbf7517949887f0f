"""The YAML feature spec: which raw columns become features, their types, vocabularies and OOV handling.

A spec file (FuxiCTR's ``feature_cols`` and RecBole's field types in spirit; the format is ours) lists the
features in field order, plus the non-feature columns rows may carry::

    passthrough: [label, example_id, window]
    features:
      - {name: user_id, type: categorical, oov: hash, hash_buckets: 4096}   # purely hashed id
      - {name: gender, type: categorical, vocabulary: [M, F]}               # fixed vocabulary, 1 OOV slot
      - {name: hour, type: categorical, vocabulary: {range: 24}}            # "0" .. "23"
      - {name: zip, type: categorical, min_count: 5, max_size: 500}         # vocabulary fitted on data
      - {name: age, type: numeric, boundaries: [18, 25, 35]}                # buckets; NaN -> bucket 0
      - {name: user_count, type: numeric, boundaries: [0.5, 1.1], log1p: true}

Keys of a categorical feature: ``vocabulary`` (a list, or ``{range: n}`` / ``{range: [start, stop]}`` for
integer ids), ``min_count`` / ``max_size`` (build the vocabulary from data: values seen at least ``min_count``
times, the ``max_size`` most frequent; needs ``data=`` in ``load_feature_spec``), ``oov`` (``hash``: values
outside the vocabulary are hashed into ``hash_buckets`` extra slots, default 1 slot; ``error``: such a value
raises). Numeric: ``boundaries`` (increasing), ``log1p``. Every feature: ``name``, ``type`` (``categorical`` or
``numeric``; sequence features are not supported). Per-feature embedding widths are not supported: all fields
share the network's ``embedding_dim`` (one fused table), and an ``embedding_dim`` key is refused rather than
ignored.

Every problem is a one-line ``ValueError`` naming the feature and the bad value (unknown type or key, bad
threshold, a column missing from the data). ``load_feature_spec`` returns the resolved ``FeatureSpec`` (explicit
vocabularies), which the model config stores, so ``config.json`` never depends on the spec file or the data
it was fitted on. The packaged specs ``synthetic`` and ``ml100k`` describe the two ExFM data sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from zoo.exfm.features import CategoricalFeature, FeatureSpec, NumericFeature, build_vocabulary

__all__ = ["FEATURE_TYPES", "PACKAGED_SPECS", "check_columns", "feature_spec_to_dict", "load_feature_spec", "save_feature_spec"]

FEATURE_TYPES = ("categorical", "numeric")
PACKAGED_SPECS = ("synthetic", "ml100k")
_KEYS = {
    "categorical": {"name", "type", "vocabulary", "min_count", "max_size", "oov", "hash_buckets"},
    "numeric": {"name", "type", "boundaries", "log1p"},
}
_TOP_KEYS = {"features", "passthrough", "description"}


def _spec_file(name: str) -> Path:
    return Path(__file__).resolve().parent / "specs" / f"{name}.yaml"


def load_feature_spec(source: str | Path | Mapping[str, Any], *, data: Any = None,
                      overrides: Mapping[str, Mapping[str, Any]] | None = None) -> FeatureSpec:
    """The ``FeatureSpec`` described by a YAML spec.

    Args:
        source: a packaged spec name (``"synthetic"``, ``"ml100k"``), a path to a YAML file, or the parsed mapping.
        data: rows (a pyarrow Table, DataFrame or dict of columns, or a list of such windows) to fit the
            vocabularies of ``min_count`` / ``max_size`` features on, and to check that every feature column
            exists. Choose them yourself: fitting on rows the model is later evaluated on leaks which ids occur.
        overrides: ``{feature name: {key: value}}`` laid over the file's entries (e.g. fewer hash buckets).
    """
    import yaml

    where = "feature spec"
    if isinstance(source, Mapping):
        raw = dict(source)
    else:
        text_source = str(source)
        path = _spec_file(text_source) if text_source in PACKAGED_SPECS else Path(text_source)
        where = f"feature spec {text_source}"
        if not path.is_file():
            raise ValueError(f"{where}: no such file (packaged specs: {', '.join(PACKAGED_SPECS)})")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ValueError(f"{where}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: must be a mapping with a 'features' list, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown top-level key {unknown[0]!r}; known: {sorted(_TOP_KEYS)}")
    entries = raw.get("features")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{where}: 'features' must be a non-empty list, got {entries!r}")
    entries = [dict(e) if isinstance(e, Mapping) else e for e in entries]
    names = [e.get("name") if isinstance(e, dict) else None for e in entries]
    for name in (overrides or {}):
        if name not in names:
            raise ValueError(f"{where}: override for unknown feature {name!r}; features: {names}")
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") in (overrides or {}):
            entry.update(overrides[entry["name"]])
    passthrough = raw.get("passthrough") or []
    if not isinstance(passthrough, list) or not all(isinstance(p, str) for p in passthrough):
        raise ValueError(f"{where}: 'passthrough' must be a list of column names, got {passthrough!r}")
    windows = _as_windows(data)
    if windows is not None:
        check_columns([e.get("name") for e in entries if isinstance(e, dict)], windows[0], where)
    categorical, numeric = [], []
    for index, entry in enumerate(entries):
        feature = _feature(entry, index, where, windows)
        (categorical if isinstance(feature, CategoricalFeature) else numeric).append(feature)
    order = [e["name"] for e in entries]
    spec = FeatureSpec(categorical=tuple(categorical), numeric=tuple(numeric), passthrough=tuple(passthrough))
    if [f.name for f in spec.features] != order:
        raise ValueError(f"{where}: list categorical features before numeric ones (the fused table's field order); got {order}")
    return spec


def _as_windows(data: Any) -> list[Any] | None:
    if data is None:
        return None
    if isinstance(data, (list, tuple)):
        return list(data)
    return [data]


def _names(columns: Any) -> list[str]:
    return list(columns.column_names) if hasattr(columns, "column_names") else list(columns.keys())


def check_columns(features: Any, columns: Any, where: str = "feature spec") -> None:
    """Raise a one-line ``ValueError`` naming the first feature column that ``columns`` (a table / dict) lacks."""
    names = [f.name for f in features.features] if isinstance(features, FeatureSpec) else list(features)
    present = _names(columns)
    for name in names:
        if name not in present:
            raise ValueError(f"{where}: feature {name!r} has no column in the data (columns: {', '.join(map(str, present))})")


def _fail(where: str, name: Any, message: str) -> None:
    raise ValueError(f"{where}: feature {name!r}: {message}")


def _int(value: Any, key: str, minimum: int, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(where, name, f"{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _feature(entry: Any, index: int, where: str, windows: list[Any] | None) -> CategoricalFeature | NumericFeature:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: features[{index}] must be a mapping with 'name' and 'type', got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: features[{index}] needs a non-empty 'name', got {name!r}")
    kind = entry.get("type")
    if kind not in FEATURE_TYPES:
        extra = " (sequence features are not supported)" if kind == "sequence" else ""
        _fail(where, name, f"unknown type {kind!r}; expected one of {', '.join(FEATURE_TYPES)}{extra}")
    if "embedding_dim" in entry:
        _fail(where, name, f"embedding_dim {entry['embedding_dim']!r} is not supported: all fields share the network's "
                           "embedding_dim (one fused table)")
    unknown = sorted(set(entry) - _KEYS[kind])
    if unknown:
        _fail(where, name, f"unknown key {unknown[0]!r} for a {kind} feature; known: {', '.join(sorted(_KEYS[kind]))}")
    if kind == "numeric":
        boundaries = entry.get("boundaries", [])
        if not isinstance(boundaries, list) or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in boundaries):
            _fail(where, name, f"boundaries must be a list of numbers, got {boundaries!r}")
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            _fail(where, name, f"boundaries must be strictly increasing, got {boundaries!r}")
        log1p = entry.get("log1p", False)
        if not isinstance(log1p, bool):
            _fail(where, name, f"log1p must be true or false, got {log1p!r}")
        return NumericFeature(name, tuple(float(b) for b in boundaries), log1p=log1p)
    oov = entry.get("oov", "hash")
    if oov not in ("hash", "error"):
        _fail(where, name, f"oov must be 'hash' or 'error', got {oov!r}")
    if oov == "error" and "hash_buckets" in entry:
        _fail(where, name, f"hash_buckets {entry['hash_buckets']!r} needs oov: hash (oov: error has no OOV slots)")
    buckets = _int(entry.get("hash_buckets", 1), "hash_buckets", 1, where, name)
    fitted = "min_count" in entry or "max_size" in entry
    if fitted and "vocabulary" in entry:
        _fail(where, name, "give either a vocabulary or min_count / max_size (fitted on data), not both")
    if fitted:
        min_count = _int(entry.get("min_count", 1), "min_count", 1, where, name)
        max_size = _int(entry["max_size"], "max_size", 1, where, name) if "max_size" in entry else None
        if windows is None:
            _fail(where, name, f"min_count {min_count} / max_size {max_size} build the vocabulary from data; pass data= to load_feature_spec")
        import numpy as np

        from zoo.exfm.features import _column

        values = np.concatenate([_column(w, name) for w in windows])
        vocabulary = build_vocabulary(values, min_count=min_count, max_size=max_size)
    else:
        vocabulary = _vocabulary(entry.get("vocabulary", []), where, name)
    if oov == "error" and not vocabulary:
        _fail(where, name, "oov: error needs a vocabulary (an empty one would reject every value)")
    return CategoricalFeature(name, vocabulary, buckets if oov == "hash" else 0, oov=oov)


def _vocabulary(value: Any, where: str, name: str) -> tuple[str, ...]:
    if isinstance(value, Mapping):
        if set(value) != {"range"}:
            _fail(where, name, f"a vocabulary mapping must be {{range: n}} or {{range: [start, stop]}}, got {dict(value)!r}")
        bounds = value["range"]
        bounds = [0, bounds] if isinstance(bounds, int) and not isinstance(bounds, bool) else bounds
        if (not isinstance(bounds, list) or len(bounds) != 2 or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
                or bounds[0] >= bounds[1]):
            _fail(where, name, f"vocabulary range must be n >= 1 or [start, stop] with start < stop, got {value['range']!r}")
        return tuple(str(i) for i in range(bounds[0], bounds[1]))
    if not isinstance(value, list):
        _fail(where, name, f"vocabulary must be a list or {{range: ...}}, got {value!r}")
    if any(v is None or isinstance(v, (list, dict)) for v in value):
        _fail(where, name, f"vocabulary values must be scalars, got {next(v for v in value if v is None or isinstance(v, (list, dict)))!r}")
    if any(isinstance(v, (bool, float)) for v in value):  # YAML reads yes/no/on as booleans and 1.50 as 1.5
        bad = next(v for v in value if isinstance(v, (bool, float)))
        _fail(where, name, f"vocabulary value {bad!r} was read by YAML as a {type(bad).__name__}: quote it (e.g. \"yes\", \"1.50\")")
    strings = [str(v) for v in value]
    duplicates = sorted({s for s in strings if strings.count(s) > 1})
    if duplicates:
        _fail(where, name, f"vocabulary has duplicate value {duplicates[0]!r}")
    return tuple(strings)


def feature_spec_to_dict(spec: FeatureSpec) -> dict[str, Any]:
    """The YAML-spec form of a resolved ``FeatureSpec`` (explicit vocabularies): ``load_feature_spec`` of it is ``spec``."""
    features: list[dict[str, Any]] = []
    for f in spec.categorical:
        entry: dict[str, Any] = {"name": f.name, "type": "categorical"}
        if f.vocabulary:
            entry["vocabulary"] = list(f.vocabulary)
        entry["oov"] = f.oov
        if f.oov == "hash":
            entry["hash_buckets"] = f.hash_buckets
        features.append(entry)
    for f in spec.numeric:
        features.append({"name": f.name, "type": "numeric", "boundaries": list(f.boundaries), "log1p": f.log1p})
    return {"passthrough": list(spec.passthrough), "features": features}


def save_feature_spec(spec: FeatureSpec, path: str | Path) -> Path:
    """Write the resolved spec as YAML (e.g. after fitting ``min_count`` vocabularies once, for a recipe to name)."""
    import yaml

    path = Path(path)
    path.write_text(yaml.safe_dump(feature_spec_to_dict(spec), sort_keys=False))
    return path
