"""The schedule PBT found, drawn: each member's hyperparameters by step, with every exploit's jump.

A member's line is its live hyperparameter value along the resource. An exploit (who copied whom,
when: the records :mod:`raysweep.strategies._pbt` notes, the same ones the trial runs' donor tags
hold) is a dashed arrow from the donor's point whose checkpoint the member took over to the member's first
result after it, with the values PBT's explore gave it. Nothing here imports MLflow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from raysweep.tracking import schema

PLOT_FILE = schema.PBT_LINEAGE_PLOT
#: (exploiting trial id, donor trial id, donor's training iteration, the exploiting trial's new config)
Exploit = tuple[str, str, int, Mapping[str, Any]]
#: one member's results in the order reported: (training iteration, resource, {hyperparameter: value})
Series = list[tuple[int, float, dict[str, float]]]


def member_series(rows: Iterable[Mapping[str, Any]], hyperparameters: Sequence[str]) -> Series:
    """A member's hyperparameters at each of its results, in the order reported.

    ``rows`` are its Tune results (flat, as ``Result.metrics_dataframe`` rows): the live value is
    the ``hp/<name>`` the trainable reported, else the ``config/<name>`` in force. The resource is
    the result's ``resource``, else its training iteration.
    """
    points: Series = []
    for row in rows:
        values = {}
        for name in hyperparameters:
            value = _number(row.get(schema.hyperparameter_metric(name)))
            values[name] = value if value is not None else _number(row.get(f"config/{name}"))
        iteration = _number(row.get("training_iteration"))
        at = _number(row.get(schema.RESOURCE))
        if iteration is not None:
            points.append((int(iteration), at if at is not None else iteration, {k: v for k, v in values.items() if v is not None}))
    return points


def _number(value: Any) -> float | None:
    if isinstance(value, (bool, str)) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def _takeovers(points: Series, exploits: Sequence[Exploit], names: Sequence[str]) -> dict[int, int]:
    """Which of a member's results came first after each of its exploits: result index -> exploit index.

    After taking over its donor's checkpoint at iteration k, the member's next result is at
    iteration k + 1 with the exploit's new config.
    """
    found: dict[int, int] = {}
    index = 1
    for number, (_, _, iteration, config) in enumerate(exploits):
        for position in range(index, len(points)):
            at, _, values = points[position]
            if at == iteration + 1 and all(_same(values.get(n), _number(config.get(n))) for n in names if n in values):
                found[position] = number
                index = position + 1
                break
    return found


def _donor_point(points: Series, iteration: int, name: str) -> tuple[float, float] | None:
    """The donor's (resource, value) at ``iteration``: its latest result there, the checkpoint a member took over."""
    there = [(at, values[name]) for it, at, values in points if it == iteration and name in values]
    return there[-1] if there else None


def lineage_figure(
    series: Mapping[str, Series],
    exploits: Sequence[Exploit],
    hyperparameters: Sequence[str],
    resource_name: str,
    sweep: str,
    log_scale: Iterable[str] = (),
) -> tuple[Any, list[tuple[str, str, int]]]:
    """The lineage chart (a matplotlib Figure, one panel per hyperparameter) and the jumps drawn.

    A member's line breaks at each exploit; a dashed arrow leads from the donor's point where the
    member took over its checkpoint to the member's first result after it, labelled
    ``member<-donor``. Each jump drawn is (member, donor, donor's iteration).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(hyperparameters)
    logs = set(log_scale)
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.5 + 3 * len(names)), sharex=True, squeeze=False)
    colours = plt.get_cmap("tab10" if len(series) <= 10 else "tab20")
    colour = {trial_id: colours(index % colours.N) for index, trial_id in enumerate(series)}
    mine = {trial_id: [e for e in exploits if e[0] == trial_id] for trial_id in series}
    takeovers = {trial_id: _takeovers(points, mine[trial_id], names) for trial_id, points in series.items()}
    jumps: list[tuple[str, str, int]] = []
    for ax, name in zip(axes[:, 0], names):
        for trial_id, points in series.items():
            segment: list[tuple[float, float]] = []
            labelled = False
            for position, (_, at, values) in enumerate(points):
                if name not in values:
                    continue
                # A new line where the member took over a donor, or went back to an earlier step.
                if segment and (position in takeovers[trial_id] or at <= segment[-1][0]):
                    ax.plot(*zip(*segment), marker=".", color=colour[trial_id], label="_nolegend_" if labelled else schema.trial_name(trial_id))
                    labelled, segment = True, []
                segment.append((at, values[name]))
            if segment:
                ax.plot(*zip(*segment), marker=".", color=colour[trial_id], label="_nolegend_" if labelled else schema.trial_name(trial_id))
            for position, number in takeovers[trial_id].items():
                member, donor, iteration, _ = mine[trial_id][number]
                start = _donor_point(series.get(donor, []), iteration, name)
                end = (points[position][1], points[position][2].get(name))
                if start is None or end[1] is None:
                    continue
                if ax is axes[0, 0]:
                    jumps.append((member, donor, iteration))
                ax.annotate(
                    "", xy=end, xytext=start,
                    arrowprops={"arrowstyle": "->", "linestyle": "--", "color": colour[member], "lw": 1.2, "shrinkA": 0, "shrinkB": 3},
                )  # fmt: skip
                ax.annotate(f"{_short(member)}←{_short(donor)}", end, textcoords="offset points", xytext=(4, -3), fontsize=7, color=colour[member])
        if name in logs:
            ax.set_yscale("log")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(resource_name)
    axes[0, 0].legend(loc="best", fontsize="small", title="member", ncol=2 if len(series) > 6 else 1)
    fig.suptitle(
        f"PBT lineage of sweep {sweep}: each member's hyperparameters by {resource_name}\n"
        "dashed arrow a←b: member a took over member b's checkpoint at the arrow's start and went on with new values"
    )
    fig.tight_layout()
    return fig, jumps


def _short(trial_id: str) -> str:
    """A trial's number (``7``) where it has one, for the jump labels; else its readable name."""
    number = schema.trial_number(trial_id)
    return str(number) if number is not None else schema.trial_name(trial_id)


def write_lineage_plot(
    series: Mapping[str, Series],
    exploits: Sequence[Exploit],
    hyperparameters: Sequence[str],
    resource_name: str,
    sweep: str,
    folder: Path,
    log_scale: Iterable[str] = (),
) -> Path:
    """``pbt_lineage.png`` in ``folder``: the chart of :func:`lineage_figure`."""
    import matplotlib.pyplot as plt

    fig, _ = lineage_figure(series, exploits, hyperparameters, resource_name, sweep, log_scale)
    path = Path(folder) / PLOT_FILE
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
