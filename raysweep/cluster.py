"""Where sweeps run: a real multi-node Ray cluster on this machine, and the ``raysweep cluster`` commands.

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
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Mapping

import click

__all__ = [
    "LocalCluster",
    "LocalNode",
    "cluster_group",
    "default_state_dir",
    "load_local_cluster",
    "start_local_cluster",
    "stop_local_cluster",
]

STATE_FILE_NAME = "local-cluster.json"
TOKEN_FILE_NAME = "local-cluster.token"
DEFAULT_GCS_PORT = 6379
DEFAULT_DASHBOARD_PORT = 8265
LOOPBACK = "127.0.0.1"

# Every process of a local cluster is started with this variable. Together with the cluster's own
# Ray temp dir on the command line it is how `stop` and `kill_worker` tell the cluster's processes
# from strangers that happen to reuse a recorded session id (e.g. after a reboot).
_MARKER_ENV = "RAYSWEEP_LOCAL_CLUSTER_ID"

# Ray keeps Unix sockets under <temp dir>/session_<date>_<pid>/sockets/, and a socket path must fit
# in 107 bytes, so the temp dir itself must stay short: never under a long pytest tmp_path.
_MAX_TEMP_DIR_CHARS = 40

_UP_HINT = (
    "raysweep starts only a local cluster (add --local); for a cloud cluster run "
    "`ray up cluster/aws.yaml`, `ray up cluster/gcp.yaml` or `kubectl apply -f cluster/kuberay/raycluster.yaml` "
    "and pass its address to `raysweep run --address` (see cluster/README.md)"
)
_DOWN_HINT = (
    "raysweep stops only a local cluster (add --local); stop a cloud cluster with "
    "`ray down cluster/aws.yaml`, `ray down cluster/gcp.yaml` or `kubectl delete -f cluster/kuberay/raycluster.yaml`"
)


def _user_error(message: str) -> Exception:
    # Imported here, not at the top: raysweep.errors belongs to the core package, and importing
    # this module must never fail because of it.
    from raysweep.errors import UserError

    return UserError(message)


# -- what a local cluster is ---------------------------------------------------------------------
@dataclass(frozen=True)
class LocalNode:
    """One Ray node of a local cluster: a ``ray start`` and every process it left running."""

    role: str
    """``"head"`` or ``"worker"``."""
    index: int
    """The worker's position (0-based); ``-1`` for the head."""
    session_id: int
    """The POSIX session all of this node's processes run in (raylet, GCS, agents, Ray workers)."""
    num_cpus: int
    node_id: str | None = None
    """Ray's node id (hex), known once the node has registered."""
    log_path: str | None = None
    """What ``ray start`` printed for this node."""


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


