"""The command line's sweep shuts down the Ray it started while the best config is refit
(``raysweep.sweep.early.shutdown_ray``). Ray's autoscaler monitor is killed first: Ray's own
shutdown stops the GCS before it, and the monitor's SIGTERM handler then waits on the GCS
(to tell the drivers the autoscaler failed) until Ray kills it a second later."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from raysweep.sweep import early

#: a fresh interpreter starts a local Ray, runs an actor, shuts Ray down as the command line does
#: and prints what each of Ray's processes was doing when the monitor was stopped, and at the end
_SCRIPT = """
import json, ray
from ray._private import ray_constants, worker
from raysweep.sweep import early
ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
@ray.remote
class Probe:
    def ready(self):
        return 1
    def pid(self):
        import os
        return os.getpid()
probe = Probe.remote()
assert ray.get(probe.ready.remote()) == 1
actor_pid = ray.get(probe.pid.remote())
node = worker._global_node
processes = {kind: [info.process for info in infos] for kind, infos in node.all_processes.items()}
seen = {}
stop_monitor = early._stop_autoscaler_monitor
def watched():
    stop_monitor()
    seen["first"] = {kind: [p.poll() for p in ps] for kind, ps in processes.items()}
    seen["still_serving"] = ray.get(probe.ready.remote()) == 1
early._stop_autoscaler_monitor = watched
early.shutdown_ray().join(60)
import psutil
try:
    actor_status = psutil.Process(actor_pid).status()
except psutil.NoSuchProcess:
    actor_status = "gone"
print(json.dumps({"connected": ray.is_initialized(), **seen, "actor": actor_status,
                  "ended": {kind: [p.poll() for p in ps] for kind, ps in processes.items()},
                  "monitor": ray_constants.PROCESS_TYPE_MONITOR}))
"""


@pytest.mark.e2e
def test_shutdown_kills_the_monitor_first_then_ends_every_process_of_the_ray_it_started(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    monitor = outcome["monitor"]
    # The monitor alone went first, and the rest of Ray still served until its own shutdown.
    first = outcome["first"]
    assert first[monitor] == [-9] and outcome["still_serving"] is True
    assert all(code is None for kind, codes in first.items() if kind != monitor for code in codes), first
    # Then Ray's shutdown ended everything.
    assert outcome["connected"] is False
    ended = outcome["ended"]
    assert {"raylet", "gcs_server", monitor} <= set(ended), ended
    assert all(code is not None for codes in ended.values() for code in codes), ended
    # ... and the actor's process had exited when the shutdown returned (a zombie until its
    # parent, the raylet, is reaped: it is)
    assert outcome["actor"] in ("gone", "zombie"), outcome["actor"]


_EXITS_SOON = "import time; time.sleep(0.3)"
_IGNORES_SIGTERM = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"


def test_the_shutdown_waits_for_rays_workers_and_kills_those_that_outlive_their_node() -> None:
    import time

    import ray  # noqa: F401  (psutil is Ray's own copy)
    import psutil

    soon = subprocess.Popen([sys.executable, "-c", _EXITS_SOON])
    stuck = subprocess.Popen([sys.executable, "-c", _IGNORES_SIGTERM], stdout=subprocess.PIPE)
    assert stuck.stdout.readline().strip() == b"1"  # its handler is set
    processes = [psutil.Process(soon.pid), psutil.Process(stuck.pid)]
    started = time.monotonic()
    early._wait_for_exit(processes, timeout_s=2.0)
    waited = time.monotonic() - started
    # psutil reaped them (Popen sees no exit code): one exited by itself; the other was killed ...
    assert [process.returncode for process in processes] == [0, -9]
    assert waited >= 2.0  # ... only once the time given to it was over
    early._wait_for_exit([], timeout_s=2.0)  # nothing to wait for


class _Process:
    def __init__(self) -> None:
        self.killed = False

    def poll(self) -> int | None:
        return -9 if self.killed else None

    def kill(self) -> None:
        self.killed = True

    def wait(self, timeout: float | None = None) -> int:
        return -9


@pytest.mark.parametrize("head", [None, False, True], ids=["no Ray", "joined a cluster", "started here"])
def test_only_the_monitor_of_a_ray_started_here_is_killed(head: bool | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._private import ray_constants, worker

    monitor, raylet = _Process(), _Process()
    node = None if head is None else SimpleNamespace(
        head=head,
        all_processes={ray_constants.PROCESS_TYPE_MONITOR: [SimpleNamespace(process=monitor)],
                       ray_constants.PROCESS_TYPE_RAYLET: [SimpleNamespace(process=raylet)]},
    )  # fmt: skip
    monkeypatch.setattr(worker, "_global_node", node)
    early._stop_autoscaler_monitor()
    assert monitor.killed is (head is True)
    assert raylet.killed is False


#: a fresh interpreter starts the Ray a sweep starts (``connect_ray`` with no address) and prints
#: the settings Ray recorded for its raylet and GCS
_START_SCRIPT = """
import json, sys, ray
from ray._private import worker
from raysweep.sweep.connect import connect_ray
started = connect_ray(None, verbose=sys.argv[1:] == ["--verbose"])
@ray.remote
def one():
    return 1
