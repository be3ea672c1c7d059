"""One JupyterLab for the browser tests, with nbsage's console, driven by Playwright and Chromium.

The server runs this checkout's nbsage (PYTHONPATH) with its server extension and the prebuilt
front end in nbsage/labextension (found through an extra labextensions folder, so nothing needs to
be installed), on 127.0.0.1 with a token, in a private NBSAGE_HOME and Jupyter folders. Chromium is
Debian's (/usr/bin/chromium, installed by .ci/run); Playwright downloads no browser. Screenshots go
to tests/browser/artifacts/ (ignored by git).
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from support import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("NBSAGE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not (ROOT / "nbsage" / "labextension" / "package.json").exists():
        return "the console's front end is not built (make labextension)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    if reason:
        for item in items:
            if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
                item.add_marker(pytest.mark.skip(reason=reason))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, url: str, token: str, home: Path, root: Path, process: subprocess.Popen, log: Path):
        self.url, self.token, self.home, self.root, self.process, self.log = url, token, home, root, process, log

    def api(self, path: str) -> str:
        return f"{self.url}/nbsage/api/{path}"


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("lab")
    home, root, jupyter = base / "nbsage-home", base / "notebooks", base / "jupyter"
    root.mkdir()
    extensions = jupyter / "labextensions"
    extensions.mkdir(parents=True)
    (extensions / "nbsage-console").symlink_to(ROOT / "nbsage" / "labextension")
    token, port = secrets.token_hex(16), _free_port()
    env = {**os.environ, "NBSAGE_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
           "JUPYTER_CONFIG_DIR": str(jupyter / "config"), "JUPYTER_DATA_DIR": str(jupyter / "data"),
           "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"), "NBSAGE_STOP_GRACE_SECONDS": "2",
           "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces")}
    log = base / "lab.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--allow-root",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--ServerApp.jpserver_extensions={'nbsage.jupyter': True}",
         f"--LabApp.extra_labextensions_path={extensions}", "--LabApp.news_url=None",
         "--LabApp.expose_app_in_browser=True",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready():
        if process.poll() is not None:
            raise AssertionError(f"JupyterLab ended: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for(ready, timeout=120, what="JupyterLab to answer", interval=0.2)
    yield Lab(url, token, home, root, process, log)
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    _stop_everything(home)


def _stop_everything(home: Path) -> None:
    """Endpoints and jobs the tests left (a failed test) are stopped with the server."""
    import sqlite3
    import signal
    db = home / "nbsage.db"
    if not db.exists():
        return
    conn = sqlite3.connect(db, timeout=5)
    pids = [r[0] for r in conn.execute("SELECT pid FROM endpoints WHERE pid IS NOT NULL")]
    pids += [r[0] for r in conn.execute(
        "SELECT supervisor_pid FROM jobs WHERE status IN ('InProgress', 'Stopping') AND supervisor_pid IS NOT NULL")]
    conn.close()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"NBSAGE_HOME={home}".encode() not in f.read().split(b"\0"):
                    continue
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture
def lab_home(lab, monkeypatch):
    """This test's nbsage calls go to the server's NBSAGE_HOME."""
    monkeypatch.setenv("NBSAGE_HOME", str(lab.home))
    return lab.home


@pytest.fixture(scope="module")
def browser():
    """Chromium under Playwright's sync API, for one module: while it is open, Playwright's event loop is
    this thread's current loop and counts as running, so tests run later by the same worker that use the
    current loop (the console's REST tests) would fail if it outlived the module."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(lab, browser):
    """One JupyterLab page for a module, opened on the nbsage panel (videos off: record_video_dir unset)."""
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(f"{lab.url}/lab?token={lab.token}&reset")
    page.locator('[data-id="nbsage-console"]').click()
    page.locator("#nbsage-console").wait_for(state="visible")
    yield page
    context.close()


@pytest.fixture
def screenshot():
    """screenshot(page, name): a PNG of the page kept under tests/browser/artifacts/."""
    def take(page, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path))
        return path
    return take


@pytest.fixture(scope="session", autouse=True)
def _clean_artifacts():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    yield
