"""Which searched parameters mattered: fANOVA importance over a sweep's trials, its bar chart and leaderboard order.

The importance is Optuna's fANOVA (``optuna.importance.FanovaImportanceEvaluator``) over an
in-memory Optuna study made of the sweep's trials: each trial's config and the last validation
score it reported. A trial that a scheduler stopped early enters with its last score, reached with
less training than a completed trial's. It needs at least :data:`MIN_TRIALS` trials with a score,
and is not computed under PBT, whose members change their hyperparameters while they train (a
trial's score belongs to no single config). Nothing here imports MLflow.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping

from raysweep.tracking import schema

logger = logging.getLogger(__name__)

#: fewer trials with a score than this and no importance is computed: fANOVA's forest would fit noise
MIN_TRIALS = 8
#: the evaluator's name, as the plot and ``raysweep report`` say it
METHOD = "fANOVA"
#: the forest's depth: Optuna's default (64) costs 8 s at 500 trials and 75 s at 2,000 on one core;
#: depth 8 takes 2.6 s and 3.8 s and ranks the synthetic problems of the tests alike
FOREST_DEPTH = 8
#: more trials than this and the importance is computed over a seeded sample of this many
MAX_TRIALS = 1000
PLOT_FILE = schema.IMPORTANCE_PLOT
_PLAIN = (type(None), bool, int, float, str)


@dataclass
class Importance:
    """Each searched parameter's share of the score's variance (summing to 1), most important first.

    ``skipped`` says why there is none (then ``values`` is empty); ``trials`` is how many trials
    it was computed over.
    """

    values: dict[str, float] = field(default_factory=dict)
    trials: int = 0
    skipped: str | None = None

    def ranked(self) -> list[str]:
        """The parameters, most important first."""
        return list(self.values)


def sweep_importance(
    trials: Iterable[tuple[Mapping[str, Any], float]],
    space: Mapping[str, Mapping[str, Any]],
    *,
    population: bool = False,
    seed: int = 0,
) -> Importance:
    """The importance of each parameter of ``space`` from ``(config, last score)`` pairs.

    Pairs without a finite score are left out. Under PBT (``population``), with fewer than
    :data:`MIN_TRIALS` scored trials, or when every trial scored the same, the result is
    skipped with the reason.
    """
    if population:
        return Importance(skipped="PBT members change their hyperparameters while they train, so no score belongs to one config")
    scored = [(dict(config), float(value)) for config, value in trials if _finite(value)]
    if len(scored) < MIN_TRIALS:
        return Importance(trials=len(scored), skipped=f"{len(scored)} trials reported a score; importance needs at least {MIN_TRIALS}")
    searched = [name for name in space if any(name in config for config, _ in scored)]
    if not searched:
        return Importance(trials=len(scored), skipped="no searched parameter in the trials' configs")
    if len({value for _, value in scored}) == 1:
        return Importance(trials=len(scored), skipped="every trial reported the same score")
    if len(scored) > MAX_TRIALS:
        import random

        scored = random.Random(seed).sample(scored, MAX_TRIALS)
    values = _fanova(scored, {name: space[name] for name in searched}, seed)
    return Importance(values=values, trials=len(scored))


def _fanova(scored: list[tuple[dict[str, Any], float]], space: dict[str, Mapping[str, Any]], seed: int) -> dict[str, float]:
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    distributions = {name: distribution(spec, [config.get(name) for config, _ in scored]) for name, spec in space.items()}
    made = []
    for config, value in scored:
        if not all(name in config for name in space):
            continue  # a trial without one of the parameters says nothing of it
        params = {name: _categorical_value(config[name]) if _is_categorical(distributions[name]) else config[name] for name in space}
        made.append(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
    with quiet_optuna():
        study = optuna.create_study()  # the direction does not matter: fANOVA splits the variance
        study.add_trials(made)
        found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(max_depth=FOREST_DEPTH, seed=seed))
    return {name: float(share) for name, share in sorted(found.items(), key=lambda item: -item[1])}


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Without Optuna's INFO lines ("A new study created in memory ..."): Optuna announces every
    study it makes on its own logger, and raysweep prints its own lines only (its Python API
    nothing unless asked). Optuna's verbosity is put back after, so a program's own studies log as
    it set them to. Used by the importance and by the optuna searcher.

    Nor its warning that a ``choice`` of lists (the MLP's ``hidden_layer_sizes``) cannot go to a
    persistent storage: raysweep's studies are in memory (five warnings, ten lines, on every
    ``mlp`` sweep with ``--searcher optuna``)."""
    import warnings

    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Choices for a categorical distribution should be a tuple", category=UserWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def distribution(spec: Mapping[str, Any], observed: list[Any]) -> Any:
    """The Optuna distribution of one recipe space entry, wide enough for every ``observed`` value.

    Ranges keep their scale (log or not) but not their grid: fANOVA only needs to know where a
    value lies. A range is widened to the values seen (a starting point moved to a bound, a
    ``--set`` narrowed range), since Optuna refuses a trial outside its distribution.
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind = spec["type"]
    if kind in ("choice", "grid"):
        choices = [_categorical_value(v) for v in spec["values"]]
        for value in observed:
            if value is not None and _categorical_value(value) not in choices:
                choices.append(_categorical_value(value))
        return CategoricalDistribution(list(dict.fromkeys(choices)))
    from raysweep.recipes import highest

    numbers = [float(v) for v in observed if isinstance(v, (int, float)) and not isinstance(v, bool)]
    low, high = min([float(spec["low"]), *numbers]), max([float(highest(spec)), *numbers])
    log = kind.startswith(("log", "qlog"))
    if "int" in kind:
        return IntDistribution(int(math.floor(low)), int(math.ceil(high)), log=log and low >= 1)
    return FloatDistribution(low, high, log=log and low > 0)


def _is_categorical(dist: Any) -> bool:
    return hasattr(dist, "choices")


def _categorical_value(value: Any) -> Any:
    """A value Optuna takes as a category: plain values as they are, anything else (a list) as text."""
    if hasattr(value, "item"):
        value = value.item()
    return value if isinstance(value, _PLAIN) else str(value)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def ordered_leaderboard(leaderboard: Any, importance: Importance) -> Any:
    """The leaderboard with its ``config/<name>`` columns in order of importance, most important first.

    The other columns keep their place: the config columns follow them, as before.
    """
    if not importance.values:
        return leaderboard
    config = [c for c in leaderboard.columns if c.startswith("config/")]
    rank = {name: index for index, name in enumerate(importance.ranked())}
    ordered = sorted(config, key=lambda c: (rank.get(c[len("config/"):], len(rank)), config.index(c)))
    return leaderboard[[c for c in leaderboard.columns if c not in config] + ordered]


def importance_figure(importance: Importance, metric_key: str, sweep: str) -> Any:
    """A horizontal bar chart of the importances, the most important on top (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = importance.ranked()
    shares = [importance.values[n] for n in names]
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.45 * len(names)))
    bars = ax.barh(names[::-1], shares[::-1], color="tab:blue")
    for bar, share in zip(bars, shares[::-1]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {share:.2f}", va="center", fontsize="small")
    ax.set_xlim(0, max(1.0, max(shares, default=0) * 1.15))
    ax.set_xlabel(f"share of the variance of {metric_key} ({METHOD}; shares sum to 1)")
    ax.set_ylabel("searched parameter")
    ax.set_title(f"Parameter importance in sweep {sweep} ({importance.trials} trials, each at its last score)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def write_importance_plot(importance: Importance, metric_key: str, sweep: str, folder: Path) -> Path:
    """``importance.png`` in ``folder``: the bar chart of :func:`importance_figure`."""
    import matplotlib.pyplot as plt

    fig = importance_figure(importance, metric_key, sweep)
    path = Path(folder) / PLOT_FILE
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def log_importance(tracker: Any, importance: Importance, metric_key: str, sweep: str, folder: Path, plot: Path | None = None) -> None:
    """The importance on the parent run: ``importance/<param>`` metrics and ``plots/importance.png``
    (``plot`` when it is drawn already), or the reason for none."""
    if importance.skipped:
        tracker.log_summary(metrics={}, params={}, tags={schema.IMPORTANCE_SKIPPED: importance.skipped})
        return
    metrics = {schema.importance_metric(name): share for name, share in importance.values.items()}
    tracker.log_summary(metrics=metrics, params={}, tags={schema.IMPORTANCE_TRIALS: str(importance.trials)})
    tracker.log_artifact(str(plot or write_importance_plot(importance, metric_key, sweep, folder)), schema.PLOTS_DIR)