node = worker._global_node
running = sorted(kind for kind, infos in node.all_processes.items() if any(i.process.poll() is None for i in infos))
print(json.dumps({"started": started, "config": node._config, "processes": running, "one": ray.get(one.remote())}))
ray.shutdown()
"""


@pytest.mark.e2e
@pytest.mark.parametrize("own", [None, "700"], ids=["raysweep's", "the user's own"])
def test_the_ray_a_sweep_starts_retries_its_object_store_every_100_ms(own: str | None, tmp_path, monkeypatch) -> None:
    # The raylet's connection to its object store: tried again every second by default, a second
    # of Ray's start when the store's thread is late (see raysweep.cluster._nodes.RAY_START_CONFIG).
    monkeypatch.delenv("RAY_raylet_client_num_connect_attempts", raising=False)
    if own is None:
        monkeypatch.delenv("RAY_raylet_client_connect_timeout_milliseconds", raising=False)
    else:
        monkeypatch.setenv("RAY_raylet_client_connect_timeout_milliseconds", own)
    done = subprocess.run([sys.executable, "-c", _START_SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["started"] is True
    config = outcome["config"]
    assert config["raylet_client_num_connect_attempts"] == 100  # 10 s before Ray gives up, as by default
    if own is None:
        assert config["raylet_client_connect_timeout_milliseconds"] == 100
    else:  # Ray reads the user's own setting from the environment; raysweep leaves it alone
        assert "raylet_client_connect_timeout_milliseconds" not in config


def test_the_nodes_of_a_local_cluster_get_the_same_settings_unless_the_user_set_them(tmp_path, monkeypatch) -> None:
    from raysweep.cluster._nodes import _node_env

    monkeypatch.delenv("RAY_raylet_client_num_connect_attempts", raising=False)
    monkeypatch.setenv("RAY_raylet_client_connect_timeout_milliseconds", "700")
    env = _node_env(tmp_path / "token", "cluster-id")
    assert env["RAY_raylet_client_num_connect_attempts"] == "100"
    assert env["RAY_raylet_client_connect_timeout_milliseconds"] == "700"
    monkeypatch.delenv("RAY_raylet_client_connect_timeout_milliseconds")
    assert _node_env(tmp_path / "token", "cluster-id")["RAY_raylet_client_connect_timeout_milliseconds"] == "100"


@pytest.mark.e2e
@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "--verbose"])
def test_the_ray_a_sweep_starts_has_no_autoscaler_and_a_log_monitor_only_when_verbose(verbose: bool, tmp_path) -> None:
    # Each is a Python process importing Ray's modules while Ray starts (0.5 and 0.4 CPU s): the
    # embedded Ray has nothing to scale, and its workers' output reaches the driver only with
    # --verbose (log_to_driver).
    from ray._private import ray_constants

    done = subprocess.run([sys.executable, "-c", _START_SCRIPT, *(["--verbose"] if verbose else [])],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["started"] is True and outcome["one"] == 1
    processes = set(outcome["processes"])
    assert {ray_constants.PROCESS_TYPE_GCS_SERVER, ray_constants.PROCESS_TYPE_RAYLET} <= processes, processes
    assert ray_constants.PROCESS_TYPE_MONITOR not in processes
    assert (ray_constants.PROCESS_TYPE_LOG_MONITOR in processes) is verbose, processes


_THREAD_SCRIPT = """
import json, threading, time, ray
from ray._private import worker
from raysweep.sweep.connect import connect_ray
started = []
thread = threading.Thread(target=lambda: started.append(connect_ray(None, verbose=False)))
thread.start()
thread.join()
time.sleep(1)  # the signal that ends a dead parent's children is immediate; leave it time to land
@ray.remote
def one():
    return 1
