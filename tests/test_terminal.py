"""The live view as a person at a terminal sees it: ``raysweep run`` under a pseudo-terminal.

The sweep's output is read as it comes, while the sweep runs; each frame the live view draws is
checked in plain text (its colours and cursor movements taken out).
"""

from __future__ import annotations

import os
import re
import sys
import time

import pytest

pytestmark = pytest.mark.e2e

#: colours, cursor movements, line erasure and the cursor's hiding: what the live view draws with
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def test_the_live_view_shows_the_total_a_running_trials_step_and_the_refit(tmp_path):
    pexpect = pytest.importorskip("pexpect")
    # 6 MLP trials of 6 steps of 5 epochs on digits, 2 at once: each step is long enough to be seen.
    args = ["-m", "raysweep", "run", "mlp", "--dataset", "digits", "--num-samples", "6", "--scheduler", "fifo",
            "--searcher", "random", "--max-concurrent", "2", "--set", "resource.max=30",
            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--storage", str(tmp_path / "results")]
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(sys.executable, args, cwd=str(tmp_path), env=env, dimensions=(40, 120), encoding="utf-8",
                          codec_errors="replace", timeout=600)
    screen, first_seen, started = "", {}, time.monotonic()
    wanted = {
        "the total": re.compile(r"trials +\d of 6 done · \d running · \d waiting · \d failed"),
        "a running trial's step": re.compile(r"trial-\w+ +\S* +\d+/30 epochs \(step [1-5]/6\)"),
        "the refit": re.compile(r"→ refitting the best config \(trial-\w+\) on 1,437 rows for \d steps? \(\d+ epochs\)"),
        "the summary": re.compile(r"test accuracy of the refit model: "),
    }
    while True:
        try:
            chunk = child.read_nonblocking(65536, timeout=5)
        except pexpect.TIMEOUT:
            continue
        except pexpect.EOF:
            break
        screen += ESCAPES.sub("", chunk)
        for what, pattern in wanted.items():
            if what not in first_seen and pattern.search(screen):
                first_seen[what] = (time.monotonic() - started, len(screen))
    child.close()
    assert child.exitstatus == 0, screen[-3000:]
    missing = [what for what in wanted if what not in first_seen]
    assert not missing, f"never shown: {missing}\n{screen[-5000:]}"
    # Read while the sweep ran: the total and a trial's step before the refit, the refit before the summary.
    order = sorted(first_seen, key=lambda what: first_seen[what][1])
    assert order.index("the refit") > max(order.index("the total"), order.index("a running trial's step")), order
    assert order[-1] == "the summary", order
    # The last frame left on screen is the finished sweep, without a phase: 6 of 6 done.
    before_summary = screen[: screen.index("leaderboard (top")]
    last_frame = before_summary[before_summary.rindex("trials  ") :]
    assert re.match(r"trials +6 of 6 done · 0 running · 0 waiting · 0 failed", last_frame), last_frame
    assert "→" not in last_frame, last_frame


def test_ctrl_z_gives_the_shell_its_cursor_and_fg_carries_on(tmp_path):
    """The live view hides the cursor; Ctrl-Z stopped the process with it hidden, and the shell
    it returned to had none. It is shown before the process stops, hidden again when ``fg``
    carries it on. A shell with job control runs it, as a user's does (Ctrl-Z stops only a job
    whose shell is there to continue it)."""
    pexpect = pytest.importorskip("pexpect")
    import shlex

    args = ["-m", "raysweep", "run", "mlp", "--dataset", "digits", "--num-samples", "3", "--scheduler", "fifo",
            "--searcher", "random", "--max-concurrent", "1", "--set", "resource.max=30",
            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--storage", str(tmp_path / "results")]
    script = f"set -m; {shlex.join([sys.executable, *args])}; echo job-stopped-$?; fg; echo job-exited-$?"
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    child = pexpect.spawn("bash", ["--norc", "-c", script], cwd=str(tmp_path), env=env, dimensions=(40, 120), encoding="utf-8",
                          codec_errors="replace", timeout=300)
    hide, show = "\x1b[?25l", "\x1b[?25h"
    seen = ""
    while not re.search(r"trials +\d of 3 done", ESCAPES.sub("", seen)):  # the live view is up
        seen += child.read_nonblocking(65536, timeout=120)
    assert hide in seen and show not in seen  # the cursor is hidden
    child.sendcontrol("z")
    child.expect_exact("job-stopped-148", timeout=30)  # stopped (128 + SIGTSTP), back at the shell
    stopped = seen + child.before
    assert stopped.rfind(show) > stopped.rfind(hide), "the shell got no cursor back"
    child.expect(r"job-exited-(\d+)", timeout=600)  # fg: the sweep goes on to its end
    carried_on, exit_code = child.before, child.match.group(1)
    child.expect(pexpect.EOF)
    assert exit_code == "0", carried_on[-3000:]
    assert hide in carried_on, "the live view drew on without hiding the cursor again"
    assert "test accuracy of the refit model: " in ESCAPES.sub("", carried_on), carried_on[-3000:]
    assert carried_on.rfind(show) > carried_on.rfind(hide)  # the cursor is left shown
