"""A real multi-node Ray cluster on this machine, as `raysweep cluster up --local` starts it.

Every check goes through a separate driver process, as a user's `raysweep run --address` would:
this test process never calls ray.init(), and the clusters here use their own ports, temp dirs
and state dirs, so a Ray instance the rest of the suite shares is left alone (one test checks
exactly that).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raysweep.cluster import LocalCluster, load_local_cluster, start_local_cluster, stop_local_cluster
from raysweep.errors import UserError

pytestmark = pytest.mark.cluster

# A driver as a user would run one: connect with the given environment, report what it sees.
DRIVER = r"""
import json, sys, time
import ray

address, expect, timeout_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ray.init(address=address, logging_level="ERROR", log_to_driver=False)

def alive():
    return sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])

deadline = time.monotonic() + timeout_s
while len(alive()) != expect and time.monotonic() < deadline:
    time.sleep(0.5)
report = {"alive": alive()}

if "--tasks" in sys.argv:
    @ray.remote(num_cpus=1, scheduling_strategy="SPREAD")
    def where(i):
        time.sleep(0.3)
        return ray.get_runtime_context().get_node_id()

    report["task_nodes"] = ray.get([where.remote(i) for i in range(6)], timeout=60)
print(json.dumps(report))
"""

# Another Ray instance on the same machine, like the suite's shared local ray.init(): it must
# survive everything done to the local cluster.
BYSTANDER = r"""
import sys
import ray

ray.init(num_cpus=1, include_dashboard=False, _temp_dir=sys.argv[1], logging_level="ERROR", log_to_driver=False)

@ray.remote
def square(x):
    return x * x

print("ready", flush=True)
for line in sys.stdin:
    print(ray.get(square.remote(int(line)), timeout=30), flush=True)
