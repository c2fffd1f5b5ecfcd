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
probe = Probe.remote()
assert ray.get(probe.ready.remote()) == 1
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
print(json.dumps({"connected": ray.is_initialized(), **seen,
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
