"""The report in a real browser: Debian's headless Chromium, driven by Playwright.

Skipped with the reason when Chromium is not installed, unless ``NASX_REQUIRE_BROWSER=1`` (set by
``.ci/run``, which installs it), where a missing browser fails the test instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import HOSTILE, make_study

from nasx.report import collect
from nasx.report.page import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As the machine's notes advise: no background networking, so any request in the log is the page's own.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("NASX_REQUIRE_BROWSER") == "1":
            pytest.fail("NASX_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def test_report_renders_every_figure_offline_with_no_errors_and_shows_hostile_names_as_text(
    browser, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cfg = make_study(tmp_path)
    files = write_report([collect.from_study(cfg, tmp_path / "runs")], tmp_path / "report.html", HOSTILE)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    url = files.html.resolve().as_uri()
    page.goto(url)
    page.wait_for_selector(f"body[data-rendered='{files.figures}']", timeout=30_000)
    drawn = page.eval_on_selector_all("div.figure", "divs => divs.map(d => d.querySelectorAll('svg.main-svg').length)")
    assert len(drawn) == files.figures == 5 and all(n > 0 for n in drawn), drawn
    points = page.eval_on_selector_all("div.figure g.scatterlayer path.point", "ps => ps.length")
    assert points >= 9, "every full-fidelity trial is a drawn point"
    assert requests == [url], f"requests left the page: {requests[1:]}"
    assert errors == [] and dialogs == []
    assert HOSTILE in page.inner_text("h1"), "a hostile title is shown as text"
    labels = page.eval_on_selector_all("div.figure g.textpoint text", "ts => ts.map(t => t.textContent)")
    assert HOSTILE in labels, "the baseline's name is drawn as text on the chart"
    assert page.evaluate("document.querySelectorAll('script:not([type])').length") == 2, "only plotly.js and the page script"
    page.close()