node = worker._global_node
running = sorted(kind for kind, infos in node.all_processes.items() if any(i.process.poll() is None for i in infos))
print(json.dumps({"started": started, "processes": running, "one": ray.get(one.remote(), timeout=60)}), flush=True)
"""  # exits without ray.shutdown(): Ray's own, at exit, ends what it started


@pytest.mark.e2e
def test_a_ray_started_on_a_worker_thread_outlives_the_thread(tmp_path) -> None:
    """run_sweep on a worker thread (a thread pool, a web app's handler): Ray's GCS server and raylet
    died as the thread ended (Linux sends a child its parent-death signal when the thread that
    started it ends), and the process's exit waited 60 s for the GCS, then failed with exit 1."""
    from ray._private import ray_constants

    done = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Failed to connect to GCS" not in done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["started"] == [True] and outcome["one"] == 1
    assert {ray_constants.PROCESS_TYPE_GCS_SERVER, ray_constants.PROCESS_TYPE_RAYLET} <= set(outcome["processes"])


@pytest.mark.parametrize("log_monitor", [False, True])
def test_the_embedded_head_settings_last_only_for_its_start(log_monitor: bool) -> None:
    from ray._private import parameter

    from raysweep.sweep.connect import _embedded_head

    original = parameter.RayParams
    with _embedded_head(log_monitor=log_monitor):
        params = parameter.RayParams(num_cpus=1)
        assert isinstance(params, original)
    assert parameter.RayParams is original
    assert params.no_monitor is True
    assert params.include_log_monitor is (None if log_monitor else False)  # None: Ray's default, started
    assert original(num_cpus=1).no_monitor is False


def test_a_ray_without_those_settings_starts_as_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._private import parameter

    from raysweep.sweep.connect import _embedded_head

    class OlderRayParams:  # no no_monitor or include_log_monitor among its arguments
        def __init__(self, num_cpus: int | None = None) -> None:
            self.num_cpus = num_cpus

    monkeypatch.setattr(parameter, "RayParams", OlderRayParams)
    with _embedded_head(log_monitor=False):
        assert parameter.RayParams is OlderRayParams
    assert parameter.RayParams is OlderRayParams


# -- SIGTERM --------------------------------------------------------------------------------------
@pytest.fixture
def signal_handlers():
    """Puts SIGINT's and SIGTERM's handlers back as they were after the test."""
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_sigterm_goes_to_what_handles_ctrl_c_now(signal_handlers) -> None:
    import signal

    from raysweep.sweep.connect import interrupt_on_sigterm

    seen = []
    signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))  # Ray Tune's, during the trials
    interrupt_on_sigterm(signal.SIGTERM, None)
    assert seen == [signal.SIGINT]
    for handler in (signal.default_int_handler, signal.SIG_IGN, signal.SIG_DFL):  # outside the trials
        signal.signal(signal.SIGINT, handler)
        with pytest.raises(KeyboardInterrupt):
            interrupt_on_sigterm(signal.SIGTERM, None)


@pytest.mark.parametrize("stop", [True, False], ids=["a stop during fit", "none"])
def test_a_stop_tune_caught_as_its_last_trials_ended_is_known_after_fit(stop: bool, signal_handlers) -> None:
    """A Ctrl-C or SIGTERM as the last trials ended set Ray Tune's event too late to cut any: fit
    returned as if none had come, and the sweep went on to its outcome and exit 0."""
    import os
    import signal

    from ray.tune.tune import _setup_signal_catching  # what Tuner.fit installs for the trials

    from raysweep.sweep.connect import interrupt_on_sigterm
    from raysweep.sweep.run import _sigint_kept, _StopAsked

    before = signal.default_int_handler
    signal.signal(signal.SIGINT, before)
    signal.signal(signal.SIGTERM, interrupt_on_sigterm)
    asked = _StopAsked()
    with _sigint_kept(asked):
        event = _setup_signal_catching()
        if stop:
            os.kill(os.getpid(), signal.SIGTERM)  # handled as Ctrl-C: by Tune's handler now
            for _ in range(100000):
                if event.is_set():
                    break
    assert (event.is_set(), asked.came) == (stop, stop)
    assert signal.getsignal(signal.SIGINT) is before  # put back either way


