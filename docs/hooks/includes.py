"""mkdocs hook: include files from outside ``docs/`` (the measured tables in ``benchmarks/*.md``) without copying them.

A line ``<!-- include: benchmarks/holevo.md -->`` in a page is replaced by that file, read from the repository root
at build time, so the docs show exactly what the benchmark tools last wrote; a ``.yaml`` file (a recipe) is shown
verbatim as a code block. Headings of the included file are moved
down by two levels (its title becomes a sub-section of the page); relative links and images in it are rewritten to
point at the same files, and every ``benchmarks/*.png`` is published under ``benchmarks/`` in the site. A missing
file stops the build.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

REPO_ROOT = Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r"^<!-- include: (?P<path>[\w./-]+\.(?:md|yaml)) -->$", re.MULTILINE)
HEADING = re.compile(r"^(#{1,4}) ", re.MULTILINE)
LINK = re.compile(r"(!?\[[^\]]*\])\((?!https?://|#|/)(?P<target>[^)\s]+)\)")
ASSETS = ("benchmarks/*.png",)


def on_files(files, config):
    for pattern in ASSETS:
        for path in sorted(REPO_ROOT.glob(pattern)):
            rel = path.relative_to(REPO_ROOT).as_posix()
            files.append(File(rel, str(REPO_ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def _included(path: str, page_src: str) -> str:
    source = REPO_ROOT / path
    if not source.is_file():
        raise PluginError(f"{page_src}: include of {path}, which is not in the repository")
    text = source.read_text(encoding="utf-8")
    if source.suffix != ".md":  # a recipe or other text file: shown verbatim as a code block
        return f"```{source.suffix.lstrip('.')}\n{text.rstrip()}\n```\n"
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            line = HEADING.sub(lambda m: "#" * min(len(m.group(1)) + 2, 6) + " ", line)
        lines.append(line)
    text = "\n".join(lines) + "\n"
    page_dir = PurePosixPath(page_src).parent
    up = PurePosixPath(*([".."] * len(page_dir.parts))) if page_dir.parts else PurePosixPath(".")
    base = PurePosixPath(path).parent

    def relink(match: re.Match) -> str:
        return f"{match.group(1)}({(up / base / match.group('target')).as_posix()})"

    return LINK.sub(relink, text)


def on_page_markdown(markdown, page, config, files):
    return INCLUDE.sub(lambda m: _included(m.group("path"), page.file.src_uri), markdown)
