"""`raysweep ui` as a user meets it: the printed URL opened in a real headless Chromium.

A small sweep logs to a sqlite store; ``raysweep ui`` serves the MLflow UI for that store and
prints a URL; the page must show the model-training runs table (not MLflow 3's GenAI
overview), the sweep's parent run with its trial runs nested under it, and the validation
metric column with the trials' scores. A screenshot is saved with the test's output and copied
to /tmp/raysweep-ui.png.
"""

from __future__ import annotations

import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import free_port

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
SWEEP = "ui-sweep"
SHARED_SCREENSHOT = Path("/tmp/raysweep-ui.png")


def _read_url(process: subprocess.Popen, timeout: float) -> str:
    """The first line of ``raysweep ui``'s stdout that is a URL."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        if line.startswith("http://"):
            return line.strip()
    raise AssertionError(f"raysweep ui printed no URL within {timeout:.0f}s (exit code {process.poll()})")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def swept_store(ray_local, tmp_path, monkeypatch):
    """A sqlite MLflow store in tmp holding one finished three-trial sweep; returns (uri, result)."""
    from threadpoolctl import threadpool_limits

    from raysweep.runner import run_sweep

    monkeypatch.chdir(tmp_path)  # the embedded store keeps its artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with threadpool_limits(1):
        result = run_sweep(
            "xgboost", "iris", name=SWEEP, scheduler="fifo", searcher="random", num_samples=3,
            storage=str(tmp_path / "results"), tracking_uri=uri, overrides=["resource.max=50"],
        )
    return uri, result


@pytest.fixture
def ui_url(swept_store, tmp_path, request):
    """The URL `raysweep ui --no-browser` prints for the store; the UI is stopped afterwards."""
    uri, _ = swept_store
    port = free_port()
    log = open(tmp_path / "raysweep-ui.err", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "raysweep", "ui", "--tracking-uri", uri, "--port", str(port), "--no-browser"],
        stdout=subprocess.PIPE, stderr=log, text=True, cwd=tmp_path,
    )

    def stop() -> None:
        # SIGTERM, as `kill` would send: raysweep ui must take its MLflow server down with it.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
        deadline = time.monotonic() + 20
        while _port_open(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _port_open(port), f"the MLflow UI server still listens on {port} after raysweep ui stopped"

    request.addfinalizer(stop)
    url = _read_url(process, timeout=180)
    assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/")
    return url


def test_ui_url_opens_the_sweep_runs_table_with_nested_trials_and_metric(swept_store, ui_url, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run the browser test")
    sync_api = pytest.importorskip("playwright.sync_api")
    _, result = swept_store
    assert "/runs?workflowType=machine_learning" in ui_url

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1800, "height": 1000})
            page.goto(ui_url)
            parent = page.locator(".ag-row").filter(has_text=SWEEP).first
            parent.wait_for(timeout=90_000)
            # the model-training runs table, not the GenAI overview
            assert "workflowType=machine_learning" in page.url
            assert page.get_by_role("heading", name="Runs", exact=True).is_visible()
            assert page.locator("text=Usage").count() == 0  # the GenAI overview's first tab

            # trials sit under the parent run, shown once it is expanded
            assert page.locator(".ag-row").filter(has_text="trial-0000").count() == 0
            parent.locator("button[data-component-id*='runnamecellrenderer']").first.click()
            for index in range(3):
                page.locator(".ag-row").filter(has_text=f"trial-{index:04d}").first.wait_for(timeout=30_000)

            # the validation metric column, with each trial's last score in it
            header = page.locator(".ag-header-cell[col-id='metrics.`val_accuracy`']")
            header.wait_for(timeout=30_000)
            assert header.is_visible()
            board = result.leaderboard.set_index("trial")
            for index in range(3):
                name = f"trial-{index:04d}"
                # the grid renders a row in two parts (the pinned run-name column and the rest)
                # that share an aria-rowindex
                row_index = page.locator(".ag-row").filter(has_text=name).first.get_attribute("aria-rowindex")
                cell = page.locator(f".ag-row[aria-rowindex='{row_index}'] [col-id='metrics.`val_accuracy`']")
                assert float(cell.inner_text()) == pytest.approx(board.loc[name, "val_accuracy"], abs=1e-6)

            screenshot = tmp_path / "raysweep-ui.png"
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
    try:
        shutil.copyfile(screenshot, SHARED_SCREENSHOT)
    except OSError:
        pass  # only a convenience for looking at it