def default_state_dir() -> Path:
    """Where the local cluster's state file and token live unless told otherwise: ``~/.raysweep``."""
    return Path.home() / ".raysweep"


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
) -> LocalCluster:
    """Start a Ray cluster of one head and ``workers`` worker nodes on this machine.

    Every node is its own raylet with its own CPUs (``cpus_per_node`` for each worker,
    ``head_cpus`` for the head, which by default only schedules, like a cloud head node). Token
    authentication is on, with a fresh token in ``<state_dir>/local-cluster.token``; drivers need
    :meth:`LocalCluster.env`. The GCS listens on ``port`` (default: the first free port from 6379),
    the dashboard on 127.0.0.1 (first free port from 8265).

    Returns once all ``workers + 1`` nodes are alive. Raises ``UserError`` if a cluster recorded in
    ``state_dir`` is still running, if ``port`` is taken, or if the nodes do not come up within
    ``timeout_s`` (then whatever was started is stopped again and Ray's logs are kept).
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
    token_path = _write_token(state_dir / TOKEN_FILE_NAME)
    temp_dir = _make_ray_temp_dir()
    cluster_id = uuid.uuid4().hex
    node_env = _node_env(token_path, cluster_id)
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
        "--temp-dir", str(temp_dir),
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

    cluster: LocalCluster | None = None
    try:
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
    except BaseException:
        if cluster is not None:
            _stop(cluster, keep_logs=True)
        else:
            token_path.unlink(missing_ok=True)
        raise


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


# -- pieces of start -------------------------------------------------------------------------------
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


def _pick_gcs_port(port: int | None) -> int:
    if port is None:
        return _first_free_port(DEFAULT_GCS_PORT)
    if not 1024 <= port <= 65535:
        raise _user_error(f"port must be between 1024 and 65535, got {port}; pass another --port")
    if not _port_is_free(port):
        raise _user_error(f"port {port} is already in use on this machine; pass another --port or omit it")
    return port


def _port_is_free(port: int) -> bool:
    # Bind like the servers will (all interfaces, SO_REUSEADDR): a port only in TIME_WAIT counts
    # as free, one with a listener does not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


def _first_free_port(start: int, avoid: set[int] | None = None) -> int:
    for candidate in range(start, start + 200):
        if candidate not in (avoid or set()) and _port_is_free(candidate):
            return candidate
    raise _user_error(f"no free port in {start}..{start + 199} on this machine; free one or pass --port")


def _write_token(path: Path) -> Path:
    # The same kind of token `ray get-auth-token --generate` makes: 256 random bits, hex.
    token = secrets.token_hex(32)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    return path


def _make_ray_temp_dir() -> Path:
    base = tempfile.gettempdir()
    # The longest temp dir is a worker's, <base>/raysweep-ray-XXXXXXXX/w<index>.
    if len(base) + len("/raysweep-ray-12345678/w99") > _MAX_TEMP_DIR_CHARS:
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="raysweep-ray-", dir=base))


def _worker_temp_dir(temp_dir: Path, index: int) -> Path:
    """Worker ``index``'s own Ray temp dir, inside the cluster's.

    Every node needs its own: Ray keeps a session's runtime environments (a job's
    ``--working-dir``, unpacked) under ``<temp dir>/session_*/runtime_resources``, and each
    node's runtime-env agent deletes and re-unpacks what it finds there without knowing that
    another node on the same host uses it. With one shared temp dir, the worker nodes' agents
    delete the working dir a ``ray job submit`` driver on the head runs in (its cwd vanishes:
    ``FileNotFoundError`` from ``os.getcwd()``). Inside the cluster's temp dir, so that the
    processes are still told apart by it and ``stop`` removes it; short, for Ray's socket paths.
    """
    return temp_dir / f"w{index}"


def _node_env(token_path: Path, cluster_id: str) -> dict[str, str]:
    env = dict(os.environ)
    # RAY_AUTH_TOKEN would win over our token file; RAY_ADDRESS would point `ray start` elsewhere.
    for name in ("RAY_AUTH_TOKEN", "RAY_ADDRESS"):
        env.pop(name, None)
    env.update(
        {
            # Every node must run in token mode itself: a raylet without it does not send the token
            # and the GCS turns it away (InvalidAuthToken).
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token_path),
            _MARKER_ENV: cluster_id,
        }
    )
    return env


def _ray_cli() -> list[str]:
    # The Ray CLI of this very interpreter, whatever `ray` happens to be first on PATH.
    return [sys.executable, "-m", "ray.scripts.scripts"]


def _ray_start(
    args: list[str], env: dict[str, str], temp_dir: Path, *, role: str, index: int, num_cpus: int, timeout_s: float
) -> LocalNode:
    """Run one ``ray start``; the node it started, or ``UserError`` (with nothing of it left running)."""
    log_path = temp_dir / (f"raysweep-{role}.log" if index < 0 else f"raysweep-{role}-{index}.log")
    with open(log_path, "wb") as log:
        # A new session per node: every process `ray start` leaves behind (GCS, raylet, agents, and
        # the Ray workers the raylet forks later) stays in it, which is how stop and kill_worker
        # find exactly this node's processes.
        proc = subprocess.Popen(
            [*_ray_cli(), "start", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        node = LocalNode(role=role, index=index, session_id=proc.pid, num_cpus=num_cpus, log_path=str(log_path))
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            returncode = None
    if returncode != 0:
        what = "head" if role == "head" else f"worker {index}"
        outcome = f"timed out after {timeout_s:g}s" if returncode is None else f"failed (exit {returncode})"
        # Stop this node's leftovers too; the caller stops the nodes recorded before it.
        _signal_all(_session_pids(node.session_id, env[_MARKER_ENV], temp_dir), signal.SIGKILL)
        raise _user_error(f"`ray start` for the {what} {outcome}: {_last_line(log_path)}; full output in {log_path}")
    return node


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no output)"
    return lines[-1][:300] if lines else "(no output)"


_WAIT_FOR_NODES = r"""
import json, socket, sys, time
import ray

address, count, timeout_s, dashboard_port = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
ray.init(address=address, logging_level="ERROR", log_to_driver=False)
deadline = time.monotonic() + timeout_s
while True:
    alive = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    if len(alive) >= count or time.monotonic() > deadline:
        break
    time.sleep(0.5)
