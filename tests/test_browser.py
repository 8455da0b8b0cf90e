"""A real browser: JupyterLab on localhost, 02_sft.ipynb run in headless Chromium, then Stop clicked mid-run.

Uses Debian's /usr/bin/chromium (never a browser download) through playwright. `.ci/run` installs
Chromium and sets TUNEKIT_REQUIRE_BROWSER=1, so there a missing browser fails instead of skipping.
Screenshots go to test-artifacts/.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
LONG_RUN = 100_000  # steps of the run that Stop interrupts: far more than it can do in the test
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]
SETTINGS = {  # no news pop-up over the screenshots; every cell rendered, so the DOM checks see them all
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
NOTEBOOK = "window.jupyterapp.shell.currentWidget"

if not CHROMIUM.exists():
    reason = "Debian's chromium is not installed (apt-get install chromium); .ci/run installs it"
    if os.environ.get("TUNEKIT_REQUIRE_BROWSER") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a folder with a copy of 02_sft.ipynb, kernels in smoke mode."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / "02_sft.ipynb", root)
    settings = tmp_path_factory.mktemp("lab-settings")
    for name, values in SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "TUNEKIT_SMOKE": "1", "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("JupyterLab did not start within 90 s")
            time.sleep(0.5)
    yield {"url": url, "token": token, "root": root}
    server.terminate()  # the server shuts its kernels down
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{lab['url']}/lab/tree/02_sft.ipynb?token={lab['token']}")
        page.wait_for_function(
            f"window.jupyterapp && {NOTEBOOK} && {NOTEBOOK}.sessionContext && {NOTEBOOK}.sessionContext.session "
            f"&& {NOTEBOOK}.sessionContext.session.kernel && {NOTEBOOK}.sessionContext.session.kernel.status === 'idle'",
            timeout=90_000)
        yield page
        browser.close()


def _shot(page, locator, name: str) -> None:
    """A screenshot for test-artifacts/ (evidence, not an assertion): the output re-renders when a panel
    refreshes its saved copy, so a chart can be detached for a moment; try again, then shoot the page."""
    from playwright.sync_api import Error

    for _ in range(3):
        try:
            locator.scroll_into_view_if_needed(timeout=5_000)
            break
        except Error:
            page.wait_for_timeout(1_000)
    page.screenshot(path=str(ARTIFACTS / name))


def test_02_sft_runs_all_cells_in_jupyterlab_with_panels_and_chart(page):
    page.set_default_timeout(30_000)
    ok = page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")  # resolves when all ran
    assert ok is True, "a cell failed"
    errors = page.evaluate(f"""{NOTEBOOK}.content.widgets.filter(c => c.model.type === 'code')
        .flatMap(c => c.model.outputs.toJSON()).filter(o => o.output_type === 'error').map(o => o.evalue)""")
    assert errors == []
    assert page.locator("text=✓ valid sft config").count() == 1  # ConfigPanel
    assert page.locator("span.tk-loss").count() > 0 and page.locator("span.tk-context").count() > 0  # DataPanel
    plots = page.locator(".js-plotly-plot")
    assert plots.count() >= 2  # the DataPanel histogram and the TrainPanel chart, drawn by plotly.js
    # plotly.js draws the traces after the cell's output arrives: on a busy machine, a moment later
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length >= 2",
                           timeout=30_000, polling=200)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .scatterlayer .trace path.point').length >= 2",
                           timeout=30_000, polling=200)  # the logged points
    assert page.locator("button:has-text('Stop')").count() == 1
    assert re.search(r"done</b> at step 2 of 2", page.content())
    assert page.locator("text=with adapter").count() >= 1  # ChatPanel
    # the closing cell: the run's command (also inside the torchrun line), and the export line
    assert page.locator("text=tunekit train saves/02_sft.yaml").count() >= 1
    assert page.locator("text=tunekit export --adapter saves/02_sft").count() >= 1
    _shot(page, page.locator("text=✓ valid sft config"), "02_sft_config_panel.png")
    _shot(page, page.locator("span.tk-loss").first, "02_sft_data_panel.png")
    _shot(page, plots.last, "02_sft_train_panel.png")


def test_stop_button_ends_a_running_training_in_jupyterlab(page, lab):
    page.evaluate(f"""async () => {{
        const app = window.jupyterapp, notebook = {NOTEBOOK};
        notebook.content.activeCellIndex = notebook.content.widgets.length - 1;
        await app.commands.execute('notebook:insert-cell-below');
        notebook.content.activeCell.model.sharedModel.setSource(
            "long = TrainPanel(form.config, max_steps={LONG_RUN}, refresh=0.5)\\nlong_result = long.run()");
        app.commands.execute('notebook:run-cell');  // not awaited: it resolves when the cell ends
    }}""")
    page.wait_for_function(f"/training: step ([5-9]|\\d\\d+) of {LONG_RUN}/.test(document.body.textContent)",
                           timeout=120_000, polling=200)
    stop = page.locator("button:has-text('Stop')").last
    assert stop.is_enabled()
    stop.click()
    page.wait_for_function(f"/stopped<\\/b> at step \\d+ of {LONG_RUN}/.test(document.body.innerHTML)",
                           timeout=60_000, polling=200)
    step = int(re.search(rf"stopped</b> at step (\d+) of {LONG_RUN}", page.content()).group(1))
    assert 5 <= step < LONG_RUN
    checkpoint = lab["root"] / "saves" / "02_sft" / f"checkpoint-{step}"
    assert (checkpoint / "trainer_state.json").is_file()
    _shot(page, page.locator(".js-plotly-plot").last, "02_sft_stopped.png")