"""


def run_driver(
    address: str, env: dict[str, str], *, expect: int, timeout_s: float = 5.0, tasks: bool = False
) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-c", DRIVER, address, str(expect), str(timeout_s)] + (["--tasks"] if tasks else [])
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout_s + 120)


def report_of(done: subprocess.CompletedProcess[str]) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def env_without_auth(cluster: LocalCluster, home: Path) -> dict[str, str]:
    env = cluster.driver_env()
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN"):
        env.pop(name, None)
    # An empty HOME: no ~/.ray/auth_token from elsewhere can stand in for the cluster's token.
    env["HOME"] = str(home)
    # Ray retries a refused GCS connection for ~20 s by default; the refusal is the same after 3.
    env["RAY_NUM_REDIS_GET_RETRIES"] = "3"
    return env


def live(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and live([int(entry.name)]):
                found.append(f"{entry.name}: {cmdline[:200]}")
    return found


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    state_dir = tmp_path_factory.mktemp("local-cluster-state")
    # Registered before starting: whatever happens from here on, the cluster is stopped.
    request.addfinalizer(lambda: stop_local_cluster(state_dir, grace_period_s=1.0))
    started = time.monotonic()
    cluster = start_local_cluster(workers=2, cpus_per_node=1, state_dir=state_dir)
    print(f"local cluster up in {time.monotonic() - started:.1f}s at {cluster.address}")
    yield cluster


def test_a_driver_with_the_token_sees_every_node_alive(cluster: LocalCluster) -> None:
    report = report_of(run_driver(cluster.address, cluster.driver_env(), expect=3))

    assert cluster.node_count == 3
    assert len(report["alive"]) == 3
    assert set(report["alive"]) == {cluster.head.node_id, *(w.node_id for w in cluster.workers)}
    assert cluster.address.startswith("127.0.0.1:")
    assert load_local_cluster(cluster.state_dir) == cluster


def test_a_driver_without_the_token_is_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    env = env_without_auth(cluster, tmp_path)

    done = run_driver(cluster.address, env, expect=3)

    assert done.returncode != 0
    assert re.search(r"InvalidAuthToken|[Aa]uthentication token", done.stderr), done.stderr[-2000:]


def test_a_driver_with_a_wrong_token_is_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    env = env_without_auth(cluster, tmp_path)
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64)

    done = run_driver(cluster.address, env, expect=3)

    assert done.returncode != 0
    assert re.search(r"InvalidAuthToken|[Aa]uthentication token", done.stderr), done.stderr[-2000:]


def test_tasks_spread_over_the_worker_nodes(cluster: LocalCluster) -> None:
    report = report_of(run_driver(cluster.address, cluster.driver_env(), expect=3, tasks=True))

    worker_ids = {w.node_id for w in cluster.workers}
    # The head offers no CPUs (like a cloud head node): every task runs on a worker node.
    assert set(report["task_nodes"]) <= worker_ids
    assert len(set(report["task_nodes"])) >= 2


def test_killing_a_worker_leaves_the_rest_running(cluster: LocalCluster) -> None:
    victim, survivor = cluster.workers

    killed = cluster.kill_worker(0)

    assert killed and live(killed) == []
    # The GCS notices the dead raylet after its health checks fail (~15 s by default).
    report = report_of(run_driver(cluster.address, cluster.driver_env(), expect=2, timeout_s=90))
    assert sorted(report["alive"]) == sorted([cluster.head.node_id, survivor.node_id])
    assert victim.node_id not in report["alive"]
    shown = cli("status", "--local", "--state-dir", str(cluster.state_dir))
    assert shown.returncode == 0 and shown.stdout.splitlines()[0] == f"local Ray cluster at {cluster.address}: head up, worker 0 down, worker 1 up"


def test_stop_ends_this_cluster_and_nothing_else(cluster: LocalCluster, tmp_path: Path) -> None:
    bystander_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    bystander_env["HOME"] = str(tmp_path)
    # Ray's socket paths must fit in 107 bytes: a short temp dir, not one under tmp_path.
    bystander_temp = Path(tempfile.mkdtemp(prefix="rs-bystander-", dir="/tmp"))
    bystander = subprocess.Popen(
        [sys.executable, "-c", BYSTANDER, str(bystander_temp)],
        env=bystander_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert bystander.stdout is not None and bystander.stdin is not None
        assert bystander.stdout.readline().strip() == "ready"
        pids = cluster.pids()
        commands = " ".join(" ".join(Path(f"/proc/{pid}/cmdline").read_text().split("\0")) for pid in live(pids))
        assert "gcs_server" in commands and "raylet" in commands

        assert stop_local_cluster(cluster.state_dir) is True

        assert live(pids) == []
        assert cluster.pids() == []
        assert processes_mentioning(str(cluster.temp_dir)) == []
        assert not cluster.state_path.exists() and not cluster.token_path.exists()
        assert stop_local_cluster(cluster.state_dir) is False
        # The other Ray instance still runs tasks.
        bystander.stdin.write("7\n")
        bystander.stdin.flush()
        assert bystander.stdout.readline().strip() == "49"
    finally:
        if bystander.stdin:
            bystander.stdin.close()
        try:
            bystander.wait(timeout=60)
        except subprocess.TimeoutExpired:
            bystander.kill()
        shutil.rmtree(bystander_temp, ignore_errors=True)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"workers": 0}, r"workers must be >= 1, got 0"),
        ({"cpus_per_node": 0}, r"cpus_per_node must be >= 1, got 0"),
        ({"port": 80}, r"port must be between 1024 and 65535, got 80"),
        ({"object_store_mb": 10}, r"object_store_mb must be >= 100"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(arguments: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=message):
        start_local_cluster(state_dir=tmp_path, **arguments)

    assert load_local_cluster(tmp_path) is None
    assert not (tmp_path / "local-cluster.token").exists()


def test_a_taken_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(UserError, match=rf"port {port} is already in use on this machine; pass another --port"):
            start_local_cluster(state_dir=tmp_path, port=port)

    assert load_local_cluster(tmp_path) is None


# -- the `raysweep cluster` commands --------------------------------------------------------------
CLI = [sys.executable, "-c", "from raysweep.cli.cluster import cluster_group; cluster_group()"]


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", ["up", "down"])
def test_without_local_the_commands_point_to_the_cloud_configs(command: str) -> None:
    done = cli(command)

    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    # Each file named is where it says, for a user of the installed package too (the wheel carries
    # them as raysweep/cluster/configs/; the message named cluster/... of the source tree).
    named = re.findall(r"(\S+/(?:aws\.yaml|gcp\.yaml|kuberay/raycluster\.yaml|README\.md))", done.stderr)
    assert {Path(path).name for path in named} >= {"aws.yaml", "gcp.yaml", "raycluster.yaml"}, done.stderr
    assert all(Path(path).is_file() for path in named), done.stderr


def test_cluster_up_and_down_from_the_command_line(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    try:
        up = cli("up", "--local", "--workers", "1", "--state-dir", str(state_dir))
        assert up.returncode == 0, up.stderr[-3000:]

        address = re.search(r"--address (127\.0\.0\.1:\d+)", up.stdout)
        export = re.search(r"export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=(\S+)", up.stdout)
        assert address and export, up.stdout
        assert f"raysweep cluster down --local --state-dir {state_dir.resolve()}" in up.stdout
        if "dashboard: http://" in up.stdout:
            # A job's driver runs in Ray's copy of the working dir, which `down` deletes: the command
            # shown keeps the store and the sweep's state in the folder `up` ran in (they were lost).
            here = Path.cwd()
            assert re.search(
                rf"ray job submit --address http://127\.0\.0\.1:\d+ --working-dir \. -- raysweep run mlp --dataset breast_cancer "
                rf"--tracking-uri {re.escape(f'sqlite:///{here}/mlflow.db')} --storage {re.escape(str(here / 'raysweep_results'))}\n",
                up.stdout,
            ), up.stdout
        # Exactly what the printed instructions tell a user to set is enough to connect.
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_ADDRESS")}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=export.group(1))
        assert len(report_of(run_driver(address.group(1), env, expect=2))["alive"]) == 2

        shown = cli("status", "--local", "--state-dir", str(state_dir))
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[0] == f"local Ray cluster at {address.group(1)}: head up, worker 0 up"
        assert f"--address {address.group(1)}" in shown.stdout and export.group(0) in shown.stdout

        again = cli("up", "--local", "--workers", "1", "--state-dir", str(state_dir))
        assert again.returncode == 2
        assert "already running" in again.stderr and "cluster down --local" in again.stderr

        recorded = load_local_cluster(state_dir)
        assert recorded is not None
        pids = recorded.pids()
        down = cli("down", "--local", "--state-dir", str(state_dir))
        assert down.returncode == 0, down.stderr
        assert f"stopped the local Ray cluster at {address.group(1)}" in down.stdout
        assert live(pids) == []

        nothing = cli("down", "--local", "--state-dir", str(state_dir))
        assert nothing.returncode == 0
        assert "nothing to stop" in nothing.stdout
        gone = cli("status", "--local", "--state-dir", str(state_dir))
        assert (gone.returncode, gone.stdout) == (
            1, f"no local cluster is recorded in {state_dir}; start one with: raysweep cluster up --local --state-dir {state_dir.resolve()}\n"
        )
    finally:
        stop_local_cluster(state_dir, grace_period_s=1.0)


# A driver exactly as `raysweep run --address` / `raysweep resume` connects (raysweep.sweep.connect.connect_ray).
RAYSWEEP_DRIVER = r"""
import json, sys
from raysweep.errors import UserError
from raysweep.sweep.connect import connect_ray
try:
    connect_ray(sys.argv[1], verbose=False)
