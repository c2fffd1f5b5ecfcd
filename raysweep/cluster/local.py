"""Where sweeps run: a real multi-node Ray cluster on this machine, (the ``raysweep cluster`` commands are in :mod:`raysweep.cli.cluster`).

:func:`start_local_cluster` starts a Ray head plus N worker nodes as separate raylets on this
machine, with Ray's token authentication on, and records what it started in a small JSON state
file so that :func:`stop_local_cluster` stops exactly that cluster and nothing else (not another
Ray instance on the same machine, such as a test suite's own ``ray.init()``).

Cloud clusters are not started from here: ``cluster/aws.yaml``, ``cluster/gcp.yaml`` (``ray up``)
and ``cluster/kuberay/`` (``kubectl apply``) describe them; see ``cluster/README.md``.

This module imports neither Ray nor MLflow: it drives the ``ray`` CLI and short-lived driver
processes, so ``raysweep --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from raysweep.cluster._nodes import (
    _first_free_port, _make_ray_temp_dir, _node_env, _pick_gcs_port, _ray_start, _save, _wait_for_nodes, _with_node_ids,
    _worker_temp_dir, _write_token,
)  # fmt: skip
from raysweep.cluster._processes import _node_pids, _session_pids, _signal_all, _wait_gone
from raysweep.cluster._state import (
    DEFAULT_DASHBOARD_PORT, LOOPBACK, STATE_FILE_NAME, TOKEN_FILE_NAME, LocalNode, _user_error, default_state_dir,
)  # fmt: skip

# -- what a local cluster is ---------------------------------------------------------------------
@dataclass
class LocalCluster:
    """A running local multi-node Ray cluster started by :func:`start_local_cluster`.

    ``address`` is the GCS address for ``ray.init(address=...)`` / ``raysweep run --address``;
    ``dashboard_url`` is the HTTP address for ``ray job submit --address`` (``None`` when this Ray
    install has no dashboard server, i.e. ``ray`` without the ``[default]`` extra). Every driver
    needs :meth:`env` in its environment: token authentication is on.
    """

    address: str
    dashboard_url: str | None
    token_path: Path
    state_dir: Path
    temp_dir: Path
    cluster_id: str
    head: LocalNode
    workers: list[LocalNode] = field(default_factory=list)

    @property
    def node_count(self) -> int:
        """How many nodes this cluster was started with: the head plus its workers."""
        return 1 + len(self.workers)

    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE_NAME

    @property
    def logs_dir(self) -> Path:
        """Ray's log directory of the head node (worker ``i`` logs under ``temp_dir/w<i>/session_latest/logs``)."""
        return self.temp_dir / "session_latest" / "logs"

    def env(self) -> dict[str, str]:
        """The environment variables a driver needs to connect to this cluster.

        Merge them into the driver's environment. ``RAY_AUTH_TOKEN`` must not be set there: Ray
        prefers it over ``RAY_AUTH_TOKEN_PATH`` (use :meth:`driver_env` to get a whole environment
        with it removed).
        """
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)}

    def driver_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A complete environment for a driver subprocess: ``base`` (default ``os.environ``) plus
        :meth:`env`, without the variables that would point Ray at another cluster or token."""
        env = dict(os.environ if base is None else base)
        for name in ("RAY_AUTH_TOKEN", "RAY_ADDRESS"):
            env.pop(name, None)
        env.update(self.env())
        return env

    def pids(self) -> list[int]:
        """The live processes of this cluster (every node, including Ray's worker processes)."""
        return sorted(pid for node in self._nodes() for pid in _node_pids(node, self))

    def kill_worker(self, index: int) -> list[int]:
        """Kill worker node ``index`` abruptly (SIGKILL to its raylet, agents and Ray workers).

        Returns the pids it killed. Ray's GCS marks the node dead once its health checks fail,
        which takes about 15 s with Ray's default settings.
        """
        if not 0 <= index < len(self.workers):
            raise _user_error(
                f"worker index {index} is out of range: this cluster has workers 0..{len(self.workers) - 1}; "
                "pass one of those"
            )
        pids = _node_pids(self.workers[index], self)
        _signal_all(pids, signal.SIGKILL)
        _wait_gone(pids, timeout_s=10.0)
        return pids

    def stop(self) -> bool:
        """Stop this cluster; same as ``stop_local_cluster(self.state_dir)``."""
        return stop_local_cluster(self.state_dir)

    def _nodes(self) -> list[LocalNode]:
        return [*self.workers, self.head]

    def to_dict(self) -> dict[str, Any]:
        """The plain-JSON form written to the state file."""
        return {
            "address": self.address,
            "dashboard_url": self.dashboard_url,
            "token_path": str(self.token_path),
            "state_dir": str(self.state_dir),
            "temp_dir": str(self.temp_dir),
            "cluster_id": self.cluster_id,
            "head": asdict(self.head),
            "workers": [asdict(node) for node in self.workers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LocalCluster:
        return cls(
            address=data["address"],
            dashboard_url=data.get("dashboard_url"),
            token_path=Path(data["token_path"]),
            state_dir=Path(data["state_dir"]),
            temp_dir=Path(data["temp_dir"]),
            cluster_id=data["cluster_id"],
            head=LocalNode(**data["head"]),
            workers=[LocalNode(**node) for node in data.get("workers", [])],
        )


def load_local_cluster(state_dir: Path | None = None) -> LocalCluster | None:
    """The local cluster recorded in ``state_dir``, or ``None`` if none is recorded there.

    A recorded cluster may have died since; :meth:`LocalCluster.pids` tells.
    """
    state_path = Path(state_dir or default_state_dir()) / STATE_FILE_NAME
    try:
        data = json.loads(state_path.read_text())
        return LocalCluster.from_dict(data)
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise _user_error(
            f"{state_path}: not a raysweep local-cluster state file ({exc}); "
            "stop any Ray processes it started by hand and delete the file"
        ) from None


# -- start / stop ----------------------------------------------------------------------------------
def start_local_cluster(
    workers: int = 2,
    cpus_per_node: int = 1,
    state_dir: Path | None = None,
    port: int | None = None,
    *,
    head_cpus: int = 0,
    object_store_mb: int = 512,
    timeout_s: float = 90.0,
    starting: Callable[[], None] | None = None,
) -> LocalCluster:
    """Start a Ray cluster of one head and ``workers`` worker nodes on this machine.

    Every node is its own raylet with its own CPUs (``cpus_per_node`` for each worker,
    ``head_cpus`` for the head, which by default only schedules, like a cloud head node). Token
    authentication is on, with a fresh token in ``<state_dir>/local-cluster.token``; drivers need
    :meth:`LocalCluster.env`. The GCS listens on ``port`` (default: the first free port from 6379),
    the dashboard on 127.0.0.1 (first free port from 8265).

    Returns once all ``workers + 1`` nodes are alive. Raises ``UserError`` if a cluster recorded in
    ``state_dir`` is still running, if ``port`` is taken, or if the nodes do not come up within
    ``timeout_s`` (then whatever was started is stopped again and Ray's logs are kept). A
    ``KeyboardInterrupt`` meanwhile stops whatever was started too, and removes its logs.
    ``starting`` is called once the checks passed, as the first node starts.
    """
    if not sys.platform.startswith("linux"):
        raise _user_error(
            f"a local multi-node cluster needs Linux (Ray runs several raylets on one host only there), "
            f"not {sys.platform}; use `raysweep run` without --address for a single-node Ray"
        )
    if workers < 1:
        raise _user_error(f"workers must be >= 1, got {workers}; pass --workers 1 or more")
    if cpus_per_node < 1:
        raise _user_error(f"cpus_per_node must be >= 1, got {cpus_per_node}; pass --cpus-per-node 1 or more")
    if head_cpus < 0:
        raise _user_error(f"head_cpus must be >= 0, got {head_cpus}")
    if object_store_mb < 100:
        raise _user_error(f"object_store_mb must be >= 100 (Ray's minimum object store), got {object_store_mb}")

    state_dir = Path(state_dir or default_state_dir()).expanduser().resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    _refuse_if_running(state_dir)

    gcs_port = _pick_gcs_port(port)
    dashboard_port = _first_free_port(DEFAULT_DASHBOARD_PORT, avoid={gcs_port})
    token_path = state_dir / TOKEN_FILE_NAME
    temp_dir: Path | None = None
    cluster_id = uuid.uuid4().hex
    address = f"{LOOPBACK}:{gcs_port}"

    common = [
        "--node-ip-address", LOOPBACK,
        "--object-store-memory", str(object_store_mb * 1024 * 1024),
        # Port 0 lets each raylet's workers and agents bind free ports: with the fixed defaults
        # (worker ports 10002-19999, agent port 52365) several raylets on one host collide.
        "--min-worker-port", "0",
        "--max-worker-port", "0",
        "--dashboard-agent-listen-port", "0",
        "--disable-usage-stats",
    ]  # fmt: skip
    head_args = [
        "--head",
        "--port", str(gcs_port),
        "--dashboard-host", LOOPBACK,
        "--dashboard-port", str(dashboard_port),
        "--num-cpus", str(head_cpus),
        *common,
    ]  # fmt: skip
    if find_spec("grpc") is not None:
        # With ray[client] installed, `ray start --head` also opens a Ray Client server on 10001,
        # which another Ray instance on this machine may already hold.
        head_args += ["--ray-client-server-port", str(_first_free_port(10001, avoid={gcs_port, dashboard_port}))]

    if starting is not None:
        starting()
    cluster: LocalCluster | None = None
    try:
        _write_token(token_path)
        temp_dir = _make_ray_temp_dir()
        node_env = _node_env(token_path, cluster_id)
        head_args += ["--temp-dir", str(temp_dir)]
        head = _ray_start(head_args, node_env, temp_dir, role="head", index=-1, num_cpus=head_cpus, timeout_s=timeout_s)
        cluster = LocalCluster(
            address=address,
            dashboard_url=None,
            token_path=token_path,
            state_dir=state_dir,
            temp_dir=temp_dir,
            cluster_id=cluster_id,
            head=head,
        )
        # Record the head before anything else can fail, so that `down` can always clean up.
        _save(cluster)
        # One at a time: `ray start` returns once its raylet is registered, so a node that does not
        # come up is named in the error. Each worker has its own Ray temp dir (see _worker_temp_dir)
        # and so its own sockets, logs and log monitor, which streams its output to the drivers.
        for index in range(workers):
            worker_args = [
                "--address", address,
                "--temp-dir", str(_worker_temp_dir(temp_dir, index)),
                "--num-cpus", str(cpus_per_node),
                *common,
            ]  # fmt: skip
            cluster.workers.append(
                _ray_start(worker_args, node_env, temp_dir, role="worker", index=index, num_cpus=cpus_per_node, timeout_s=timeout_s)
            )
            _save(cluster)
        status = _wait_for_nodes(cluster, cluster.node_count, timeout_s, dashboard_port)
        cluster = _with_node_ids(cluster)
        if status["dashboard"]:
            cluster.dashboard_url = f"http://{LOOPBACK}:{dashboard_port}"
        _save(cluster)
        return cluster
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)  # nothing to look into: no logs kept
        with _uninterrupted():  # a second Ctrl-C would leave half of it running, recorded nowhere
            if cluster is not None:
                _stop(cluster, keep_logs=not interrupted)
            else:
                token_path.unlink(missing_ok=True)
            if interrupted and temp_dir is not None:
                # A node whose `ray start` was being launched as the interrupt came is recorded
                # nowhere: every process of this cluster goes, whatever its session.
                _signal_all(_session_pids(None, cluster_id, temp_dir), signal.SIGKILL)
                shutil.rmtree(temp_dir, ignore_errors=True)
        raise


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ctrl-C and SIGTERM held off (on the main thread) while what was started is stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def stop_local_cluster(state_dir: Path | None = None, *, grace_period_s: float = 3.0) -> bool:
    """Stop the local cluster recorded in ``state_dir`` and forget it.

    Only that cluster's processes are signalled (SIGTERM, then SIGKILL after ``grace_period_s``);
    other Ray instances on this machine are left alone. Also removes its token and Ray temp dir.
    Returns ``False`` if no cluster was recorded there.
    """
    cluster = load_local_cluster(state_dir)
    if cluster is None:
        return False
    _stop(cluster, keep_logs=False, grace_period_s=grace_period_s)
    return True


def _stop(cluster: LocalCluster, *, keep_logs: bool, grace_period_s: float = 3.0) -> None:
    # Workers first, so their raylets do not spend the grace period reconnecting to a dead GCS.
    for nodes in (cluster.workers, [cluster.head]):
        pids = [pid for node in nodes for pid in _node_pids(node, cluster)]
        _signal_all(pids, signal.SIGTERM)
        left = _wait_gone(pids, timeout_s=grace_period_s)
        _signal_all(left, signal.SIGKILL)
        _wait_gone(left, timeout_s=10.0)
    cluster.state_path.unlink(missing_ok=True)
    cluster.token_path.unlink(missing_ok=True)
    if not keep_logs:
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)


def _refuse_if_running(state_dir: Path) -> None:
    previous = load_local_cluster(state_dir)
    if previous is None:
        return
    if previous.pids():
        down = "raysweep cluster down --local" + ("" if state_dir == default_state_dir().resolve() else f" --state-dir {state_dir}")
        raise _user_error(
            f"a local cluster is already running at {previous.address} (recorded in {previous.state_path}); "
            f"stop it first with `{down}`"
        )
    # Recorded but dead (e.g. after a reboot): forget it.
    _stop(previous, keep_logs=False, grace_period_s=0.0)
