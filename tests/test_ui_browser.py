"""`raysweep ui` as a user meets it: the printed links opened in a real headless Chromium.

A small sweep logs to a real `mlflow server`; ``raysweep ui`` prints the sweep's links. The
``trials:`` link must show the model-training runs table (not MLflow 3's GenAI overview) with
the sweep's trial runs as rows, without a click, sorted by the validation metric, with the
metric and the searched parameters as columns; the ``compare:`` link shows the trials side by
side with plots. A second sweep in a sqlite store checks the same through the UI server that
``raysweep ui`` starts itself (and stops on SIGTERM). Screenshots stay in the test's tmp dir.
"""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import free_port, live_processes, run_cli, session_processes

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
SWEEP = "ui-sweep"
SERVER_SWEEP = f"ui-server-{uuid.uuid4().hex[:6]}"
SEARCHED = ["colsample_bytree", "learning_rate", "max_depth", "min_child_weight", "reg_lambda", "subsample"]
SHARED_VIEW_BANNER = "You're viewing a shared view"

# Per row of the runs table: its run name and its metric cell. The grid draws a row in parts
# (the pinned run-name column and the rest) that share an aria-rowindex.
_TABLE_ROWS_JS = """(metricColumn) => {
    const rows = {};
    for (const row of document.querySelectorAll('.ag-row')) {
        const index = Number(row.getAttribute('aria-rowindex'));
        rows[index] = rows[index] || {};
        const name = row.querySelector("[col-id='attributes.`Run Name`']");
        if (name) rows[index].name = (name.querySelector("a") || name).innerText.trim();
        const metric = row.querySelector(`[col-id='${metricColumn}']`);
        if (metric) rows[index].metric = metric.innerText.trim();
    }
    return Object.keys(rows).map(Number).sort((a, b) => a - b).map(index => rows[index]);
}"""

# Per chart card of the runs page's chart view: its title, the series of its Plotly chart (name
# and number of points), and for the parallel-coordinates chart its axes, its rows (the trials
# it was given) and whether it drew lines on its canvas.
_CHART_CARDS_JS = """() => Array.from(document.querySelectorAll("[data-testid='experiment-view-compare-runs-card']")).map(card => {
    const plot = card.querySelector('.js-plotly-plot');
    const parcoords = card.querySelector('.parcoords');
    let parallel = null;
    if (parcoords) {
        let fiber = parcoords[Object.keys(parcoords).find(key => key.startsWith('__reactFiber'))];
        while (fiber && !(fiber.memoizedProps && Array.isArray(fiber.memoizedProps.data))) fiber = fiber.return;
        const canvas = parcoords.querySelector('canvas.foreground');
        const pixels = canvas ? canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data : [];
        let drawn = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) drawn++;
        parallel = {
            // an axis shows its name, cut short with its full name in a tooltip when long
            axes: Array.from(parcoords.querySelectorAll('.dimension')).map(axis =>
                (axis.querySelector('.axis-label-tooltip text') || axis.querySelector('.label')).textContent),
            rows: fiber ? fiber.memoizedProps.data.length : -1,
            drawn,
        };
    }
    return {
        title: card.innerText.trim().split('\\n')[0],
        series: plot ? (plot.data || []).map(trace => ({name: trace.name, points: (trace.x || []).length})) : [],
        parallel,
    };
})"""


def _links(stdout: str) -> dict[str, str]:
    """``raysweep ui``'s ``label: URL`` lines as {label: URL}."""
    return {label.rstrip(":"): url for label, url in (line.split(None, 1) for line in stdout.strip().splitlines())}


def _chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@contextlib.contextmanager
def _browser_page(height: int = 1000) -> Iterator[Any]:
    """A page of a real headless Chromium (the test skips without one), closed afterwards."""
    sync_api = _skip_without_browser()
    with sync_api.sync_playwright() as playwright:
        browser = _chromium(playwright)
        try:
            yield browser.new_page(viewport={"width": 1800, "height": height})
        finally:
            browser.close()


def _skip_without_browser() -> Any:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to run the browser tests")
    return pytest.importorskip("playwright.sync_api")


