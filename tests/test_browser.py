"""Notebook 08 in a real browser: JupyterLab, headless Chromium, the attention explorer driven.

The test starts JupyterLab from this virtualenv (token auth, bound to 127.0.0.1, a free port) on a
temporary copy of notebook 08, opens it through Playwright in the system's Chromium (Debian's, in
CI) or, where there is none, in the Chromium that ``scripts/ensure-chromium.sh`` installed for
Playwright at set-up, runs every cell, checks that the explorer rendered (sliders and a picture),
moves the memory-unit slider with the keyboard and checks that the picture changed. Screenshots
go to ``test-output/browser/``. Nothing is downloaded: the trained model comes from
``load_or_train`` in ``EANET_HOME`` (trained here first when missing, as notebook 07 would).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "08_attention_maps.ipynb"
SHOTS = ROOT / "test-output" / "browser"
# A system Chromium (Debian's, as in CI) when there is one, else Playwright's own build, which
# scripts/ensure-chromium.sh installs on machines without apt-get (None: Playwright's default).
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]



# What a phone would clip of the explorer: its output scrolling sideways, or a control or the
# picture running past the screen's right edge.
EXPLORER_CLIPPED = """output => {
    const wide = output.scrollWidth > output.clientWidth ? [`output ${output.scrollWidth}px`] : [];
    return wide.concat([...output.querySelectorAll(
            ".widget-slider, .widget-dropdown, .widget-toggle-buttons, img.widget-image")]
        .filter(el => el.getBoundingClientRect().right > window.innerWidth)
        .map(el => `${el.className}: ${Math.round(el.getBoundingClientRect().right)}px`));
}"""


def _playwright_chromium() -> bool:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        return Path(playwright.chromium.executable_path).exists()


pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None and not _playwright_chromium(),
        reason="No Chromium: run scripts/ensure-chromium.sh (make test does).",
    ),
    pytest.mark.timeout(600),  # the model may be trained first (seconds to a minute or two)
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, lab: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.poll() is not None:
            raise RuntimeError(f"JupyterLab exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def trained_model_cached():
    """Make sure ``load_or_train`` in the notebook finds a model (as after notebook 07)."""
    from eanet_course.config import get_profile
    from eanet_course.training import load_or_train

    load_or_train(get_profile())


@pytest.fixture
def lab(tmp_path, trained_model_cached):
    """JupyterLab serving a copy of notebook 08; yields ``(url_of_the_notebook, log_path)``."""
    root = tmp_path / "course"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyterlab.log"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", "--allow-root",
        # No update checks; the app is exposed so that the test can run Lab's own commands.
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/api/status?token={token}", process, log)
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}", log
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # JupyterLab and the kernels it started
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_attention_explorer_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    url, log = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, timeout=90_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            # Once the kernel is up, Run All Cells (the Run menu's command); not awaited, the
            # waits below have the time limits.
            page.wait_for_function(
                """() => {
                    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                    const session = panel && panel.sessionContext;
                    return session && session.isReady && session.kernelDisplayStatus === "idle";
                }""", timeout=90_000)
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

            # The explorer is the output of the last code cell: sliders, dropdowns and a picture.
            error = '[data-mime-type="application/vnd.jupyter.error"]'
            page.wait_for_selector(f"img.widget-image, {error}", timeout=150_000)
            errors = page.locator(error)
            assert errors.count() == 0, f"a cell failed:\n{errors.first.inner_text()}"
            picture = page.locator("img.widget-image")
            picture.wait_for(state="visible", timeout=30_000)
            explorer = page.locator(".jp-CodeCell").filter(has=picture)
            sliders = explorer.locator(".widget-slider")
            assert sliders.count() >= 2, "the explorer's head and unit sliders are missing"
            assert explorer.locator(".widget-dropdown").count() == 2
            assert page.locator(".jp-RenderedImage img").count() >= 5, "figures are missing"
            explorer.scroll_into_view_if_needed()
            explorer.screenshot(path=SHOTS / "08_explorer_before.png")
            before_src, before_pixels = picture.get_attribute("src"), picture.screenshot()

            # Move the memory-unit slider (the second) three steps with the keyboard.
            unit = sliders.nth(1)
            handle = unit.locator(".noUi-handle")
            handle.focus()
            for _ in range(3):
                handle.press("ArrowRight")
            page.wait_for_function(
                "([img, src]) => img.getAttribute('src') !== src",
                arg=[picture.element_handle(), before_src], timeout=60_000)
            assert unit.locator(".widget-readout").inner_text().strip() == "3"
            page.wait_for_timeout(500)  # let the new picture decode
            assert picture.screenshot() != before_pixels, "the picture did not change"
            caption = explorer.locator(".widget-html").first.inner_text()
            assert "memory unit 3 takes" in caption
            explorer.screenshot(path=SHOTS / "08_explorer_after.png")
            page.screenshot(path=SHOTS / "08_jupyterlab.png")

            # On a phone (390 px wide, JupyterLab's side panels closed, as on a phone) every
            # control and the picture stay inside the output.
            page.set_viewport_size({"width": 390, "height": 844})
            page.evaluate("() => { window.jupyterapp.shell.collapseLeft(); "
                          "window.jupyterapp.shell.collapseRight(); }")
            page.wait_for_timeout(1000)  # let JupyterLab lay itself out again
            output = explorer.locator(".jp-OutputArea-output").filter(has=picture)
            output.scroll_into_view_if_needed()
            clipped = output.evaluate(EXPLORER_CLIPPED)
            output.screenshot(path=SHOTS / "08_explorer_phone.png")
            assert not clipped, f"at 390 px the explorer runs out of its output: {clipped}"
            print(f"\nscreenshots in {SHOTS}: 08_explorer_before.png, 08_explorer_after.png, "
                  "08_jupyterlab.png, 08_explorer_phone.png")
        finally:
            browser.close()