try:
    import ray.dashboard.optional_deps  # what Ray itself checks before serving the dashboard
    dashboard = True
except ImportError:
    dashboard = False
while dashboard:
    try:
        socket.create_connection(("127.0.0.1", dashboard_port), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            dashboard = False
        time.sleep(0.5)
print(json.dumps({"alive": alive, "dashboard": dashboard}))
"""


def _wait_for_nodes(cluster: LocalCluster, count: int, timeout_s: float, dashboard_port: int) -> dict[str, Any]:
    """Wait until ``count`` nodes are alive, as seen by a driver connecting with the token.

    Also reports whether the dashboard serves HTTP on ``dashboard_port`` (it does not on a
    minimal Ray install).
    """
    try:
        done = subprocess.run(
            [sys.executable, "-c", _WAIT_FOR_NODES, cluster.address, str(count), str(timeout_s), str(dashboard_port)],
            env=cluster.driver_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s + 60,
        )
    except subprocess.TimeoutExpired:
        raise _user_error(
            f"no driver could connect to the local cluster at {cluster.address} within {timeout_s + 60:g}s; "
            f"see Ray's logs in {cluster.logs_dir}"
        ) from None
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise _user_error(
            f"a driver could not connect to the local cluster at {cluster.address}: {last[0][:300]}; "
            f"see Ray's logs in {cluster.logs_dir}"
        )
    status = json.loads(done.stdout.strip().splitlines()[-1])
    if len(status["alive"]) < count:
        raise _user_error(
            f"only {len(status['alive'])} of {count} Ray nodes came up within {timeout_s:g}s; "
            f"see Ray's logs in {cluster.logs_dir}"
        )
    return status


def _with_node_ids(cluster: LocalCluster) -> LocalCluster:
    # Each raylet carries its node id on its command line (Ray's own `find_node_ids` reads it there).
    def node_id_of(node: LocalNode) -> str | None:
        for pid in _node_pids(node, cluster):
            for arg in _cmdline(pid):
                if arg.startswith("--node_id="):
                    return arg.split("=", 1)[1]
        return None

    cluster.head = replace(cluster.head, node_id=node_id_of(cluster.head))
    cluster.workers = [replace(node, node_id=node_id_of(node)) for node in cluster.workers]
    return cluster


def _save(cluster: LocalCluster) -> None:
    # Write-then-rename: a crash mid-write must not leave a half state file that hides the cluster.
    tmp = cluster.state_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cluster.to_dict(), indent=2) + "\n")
    tmp.replace(cluster.state_path)


# -- processes ---------------------------------------------------------------------------------------
def _node_pids(node: LocalNode, cluster: LocalCluster) -> list[int]:
    return _session_pids(node.session_id, cluster.cluster_id, cluster.temp_dir)


def _session_pids(session_id: int, cluster_id: str, temp_dir: Path) -> list[int]:
    """Live (non-zombie) processes of session ``session_id`` that belong to cluster ``cluster_id``.

    A process belongs if it carries the cluster's marker variable, names the cluster's own Ray temp
    dir on its command line (GCS, raylet, dashboard, monitors all do), or descends from one that
    does: Ray's agents and workers rename themselves, which can overwrite the environment block
    /proc shows, so neither test alone finds them.
    """
    marker = f"{_MARKER_ENV}={cluster_id}".encode()
    temp = str(temp_dir).encode()
    parents: dict[int, int] = {}
    ours: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            # The command name (field 2) may contain spaces and parentheses; the rest follows the last ')'.
            state, ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
            if int(session) != session_id or state in ("Z", "X"):
                continue
            parents[pid] = int(ppid)
            if temp in Path(f"/proc/{pid}/cmdline").read_bytes() or marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                ours.add(pid)
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    grew = True
    while grew:
        descendants = {pid for pid, ppid in parents.items() if ppid in ours} - ours
        ours |= descendants
        grew = bool(descendants)
    return sorted(ours)


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _is_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Wait until none of ``pids`` is alive; return those still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    left = [pid for pid in pids if _is_alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [pid for pid in left if _is_alive(pid)]
    return left


# -- the `raysweep cluster` commands ------------------------------------------------------------------
class _ClusterGroup(click.Group):
    """Prints raysweep's user errors as one line and exits 2, also when used on its own."""

    def invoke(self, ctx: click.Context) -> Any:
        from raysweep.errors import UserError

        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(getattr(exc, "exit_code", 2))


_state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the local cluster's state file and token live (default: ~/.raysweep).",
)