def _trial_rows(page: Any, metric_key: str, trials: int) -> list[dict[str, str]]:
    """The runs table's rows as the page shows them once the ``trials`` trial rows are drawn."""
    metric_column = f"metrics.`{metric_key}`"
    page.wait_for_function(
        f"(column) => ({_TABLE_ROWS_JS})(column).filter(r => r.name && r.metric).length >= {trials}",
        arg=metric_column, timeout=120_000,
    )
    return page.evaluate(_TABLE_ROWS_JS, metric_column)


def _check_trials_view(page: Any, result: Any, sweep: str, descending: bool) -> None:
    """The page shows exactly the sweep's trials, best first, with the metric and param columns."""
    metric_key = f"val_{result.metric}"
    # A trial's score is its best step's: the table shows each trial's best validation score
    best_key = f"best_{metric_key}"
    rows = _trial_rows(page, best_key, result.num_trials)
    # the model-training runs table, not the GenAI overview
    assert "workflowType=machine_learning" in page.url
    assert page.get_by_role("heading", name="Runs", exact=True).is_visible()
    assert page.locator("text=Usage").count() == 0  # the GenAI overview's first tab

    # every trial is a row on screen, without a click; the sweep's own run is not among them
    board = result.leaderboard.set_index("trial")
    names = [row["name"] for row in rows]
    assert sorted(names) == sorted(board.index), names
    assert sweep not in names
    assert page.get_by_text(f"{result.num_trials} matching runs").is_visible()
    for row in rows:
        assert page.locator(".ag-row").filter(has_text=row["name"]).first.is_visible()
        assert float(row["metric"]) == pytest.approx(board.loc[row["name"], metric_key], abs=1e-6)
    # best first
    values = [float(row["metric"]) for row in rows]
    assert values == sorted(values, reverse=descending), values

    # the metric (each trial's best) and the searched parameters are columns
    assert page.locator(f".ag-header-cell[col-id='metrics.`{best_key}`']").is_visible()
    for name in ("learning_rate", "max_depth"):
        assert page.locator(f".ag-header-cell[col-id='params.`{name}`']").is_visible()
    assert page.locator(".ag-header-cell[col-id='tags.`raysweep.outcome`']").count() == 1
    # the price of chosen columns, explained in the README
    assert page.get_by_text(SHARED_VIEW_BANNER).is_visible()


def _check_sweep_charts(page: Any, result: Any) -> None:
    """The chart view shows the sweep's charts first, with every trial in them."""
    metric_key = f"val_{result.metric}"
    best_key = f"best_{metric_key}"
    board = result.leaderboard.set_index("trial")
    trials = sorted(board.index)
    # the charts are drawn once every trial's curve and the parallel chart's lines are there
    page.wait_for_function(
        f"""() => {{ const cards = ({_CHART_CARDS_JS})();
            return cards.length >= 4 && new Set(cards[0].series.map(s => s.name)).size >= {len(trials)}
                && cards[1].parallel && cards[1].parallel.drawn > 0; }}""",
        timeout=120_000,
    )
    cards = page.evaluate(_CHART_CARDS_JS)
    curves, parallel, *scatters = cards[:4]
    # learning curves: one series per trial, each as long as the trial trained (early stops show)
    assert curves["title"] == metric_key, cards
    points: dict[str, int] = {}
    for series in curves["series"]:
        points[series["name"]] = max(points.get(series["name"], 0), series["points"])
    assert sorted(points) == trials, curves
    assert points == {name: int(board.loc[name, "steps"]) for name in trials}, (points, board["steps"])
    assert max(points.values()) >= 2  # curves, not single points
    # parallel coordinates: an axis per searched parameter and one for the score, a line per trial
    assert parallel["title"] == "Parallel Coordinates", cards
    assert parallel["parallel"]["axes"] == SEARCHED + [best_key], parallel
    assert parallel["parallel"]["rows"] == len(trials) and parallel["parallel"]["drawn"] > 0, parallel
    # the score against two searched parameters (no importance under 8 trials: the first two)
    assert [card["title"] for card in scatters] == [f"{name} vs. {best_key}" for name in SEARCHED[:2]], cards
    assert all(card["series"] == [{"name": None, "points": len(trials)}] for card in scatters), scatters
    # the sweep's own section comes first, the UI's charts of the other metrics after it
    headers = page.locator("[data-testid='experiment-view-compare-runs-section-header']").all_inner_texts()
    assert headers[0].startswith("Sweep") and any(h.startswith("Model metrics") for h in headers), headers


