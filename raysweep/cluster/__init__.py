"""Where sweeps run: a real multi-node Ray cluster on this machine, started and stopped by raysweep.

Cloud clusters are not started from here: ``cluster/aws.yaml``, ``cluster/gcp.yaml`` (``ray up``)
and ``cluster/kuberay/`` (``kubectl apply``) describe them; see ``cluster/README.md``.
"""

from raysweep.cluster._state import LOOPBACK, LocalNode, default_state_dir
from raysweep.cluster.local import LocalCluster, load_local_cluster, start_local_cluster, stop_local_cluster

__all__ = [
    "LOOPBACK", "LocalCluster", "LocalNode", "default_state_dir", "load_local_cluster", "start_local_cluster",
    "stop_local_cluster",
]
