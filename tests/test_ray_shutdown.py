"""The command line's sweep shuts down the Ray it started while the best config is refit
(``raysweep.sweep.early.shutdown_ray``); Ray's autoscaler monitor is killed first, since its exit
handler otherwise waits on the GCS that Ray stops before it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from raysweep.sweep.early import _stop_autoscaler_monitor

#: a fresh interpreter starts a local Ray, runs an actor, shuts Ray down as the command line does
#: and prints how each of Ray's processes ended
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
early._stop_autoscaler_monitor()  # what shutdown_ray does first
first = {kind: [p.poll() for p in ps] for kind, ps in processes.items()}
still_serving = ray.get(probe.ready.remote()) == 1
early.shutdown_ray().join(60)
print(json.dumps({"connected": ray.is_initialized(), "first": first, "still_serving": still_serving,
                  "ended": {kind: [p.poll() for p in ps] for kind, ps in processes.items()},
                  "monitor": ray_constants.PROCESS_TYPE_MONITOR}))
"""


@pytest.mark.e2e
def test_shutdown_ends_every_process_of_the_ray_it_started(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["connected"] is False
    ended = outcome["ended"]
    assert {"raylet", "gcs_server", outcome["monitor"]} <= set(ended), ended
    assert all(code is not None for codes in ended.values() for code in codes), ended
    # The monitor alone goes first; the rest of Ray still serves until its own shutdown.
    first = outcome["first"]
    assert first[outcome["monitor"]] == [-9] and outcome["still_serving"] is True
    assert all(code is None for kind, codes in first.items() if kind != outcome["monitor"] for code in codes), first


def test_without_a_ray_started_here_nothing_is_stopped() -> None:
    _stop_autoscaler_monitor()  # no Ray in this process: returns without error
    from ray._private import worker

    assert worker._global_node is None
