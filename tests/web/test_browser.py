"""Every page in a real headless Chromium (Debian's `chromium`), driven by Playwright.

Each page must load without console errors and draw its charts with data; the delivery search
must find a known delivery. Screenshots go to var/screenshots/. Without a chromium binary the
tests skip with the reason, except under CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sinks.store import query_rows
from tests.web.conftest import WebStore
from web.pages import PAGES, Page
from web.server import BackgroundServer, start_background

pytestmark = [pytest.mark.browser, pytest.mark.clickhouse]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "var" / "screenshots"
# Debian's chromium on a closed network: no sandbox as root, and nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOAD_TIMEOUT_MS = 30_000


def _chromium() -> str:
    found = os.environ.get("LOGISYNC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "no chromium binary (apt-get install -y chromium); the browser tests need Debian's chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {reason}", pytrace=False)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def server(web_store: WebStore) -> Iterator[BackgroundServer]:
    running = start_background(web_store.client, web_store.store.database, "127.0.0.1", 0)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright gives every launch a fresh temporary profile (the --user-data-dir)
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Console:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))


def _open(browser: Any, url: str) -> tuple[Any, Console]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console = Console(page)
    page.goto(url)
    page.wait_for_selector("body[data-loaded=true]", timeout=LOAD_TIMEOUT_MS)
    return page, console


DRAWN = """(panel) => {
    const canvas = panel.querySelector("canvas");
    const chart = canvas && Chart.getChart(canvas);
    if (!chart) return {points: 0, pixels: 0};
    const points = chart.data.datasets.reduce((n, d) => n + d.data.length, 0);
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let pixels = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) pixels++;
    return {points, pixels};
}"""


@pytest.mark.parametrize("page_spec", PAGES, ids=[p.slug for p in PAGES])
def test_page_loads_and_draws_its_charts_with_data(browser: Any, server: BackgroundServer, page_spec: Page) -> None:
    page, console = _open(browser, f"{server.url}{page_spec.slug}")
    try:
        panels = page.query_selector_all("article.panel[data-query]")
        assert len(panels) == len(page_spec.panels)
        for element, spec in zip(panels, page_spec.panels, strict=True):
            assert element.get_attribute("data-state") == "ready", (spec.title, element.inner_text())
            if spec.chart.kind in ("bar", "line"):
                assert int(element.get_attribute("data-rows") or 0) > 0, spec.title
                drawn = element.evaluate(DRAWN)
                assert drawn["points"] > 0 and drawn["pixels"] > 1000, (spec.title, drawn)
        assert page.inner_text("#as-of").startswith("20"), "the data-as-of time is shown"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{page_spec.slug}.png"), full_page=True)
        assert console.errors == []
    finally:
        page.close()


def test_delivery_search_finds_a_known_delivery(browser: Any, server: BackgroundServer, web_store: WebStore) -> None:
    ((delivery, tracking),) = query_rows(
        web_store.client,
        f"SELECT delivery_id, any(tracking_number) FROM {web_store.store.database}.events FINAL "
        "WHERE event_type = 'SHIPMENT_DISPATCHED' AND tracking_number != '' "
        "GROUP BY delivery_id ORDER BY delivery_id LIMIT 1",
    )
    page, console = _open(browser, f"{server.url}timeline")
    try:
        page.fill("#search", tracking)
        page.press("#search", "Enter")
        page.wait_for_selector("#delivery_timeline", timeout=LOAD_TIMEOUT_MS)
        assert page.get_attribute("#delivery", "data-delivery") == delivery
        assert int(page.get_attribute("#delivery_timeline", "data-rows") or 0) >= 3
        text = page.inner_text("#delivery_timeline")
        assert "ORDER_RELEASED" in text and "SHIPMENT_DISPATCHED" in text and tracking in text
        assert int(page.get_attribute("#delivery_facts", "data-rows") or 0) >= 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "timeline.png"), full_page=True)
        assert console.errors == []
    finally:
        page.close()


def test_a_link_in_the_exception_queue_opens_the_delivery(browser: Any, server: BackgroundServer) -> None:
    page, console = _open(browser, f"{server.url}exceptions")
    try:
        link = page.query_selector("article[data-query=exception_queue] a")
        assert link is not None
        delivery = link.inner_text()
        link.click()
        page.wait_for_selector("#delivery_timeline", timeout=LOAD_TIMEOUT_MS)
        assert page.get_attribute("#delivery", "data-delivery") == delivery
        assert console.errors == []
    finally:
        page.close()