@click.group("cluster", cls=_ClusterGroup)
def cluster_group() -> None:
    """Start and stop a Ray cluster to run sweeps on.

    \b
    raysweep cluster up --local --workers 2     # a real multi-node Ray cluster on this machine
    raysweep cluster down --local
    Cloud clusters: cluster/aws.yaml, cluster/gcp.yaml (ray up), cluster/kuberay/ (kubectl).
    """


@cluster_group.command("up")
@click.option("--local", is_flag=True, help="Start the cluster on this machine (the only kind raysweep starts itself).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Worker nodes besides the head.")
@click.option("--cpus-per-node", type=click.IntRange(min=1), default=1, show_default=True, help="CPUs each worker node offers.")
@click.option("--head-cpus", type=click.IntRange(min=0), default=0, show_default=True, help="CPUs the head offers (0: it only schedules).")
@click.option("--port", type=click.IntRange(1024, 65535), help="GCS port (default: the first free one from 6379).")
@_state_dir_option
def up(local: bool, workers: int, cpus_per_node: int, head_cpus: int, port: int | None, state_dir: Path | None) -> None:
    """Start a Ray cluster and print how to use it."""
    if not local:
        raise _user_error(_UP_HINT)
    click.echo(f"starting a local Ray cluster: a head and {workers} worker node(s)...", err=True)
    cluster = start_local_cluster(workers, cpus_per_node, state_dir, port, head_cpus=head_cpus)
    click.echo(_describe(cluster, custom_state_dir=state_dir is not None))


@cluster_group.command("down")
@click.option("--local", is_flag=True, help="Stop the cluster `up --local` started.")
@_state_dir_option
def down(local: bool, state_dir: Path | None) -> None:
    """Stop the cluster `raysweep cluster up` started."""
    if not local:
        raise _user_error(_DOWN_HINT)
    cluster = load_local_cluster(state_dir)
    if cluster is None or not stop_local_cluster(state_dir):
        click.echo(f"no local cluster is recorded in {Path(state_dir or default_state_dir())}; nothing to stop")
        return
    click.echo(f"stopped the local Ray cluster at {cluster.address}")


#: What of a local cluster Ray cannot be told to bind to loopback: ``ray start`` turns a
#: ``--node-ip-address`` of 127.0.0.1 into the machine's own address, and its gRPC servers and
#: agents then listen on every interface. Only the dashboard takes a host (``--dashboard-host``).
EXPOSED = (
    "the dashboard listens on 127.0.0.1 only; Ray's GCS, raylets, Ray Client server and agents listen on "
    "every interface (Ray offers no loopback-only setting for them): the token protects them"
)

_NO_DASHBOARD = 'none: no dashboard serves HTTP (it needs pip install "ray[default]"; so does `ray job submit`)'


def _describe(cluster: LocalCluster, *, custom_state_dir: bool) -> str:
    state_flag = f" --state-dir {cluster.state_dir}" if custom_state_dir else ""
    cpus = ", ".join(f"{n.num_cpus}" for n in cluster.workers)
    lines = [
        f"local Ray cluster up: {cluster.node_count} nodes (head with {cluster.head.num_cpus} CPU, "
        f"workers with {cpus} CPU), token authentication on",
        f"  address:   {cluster.address}",
        f"  dashboard: {cluster.dashboard_url or _NO_DASHBOARD}",
        f"  token:     {cluster.token_path}",
        f"  logs:      {cluster.logs_dir}",
        f"  network:   {EXPOSED}",
        "",
    ]
    if custom_state_dir:
        # raysweep finds the token by itself only in the default state dir.
        lines += [
            "every driver needs the token; in your shell:",
            f"  export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={cluster.token_path}",
            "  unset RAY_AUTH_TOKEN",
            "then:",
        ]
    else:
        lines.append(f"raysweep sends the token to {cluster.address} by itself (and to no other address):")
    lines += [
        f"  raysweep run xgboost --dataset breast_cancer --address {cluster.address}",
    ]
    if cluster.dashboard_url:
        # Ray's own CLI needs the token given; inline, so that nothing stale stays in the shell.
        token_env = "" if custom_state_dir else f"RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={cluster.token_path} "
        lines.append(
            f"  {token_env}ray job submit --address {cluster.dashboard_url} --working-dir . -- raysweep run mlp --dataset breast_cancer"
        )
    lines += ["stop it with:", f"  raysweep cluster down --local{state_flag}"]
    return "\n".join(lines)


if __name__ == "__main__":
    cluster_group()
