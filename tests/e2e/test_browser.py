"""The web UI in a real browser: Playwright drives Debian's Chromium through the asset graph to an asset's
latest materialisation (its metadata) and its checks, saving a screenshot of each page under the test's
tmp path."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api

from .conftest import BROWSED, Stack

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--no-first-run",
]
UI_TIMEOUT_MS = 60_000
LATEST = """
query ($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) {
  assetMaterializations(limit: 1) { runId partition metadataEntries { label } } } }
"""


@pytest.fixture
def page() -> Iterator["sync_api.Page"]:
    """A Chromium page (1400 x 1000) that dismisses Dagster's newsletter dialog whenever it shows up."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is not installed: apt-get install chromium (.ci/run does it)"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
        yield page
        browser.close()


@pytest.mark.slow
@pytest.mark.parametrize("asset", BROWSED[1])
def test_graph_to_latest_materialisation_metadata_and_checks(dagster_stack: Stack, page, tmp_path: Path, asset: str):
    target = BROWSED[0]
    for run in dagster_stack.materialise_target(target):
        assert run.status == "SUCCESS", dagster_stack.run_errors(run.run_id)
    (node,) = dagster_stack.graphql(LATEST, {"keys": [{"path": [asset]}]})["assetNodes"]
    (latest,) = node["assetMaterializations"]
    labels = [entry["label"] for entry in latest["metadataEntries"]]
    checks = dagster_stack.check_executions(asset, latest["runId"])
    assert labels and checks

    expect = sync_api.expect
    page.goto(f"{dagster_stack.url}/asset-groups")
    page.get_by_placeholder("Jump to…").fill(asset)
    page.keyboard.press("Enter")
    catalog = page.get_by_role("link", name="View in Asset Catalog")
    expect(catalog).to_be_visible()
    expect(page.get_by_text(asset, exact=True).first).to_be_visible()
    page.screenshot(path=tmp_path / "graph.png")

    catalog.click()
    page.get_by_role("tab", name="Events").click()
    expect(page.get_by_text("Metadata", exact=True).first).to_be_visible()
    for label in labels:
        expect(page.get_by_text(label, exact=True).first).to_be_visible()
    page.screenshot(path=tmp_path / "materialization.png", full_page=True)

    page.get_by_role("tab", name="Checks").click()
    for name in checks:
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded").first).to_be_visible()
    page.screenshot(path=tmp_path / "checks.png", full_page=True)
    assert all((tmp_path / shot).stat().st_size > 0 for shot in ("graph.png", "materialization.png", "checks.png"))