except UserError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
import ray
print(json.dumps({"alive": sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])}))
"""


@pytest.mark.parametrize(("how", "when"), [("sigterm", "the workers start"), ("ctrl_c", "the head starts")])
def test_an_interrupted_up_stops_what_it_started(how: str, when: str, tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM while `cluster up` started its nodes left them running and recorded
    nowhere (`down` found nothing to stop, the next `up` took another port): they are stopped."""
    import signal

    # The cluster's Ray temp dir goes in here (short enough for Ray's socket paths): its processes name it.
    base = Path(tempfile.mkdtemp(prefix="u", dir="/tmp"))
    state_dir = tmp_path / "state"
    up = subprocess.Popen([*CLI, "up", "--local", "--workers", "2", "--state-dir", str(state_dir)], env={**os.environ, "TMPDIR": str(base)},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        started = (lambda: (state_dir / "local-cluster.json").exists()) if when == "the workers start" else (lambda: processes_mentioning(str(base)))
        while not started() and up.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert up.poll() is None and started(), up.stderr.read() if up.poll() is not None else "not started in 120 s"
        if how == "ctrl_c":
            os.killpg(up.pid, signal.SIGINT)  # a terminal's Ctrl-C: the command's process group
        else:
            up.send_signal(signal.SIGTERM)
        out, err = up.communicate(timeout=120)
        deadline = time.monotonic() + 10
        while processes_mentioning(str(base)) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_mentioning(str(base))
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        stop_local_cluster(state_dir)  # what a failed check left recorded
        for line in processes_mentioning(str(base)):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
    assert up.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "raysweep: interrupted: the nodes started so far are stopped; nothing is left running"
    assert out == "" and left == []
    assert not (state_dir / "local-cluster.json").exists() and not (state_dir / "local-cluster.token").exists()


def listening_sockets(pids: list[int]) -> list[tuple[str, int, str]]:
    """``(local address, port, process name)`` of every TCP socket the processes ``pids`` listen on (``ss -ltnp``)."""
    done = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True)
    found = []
    for line in done.stdout.splitlines():
        fields = line.split()
        local, processes = fields[3], " ".join(fields[5:])
        for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', processes):
            if int(pid) in pids:
                host, _, port = local.rpartition(":")
                found.append((host.strip("[]"), int(port), name))
    return sorted(set(found))


