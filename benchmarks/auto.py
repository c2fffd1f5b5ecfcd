"""Suite ``auto``: model-family selection in one sweep at equal wall time.

On letter, adult and california_housing (the quality suite's data, split and metrics), for each
seed: ``raysweep run auto`` (every prebuilt recipe) against each single recipe's sweep with the same
time budget, against FLAML with its default ``estimator_list`` (its own learners: no MLP, and its
SVC is a linear one), and ``auto --patience 20`` against ``auto`` at the full budget: the time it
saves and what it costs in score. Every raysweep tool is scored with raysweep's own refit on the
test split (``SweepResult.test_score``); FLAML with raysweep's metric code on the same test rows.

    python -m benchmarks --suite auto --seeds 3 --budget 120 --data-dir FOLDER
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks._common import Settings, start_ray, warm_mlflow
from benchmarks.quality import DATASETS, _FLAML_METRICS, _flaml_score, _FlamlModel, load, make_split, ray_limits, test_scores

SINGLE_RECIPES = ("random_forest", "svm", "xgboost", "mlp")
#: the --patience of the early-ending auto sweep
PATIENCE = 20
TOOL_LABELS = {
    "auto": "raysweep run auto (4 families)",
    "auto_patience": f"raysweep run auto --patience {PATIENCE}",
    **{f"single_{name}": f"raysweep {name} alone" for name in SINGLE_RECIPES},
    "flaml_default": "FLAML, default estimator_list (no MLP; its SVC is linear only; NaN filled with train medians)",
}
PEERS = {"flaml_default": "flaml_default"}


def cells(settings: Settings) -> list[dict[str, Any]]:
    """Every (dataset, tool, seed) run; each runs in its own process."""
    if settings.smoke:
        # Tiny: the harness must not rot, and the smoke test's time is shared with every suite.
        plan = [("synthetic", tool) for tool in ("auto", "single_xgboost")]
    else:
        tools = ("auto", "auto_patience", *(f"single_{name}" for name in SINGLE_RECIPES), "flaml_default")
        plan = [(dataset, tool) for dataset in ("letter", "adult", "california_housing") for tool in tools]
    out = []
    for seed in range(settings.seeds):
        for dataset, tool in plan:
            identifier = f"{dataset}-{tool}-s{seed}"
            out.append({"suite": "auto", "id": identifier, "dataset": dataset, "tool": tool, "seed": seed,
                        "peer": PEERS.get(tool), "group": f"auto-{identifier}"})
    return out


def timeout(cell: dict[str, Any], settings: Settings) -> float:
    return 4 * settings.budget + 600


def run_cell(cell: dict[str, Any], settings: Settings, scratch: Path) -> dict[str, Any]:
    from raysweep.metrics import direction

    spec = DATASETS[cell["dataset"]]
    dataset = load(spec, settings, cell["seed"])
    tool = cell["tool"]
    outcome = _flaml(cell, settings, spec, dataset, scratch) if tool == "flaml_default" else _raysweep(cell, settings, spec, dataset, scratch)
    return {**cell, "label": TOOL_LABELS[tool], "metric": spec.metric, "mode": direction(spec.metric), "budget_s": settings.budget, **outcome}


def _raysweep(cell: dict[str, Any], settings: Settings, spec: Any, dataset: Any, scratch: Path) -> dict[str, Any]:
    from raysweep import run_sweep

    start_ray(settings)
    warm_mlflow(settings)
    trials, budget = ray_limits(settings)
    tool = cell["tool"]
    recipe = "auto" if tool.startswith("auto") else tool.removeprefix("single_")
    started = time.perf_counter()
    result = run_sweep(
        recipe, dataset, tracking=True, progress=False, metric=spec.metric, num_samples=trials, time_budget=budget,
        max_concurrent=settings.concurrency, seed=cell["seed"], name=f"auto-{cell['id']}", storage=str(scratch / "ray"),
        tracking_uri=settings.tracking_uri, experiment=f"bench-auto-{cell['dataset']}",
        patience=PATIENCE if tool == "auto_patience" else None,
    )  # fmt: skip
    return {
        "elapsed_s": time.perf_counter() - started,
        "validation": result.best_validation_score,
        "test": result.test_score,
        "trials": result.num_trials,
        "stopped_early": result.num_stopped_early,
        "families": result.families,
        "best_config": result.best_config,
        "stopped_by": result.stopped_by,
    }


def _flaml(cell: dict[str, Any], settings: Settings, spec: Any, dataset: Any, scratch: Path) -> dict[str, Any]:
    """FLAML's AutoML with its own default learners on raysweep's train/validation arrays (ordinal encoding)."""
    from benchmarks._peers import require
    from raysweep.families import get_family

    import numpy as np

    automl_module = require("flaml.automl")
    split = make_split(dataset, get_family("xgboost"), cell["seed"])
    X_train, X_val, X_test = split.X_train, split.X_val, split.X_test_for_train_encoder
    if np.isnan(X_train).any() or np.isnan(X_val).any() or np.isnan(X_test).any():
        # FLAML's linear learners refuse NaN in arrays (california_housing's total_bedrooms has
        # some): fill each column with its median on the training rows, for every learner alike.
        from sklearn.impute import SimpleImputer

        imputer = SimpleImputer(strategy="median").fit(X_train)
        X_train, X_val, X_test = (imputer.transform(X) for X in (X_train, X_val, X_test))
    automl = automl_module.AutoML()
    started = time.perf_counter()
    automl.fit(
        X_train=X_train, y_train=split.y_train, X_val=X_val, y_val=split.y_val, task=split.task,
        metric=_FLAML_METRICS[spec.metric], time_budget=1 if settings.smoke else settings.budget,
        n_jobs=settings.concurrency, seed=cell["seed"], eval_method="holdout", retrain_full=True,
        log_file_name=str(scratch / "flaml.log"), verbose=0, mlflow_logging=False,
    )  # fmt: skip
    model = _FlamlModel(automl, split.n_classes)
    return {
        "elapsed_s": time.perf_counter() - started,
        "validation": _flaml_score(spec.metric, float(automl.best_loss)),
        "test": test_scores(split, model, (spec.metric,), X_test=X_test)[spec.metric],
        "trials": sum(1 for line in (scratch / "flaml.log").read_text().splitlines() if '"validation_loss"' in line)
        if (scratch / "flaml.log").exists() else None,
        "best_estimator": automl.best_estimator,
    }


def summary(record: dict[str, Any]) -> str:
    return f"{record['id']}: test {record['metric']} {record['test']:.4f}, {record['trials']} trials, {record['elapsed_s']:.0f} s"


# -- report ---------------------------------------------------------------------------------------
def section(records: list[dict[str, Any]], settings: Settings) -> list[str]:
    """RESULTS.md's section: per dataset, each tool's median test score over the seeds, trials and time."""
    from statistics import median

    lines = ["## 4. Model-family selection: `raysweep run auto`", ""]
    ok = [r for r in records if "error" not in r and "skipped" not in r and r.get("test") is not None]
    if not ok:
        return lines + ["No results yet (`python -m benchmarks --suite auto`).", ""]
    seeds = len({r.get("seed") for r in ok})
    budgets = "/".join(f"{b:g}" for b in sorted({float(r.get("budget", settings.budget)) for r in ok}))
    lines += [f"Median of up to {seeds} seed(s) (each dataset's count in its heading) at a {budgets} s budget; "
              "± half the range over the seeds.", ""]
    for dataset in sorted({r["dataset"] for r in ok}):
        rows = [r for r in ok if r["dataset"] == dataset]
        metric = rows[0]["metric"]
        seeds_here = len({r["seed"] for r in rows})
        lines += [f"### {dataset} ({metric}, {seeds_here} seed{'s' if seeds_here > 1 else ''})", "", f"| tool | test {metric} | trials | elapsed (s) | families (trials) |", "| --- | --- | --- | --- | --- |"]
        for tool, label in TOOL_LABELS.items():
            runs = [r for r in rows if r["tool"] == tool]
            if not runs:
                continue
            tests = [r["test"] for r in runs]
            spread = (max(tests) - min(tests)) / 2
            families = ""
            if runs[0].get("families"):
                counts: dict[str, list[int]] = {}
                for r in runs:
                    for name, info in r["families"].items():
                        counts.setdefault(name, []).append(info["trials"])
                families = ", ".join(f"{name} {median(v):g}" for name, v in counts.items())
            trials = [r["trials"] for r in runs if r.get("trials") is not None]
            lines.append(
                f"| {label} | {median(tests):.4f} ± {spread:.4f} | {median(trials) if trials else '–'} | "
                f"{median(r['elapsed_s'] for r in runs):.0f} | {families} |"
            )
        lines += ["", goal_line(rows)]
        full = {r["seed"]: r for r in rows if r["tool"] == "auto"}
        early = {r["seed"]: r for r in rows if r["tool"] == "auto_patience" and r["seed"] in full}
        if early:
            saved = [full[s]["elapsed_s"] - early[s]["elapsed_s"] for s in early]
            sign = 1 if rows[0]["mode"] == "max" else -1
            cost = [sign * (full[s]["test"] - early[s]["test"]) for s in early]
            lines += ["", f"`--patience {PATIENCE}` against the full budget: median {median(saved):.0f} s saved, "
                          f"median test {metric} cost {median(cost):+.4f} (positive: worse)."]
        lines.append("")
    return lines


def goal_line(rows: list[dict[str, Any]]) -> str:
    """The goal's verdict on one dataset: ``auto`` within noise of the best single recipe, and ahead of FLAML.

    Noise is the larger half-range over the seeds of the two rows compared; one seed has none, so
    it is not judged.
    """
    from statistics import median

    def scores(tool: str) -> list[float]:
        return [r["test"] for r in rows if r["tool"] == tool]

    auto = scores("auto")
    singles = {tool: scores(tool) for tool in TOOL_LABELS if tool.startswith("single_") and scores(tool)}
    if not auto or not singles:
        return "Goal (auto within noise of the best single recipe, ahead of FLAML): not judged, a row is missing."
    sign = 1 if rows[0]["mode"] == "max" else -1
    best_tool = max(singles, key=lambda tool: sign * median(singles[tool]))
    best = singles[best_tool]
    behind = sign * (median(best) - median(auto))  # positive: auto is worse
    name = best_tool.removeprefix("single_")
    text = f"Goal: `auto` {median(auto):.4f} against the best single recipe, {name}, {median(best):.4f}"
    seeds = len({r["seed"] for r in rows if r["tool"] == "auto"})
    if seeds < 2:
        text += f" ({'behind' if behind > 0 else 'ahead'} by {abs(behind):.4f}; one seed, no spread to judge noise by: not judged)"
    else:
        noise = max((max(v) - min(v)) / 2 for v in (auto, best))
        verdict = "met" if behind <= noise else "missed"
        text += f": {'behind' if behind > 0 else 'ahead'} by {abs(behind):.4f}, noise ± {noise:.4f}, {verdict}"
    flaml = scores("flaml_default")
    if flaml:
        ahead = sign * (median(auto) - median(flaml)) > 0
        text += f"; against FLAML {median(flaml):.4f}: {'ahead, met' if ahead else 'not ahead, missed'}"
    return text + "."
