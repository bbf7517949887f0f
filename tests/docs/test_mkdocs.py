"""The documentation site builds with ``mkdocs build --strict`` and its API reference covers what users call.

Needs the ``docs`` extra (``pip install -e ".[docs]"``); without mkdocs these tests are skipped, saying so. CI installs
the extra, so they run there. "What users call" is every class and function a recipe names (``class_path`` of the model
and data, ``evaluation: module:function``) and every ``zoo`` name the README's Python examples import or call: each must
have its own entry, with its docstring, in the generated API pages.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
# mkdocs, mkdocs-material, mkdocstrings and its Python handler (mkdocstrings-python)
MISSING = [name for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers")
           if importlib.util.find_spec(name) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"the docs extra is not installed (missing {', '.join(MISSING)}): "
                                                      'pip install -e ".[docs]"')

# Methods the README's examples call on objects (not visible as ``zoo.X`` or imports); ids in the API pages.
README_METHODS = ["zoo._core.module.ZooModule.push_to_hub", "zoo.hub.LocalHub.snapshot"]


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=config.parent, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    result = _build(REPO_ROOT / "mkdocs.yml", site)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return site


def recipe_names() -> set[str]:
    """Dotted names of the classes and functions the recipes name."""
    names = set()
    for recipe in sorted((REPO_ROOT / "recipes").rglob("*.yaml")):
        text = recipe.read_text()
        names.update(re.findall(r"class_path:\s*([\w.]+)", text))
        names.update(f"{module}.{function}" for module, function in re.findall(r"evaluation:\s*([\w.]+):(\w+)", text))
    return names


def readme_names() -> set[str]:
    """Dotted ``zoo`` names that the README's Python examples import or call as ``zoo.X``."""
    readme = (REPO_ROOT / "README.md").read_text()
    names = set(README_METHODS)
    for block in re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zoo":
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "zoo":
                names.add(f"zoo.{node.attr}")
    return names


def _anchors(site: Path) -> set[str]:
    anchors = set()
    for page in (site / "api").rglob("index.html"):
        anchors.update(re.findall(r'id="(zoo[\w.]*)"', page.read_text(encoding="utf-8")))
    return anchors


def test_the_site_builds_strictly(site):
    pages = {p.relative_to(site).parent.as_posix() for p in site.rglob("index.html")}
    for name in ("getting-started", "architecture", "cores/fitting", "cores/hub", "cores/recipes",
                 "cores/manifolds-and-optim"):
        assert name in pages


def test_every_method_in_the_readme_table_has_its_page(site):
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme[readme.index("## Methods"):]
    folders = set(re.findall(r"\| `zoo/(\w+)`", table)) - {"manifolds", "fitting"}
    assert len(folders) == 10, folders
    for folder in folders:
        page = site / "methods" / folder / "index.html"
        assert page.is_file(), f"no docs page for zoo/{folder} (docs/methods/{folder}.md)"
        assert "<table>" in page.read_text(encoding="utf-8"), f"docs/methods/{folder}.md shows no measured table"


def test_every_name_a_recipe_or_the_readme_uses_is_in_the_api_reference(site):
    anchors = _anchors(site)
    wanted = recipe_names() | readme_names()
    assert len(wanted) > 30
    missing = sorted(name for name in wanted if name not in anchors)
    assert not missing, ("not in the API reference (docs/api/*.md), or rendered without a docstring: "
                         + ", ".join(missing))


def test_a_broken_link_fails_the_build(tmp_path):
    """The build is strict: a link to a page that does not exist stops it (same validation settings as ours)."""
    ours = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    assert ours["strict"] is True
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [the missing page](missing.md).\n")
    config = {"site_name": "check", "docs_dir": "docs", "strict": True, "validation": ours["validation"]}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0 and "missing.md" in result.stdout + result.stderr
