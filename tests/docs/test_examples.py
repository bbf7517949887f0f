"""Every ```python block of README.md and docs/**/*.md runs, so the documentation cannot rot.

Each block runs as a fresh module, in an empty temporary hub (``ZOO_HUB``, set by the ``isolated_hub`` fixture in
``tests/conftest.py``) and an empty working folder, offline; presets and classes it registers are forgotten after it.
A block that takes more than a few seconds is marked by the line ``<!-- docs-test: slow -->`` right before it and
runs in the slow tier. A block that cannot run offline is marked by ``<!-- docs-test: skip REASON -->``;
``SKIPPED_BLOCKS`` below must list exactly those, so the list stays small and visible.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIP_MARK = re.compile(r"^<!-- docs-test: skip (?P<reason>.+?) -->$")
SLOW_MARK = "<!-- docs-test: slow -->"

# (file, first code line) of every block marked to skip, with why: keep it short.
SKIPPED_BLOCKS = {
    # needs a pushed paperzoo/adaskip-byte-llama-tiny (the README's main job trains it first: minutes)
    ("README.md", "from transformers import AutoModelForCausalLM"),
}


def documentation_files() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """(line number, code, skip reason, "slow" or None) of every ```python block in ``path``."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start, body = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            previous = lines[start - 2].strip() if start >= 2 else ""
            mark = SKIP_MARK.match(previous)
            reason = mark.group("reason") if mark else ("slow" if previous == SLOW_MARK else None)
            blocks.append((start + 1, "\n".join(body) + "\n", reason))
        i += 1
    return blocks


def _cases():
    cases = []
    for path in documentation_files():
        for line, code, reason in python_blocks(path):
            name = f"{path.relative_to(REPO_ROOT).as_posix()}:{line}"
            if reason == "slow":
                marks = [pytest.mark.slow]
            elif reason:
                marks = [pytest.mark.skip(reason=f"marked in the docs: {reason}")]
            else:
                marks = []
            cases.append(pytest.param(code, id=name, marks=marks))
    return cases


@pytest.mark.parametrize("code", _cases())
def test_documentation_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # a real module, as a script has one (dataclasses and the zoo's class registry look classes up by module)
    module = types.ModuleType("docs_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    try:
        exec(compile(code, "<docs example>", "exec"), module.__dict__)
    finally:
        _forget_registrations(module.__name__)


def _forget_registrations(module_name: str) -> None:
    """Drop the presets and classes an example registered, so that other tests see the zoo's registry only."""
    from zoo._core import registry

    for name in [name for name, fn in registry._PRESETS.items() if fn.__module__ == module_name]:
        del registry._PRESETS[name]
    for path in [path for path, cls in registry._CLASSES.items() if cls.__module__ == module_name]:
        del registry._CLASSES[path]


def test_the_skip_list_is_exactly_the_marked_blocks():
    marked = set()
    for path in documentation_files():
        for _, code, reason in python_blocks(path):
            if reason and reason != "slow":
                first = next(line for line in code.splitlines() if line.strip())
                marked.add((path.relative_to(REPO_ROOT).as_posix(), first.strip()))
    assert marked == SKIPPED_BLOCKS


def test_there_are_examples_to_run():
    runnable = sum(1 for path in documentation_files() for _, _, reason in python_blocks(path) if reason is None)
    assert runnable >= 8