@pytest.mark.parametrize("ours", [True, False], ids=["raysweep's handler", "another handler"])
def test_ray_init_keeps_raysweeps_sigterm_handler_and_leaves_any_other_to_ray(ours: bool, signal_handlers) -> None:
    import signal

    from raysweep.sweep.connect import _sigterm_kept, interrupt_on_sigterm

    def rays(signum, frame):  # what ray.init installs: sys.exit(signum)
        raise SystemExit(signum)

    def theirs(signum, frame):
        pass

    signal.signal(signal.SIGTERM, interrupt_on_sigterm if ours else theirs)
    with _sigterm_kept():
        signal.signal(signal.SIGTERM, rays)
    assert signal.getsignal(signal.SIGTERM) is (interrupt_on_sigterm if ours else rays)


def test_the_command_line_sets_its_sigterm_handler_only_from_a_main_thread(signal_handlers) -> None:
    import signal
    import threading

    from raysweep.cli.run import _stop_on_sigterm
    from raysweep.sweep.connect import interrupt_on_sigterm

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    failures = []

    def elsewhere() -> None:
        try:
            _stop_on_sigterm()
        except Exception as exc:  # signal.signal outside the main thread raises ValueError
            failures.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert failures == [] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    _stop_on_sigterm()
    assert signal.getsignal(signal.SIGTERM) is interrupt_on_sigterm


@pytest.mark.parametrize("before", ["python's", "ignored"])
def test_the_command_line_keeps_ctrl_c_out_of_imports_and_leaves_an_ignored_one_ignored(before: str, signal_handlers) -> None:
    import signal

    from raysweep.cli.run import _stop_on_sigterm
    from raysweep.sweep.connect import interrupt_outside_imports

    signal.signal(signal.SIGINT, signal.default_int_handler if before == "python's" else signal.SIG_IGN)
    _stop_on_sigterm()
    assert signal.getsignal(signal.SIGINT) is (interrupt_outside_imports if before == "python's" else signal.SIG_IGN)


# A module that sends this process SIGINT as it is imported, then takes a while to finish importing.
SLOW_MODULE = """
import os, signal, time
os.kill(os.getpid(), signal.SIGINT)
deadline = time.monotonic() + {seconds}
while time.monotonic() < deadline:
    time.sleep(0.001)
finished = True
"""

CTRL_C_PROBE = """
import _imp, signal, sys, threading, time
sys.path.insert(0, sys.argv[1])
from raysweep.sweep import connect
connect.IMPORT_GRACE_S = float(sys.argv[2])
signal.signal(signal.SIGINT, connect.interrupt_outside_imports)
try:
    import slow_module
    time.sleep(2)
    print("not interrupted")
except KeyboardInterrupt:
    imported = getattr(sys.modules.get("slow_module"), "finished", False)
    other = threading.Thread(target=lambda: __import__("json"))  # a thread that imports after the Ctrl-C
    other.start()
    other.join(5)
    print("interrupted", "after" if imported else "inside", "the import;", "imports go on" if not other.is_alive() else "imports hang")
"""


