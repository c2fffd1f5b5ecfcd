"""Suite 3, startup and utilization.

* ``raysweep --help`` and ``raysweep recipes list``: wall time of the installed command, and
  whether either imported ray or mlflow (target: under 0.5 s, neither imported).
* ``raysweep run``: time from invoking the command to the first trial starting (the MLflow child
  run that raysweep opens when Tune starts a trial), in a fresh process with a cold Ray.
* Utilization: the share of two cores' time spent inside training (the trainable's
  ``step_time``) during a budget-bound sweep (target: at least 90%).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import Settings, machine_cpu_seconds, warm_mlflow, worker_env

HEAVY_MODULES = ("ray", "mlflow", "sklearn", "xgboost", "pandas")

#: runs a raysweep command in-process, then prints which heavy modules it imported
_IMPORT_PROBE = """
import json, sys
args, heavy = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
sys.argv = ["raysweep", *args]
from raysweep.cli import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("@@imports " + json.dumps(sorted({m.split(".")[0] for m in sys.modules} & heavy)) + "\\n")
"""


def cells(settings: Settings) -> list[dict[str, Any]]:
    cells = [
        {"suite": "startup", "id": "cli-help", "kind": "cli", "args": ["--help"], "group": "startup-cli"},
        {"suite": "startup", "id": "cli-recipes-list", "kind": "cli", "args": ["recipes", "list"], "group": "startup-cli"},
        {"suite": "startup", "id": "first-trial", "kind": "first_trial", "group": "startup-first-trial"},
        {"suite": "startup", "id": "utilization", "kind": "utilization", "group": "startup-utilization"},
    ]
    return cells


def timeout(cell: dict[str, Any], settings: Settings) -> float:
    if cell["kind"] == "utilization":
        return 3 * settings.budget + 600
    return 120 * settings.startup_repeats + 300


def raysweep_command() -> list[str]:
    """The installed console script next to this Python, else ``python -m raysweep``."""
    script = Path(sys.executable).with_name("raysweep")
    if script.exists():
        return [str(script)]
    found = shutil.which("raysweep")
    return [found] if found else [sys.executable, "-m", "raysweep"]


def run_cell(cell: dict[str, Any], settings: Settings, scratch: Path) -> dict[str, Any]:
    kind = cell["kind"]
    if kind == "cli":
        return {**cell, **_cli(cell["args"], settings)}
    if kind == "first_trial":
        return {**cell, **_first_trial(settings, scratch)}
    return {**cell, **_utilization(settings, scratch)}


def _cli(args: list[str], settings: Settings) -> dict[str, Any]:
    env = worker_env(settings, threads=None)
    command = raysweep_command() + args
    subprocess.run(command, env=env, capture_output=True, timeout=120)  # warm the file cache once
    times = []
    for _ in range(settings.startup_repeats):
        started = time.perf_counter()
        completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        times.append(time.perf_counter() - started)
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {completed.returncode}: {completed.stderr.strip()[-300:]}")
    probe = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, json.dumps(args), json.dumps(HEAVY_MODULES)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    imported: list[str] | None = None
    for line in probe.stderr.splitlines():
        if line.startswith("@@imports "):
            imported = json.loads(line.removeprefix("@@imports "))
    return {"command": "raysweep " + " ".join(args), "seconds": times, "imports_heavy": imported}


def refuse_foreign_cluster() -> None:
    """A cold ``raysweep run`` joins a cluster started by ``ray start`` on this machine; refuse to time that."""
    from ray._common.utils import get_default_ray_temp_dir  # noqa: PLC0415  (Ray's own lookup)

    marker = Path(get_default_ray_temp_dir()) / "ray_current_cluster"
    if marker.exists():
        raise RuntimeError(f"a Ray cluster started with `ray start` is running here ({marker}); raysweep would join it "
                           "instead of starting its own Ray, so a cold start cannot be timed: stop it (ray stop) first")


def _startup_dataset(settings: Settings) -> list[str]:
    """A real CSV when --data-dir has one (as a user would pass it), else a built-in dataset."""
    if settings.data_dir and not settings.smoke:
        path = Path(settings.data_dir) / "california_housing.csv"
        if path.is_file():
            return ["--dataset", str(path), "--target", "median_house_value"]
    return ["--dataset", "make_regression:n_samples=500"]


def _first_trial(settings: Settings, scratch_root: Path) -> dict[str, Any]:
    """``raysweep run`` as a user types it: cold process, cold Ray, local sqlite MLflow store."""
    from mlflow.tracking import MlflowClient

    env = worker_env(settings, threads=None)
    refuse_foreign_cluster()
    warm_mlflow(settings)
    runs = []
    for repeat in range(settings.startup_repeats):
        scratch = scratch_root / f"run-{repeat}"
        scratch.mkdir()
        uri = settings.tracking_uri  # an existing store, as after a user's first sweep
        command = raysweep_command() + [
            "run", "xgboost", *_startup_dataset(settings), "--num-samples", "2", "--max-concurrent", str(settings.concurrency),
            "--set", "resource.max=50", "--tracking-uri", uri, "--storage", str(scratch / "ray"),
            "--name", f"first-trial-{repeat}", "--experiment", "bench-startup-first-trial", "--json",
        ]
        started_epoch = time.time()
        # The worker's own folder: MLflow puts a new experiment's artifacts under the cwd, and they
        # must outlive this run's scratch folder.
        completed = subprocess.run(command, env=env, cwd=Path.cwd(), capture_output=True, text=True, timeout=600)
        total = time.time() - started_epoch
        if completed.returncode != 0:
            raise RuntimeError(f"raysweep run exited {completed.returncode}: {completed.stderr.strip()[-400:]}")
        outcome = json.loads(completed.stdout.strip().splitlines()[-1])
        client = MlflowClient(uri)
        parent = client.get_run(outcome["parent_run_id"])
        children = client.search_runs(
            [outcome["experiment_id"]], filter_string=f"tags.mlflow.parentRunId = '{outcome['parent_run_id']}'"
        )
        first_child = min(run.info.start_time for run in children) / 1000
        runs.append({
            "sweep_opened_s": parent.info.start_time / 1000 - started_epoch,  # data loaded, Ray up, MLflow run open
            "first_trial_s": first_child - started_epoch,
            "total_s": total,
            "trials": len(children),
        })
    return {"runs": runs}


class TrialCpuSampler:
    """Samples /proc for the CPU time of Ray's trial actor processes while a sweep runs (Linux).

    A cross-check on the trainable's ``step_time`` (a wall time, which a busy machine inflates):
    CPU seconds are what the trial processes really got. It also keeps, by kind, the CPU time of
    every other process of this job (this driver, the MLflow writer processes, Ray's own processes
    and idle workers: the descendants of this process) and the whole machine's busy time from
    /proc/stat, so that a low share can be put down to the job's own overhead or to other load.

    A process that ends between two samples used CPU after the last one saw it. The kernel adds a
    child's whole CPU time to its parent's ``cutime``/``cstime`` when the parent reaps it, so the
    rise of a parent's reaped time, less what the samples had seen of the children that vanished,
    is that unseen tail; it is counted to the vanished children's kind (``tails``). Without it a
    sweep whose trial actors come and go (several sweeps at once: an actor is never passed from
    one sweep to another) reads low. ``processes`` counts the trial processes seen.
    """

    #: the process titles of trial actors: Ray titles an actor's process ``ray::<Class>.<method>``;
    #: ``tune.with_resources`` wraps raysweep's trainable in Tune's ``ResourceTrainable``, so a trial
    #: mostly shows as ``ray::ResourceTrainable.train``, and as raysweep's own class otherwise
    ACTOR_NAMES = ("SweepTrainable", "AutoTrainable", "ResourceTrainable")

    def __init__(self, actor_names: tuple[str, ...] = ACTOR_NAMES, every: float = 0.5) -> None:
        import threading

        self.actor_names, self.every = actor_names, every
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.kinds: dict[int, str] = {}
        self.job_first: dict[int, float] = {}
        self.job_last: dict[int, float] = {}
        self.machine: list[float] = []
        #: CPU seconds of processes of this job that ended between two samples, by kind
        self.tails: dict[str, float] = {}
        #: pid -> (parent, own CPU seconds with its reaped children's, kind) at the last sample
        self._alive: dict[int, tuple[int, float, str]] = {}
        #: parent pid -> its reaped children's CPU seconds at the last sample
        self._reaped: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _kind(self, pid: int, command: str) -> str:
        if pid == os.getpid():
            return "driver"
        if command.startswith("ray::") and any(name in command for name in self.actor_names):
            return "trials"
        if "_writer_process" in command:
            return "writer"
        return "ray"

    def _machine_busy(self) -> float | None:
        seconds = machine_cpu_seconds()
        return seconds[0] if seconds else None

    def _sample(self) -> None:
        parents: dict[int, int] = {}
        seen: dict[int, tuple[float, str]] = {}
        reaped: dict[int, float] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                seconds = (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime
                reaped[int(entry.name)] = (int(fields[13]) + int(fields[14])) / self._tick  # cutime + cstime
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
            seen[int(entry.name)] = (seconds, command)
        me = os.getpid()
        alive: dict[int, tuple[int, float, str]] = {}
        for pid, (seconds, command) in seen.items():
            ancestor, hops = pid, 0
            while ancestor not in (me, 0, 1) and hops < 64:
                ancestor, hops = parents.get(ancestor, 0), hops + 1
            if ancestor != me:
                continue
            kind = self._kind(pid, command)
            if kind == "trials":
                self.first.setdefault(pid, 0.0)  # actors start during the sweep: count from their start
                self.last[pid] = seconds
            # A worker process turns from idle into a trial actor: it counts where it was seen last.
            self.kinds[pid] = kind if kind != "ray" or pid not in self.kinds else self.kinds[pid]
            alive[pid] = (parents[pid], seconds + reaped.get(pid, 0.0), self.kinds[pid])
            self.job_first.setdefault(pid, 0.0 if pid not in self._before else self._before[pid])
            self.job_last[pid] = seconds
        self._count_tails(alive, reaped)
        busy = self._machine_busy()
        if busy is not None:
            self.machine.append(busy)

    def _count_tails(self, alive: dict[int, tuple[int, float, str]], reaped: dict[int, float]) -> None:
        """Count the CPU that this job's processes used after their last sample and before they ended."""
        vanished: dict[int, list[tuple[float, str]]] = {}
        for pid, (parent, total, kind) in self._alive.items():
            if pid not in alive:
                vanished.setdefault(parent, []).append((total, kind))
        for parent, before in self._reaped.items():
            if parent not in reaped:
                continue  # the parent is gone too: its children's tails are unknown
            children = vanished.get(parent, [])
            tail = reaped[parent] - before - sum(total for total, _ in children)
            if tail <= 0.0:
                continue
            # Evenly among the children that ended in this interval; none: children that started
            # and ended between two samples.
            for _, kind in children or [(0.0, "unseen")]:
                self.tails[kind] = self.tails.get(kind, 0.0) + tail / max(1, len(children))
        self._alive = alive
        self._reaped = {pid: reaped[pid] for pid in {parent for parent, _, _ in alive.values()} | set(alive) if pid in reaped}

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every)

    def __enter__(self) -> "TrialCpuSampler":
        self._before: dict[int, float] = {}
        if Path("/proc/self/stat").exists():
            # The driver and anything already running count from now, not from their start.
            fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
            self._before[os.getpid()] = (int(fields[11]) + int(fields[12])) / self._tick
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if Path("/proc/self/stat").exists():
            self._sample()

    @property
    def cpu_seconds(self) -> float | None:
        """The trial processes' CPU seconds, what they used after their last sample included."""
        return sum(self.last[pid] - self.first[pid] for pid in self.last) + self.tails.get("trials", 0.0) if self.last else None

    @property
    def processes(self) -> int:
        """How many trial processes were seen."""
        return len(self.first)

    def breakdown(self) -> dict[str, float]:
        """CPU seconds by kind (trials, driver, writer, ray), the machine's busy seconds, and the rest;
        ``ended_unseen``: the part of the kinds' seconds used by processes after their last sample."""
        out: dict[str, float] = {"trials": 0.0, "driver": 0.0, "writer": 0.0, "ray": 0.0, "unseen": 0.0}
        for pid, seconds in self.job_last.items():
            out[self.kinds[pid]] += seconds - self.job_first[pid]
        for kind, seconds in self.tails.items():
            out[kind] = out.get(kind, 0.0) + seconds
        out["ended_unseen"] = sum(self.tails.values())
        if len(self.machine) >= 2:
            out["machine"] = self.machine[-1] - self.machine[0]
            out["outside_job"] = max(0.0, out["machine"] - sum(out[k] for k in ("trials", "driver", "writer", "ray", "unseen")))
        return {k: round(v, 1) for k, v in out.items()}


