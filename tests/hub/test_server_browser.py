"""`zoo hub serve` in a real browser: headless Chromium (Debian's package, driven by Playwright) opens the index,
a repo page and the compare view, and the tests check what a person sees; each keeps a screenshot in its tmp folder.

Chromium must be installed (`apt-get install chromium`; `.ci/run` does it). Without it these tests FAIL, unless
ZOO_NO_BROWSER=1 says that this machine has no browser, in which case they skip. Nothing is downloaded:
Playwright launches /usr/bin/chromium (never `playwright install`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

import zoo
from zoo.hub import LocalHub

from tests.hub.served import write_png
from tests.hub.test_server_security import EVIL_CARD

CHROMIUM = os.environ.get("ZOO_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_page(tmp_path):
    if os.environ.get("ZOO_NO_BROWSER") == "1":
        pytest.skip("ZOO_NO_BROWSER=1: this machine has no browser")
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (or set ZOO_NO_BROWSER=1 to skip on purpose)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            context.close()


def _two_versions(tmp_path):
    model = zoo.create("smoke_mlp_tiny")
    plot = write_png(tmp_path / "loss.png")
    first = model.push_to_hub("acme/smoke", commit_message="first run", tag="v1",
                              metrics={"test_mse": 0.5, "test_mae": 0.25}, extra_files={"loss.png": plot})
    with torch.no_grad():
        model.net[0].bias.add_(1.0)
    second = model.push_to_hub("acme/smoke", commit_message="second run", tag="v2",
                               metrics={"test_mse": 0.4, "test_mae": 0.3}, extra_files={"loss.png": plot})
    zoo.create("smoke_regressor_tiny").push_to_hub("other/linear")
    return first, second


def _table(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"{selector} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")


def test_index_repo_page_and_compare_in_chromium(served, browser_page, tmp_path):
    first, second = _two_versions(tmp_path)
    page = browser_page

    page.goto(served.endpoint + "/")
    assert page.title() == "zoo hub"
    assert sorted(page.locator("a.repo-link").all_inner_texts()) == ["acme/smoke", "other/linear"]
    page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
    page.fill("main input[name=q]", "smo")
    page.click("main button[type=submit]")
    assert page.locator("a.repo-link").all_inner_texts() == ["acme/smoke"]

    page.click("a.repo-link")
    assert page.url == served.endpoint + "/acme/smoke"
    assert page.locator("h1.repo").inner_text() == "acme/smoke"
    assert [row[:2] for row in _table(page, "#metrics")] == [["test_mse", "0.4"], ["test_mae", "0.3"]]
    plot = page.locator("#card img[alt='loss.png']")
    plot.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete", arg=plot.element_handle())
    assert plot.evaluate("img => img.naturalWidth") == 48 and plot.evaluate("img => img.naturalHeight") == 24
    assert plot.get_attribute("src") == f"/acme/smoke/resolve/{second}/loss.png"
    assert page.locator("#tags li").all_inner_texts() == [f"v1 {first[:10]}", f"v2 {second[:10]}"]
    page.screenshot(path=str(tmp_path / "repo.png"), full_page=True)

    page.click("nav.tabs >> text=Files")
    files = {row[0]: row for row in _table(page, "#files")}
    manifest = LocalHub().commit_info("acme/smoke", second).tree
    assert set(files) == set(manifest)
    assert all(files[p][2] == m["sha256"] for p, m in manifest.items())

    page.click("nav.tabs >> text=Commits")
    assert [row[2] for row in _table(page, "#commits")] == ["second run", "first run"]
    page.click("#commits >> text=compare with parent")
    assert page.url.endswith(f"/acme/smoke/compare?a={first}&b={second}")
    rows = {row[0]: row[1:] for row in _table(page, "#compare-metrics")}
    assert rows["test_mse"][:2] == ["0.5", "0.4"] and rows["test_mse"][3] == "-20.000%"
    assert rows["test_mae"][:2] == ["0.25", "0.3"] and rows["test_mae"][3] == "+20.000%"
    status = {row[0]: row[3] for row in _table(page, "#compare-files")}
    assert status == {"README.md": "changed", "config.json": "same", "loss.png": "same", "model.safetensors": "changed"}
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)

    page.select_option("select[name=a]", label="v2")
    page.select_option("select[name=b]", label="v2")
    page.click("form.filters button[type=submit]")
    assert [row[1:] for row in _table(page, "#compare-metrics")] == [["0.4", "0.4", "0", "+0.000%"], ["0.3", "0.3", "0", "+0.000%"]]
    for name in ("index.png", "repo.png", "compare.png"):  # screenshots kept for a person to look at
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / name).stat().st_size > 20_000


def test_no_script_from_a_card_runs_in_chromium(served, browser_page, tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "README.md").write_text(EVIL_CARD)
    write_png(folder / "fit.png")
    LocalHub().push("acme/evil", folder)
    page = browser_page
    messages = []
    page.on("dialog", lambda dialog: (messages.append(dialog.message), dialog.dismiss()))
    page.goto(served.endpoint + "/acme/evil")
    plot = page.locator("#card img[alt='plot']")
    page.wait_for_function("img => img.complete", arg=plot.element_handle())
    assert plot.evaluate("img => img.naturalWidth") == 48
    assert page.evaluate("typeof window.pwned") == "undefined" and messages == []
    assert page.locator("#card script, #card iframe, #card svg, #card form, #card object").count() == 0
    assert page.evaluate("[...document.querySelectorAll('#card *')].flatMap(e => [...e.attributes])"
                         ".filter(a => a.name.startsWith('on') || /^\\s*javascript:/i.test(a.value)).length") == 0
    page.screenshot(path=str(tmp_path / "evil.png"), full_page=True)
