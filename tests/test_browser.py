"""The panel in a real browser: JupyterLab (on a free local port, with its own config folders) in headless
Chromium driven by Playwright. A notebook that displays the panel (mnist-mlp, smoke profile) is first
executed headlessly and opened without running, where it must show the panel's static picture and no
``VBox(...)`` text; then it is run in the browser, the α and height sliders are moved, Run is pressed
twice, and two runs must appear in the comparison, with no error output. Screenshots go into the
test's temporary folder.

Needs Debian's Chromium and Playwright for Python (no browser download: the test drives
/usr/bin/chromium); skipped with the install command where either is missing. Takes 30–60 s.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import require

CHROMIUM = os.environ.get("HYPERNB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
HINT = ("install them with `apt-get install chromium` and `pip install playwright` (no `playwright install`: "
        "the test drives the system Chromium)")
TOKEN = "hypernb-test"
PANEL_CELL = """\
import hypernb
from IPython.display import display
panel = hypernb.widgets.explorer(task="mnist-mlp", profile="smoke", optimizer="sgd", hyperoptimizer="sgd",
                                 alpha=0.01, kappa=1e-3, height=1, epochs=1)
display(panel)"""
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]


def needs_browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed ({CHROMIUM} is missing); {HINT}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip(f"Playwright for Python is not installed; {HINT}")
    pytest.importorskip("jupyterlab", reason="pip install -e '.[dev]' (JupyterLab)")
    pytest.importorskip("ipywidgets", reason="pip install -e '.[dev]' (ipywidgets)")
    require("mnist")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_env(tmp: Path) -> dict:
    """Jupyter, IPython, matplotlib and Chromium write only under ``tmp``."""
    from hypernb.data import data_root

    env = dict(os.environ)
    dirs = {"JUPYTER_CONFIG_DIR": "jupyter/config", "JUPYTER_DATA_DIR": "jupyter/data",
            "JUPYTER_RUNTIME_DIR": "jupyter/runtime", "IPYTHONDIR": "ipython", "MPLCONFIGDIR": "mpl",
            "JUPYTERLAB_SETTINGS_DIR": "lab/settings", "JUPYTERLAB_WORKSPACES_DIR": "lab/workspaces",
            "XDG_CONFIG_HOME": "xdg/config", "XDG_CACHE_HOME": "xdg/cache"}
    for var, sub in dirs.items():
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(tmp / sub)
    env["HYPERNB_DATA"] = str(data_root())
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    env.pop("HYPERNB_PROFILE", None)
    # no "official Jupyter news?" toast over the notebook
    notify = tmp / "lab/settings/@jupyterlab/apputils-extension"
    notify.mkdir(parents=True, exist_ok=True)
    (notify / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                       "checkForUpdates": False}))
    return env


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server of its own; yields (base url, notebook folder, env); stopped afterwards."""
    needs_browser()
    env = isolated_env(tmp_path)
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    port = free_port()
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={nbdir}",
         "--ServerApp.port_retries=0", "--LabApp.news_url=", "--ServerApp.open_browser=False"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:])
                time.sleep(0.2)
        yield base, nbdir, env
    finally:
        proc.send_signal(signal.SIGTERM)  # it shuts its kernels down itself
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the server's own process group (it and its kernels)
            proc.wait(timeout=10)
        log.close()


