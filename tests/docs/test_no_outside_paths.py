"""No committed text file names a path outside the repository.

A clone must be readable on its own: a reference to a folder of the machine it was written on (the folder the
checkout sits in, a home folder, a temporary folder, a virtual environment's absolute path) or to notes kept
beside the repository (a notes folder next to the checkout) points nowhere on anyone else's machine. The patterns
are computed here, at run time, from where this checkout sits, so the test holds on any machine.

The regular expressions below are written with a bracketed letter (``/t[m]p/``) so that this file does not
match itself.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# A path starts at a line start, after white space, or after punctuation that quotes or opens it.
_START = r"(?:(?<=^)|(?<=[\s\"'`(=\[<:,]))"

# Machine-independent patterns: (name, regex).
_FIXED_PATTERNS = [
    ("a home folder", _START + r"/(?:h[o]me|U[s]ers)/[A-Za-z0-9_.-]+(?:/|\b)"),
    ("the root user's home folder", _START + r"/r[o]ot(?:/|\b)"),
    ("a temporary folder", _START + r"/(?:t[m]p|var/t[m]p|private/t[m]p|var/f[o]lders)/\S"),
    ("an installed-packages folder", r"[\w.-]+/(?:s[i]te|d[i]st)-packages/"),
    ("a virtual environment by absolute path", _START + r"/[^\s\"'`]*?v[e]nvs?/(?:[^\s\"'`/]+/)?bin/"),
    ("notes beside the repository", r"\.\./s[h]ared\b"),
    ("a shared/ note", r"(?<![\w./-])s[h]ared/(?:m[e]thods|[A-Z][A-Z_]+\.md|[\w-]+\.md)"),
    ("the project's architecture notes", r"A[R]CHITECTURE(?:\.md| notes)"),
    ("a numbered section of notes kept outside the repo", r"\bn[o]tes'? (?:section|§) ?\d"),
    ("a section of a notes file that is not in the repo",
     r"(?<![\w/.-])(?:exfm|adaskip|bilevel_rl|symplectic|space_decoupling|holevo|tensor_completion|spinwave|ixs|kagome"
     r"|fitting|manifolds_and_optim|hub_and_recipes)\.m[d]`{0,2} sections? \d"),
]


def _machine_patterns() -> list[tuple[str, str]]:
    """Patterns of this machine: the folder the checkout sits in, the home folder, the temp folder."""
    found = []
    parent = REPO_ROOT.parent
    if parent != Path(parent.anchor):  # a checkout at the file-system root has no parent folder to leak
        found.append(("the folder the checkout sits in", _START + re.escape(str(parent).rstrip("/")) + r"(?:/|\b)"))
    home = os.path.expanduser("~")
    if home not in ("~", "/") and len(Path(home).parts) > 1:
        found.append(("this machine's home folder", _START + re.escape(home.rstrip("/")) + r"(?:/|\b)"))
    tmp = os.environ.get("TMPDIR", "").rstrip("/")
    if tmp and len(Path(tmp).parts) > 1:
        found.append(("this machine's TMPDIR", _START + re.escape(tmp) + r"(?:/|\b)"))
    return found


def _committed_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"not a git checkout, so no list of committed files: {error}")
    files = []
    for name in out.decode().split("\0"):
        path = REPO_ROOT / name
        if name and path.is_file():
            files.append(path)
    return files


def _read_text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def find_outside_paths(text: str, patterns: list[tuple[str, str]]) -> list[tuple[int, str, str]]:
    """(line number, what, line) for every line of ``text`` that matches one of ``patterns``."""
    compiled = [(what, re.compile(regex)) for what, regex in patterns]
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, regex in compiled:
            if regex.search(line):
                hits.append((number, what, line.strip()[:160]))
                break
    return hits


def test_no_committed_file_names_a_path_outside_the_repo():
    patterns = _FIXED_PATTERNS + _machine_patterns()
    offenders = []
    for path in _committed_text_files():
        text = _read_text(path)
        if text is None:
            continue
        for number, what, line in find_outside_paths(text, patterns):
            offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {what}: {line}")
    assert not offenders, "committed files name paths outside the repository:\n" + "\n".join(offenders)


@pytest.mark.parametrize("line", [
    "    /h" "ome/alice/venvs/zoo/bin/python tools/bench/physics.py",
    "see ``/r" "oot/notes.md``",
    "--merge /t" "mp/merged.json",
    "/opt/py/lib/python3.11/s" "ite-packages/zoo/cli.py",
    "/srv/v" "envs/zoo/bin/python -m pytest",
    "Design: ``s" "hared/methods/fitting.md``.",
    "read ../s" "hared/STYLE.md",
    "See the project's A" "RCHITECTURE notes.",
    "Mechanism (n" "otes section 4): each decoder layer",
    "Order parameter (ixs.m" "d section 6): m(T)",
])
def test_the_patterns_catch_known_offenders(line):
    assert find_outside_paths(line, _FIXED_PATTERNS)


@pytest.mark.parametrize("line", [
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e .",
    'ZOO_HUB="$PWD/.ci-hub"',
    "default ``~/.cache/zoo/hub``",
    "zoo --hub /srv/zoo-hub hub serve --port 8000",
    "a string in a path form (`/abs/dir`, `./dir`, `../dir`, `~/dir`)",
    "searched in site-packages and ``sys.path``",
    "the parameters are shared/tied across heads",
    "docs/methods/fitting.md",
    "Order parameter (docs/methods/ixs.md): m(T)",
    "release notes of lightning 2.6",
])
def test_the_patterns_leave_ordinary_text_alone(line):
    assert not find_outside_paths(line, _FIXED_PATTERNS)


def test_the_checkout_folder_is_caught_wherever_it_sits():
    patterns = _machine_patterns()
    parent = REPO_ROOT.parent
    if parent == Path(parent.anchor):
        pytest.skip("the checkout sits at the file-system root")
    assert find_outside_paths(f"run {parent}/other-checkout/tool.py", patterns)
    assert find_outside_paths(f"--out={parent}/x.json", patterns)
    assert not find_outside_paths("run tools/bench/physics.py", patterns)
    assert not find_outside_paths(f"https://example.org{parent}/page", patterns)  # part of a URL, not a local path


def test_the_readme_links_point_to_files_in_the_repo():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\((?!https?://|#)([^)\s]+)\)", readme)
    assert "docs/index.md" in targets
    missing = [target for target in targets if not (REPO_ROOT / target.split("#")[0]).exists()]
    assert not missing, f"README.md links to files that are not in the repository: {missing}"