# -- a sweep on a tracking server -----------------------------------------------------------------
@pytest.fixture(scope="module")
def server_sweep(ray_local, mlflow_server, tmp_path_factory):
    """A five-trial regression sweep (rmse: lower is better) of four steps a trial on the tracking server."""
    from threadpoolctl import threadpool_limits

    from raysweep.sweep.run import run_sweep

    with threadpool_limits(1):
        return run_sweep(
            "xgboost", "diabetes", name=SERVER_SWEEP, scheduler="fifo", searcher="random", num_samples=5,
            storage=str(tmp_path_factory.mktemp("ui-results")), tracking_uri=mlflow_server,
            experiment=f"raysweep-tests-ui-{SERVER_SWEEP}", overrides=["resource.per_step=25", "resource.max=100"],
        )


@pytest.fixture(scope="module")
def server_links(server_sweep, mlflow_server, tmp_path_factory):
    done = run_cli(
        "ui", "--tracking-uri", mlflow_server, "--sweep", SERVER_SWEEP, "--no-browser",
        cwd=tmp_path_factory.mktemp("ui-cwd"), timeout=120,
    )
    assert done.returncode == 0, done.stderr
    links = _links(done.stdout)
    assert list(links) == ["trials", "charts", "compare", "sweep", "sweeps"], done.stdout
    return links


def test_trials_link_shows_every_trial_as_a_row_sorted_by_the_metric_with_param_columns(
    server_sweep, server_links, tmp_path
):
    assert server_sweep.metric == "rmse"
    with _browser_page() as page:
        page.goto(server_links["trials"])
        _check_trials_view(page, server_sweep, SERVER_SWEEP, descending=False)
        page.screenshot(path=str(tmp_path / "trials.png"))
    assert (tmp_path / "trials.png").stat().st_size > 10_000


def test_chart_view_of_the_trials_link_holds_learning_curves_parallel_coordinates_and_scatters(
    server_sweep, server_links, tmp_path
):
    with _browser_page(1200) as page:
        page.goto(server_links["trials"])
        _trial_rows(page, f"best_val_{server_sweep.metric}", server_sweep.num_trials)
        # the runs page's own toggle, as a user switches to the chart view
        page.locator("label", has=page.locator("input[value='CHART']")).click()
        _check_sweep_charts(page, server_sweep)
        assert "compareRunsMode=CHART" in page.url
        assert page.get_by_text(SHARED_VIEW_BANNER).is_visible()
        page.screenshot(path=str(tmp_path / "charts.png"), full_page=True)
    assert (tmp_path / "charts.png").stat().st_size > 10_000


def test_sweeps_link_shows_each_sweep_of_the_experiment_as_one_row(server_sweep, server_links, tmp_path):
    with _browser_page() as page:
        page.goto(server_links["sweeps"])
        # the experiment holds one sweep: one row, the sweep's own run, not its trials
        rows = _trial_rows(page, f"best_val_{server_sweep.metric}", 1)
        assert [row["name"] for row in rows if row["name"]] == [SERVER_SWEEP], rows
        assert page.get_by_text(re.compile(r"^1 matching runs?$")).is_visible()
        assert float(rows[0]["metric"]) == pytest.approx(server_sweep.best_validation_score, abs=1e-6)
        assert page.locator(".ag-row").filter(has_text="xgboost").first.is_visible()  # the recipe column
        page.screenshot(path=str(tmp_path / "sweeps.png"))
    assert (tmp_path / "sweeps.png").stat().st_size > 10_000


