"""`zoo hub serve` web pages without a browser: filters, empty repos, and errors as pages."""

from __future__ import annotations

import re

import torch
from huggingface_hub import HfApi

import zoo
from zoo.hub import LocalHub

from tests.hub.test_server_api import _raw


def _repos(html: bytes) -> list[str]:
    return re.findall(r'class="repo-link" href="/([^"]+)"', html.decode())


def test_index_filters_and_pages(served, tmp_path):
    folder = tmp_path / "card"
    folder.mkdir()
    (folder / "README.md").write_text("---\ntags: [holevo-capacity, paperzoo]\n---\n# q\n")
    LocalHub().push("quantum/holevo", folder)
    model = zoo.create("smoke_regressor_tiny")
    model.push_to_hub("acme/smoke", metrics={"test_mse": 2.0})
    with torch.no_grad():
        model.net.bias.fill_(1.0)
    model.push_to_hub("acme/smoke", metrics={"test_mse": 1.0})
    HfApi(endpoint=served.endpoint).create_repo("acme/empty")

    assert _repos(_raw(served, "GET", "/").body) == ["acme/empty", "acme/smoke", "quantum/holevo"]
    assert _repos(_raw(served, "GET", "/?q=SMO").body) == ["acme/smoke"]
    assert _repos(_raw(served, "GET", "/?tag=holevo-capacity").body) == ["quantum/holevo"]
    assert _repos(_raw(served, "GET", "/?tag=paperzoo").body) == ["acme/smoke", "quantum/holevo"]
    empty = _raw(served, "GET", "/acme/empty")
    assert empty.status == 200 and b"no commit yet" in empty.body
    compare = _raw(served, "GET", "/acme/smoke/compare").body.decode()  # default: main against its parent
    assert re.search(r"<td>test_mse</td><td class=\"num\">2</td><td class=\"num\">1</td><td class=\"num\">-1</td>"
                     r"<td class=\"num\">-50.000%</td>", compare)
    files = _raw(served, "GET", "/acme/smoke/tree/main").body.decode()
    for path, meta in LocalHub().commit_info("acme/smoke", LocalHub().resolve("acme/smoke")).tree.items():
        assert meta["sha256"] in files and path in files


def test_errors_are_pages(served):
    zoo.create("smoke_regressor_tiny").push_to_hub("acme/smoke")
    for path, status in [("/acme/none", 404), ("/acme/smoke/commit/v9", 404), ("/acme/smoke/compare?a=nope", 404),
                         ("/acme/smoke/tree/..", 404), ("/a/b/c/d/e/f", 404)]:
        answer = _raw(served, "GET", path)
        assert answer.status == status, path
        assert answer.getheader("Content-Type").startswith("text/html"), path
        assert b"<h1>%d</h1>" % status in answer.body
    assert b"&lt;script&gt;" in _raw(served, "GET", "/acme/smoke/commit/%3Cscript%3E").body