@pytest.mark.parametrize(("import_s", "grace_s", "expected"), [
    (0.3, 5.0, "interrupted after the import; imports go on"),
    (30.0, 0.5, "interrupted inside the import; imports go on"),
], ids=["an import that ends", "an import that does not end in time"])  # fmt: skip
def test_ctrl_c_during_an_import_is_raised_once_it_is_over(import_s: float, grace_s: float, expected: str, tmp_path) -> None:
    """A KeyboardInterrupt raised inside Python's import machinery can leave its global lock held,
    and every other thread's next import then waits forever (a sweep stopped as its refit began hung
    at its end): the command line's SIGINT handler raises it once the import is over, or after
    IMPORT_GRACE_S."""
    (tmp_path / "slow_module.py").write_text(SLOW_MODULE.format(seconds=import_s))
    done = subprocess.run([sys.executable, "-c", CTRL_C_PROBE, str(tmp_path), str(grace_s)], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == expected, done.stderr[-2000:]


CTRL_C_IN_A_FINALIZER = """
import gc, os, signal, sys, time
from raysweep.sweep import connect
signal.signal(signal.SIGINT, connect.interrupt_outside_imports)

class Held:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # the Ctrl-C lands while the collector finalizes this
        time.sleep(0.2)

try:
    Held()
    gc.collect()
    time.sleep(2)
    print("the Ctrl-C was lost")
except KeyboardInterrupt:
    print("interrupted after the finalizer")
"""


def test_ctrl_c_or_sigterm_while_a_finalizer_runs_is_raised_after_it(tmp_path) -> None:
    """Python ignores an exception raised in ``__del__``: a SIGTERM that came while the garbage
    collector closed a ZipFile, as the model was logged, was lost and the sweep ended exit 0."""
    done = subprocess.run([sys.executable, "-c", CTRL_C_IN_A_FINALIZER], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "interrupted after the finalizer", done.stderr[-2000:]


CTRL_C_IN_A_FORK_HOOK = """
import logging, os, signal, subprocess, sys, threading, time
from raysweep.sweep import connect
signal.signal(signal.SIGINT, connect.interrupt_outside_imports)
real = logging._lock

class Lock:  # logging's lock, which its fork hooks take and give back around a fork
    sent = False
    def acquire(self, *args, **kwargs):
        return real.acquire(*args, **kwargs)
    def release(self):
        real.release()
        if not Lock.sent and threading.current_thread() is threading.main_thread():
            Lock.sent = True
            os.kill(os.getpid(), signal.SIGINT)  # the Ctrl-C lands in the hook, as Ray starts a process
            for _ in range(200000):
                pass
    def _at_fork_reinit(self):  # in the child
        real._at_fork_reinit()
    __enter__ = acquire
    def __exit__(self, *exc):
        self.release()

logging._lock = Lock()
try:
    subprocess.run(["true"], preexec_fn=lambda: None)  # Ray starts its processes with one
    time.sleep(2)
    print("the Ctrl-C was lost")
except KeyboardInterrupt:
    print("interrupted after the fork" if Lock.sent else "interrupted elsewhere")
"""


def test_ctrl_c_while_a_fork_hook_runs_is_raised_after_it(tmp_path) -> None:
    """Python ignores an exception raised in an ``os.register_at_fork`` hook: a Ctrl-C that came
    as Ray started its processes (logging's hook; once in 4 Ctrl-Cs sent 2-5 s after the command) printed "Exception ignored
    in: <function _releaseLock>" and the sweep ran to its end, exit 0."""
    done = subprocess.run([sys.executable, "-c", CTRL_C_IN_A_FORK_HOOK], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "interrupted after the fork", done.stderr[-2000:]
    assert "Exception ignored" not in done.stderr, done.stderr[-2000:]


# -- the command line's Ray, at the end of a command ----------------------------------------------
@pytest.mark.parametrize("up_before", [False, True], ids=["started by the command", "up before it"])
def test_a_command_shuts_down_the_ray_it_connected_to_and_leaves_one_it_found(up_before: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from raysweep.cli import run as cli_run

    ray = SimpleNamespace(up=up_before)
    ray.is_initialized = lambda: ray.up
    monkeypatch.setitem(sys.modules, "ray", ray)
    released = []
    monkeypatch.setattr(cli_run, "_release_ray", lambda: released.append(True))
    monkeypatch.setattr(cli_run, "report", lambda result, as_json: None)

    def sweep() -> str:
        ray.up = True  # the sweep connects (a resumed sweep, a nested job)
        raise KeyboardInterrupt  # ... and is interrupted

    with pytest.raises(KeyboardInterrupt):
        cli_run._report_when_done(sweep, as_json=False)
    assert released == ([] if up_before else [True])
