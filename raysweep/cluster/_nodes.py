"""The pieces of starting a local cluster: ports, the token, temp dirs, `ray start`, waiting for the nodes."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from raysweep.cluster._processes import _cmdline, _node_pids, _session_pids, _signal_all
from raysweep.cluster._state import _MARKER_ENV, _MAX_TEMP_DIR_CHARS, DEFAULT_GCS_PORT, LocalNode, _user_error

# -- pieces of start -------------------------------------------------------------------------------
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


#: Ray's settings for every Ray that raysweep starts (a sweep's embedded Ray, each node of
#: ``raysweep cluster up --local``). A raylet connects to the object store it has just started on a
#: thread of its own; when the store's socket is not there yet it tries again after
#: ``raylet_client_connect_timeout_milliseconds`` (1000 by default, 10 tries). In Ray 2.60 that
#: race was lost in 9 of 21 cold ``ray.init`` calls here: the start then takes a second longer
#: (3.3 s against 2.3 s; the raylet's log has the second between "Plasma store debug dump" and
#: "ObjectManager server started"). A try every 100 ms, 100 of them, keeps Ray's 10 s before it
#: gives up.
RAY_START_CONFIG = {"raylet_client_connect_timeout_milliseconds": 100, "raylet_client_num_connect_attempts": 100}


def ray_start_config() -> dict[str, int]:
    """:data:`RAY_START_CONFIG` without the settings given in the environment (``RAY_<name>``): those win."""
    return {name: value for name, value in RAY_START_CONFIG.items() if f"RAY_{name}" not in os.environ}


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
    # How a raylet started by `ray start` reads them.
    env.update({f"RAY_{name}": str(value) for name, value in ray_start_config().items()})
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
        except BaseException:  # Ctrl-C or SIGTERM while the node starts: what it started so far goes too
            proc.kill()
            proc.wait()
            _signal_all(_session_pids(node.session_id, env[_MARKER_ENV], temp_dir), signal.SIGKILL)
            raise
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


def _wait_for_nodes(cluster: Any, count: int, timeout_s: float, dashboard_port: int) -> dict[str, Any]:
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


def _with_node_ids(cluster: Any) -> Any:
    # Each raylet carries its node id on its command line (Ray's own `find_node_ids` reads it there).
    def node_id_of(node: Any) -> str | None:
        for pid in _node_pids(node, cluster):
            for arg in _cmdline(pid):
                if arg.startswith("--node_id="):
                    return arg.split("=", 1)[1]
        return None

    cluster.head = replace(cluster.head, node_id=node_id_of(cluster.head))
    cluster.workers = [replace(node, node_id=node_id_of(node)) for node in cluster.workers]
    return cluster


def _save(cluster: Any) -> None:
    # Write-then-rename: a crash mid-write must not leave a half state file that hides the cluster.
    tmp = cluster.state_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cluster.to_dict(), indent=2) + "\n")
    tmp.replace(cluster.state_path)