def _utilization(settings: Settings, scratch: Path) -> dict[str, Any]:
    """A budget-bound XGBoost sweep through the API; training share of the cores' time."""
    from raysweep import run_sweep

    from benchmarks.quality import ray_limits, recipe_overrides, trial_reports

    if settings.data_dir and not settings.smoke and (Path(settings.data_dir) / "california_housing.csv").is_file():
        dataset, target, label = str(Path(settings.data_dir) / "california_housing.csv"), "median_house_value", "california_housing"
    else:
        dataset, target, label = "make_regression:n_samples=3000,n_features=10", None, "synthetic"
    os.environ.pop("RAY_ADDRESS", None)
    refuse_foreign_cluster()
    warm_mlflow(settings)
    trials, budget = ray_limits(settings)
    started = time.perf_counter()
    # Cold: run_sweep starts its own Ray, as it does for a user.
    with TrialCpuSampler() as sampler:
        result = run_sweep(
            "xgboost", dataset, target=target, tracking=True, progress=False, num_samples=trials,
            time_budget=budget, max_concurrent=settings.concurrency, seed=0, name="utilization",
            experiment="bench-startup-utilization",
            overrides=recipe_overrides(settings),
            storage=str(scratch / "ray"), tracking_uri=settings.tracking_uri,
        )
    elapsed = time.perf_counter() - started
    reports = trial_reports(Path(result.storage_path))
    training = sum(float(r.get("step_time", 0.0)) for r in reports)
    import ray

    cpus = int(ray.cluster_resources().get("CPU", settings.cpus))
    # Smoke mode caps trials instead of time; its "budget" is then the whole call.
    window = budget or elapsed
    return {
        "dataset": label,
        "budget_s": window,
        "elapsed_s": elapsed,
        "training_s": training,
        "cpus": cpus,
        "concurrency": settings.concurrency,
        "trials": result.num_trials,
        "reports": len(reports),
        # Of the cores' time within the budget: what the target is about.
        "share_of_budget": training / (settings.concurrency * window),
        # Of the whole call, cold Ray start, data preparation, refit and MLflow logging included.
        "share_of_call": training / (settings.concurrency * elapsed),
        # CPU seconds the trial processes got (from /proc), over the same window.
        "trial_cpu_s": sampler.cpu_seconds,
        "cpu_share_of_budget": (sampler.cpu_seconds / (settings.concurrency * window)) if sampler.cpu_seconds else None,
        "cpu_breakdown": sampler.breakdown(),
    }


def summary(record: dict[str, Any]) -> str:
    kind = record["kind"]
    if kind == "cli":
        median = sorted(record["seconds"])[len(record["seconds"]) // 2]
        return f"{record['command']}: {median:.3f}s (heavy imports: {record['imports_heavy']})"
    if kind == "first_trial":
        first = sorted(r["first_trial_s"] for r in record["runs"])[len(record["runs"]) // 2]
        return f"raysweep run -> first trial: {first:.2f}s"
    return (f"utilization: {100 * record['share_of_budget']:.0f}% of {record['concurrency']} cores' time in training "
            f"over the {record['budget_s']:g}s budget ({record['trials']} trials)")
