"""The documentation site in a real browser: the built site (make docs) opened from disk in Debian's headless Chromium.

A module of its own: tests/test_browser.py keeps one Playwright session open for its JupyterLab tests, and a second
sync session cannot start inside it. Skipped or failed without Chromium as test_browser.py is (it is imported).
"""

from conftest import ROOT
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS
from test_docs import build


def test_the_documentation_site_renders_from_disk_in_chromium(tmp_path):
    """The built site (make docs) opened from disk: the home page and a stage page render, with the navigation, the
    stage's key table linked to the reference and its example YAML; screenshots in test-artifacts/."""
    from playwright.sync_api import sync_playwright

    site = tmp_path / "site"
    done = build(ROOT / "docs", site)  # as make docs builds it
    assert done.returncode == 0, done.stderr[-3000:]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        failed = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto((site / "index.html").as_uri())
        assert page.title().startswith("tunekit")
        navigation = page.locator(".sidebar-tree")
        assert navigation.get_by_text("Configuration").count() >= 1 and navigation.get_by_text("dpo").count() >= 1
        page.screenshot(path=str(ARTIFACTS / "docs_home.png"))
        page.goto((site / "stages" / "dpo.html").as_uri())
        article = page.locator("article")
        assert article.locator("h1").inner_text().strip()
        assert article.locator("a[href*='config.html#confval-pref_beta']").count() >= 1  # the keys table
        assert article.locator("div.highlight-yaml").first.is_visible()  # the example YAML
        styles = page.evaluate("getComputedStyle(document.body).fontFamily")
        assert styles and "Times" not in styles  # the theme's stylesheet loaded from disk
        page.screenshot(path=str(ARTIFACTS / "docs_stage_dpo.png"), full_page=True)
        browser.close()
    assert not failed, f"files the pages asked for and did not get: {failed[:5]}"
