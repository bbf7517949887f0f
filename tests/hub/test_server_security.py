"""`zoo hub serve` refuses what it must: paths out of a snapshot, links out of it, scripts from a card,
writes without a token, and other addresses than loopback unless asked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

import zoo
from zoo._core.errors import ZooError
from zoo.hub import LocalHub
from zoo.hub.server import serve
from zoo.hub.server.auth import load_tokens
from zoo.hub.server.render import render_markdown

from tests.conftest import subprocess_env, zoo_executable
from tests.hub.test_server_api import _raw

EVIL_CARD = """---
library_name: paperzoo
tags: [evil]
---
# Evil card

<script>window.pwned = 1</script>
<img src="x.png" onerror="window.pwned = 2">
[click](javascript:window.pwned=3) <a href="javascript:window.pwned=4">here</a> <a href="JaVaScRiPt:alert(5)">x</a>
<iframe src="/"></iframe><style>body {display: none}</style><form action="/api/repos/create"><button>go</button></form>
<svg onload="window.pwned = 6"></svg><object data="x"></object>

![up](../../../etc/passwd) [ok](https://example.org/paper) ![plot](fit.png)
"""


def test_path_traversal_in_urls_is_refused(served, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    commit = zoo.create("smoke_regressor_tiny").push_to_hub("acme/t")
    repo = LocalHub().repo_dir("acme/t")
    relative = os.path.relpath(secret, repo / "snapshots" / commit)
    attempts = [
        f"/acme/t/resolve/main/{relative}",
        "/acme/t/resolve/main/../../../../../../etc/passwd",
        "/acme/t/resolve/main/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/acme/t/resolve/main/..%2F..%2F..%2Fcommits%2F" + commit + ".json",
        "/acme/t/resolve/main//etc/passwd",
        "/acme/t/resolve/main/%2Fetc%2Fpasswd",
        "/acme/t/resolve/main/./config.json",
        "/acme/t/resolve/..%2Fcommits/config.json",
        f"/acme/t/resolve/{commit}/..%2F..%2Frefs/main",
        "/acme/..%2F..%2F..%2Fetc/resolve/main/passwd",
        "/%2e%2e/t/resolve/main/config.json",
        "/acme/t/resolve/main/config.json%00.png",
        "/acme/t/tree/..%2F..",
        "/api/models/acme/t/tree/main/..%2F..%2F..",
        "/api/models/..%2F..%2Fetc/passwd",
    ]
    for path in attempts:
        for method in ("GET", "HEAD"):
            answer = _raw(served, method, path)
            assert answer.status in (400, 404), (method, path, answer.status)
            assert b"TOP SECRET" not in answer.body and b"root:" not in answer.body, path
            assert b'"tree_hash"' not in answer.body and commit.encode() + b"\n" != answer.body, path
    assert _raw(served, "GET", "/acme/t/resolve/main/config.json").status == 200


def test_symlink_out_of_a_snapshot_is_not_followed(served, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    commit = zoo.create("smoke_regressor_tiny").push_to_hub("acme/link")
    config = LocalHub().repo_dir("acme/link") / "snapshots" / commit / "config.json"
    config.unlink()
    config.symlink_to(secret)
    answer = _raw(served, "GET", "/acme/link/resolve/main/config.json")
    assert answer.status == 500 and b"TOP SECRET" not in answer.body
    assert b"symbolic link" in answer.body
    page = _raw(served, "GET", "/acme/link")
    assert page.status == 200 and b"TOP SECRET" not in page.body  # the card (README) is intact and shown


def test_card_html_is_sanitised():
    html = render_markdown(EVIL_CARD.split("---\n", 2)[2], "/acme/evil/resolve/" + "a" * 40)
    lowered = html.lower()
    for bad in ("<script", "<iframe", "<style", "<form", "<svg", "<object", "window.pwned = 1"):
        assert bad not in lowered, bad
    assert not re.search(r"<[^>]*\son\w+\s*=", lowered)  # no event handler attribute on any tag
    assert not re.search(r"(href|src)\s*=\s*[\"']?\s*javascript:", lowered)
    assert '<img src="/acme/evil/resolve/' + "a" * 40 + '/fit.png" alt="plot">' in html
    assert 'href="https://example.org/paper"' in html and "etc/passwd" not in html
    assert "<h1>Evil card</h1>" in html


def test_pages_allow_no_script(served, tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "README.md").write_text(EVIL_CARD)
    LocalHub().push("acme/evil", folder)
    page = _raw(served, "GET", "/acme/evil")
    assert page.status == 200
    assert "script-src" not in page.getheader("Content-Security-Policy")  # default-src 'none' covers scripts
    assert page.getheader("Content-Security-Policy").startswith("default-src 'none'")
    body = page.body.decode().lower()
    assert "<script" not in body and not re.search(r"<[^>]*\son\w+\s*=", body)
    assert not re.search(r"(href|src)\s*=\s*[\"']?\s*javascript:", body)
    resolve = _raw(served, "GET", "/acme/evil/resolve/main/README.md")
    assert "sandbox" in resolve.getheader("Content-Security-Policy")
    assert resolve.getheader("Content-Type").startswith("text/plain")


def test_remote_addresses_need_an_explicit_flag(isolated_hub, tmp_path):
    isolated_hub.mkdir(parents=True)
    with pytest.raises(ZooError, match="--allow-remote"):
        serve(isolated_hub, host="0.0.0.0", port=0)
    with pytest.raises(ZooError, match="does not exist"):
        serve(tmp_path / "nowhere", port=0)
    (tmp_path / "empty").write_text("# no token\n\n")
    with pytest.raises(ZooError, match="holds no token"):
        load_tokens(tmp_path / "empty")
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(ZooError, match="at least 16"):
        load_tokens(tmp_path / "short")


def _start_cli(args: list[str], env: dict) -> tuple[subprocess.Popen, str, str]:
    """Start `zoo hub serve` and return (process, URL it printed, what it wrote to stderr until then)."""
    process = subprocess.Popen([*zoo_executable(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    line = process.stdout.readline()
    match = re.search(r"at (http://\S+),", line)
    if match is None:
        process.kill()
        raise AssertionError(f"no URL in {line!r}; stderr: {process.stderr.read()}")
    return process, match.group(1), line


def test_cli_serves_and_warns_off_loopback(isolated_hub, hf_client, tmp_path):
    from huggingface_hub import HfApi

    commit = zoo.create("smoke_regressor_tiny").push_to_hub("acme/cli")
    tokens = tmp_path / "tokens"
    tokens.write_text("# writers\n" + "w" * 32 + "\n")
    tokens.chmod(0o600)
    env = subprocess_env(ZOO_HUB=str(isolated_hub))
    process, url, line = _start_cli(["hub", "serve", "--port", "0", "--token-file", str(tokens)], env)
    try:
        assert "read-write" in line and url.startswith("http://127.0.0.1:")
        assert HfApi(endpoint=url).model_info("acme/cli").sha == commit
        HfApi(endpoint=url, token="w" * 32).create_tag("acme/cli", tag="v1")
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert LocalHub().resolve("acme/cli", "v1") == commit

    refused = subprocess.run([*zoo_executable(), "hub", "serve", "--host", "0.0.0.0", "--port", "0"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 1 and "--allow-remote" in refused.stderr
    process, url, line = _start_cli(["hub", "serve", "--host", "0.0.0.0", "--port", "0", "--allow-remote"], env)
    try:
        assert "read-only" in line
        port = url.rsplit(":", 1)[1]
        assert HfApi(endpoint=f"http://127.0.0.1:{port}").model_info("acme/cli").sha == commit
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "warning: listening on 0.0.0.0" in process.stderr.read()
    started = time.perf_counter()
    missing = subprocess.run([*zoo_executable(), "--hub", str(tmp_path / "nowhere"), "hub", "serve", "--port", "0"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 1 and "does not exist" in missing.stderr and time.perf_counter() - started < 60
    assert sys.executable