def test_a_cluster_up_in_the_default_state_dir_needs_no_exports(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # A user's new shell: nothing about Ray exported, a home of its own (so ~/.raysweep is fresh).
    shell = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    shell["HOME"] = str(home)

    def driver(address: str, **extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", RAYSWEEP_DRIVER, address], env={**shell, **extra}, capture_output=True, text=True, timeout=300
        )
        return done, time.monotonic() - started

    up = subprocess.run([*CLI, "up", "--local", "--workers", "1"], env=shell, capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        assert "export" not in up.stdout and "raysweep sends the token to" in up.stdout
        cluster = load_local_cluster(home / ".raysweep")
        assert cluster is not None

        # The recorded address: the token goes along, with nothing exported. So under the
        # machine's own address, which Ray gives the head (what `auto`, a Ray job's driver and a
        # sweep's record name): no token went there, and such a sweep could not be resumed.
        from ray._private.services import get_node_ip_address

        port = cluster.address.rsplit(":", 1)[1]
        for address in (cluster.address, f"{get_node_ip_address()}:{port}"):
            done, _ = driver(address)
            assert done.returncode == 0, (address, done.stderr[-3000:])
            assert len(report_of(done)["alive"]) == 2
        # The same cluster reached under another name (or from another home) is not the recorded
        # address: no token is sent, and the refusal is one line within seconds, without Ray's C++ lines.
        for extra in ({}, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}):
            done, elapsed = driver(f"localhost:{port}", **extra, HOME=str(tmp_path))
            assert done.returncode == 2, done.stderr[-3000:]
            assert elapsed < 30
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
            reason = "rejected this driver's auth token" if extra else "the cluster requires an auth token"
            assert reason in done.stderr and "gcs_client" not in done.stderr

        # What listens: the dashboard on loopback only; everything else on all interfaces is
        # what `cluster up` names as such (Ray's GCS, raylets, Ray Client server, agents).
        sockets = listening_sockets(cluster.pids())
        assert sockets
        dashboard_port = int(cluster.dashboard_url.rsplit(":", 1)[1]) if cluster.dashboard_url else None
        for host, port_number, name in sockets:
            if port_number == dashboard_port:
                assert host == "127.0.0.1", sockets
        exposed = {name for host, _, name in sockets if not host.startswith(("127.", "::ffff:127.", "::1"))}
        assert exposed, sockets
        named = ("gcs_server", "raylet", "python", "ray::", "Dashboard", "RuntimeEnv")
        assert all(name.startswith(named) for name in exposed), exposed
        assert "GCS, raylets, Ray Client server and agents listen on every interface" in up.stdout
        assert "the token protects them" in up.stdout
    finally:
        stop_local_cluster(home / ".raysweep", grace_period_s=1.0)