def test_compare_link_shows_the_trials_side_by_side_with_plots(server_sweep, server_links, tmp_path):
    trials = server_sweep.num_trials
    with _browser_page() as page:
        page.goto(server_links["compare"])
        page.get_by_text(f"Comparing {trials} Runs from 1 Experiment").wait_for(timeout=120_000)
        assert page.get_by_text("Parallel Coordinates Plot").is_visible()
        # the best trial first, as in the leaderboard
        best = server_sweep.leaderboard.iloc[0]["trial"]
        names = page.locator("tr", has_text="Run Name:").first.inner_text().split()[2:]
        assert names[0] == best and sorted(names) == sorted(server_sweep.leaderboard["trial"]), names
        for name in SEARCHED:
            page.locator("tr", has_text=name).first.wait_for(timeout=30_000)
        assert page.get_by_text(SHARED_VIEW_BANNER).count() == 0
        # The plot colours the trials by their best score (MLflow picks a run's first-logged metric),
        # not by their last step's, which ranks them otherwise.
        plots = page.inner_text("body").split("Run details")[0]
        metric_lines = {line.strip() for line in plots.splitlines() if line.strip().endswith(f"val_{server_sweep.metric}")}
        assert metric_lines == {f"best_val_{server_sweep.metric}"}, plots
        page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    assert (tmp_path / "compare.png").stat().st_size > 10_000


# -- `raysweep ui` serving a sqlite store itself --------------------------------------------------
def _read_links(process: subprocess.Popen, timeout: float) -> dict[str, str]:
    """``raysweep ui``'s links, read from its stdout up to the ``sweep:`` line."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if line.startswith("sweep:"):
            return _links("".join(seen))
    raise AssertionError(f"raysweep ui printed no links within {timeout:.0f}s (exit code {process.poll()}): {seen}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def swept_store(ray_local, tmp_path, monkeypatch):
    """A sqlite MLflow store in tmp holding one finished three-trial, two-step sweep; returns (uri, result)."""
    from threadpoolctl import threadpool_limits

    from raysweep.sweep.run import run_sweep

    monkeypatch.chdir(tmp_path)  # the embedded store keeps its artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with threadpool_limits(1):
        result = run_sweep(
            "xgboost", "iris", name=SWEEP, scheduler="fifo", searcher="random", num_samples=3,
            storage=str(tmp_path / "results"), tracking_uri=uri, overrides=["resource.per_step=25", "resource.max=50"],
        )
    return uri, result


@pytest.fixture
def ui_links(swept_store, tmp_path, request):
    """The links `raysweep ui --no-browser` prints for the store; the UI is stopped afterwards."""
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
        left = {session: session_processes(session) for session in servers if session_processes(session)}
        assert not left, f"processes of the MLflow UI server still running after raysweep ui stopped: {left}"

    servers: list[int] = []
    request.addfinalizer(stop)
    links = _read_links(process, timeout=240)
    assert all(url.startswith(f"http://127.0.0.1:{port}/#/") for url in links.values()), links
    # The server runs in a session of its own, with the workers it started (uvicorn); MLflow's job
    # runner, which a sweep never uses, is not among them.
    servers.extend(pid for pid, fields, command in live_processes() if int(fields[1]) == process.pid and "mlflow" in command)
    assert len(servers) == 1, servers
    started = session_processes(servers[0])
    assert not [c for c in started.values() if "huey" in c or "_job_runner" in c], started
    return links


def test_ui_serves_a_sqlite_store_and_opens_on_its_trials(swept_store, ui_links, tmp_path):
    _, result = swept_store
    assert "/runs?workflowType=machine_learning&viewStateShareKey=" in ui_links["trials"]
    with _browser_page() as page:
        page.goto(ui_links["trials"])
        _check_trials_view(page, result, SWEEP, descending=True)
        page.screenshot(path=str(tmp_path / "raysweep-ui.png"))
        # the charts link opens the same view on its charts
        assert ui_links["charts"] == ui_links["trials"] + "&compareRunsMode=CHART"
        page.goto(ui_links["charts"])
        _check_sweep_charts(page, result)
        page.screenshot(path=str(tmp_path / "raysweep-ui-charts.png"), full_page=True)
    assert (tmp_path / "raysweep-ui.png").stat().st_size > 10_000
    assert (tmp_path / "raysweep-ui-charts.png").stat().st_size > 10_000
