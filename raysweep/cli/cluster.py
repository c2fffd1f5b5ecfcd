"""``raysweep cluster up|down --local``: a multi-node Ray cluster on this machine, with token auth."""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

import click

from raysweep.cli._group import RaysweepGroup
from raysweep.cluster import LocalCluster, default_state_dir, load_local_cluster, start_local_cluster, stop_local_cluster
from raysweep.cluster._state import cloud_configs_dir, shown_path
from raysweep.errors import UserError

def _up_hint() -> str:
    configs = shown_path(cloud_configs_dir())
    return (
        "raysweep starts only a local cluster (add --local); for a cloud cluster run "
        f"`ray up {configs}/aws.yaml`, `ray up {configs}/gcp.yaml` or `kubectl apply -f {configs}/kuberay/raycluster.yaml` "
        f"and pass its address to `raysweep run --address` (see {configs}/README.md)"
    )


def _down_hint() -> str:
    configs = shown_path(cloud_configs_dir())
    return (
        "raysweep stops only a local cluster (add --local); stop a cloud cluster with "
        f"`ray down {configs}/aws.yaml`, `ray down {configs}/gcp.yaml` or `kubectl delete -f {configs}/kuberay/raycluster.yaml`"
    )

_state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the local cluster's state file and token live (default: ~/.raysweep).",
)


@click.group("cluster", cls=RaysweepGroup)
def cluster_group() -> None:
    """Start and stop a Ray cluster to run sweeps on.

    \b
    raysweep cluster up --local --workers 2     # a real multi-node Ray cluster on this machine
    raysweep cluster status --local
    raysweep cluster down --local
    Cloud clusters: aws.yaml, gcp.yaml (ray up) and kuberay/ (kubectl), installed with raysweep;
    `raysweep cluster up` without --local says where.
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
        raise UserError(_up_hint())

    def starting() -> None:
        click.echo(f"starting a local Ray cluster: a head and {workers} worker node(s)...", err=True)

    with _sigterm_as_ctrl_c():
        try:
            cluster = start_local_cluster(workers, cpus_per_node, state_dir, port, head_cpus=head_cpus, starting=starting)
        except KeyboardInterrupt:
            click.echo("raysweep: interrupted: the nodes started so far are stopped; nothing is left running", err=True)
            click.get_current_context().exit(130)
    click.echo(_describe(cluster, custom_state_dir=state_dir is not None))


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (``kill``, ``timeout``) while the nodes start stops them as Ctrl-C does: without it
    the command died at once and left the nodes it had started running, recorded nowhere."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


@cluster_group.command("status")
@click.option("--local", is_flag=True, help="The cluster `up --local` started (the only kind raysweep starts).")
@_state_dir_option
def status(local: bool, state_dir: Path | None) -> None:
    """Say whether the cluster `raysweep cluster up` started runs, node by node, and how to use it."""
    from raysweep.cluster._processes import _node_pids

    if not local:
        raise UserError("raysweep knows only the local cluster it started (add --local); for another cluster run `ray status --address HOST:PORT`")
    cluster = load_local_cluster(state_dir)
    where = Path(state_dir or default_state_dir())
    state_flag = f" --state-dir {shlex.quote(str(where.expanduser().resolve()))}" if state_dir is not None else ""
    if cluster is None:
        click.echo(f"no local cluster is recorded in {where}; start one with: raysweep cluster up --local{state_flag}")
        click.get_current_context().exit(1)
    nodes = [("head", cluster.head), *((f"worker {node.index}", node) for node in cluster.workers)]
    running = {name: bool(_node_pids(node, cluster)) for name, node in nodes}
    if not any(running.values()):
        click.echo(
            f"the local cluster recorded at {cluster.address} is not running (its processes are gone); "
            f"forget it with: raysweep cluster down --local{state_flag}"
        )
        click.get_current_context().exit(1)
    click.echo(f"local Ray cluster at {cluster.address}: " + ", ".join(f"{name} {'up' if up else 'down'}" for name, up in running.items()))
    if not running["head"]:
        click.echo(f"its head is down: sweeps cannot join it; stop the rest with: raysweep cluster down --local{state_flag}")
        click.get_current_context().exit(1)
    click.echo(_describe(cluster, custom_state_dir=state_dir is not None).split("\n", 1)[1])


@cluster_group.command("down")
@click.option("--local", is_flag=True, help="Stop the cluster `up --local` started.")
@_state_dir_option
def down(local: bool, state_dir: Path | None) -> None:
    """Stop the cluster `raysweep cluster up` started."""
    if not local:
        raise UserError(_down_hint())
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
        # A job's driver runs in Ray's copy of the working dir, which `down` deletes: the store and
        # the sweep's state stay in this folder, where report, ui and resume look.
        here = Path.cwd()
        lines.append(
            f"  {token_env}ray job submit --address {cluster.dashboard_url} --working-dir . -- raysweep run mlp --dataset breast_cancer "
            + shlex.join(["--tracking-uri", f"sqlite:///{here / 'mlflow.db'}", "--storage", str(here / "raysweep_results")])
        )
    lines += ["stop it with:", f"  raysweep cluster down --local{state_flag}"]
    return "\n".join(lines)