def executed_headlessly(path: Path, env: dict) -> None:
    """Write the notebook and execute it as papermill and nbval would (no widget frontend)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# The hypernb panel in a browser"),
                nbformat.v4.new_code_cell(PANEL_CELL)]
    saved = dict(os.environ)
    os.environ.update({k: env[k] for k in ("JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR", "HYPERNB_DATA",
                                           "PYTHONPATH")})
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
                       ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    outputs = nb.cells[1].outputs
    assert [o.output_type for o in outputs] == ["display_data"], outputs
    assert {"image/png", "text/plain", "application/vnd.jupyter.widget-view+json"} <= set(outputs[0].data)
    nbformat.write(nb, path)


def test_panel_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, nbdir, env = lab
    executed_headlessly(nbdir / "panel.ipynb", env)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    t0 = time.monotonic()
    timings = {}
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1400, "height": 1100}, env=env)
        try:
            ctx.set_default_timeout(60_000)
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.goto(f"{base}/lab/tree/panel.ipynb?token={TOKEN}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", state="visible")
            # opened without running (the stored, headless outputs): the static picture, never VBox(...)
            cell = page.locator(".jp-Notebook .jp-CodeCell").first
            picture = cell.locator(".jp-OutputArea-output img")
            expect(picture).to_be_visible()
            assert picture.evaluate("img => img.naturalWidth") >= 1000
            expect(cell.locator(".jp-OutputArea")).not_to_contain_text("VBox(")
            expect(cell.locator(".jp-OutputArea")).not_to_contain_text("Error displaying widget")
            page.screenshot(path=str(shots / "1-opened-without-running.png"))
            timings["opened"] = time.monotonic() - t0

            # run it: wait for the real kernel (status bar "… | Idle"), then Run All (retried if dropped)
            page.wait_for_function("() => Array.from(document.querySelectorAll('#jp-main-statusbar span'))"
                                   ".some(e => /\\| Idle$/.test(e.textContent.trim()))", timeout=120_000)
            prompt = cell.locator(".jp-InputPrompt")
            for _ in range(3):
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
                try:
                    expect(prompt).to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=10_000)
                    break
                except AssertionError:
                    page.keyboard.press("Escape")
            else:
                pytest.fail("Run All Cells never started the notebook")
            panel = cell.locator(".hypernb-panel")
            expect(panel).to_be_visible(timeout=120_000)
            expect(cell.locator(".jp-RenderedImage")).to_have_count(0)  # live: the panel, not its picture
            timings["panel live"] = time.monotonic() - t0

            def move(slider: str, key: str, times: int):
                readout = panel.locator(f".hypernb-{slider} .widget-readout")
                before = readout.inner_text()
                handle = panel.locator(f".hypernb-{slider} .noUi-handle").first
                handle.focus()
                for _ in range(times):
                    page.keyboard.press(key)
                expect(readout).not_to_have_text(before)
                return readout.inner_text()

            rows = panel.locator(".hypernb-table tr.hypernb-row")
            figure = panel.locator(".hypernb-figure")
            src0 = figure.get_attribute("src")
            alpha1 = move("alpha", "ArrowRight", 2)  # α 1e-2 → 10^-1.5
            height1 = move("height", "ArrowRight", 1)  # height 1 → 2
            assert (alpha1, height1) == ("3.16e-2", "2")
            panel.locator(".hypernb-run").click()
            expect(rows).to_have_count(1, timeout=120_000)
            expect(panel.locator(".hypernb-table tr.hypernb-row-ok")).to_have_count(1, timeout=120_000)
            expect(panel.locator(".hypernb-run")).to_be_enabled(timeout=60_000)
            panel.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "2-first-run.png"), full_page=True)
            timings["run 1"] = time.monotonic() - t0

            move("alpha", "ArrowLeft", 1)  # a different setting: not from the cache
            panel.locator(".hypernb-run").click()
            expect(rows).to_have_count(2, timeout=120_000)
            expect(panel.locator(".hypernb-table tr.hypernb-row-ok")).to_have_count(2, timeout=120_000)
            expect(panel.locator(".hypernb-run")).to_be_enabled(timeout=60_000)
            timings["run 2"] = time.monotonic() - t0
            table = panel.locator(".hypernb-table").inner_text()
            assert "#1 α=0.0316" in table and "#2 α=0.0178" in table, table  # labelled by what changed
            assert figure.get_attribute("src") != src0  # the curves were drawn
            figure.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "3-two-runs.png"), full_page=True)

            # the slider moved back (its value carries float noise in the browser) finds run #1 in the cache
            move("alpha", "ArrowRight", 1)
            expect(panel.locator(".hypernb-status")).to_contain_text("ran before as #1")
            panel.locator(".hypernb-run").click()
            expect(panel.locator(".hypernb-status")).to_contain_text("#1 was run before")
            expect(rows).to_have_count(2)

            # a long run, stopped by Kernel → Interrupt: marked in the table, and the panel works again
            move("epochs", "End", 1)
            panel.locator(".hypernb-run").click()
            expect(panel.locator(".hypernb-progress")).to_contain_text(re.compile(r"epoch \d+ of 50 done"),
                                                                       timeout=120_000)
            page.locator(".jp-NotebookPanel-toolbar [data-jp-item-name='interrupt'] button").click()  # ■
            expect(panel.locator(".hypernb-table tr.hypernb-row-interrupted")).to_have_count(1, timeout=60_000)
            expect(panel.locator(".hypernb-run")).to_be_enabled(timeout=60_000)
            assert "interrupted after" in panel.locator(".hypernb-table").inner_text()
            timings["interrupted"] = time.monotonic() - t0
            page.screenshot(path=str(shots / "4-interrupted.png"), full_page=True)

            # a narrow window wraps the rows of controls instead of squeezing the sliders
            page.set_viewport_size({"width": 1000, "height": 1100})
            page.wait_for_timeout(500)
            for name in ("alpha", "kappa", "kappa-rule", "height"):
                box = panel.locator(f".hypernb-{name}").bounding_box()
                assert box and box["width"] >= 400, (name, box)
            page.screenshot(path=str(shots / "5-narrow.png"), full_page=True)

            # no error anywhere: no stderr/traceback output, no failed widget, no message from the panel
            assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
            assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count() == 0
            assert "Error displaying widget" not in cell.inner_text()
            assert "error" not in panel.locator(".hypernb-message").inner_text().lower()
        finally:
            ctx.close()
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
    assert len(list(shots.glob("*.png"))) == 5
