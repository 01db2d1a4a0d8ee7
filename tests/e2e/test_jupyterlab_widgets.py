"""A real JupyterLab in Debian's headless Chromium (Playwright): run the quickstart notebook, see the
Emergent widgets render, click a widget button and see its effect, save a screenshot.

Every piece of Jupyter and Chromium state lives in a temporary directory. The notebook is
notebooks/00_quickstart.ipynb when the repository has it (copied: Lab autosaves), otherwise a small
notebook that shows the JobsPanel.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "notebooks" / "00_quickstart.ipynb"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _panel_notebook(path: Path, job_nb: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Emergent jobs panel"),
        nbformat.v4.new_code_cell("from emergent import Workstation\nws = Workstation.open()\nme = ws.principal\n"
                                  f"state = ws.jobs.add('hello', {str(job_nb)!r}, schedule='every 1h', replace=True, "
                                  "principal=me)"),
        nbformat.v4.new_code_cell("from emergent.ui.jobs_panel import JobsPanel\n"
                                  "panel = JobsPanel(ws.jobs, principal=me)  # pause, resume and run act as me\npanel"),
    ]
    nbformat.write(nb, str(path))
    job = nbformat.v4.new_notebook()
    job.cells = [nbformat.v4.new_code_cell("print('hello')")]
    nbformat.write(job, str(job_nb))


def lab_env(state: Path, workspace: Path) -> dict[str, str]:
    """An environment whose Jupyter state is all under ``state`` (no news toast), Emergent offline on
    ``workspace`` with the hashing embedder."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make sysdeps` (apt-get install -y chromium)")
    env = {**os.environ, "HOME": str(state / "home"), "JUPYTER_CONFIG_DIR": str(state / "config"),
           "JUPYTER_DATA_DIR": str(state / "data"), "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
           "IPYTHONDIR": str(state / "ipython"), "JUPYTERLAB_SETTINGS_DIR": str(state / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(state / "lab-workspaces"), "EMERGENT_EMBEDDER": "hashing",
           "EMERGENT_HOME": str(workspace)}
    env.pop("EMERGENT_LLM_MODEL", None)  # offline: no model
    for key in ("HOME", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    news = state / "lab-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no "Jupyter news?" toast
    return env


@contextlib.contextmanager
def running_lab(root: Path, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """JupyterLab serving ``root`` on a free loopback port (no token, no update checks); yields its base url."""
    port = free_port()
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "JupyterLab did not answer in 60 s"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, list[str], Path]]:
    """A JupyterLab server on a free loopback port; yields (base url, notebook names, state dir)."""
    state = tmp_path / "state"
    # the workspace inside Lab's root: run links open
    env = lab_env(state, tmp_path / "notebooks" / "workspace")
    root = tmp_path / "notebooks"
    root.mkdir()
    names = []
    if QUICKSTART.exists():
        names.append(QUICKSTART.name)
        shutil.copytree(QUICKSTART.parent, root, dirs_exist_ok=True)
    names.append("jobs_panel.ipynb")
    _panel_notebook(root / "jobs_panel.ipynb", root / "hello_job.ipynb")
    with running_lab(root, env, tmp_path / "lab.log") as base:
        yield base, names, state


def test_widgets_render_and_respond_in_a_real_jupyterlab(lab, artifacts: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, names, state = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     env={**os.environ, "HOME": str(state / "home")})
        try:
            for name in names:  # the quickstart (when the repository has it), then the jobs panel
                shot = artifacts / f"jupyterlab_{Path(name).stem}.png"
                _run_notebook_and_click(browser, f"{base}/lab/tree/{name}?reset", shot)
                assert shot.stat().st_size > 10_000
        finally:
            browser.close()


def _run_notebook_and_click(browser, url: str, screenshot: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        _accept_kernel_dialog(page, wait_s=5)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        _accept_kernel_dialog(page, wait_s=2)
        page.wait_for_selector(".jp-OutputArea .jupyter-widgets", timeout=90_000)
        _wait_until_idle(page)
        assert page.get_by_text("Error displaying widget").count() == 0
        if page.locator(".emergent-jobs-panel").count():
            _pause_and_resume_a_job(page)
        elif page.locator(".emergent-memory-stats").count():
            _refresh_memory_stats(page)
        else:
            _click_first_widget_button(page)
    finally:
        page.screenshot(path=str(screenshot), full_page=True)
        page.close()


def _accept_kernel_dialog(page, wait_s: float) -> None:
    """Lab may ask which kernel to start; take its preselected one (the notebook's)."""
    button = page.locator(".jp-Dialog .jp-mod-accept")
    try:
        button.wait_for(state="visible", timeout=wait_s * 1000)
    except Exception:  # no dialog: the kernel started by itself
        return
    button.click()
    page.locator(".jp-Dialog").wait_for(state="detached", timeout=10_000)


def _wait_until_idle(page) -> None:
    """Wait until no cell shows the pending '[*]' prompt."""
    deadline = time.monotonic() + 120
    while page.locator(".jp-InputPrompt", has_text="[*]").count():
        assert time.monotonic() < deadline, "cells still running after 120 s"
        time.sleep(0.25)


def _pause_and_resume_a_job(page) -> None:
    panel = page.locator(".emergent-jobs-panel")
    assert "hello" in panel.inner_text() and "active" in panel.inner_text()
    panel.locator("button", has_text="Pause").first.click()
    panel.locator("button", has_text="Resume").first.wait_for(timeout=15_000)
    assert "paused" in panel.inner_text()
    panel.locator("button", has_text="Resume").first.click()
    panel.locator("button", has_text="Pause").first.wait_for(timeout=15_000)
    assert "resumed" in panel.inner_text()
    panel.locator("button", has_text="Run now").first.click()  # papermill from inside the kernel
    link = panel.locator("table.emergent-runs a[href$='.ipynb']").first
    link.wait_for(timeout=60_000)
    assert "succeeded" in panel.locator("table.emergent-runs").inner_text()
    executed = link.inner_text()
    with page.expect_popup() as opened:  # the link opens the executed notebook in Lab, in a new tab
        link.click()
    tab = opened.value
    tab.locator(".lm-TabBar-tabLabel", has_text=executed).first.wait_for(timeout=60_000)
    tab.get_by_text("print('hello')").first.wait_for(timeout=30_000)
    tab.close()


def _refresh_memory_stats(page) -> None:
    """The MemoryStats Refresh button reads the statistics again: its 'as of' time moves on."""
    totals = page.locator(".emergent-memory-stats .emergent-totals").first
    before = totals.inner_text()
    assert "long-term" in before and "as of" in before
    time.sleep(1.1)  # 'as of' is shown to the second
    page.locator(".emergent-memory-stats button", has_text="Refresh").first.click()
    deadline = time.monotonic() + 30
    while totals.inner_text() == before:
        assert time.monotonic() < deadline, "Refresh did not update the memory statistics"
        time.sleep(0.25)
    assert "as of" in totals.inner_text()


def _click_first_widget_button(page) -> None:
    area = page.locator(".jp-OutputArea:has(.jupyter-widgets button)").first
    before = area.inner_html()
    time.sleep(1.1)  # widgets stamp what they show to the second: a refresh must show a new state
    area.locator(".jupyter-widgets button").first.click()
    deadline = time.monotonic() + 30
    while area.inner_html() == before:
        assert time.monotonic() < deadline, "clicking the widget button changed nothing on the page"
        time.sleep(0.25)
