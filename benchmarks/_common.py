"""What every suite shares: the run's settings, where results go, machine facts, records."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO = BENCHMARKS_DIR.parent
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
SMOKE_OUT = BENCHMARKS_DIR / "out" / "smoke"
SUITES = ("overhead", "quality", "startup", "auto", "nested")

#: the sizes the issue asks for; a run below any of them is marked preliminary in RESULTS.md
FULL_SIZES = {"seeds": 3, "trials": 500, "budget": 120.0, "pairs": 5}


@dataclass
class Settings:
    """One invocation's sizes and places, handed to every worker as JSON."""

    out: str
    data_dir: str | None
    seeds: int = 3
    trials: int = 500
    #: trials for plain Ray Tune without actor reuse, about 1 s each; its cost per trial is flat
    noreuse_trials: int = 100
    #: overhead: runs of each tool per seed, taken in turns (A B A B ...): the ratios are per turn
    pairs: int = 5
    budget: float = 120.0
    cpus: int = 2
    concurrency: int = 2
    functions: tuple[str, ...] = ("noop", "branin", "hartmann6")
    pbt_population: int = 8
    startup_repeats: int = 5
    smoke: bool = False
    argv: list[str] = field(default_factory=list)

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def raw_dir(self) -> Path:
        return self.out_dir / "results"

    @property
    def plots_dir(self) -> Path:
        return self.out_dir / "plots"

    @property
    def scratch_dir(self) -> Path:
        """Ray storage, MLflow stores and worker logs: large, throwaway, never committed."""
        if self.out_dir.resolve() == BENCHMARKS_DIR.resolve():
            return BENCHMARKS_DIR / "out" / "scratch"
        return self.out_dir / "scratch"

    @property
    def tracking_uri(self) -> str:
        """One MLflow store for the whole invocation: it is created once, outside every clock."""
        return f"sqlite:///{self.scratch_dir / 'mlflow.db'}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["functions"] = list(self.functions)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Settings":
        data = dict(data)
        data["functions"] = tuple(data.get("functions", ()))
        return cls(**data)

    def reduced(self, suite: str) -> list[str]:
        """The ways this run of ``suite`` is smaller than the issue asks (empty for a full run)."""
        notes = []
        if self.smoke:
            notes.append("smoke mode (tiny sizes, synthetic data, trial-capped sweeps)")
        if suite in ("overhead", "quality", "auto") and self.seeds < FULL_SIZES["seeds"]:
            notes.append(f"{self.seeds} seed(s) instead of {FULL_SIZES['seeds']}")
        if suite == "overhead" and self.pairs < FULL_SIZES["pairs"]:
            notes.append(f"{self.pairs} run(s) of each tool in turns instead of {FULL_SIZES['pairs']}")
        if suite == "overhead" and self.trials < FULL_SIZES["trials"]:
            notes.append(f"{self.trials} trials per run instead of {FULL_SIZES['trials']}")
        if suite in ("quality", "startup") and self.budget < FULL_SIZES["budget"]:
            notes.append(f"{self.budget:g} s budget instead of {FULL_SIZES['budget']:g} s")
        return notes


def cell_id(*parts: Any) -> str:
    """A file-name-safe id for one measurement cell."""
    return "-".join(str(p).replace("/", "_").replace(" ", "_") for p in parts if p not in (None, ""))


def write_record(settings: Settings, suite: str, record: dict[str, Any]) -> Path:
    """Store one cell's outcome as ``results/<suite>/<id>.json`` (written atomically)."""
    folder = settings.raw_dir / suite
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['id']}.json"
    record = {**record, "suite": suite, "recorded_at": time.time(), "loadavg": _loadavg()}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1, default=_jsonable))
    temporary.replace(path)
    return path


def read_records(settings: Settings, suite: str) -> list[dict[str, Any]]:
    folder = settings.raw_dir / suite
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, all) CPU seconds the machine has spent since boot, from ``/proc/stat``; None off
    Linux. Busy is everything but idle and iowait (of user nice system idle iowait irq softirq steal)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle) / tick, sum(fields) / tick


def cpus_busy(seconds: float = 1.0) -> float | None:
    """How many CPUs the machine kept busy over the next ``seconds``, while this process sleeps:
    what other processes would take from a run started now. None off Linux.

    The 1-minute load average cannot say this: it decays over minutes, so it still counts the
    benchmark's own previous run when the next one starts.
    """
    before = machine_cpu_seconds()
    time.sleep(seconds)
    after = machine_cpu_seconds()
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1), 2)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def progress(message: str) -> None:
    """A line on the orchestrator's console (workers prefix theirs so it can pick them out)."""
    print(message, flush=True)


def package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    """Cores, memory, CPU model, OS and the versions of everything measured."""
    cpu_model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    packages = ["raysweep", "ray", "mlflow", "scikit-learn", "xgboost", "hyperopt", "optuna", "flaml", "numpy", "pandas"]
    return {
        "cpu_model": cpu_model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {name: package_version(name) for name in packages},
        "loadavg": _loadavg(),
    }


def worker_env(settings: Settings, threads: int | None = 1) -> dict[str, str]:
    """The environment of a worker process: this checkout importable, its own local Ray.

    Native thread pools are pinned to one thread by default, as Ray pins them in its workers, so
    peers that run trials in threads (Optuna) or processes (scikit-learn) do not oversubscribe
    the cores.
    """
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # never join somebody else's cluster
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.setdefault("PYTHONWARNINGS", "ignore")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("MLFLOW_TRACKING_URI", None)
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    return env


def start_ray(settings: Settings) -> None:
    """A fresh local Ray with exactly ``settings.cpus`` CPUs, started before any timer runs."""
    import logging

    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=settings.cpus,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )


def warm_mlflow(settings: Settings) -> None:
    """Create the MLflow store if needed (seconds for sqlite's schema), before any timer starts.

    A user pays this once, on their first sweep; it is not a cost per sweep or per trial.
    """
    from mlflow.tracking import MlflowClient

    MlflowClient(settings.tracking_uri).search_experiments(max_results=1)


def write_results_section(settings: Settings, heading: str, section: list[str]) -> Path:
    """Put a suite's section (starting with ``heading``) into RESULTS.md, before the analysis,
    replacing the section an earlier run wrote."""
    return replace_section(settings.out_dir / "RESULTS.md", heading, section, "# raysweep benchmarks", ("## Analysis", "## Machine"))


def replace_section(path: Path, heading: str, section: list[str], title: str, before: tuple[str, ...] = ()) -> Path:
    """Put ``section`` (starting with ``heading``) into the Markdown file ``path``, replacing the
    section of that heading, else before the first of the ``before`` headings (else at the end)."""
    text = path.read_text() if path.is_file() else f"{title}\n"
    lines = text.rstrip("\n").split("\n")
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        del lines[start:end]
    else:
        start = next((i for i, line in enumerate(lines) if line in before), len(lines))
    lines[start:start] = section
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def median_range(values: list[Any], digits: int = 1) -> str:
    """``12.3`` for one value, ``12.3 (11.9-13.0)`` for several (median, then min-max); ``-`` for none."""
    import statistics

    values = [v for v in values if isinstance(v, (int, float))]
    if not values:
        return "-"
    middle = f"{statistics.median(values):.{digits}f}"
    return middle if len(values) == 1 else f"{middle} ({min(values):.{digits}f}-{max(values):.{digits}f})"
