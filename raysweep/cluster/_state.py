"""What a local cluster is made of: its nodes, where its state lives, the names and limits its pieces share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def default_state_dir() -> Path:
    """Where the local cluster's state file and token live unless told otherwise: ``~/.raysweep``."""
    return Path.home() / ".raysweep"


def cloud_configs_dir() -> Path:
    """Where the cloud clusters' files are (``aws.yaml``, ``gcp.yaml``, ``kuberay/``, their
    README): inside the installed wheel, or the checkout's ``cluster/``."""
    packaged = Path(__file__).resolve().parent / "configs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "cluster"


def shown_path(path: Path) -> str:
    """``path`` as a user here types it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _user_error(message: str) -> Exception:
    # Imported here, not at the top: raysweep.errors belongs to the core package, and importing
    # this module must never fail because of it.
    from raysweep.errors import UserError

    return UserError(message)
