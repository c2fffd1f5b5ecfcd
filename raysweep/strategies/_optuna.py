"""Optuna's multivariate TPE through Ray Tune's ``OptunaSearch``, trying the starting points first.

``constant_liar`` makes concurrent trials look at each other: a running trial counts as a poor
result, so two trials at once are not sent to the same place. ``OptunaSearch`` refuses a
``seed`` beside a ``sampler``, so the seed goes to the sampler.
"""

from __future__ import annotations

import warnings
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from raysweep.tracking.importance import quiet_optuna


def build(metric: str, mode: str, seed: int, max_concurrent: int, points: list[dict[str, Any]] | None,
          evaluated: list[tuple[dict[str, Any], float]] | None = None) -> Any:
    """``evaluated`` (earlier trials, ``(config, score)``) join the study as completed trials."""
    from optuna.samplers import TPESampler
    from ray.tune.search import ConcurrencyLimiter

    sampler = TPESampler(seed=seed, multivariate=True, constant_liar=True)
    searcher = WarmOptunaSearch(sampler=sampler, points_to_evaluate=points or None, evaluated=evaluated)
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


class _RepeatsUnsaid:
    """A trial resumed from its checkpoint reports its last saved step again: Optuna keeps the
    first report and warned of the second on the resumed sweep's stderr ("The reported value is
    ignored because this `step=1` is already reported")."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The reported value is ignored", category=UserWarning)
            super().on_trial_result(trial_id, result)  # type: ignore[misc]


class WarmOptunaSearch(_RepeatsUnsaid, OptunaSearch):
    """``OptunaSearch`` that adds evaluated points once Ray Tune has given it the search space.

    They go in through ``OptunaSearch.add_evaluated_point``, which needs the study (made in
    ``set_search_properties``), not through the constructor's ``evaluated_rewards``, which would
    mark every starting point as evaluated. Checked on Ray 2.60 with Optuna 5.0.
    """

    def __init__(self, *, evaluated: list[tuple[dict[str, Any], float]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.evaluated = list(evaluated or [])
        #: qloguniform parameters: name -> (q, lowest, highest)
        self._log_steps: dict[str, tuple[float, float, float]] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        with quiet_optuna():  # the study is made here
            if not super().set_search_properties(metric, mode, config, **spec):
                return False
        self._log_steps = log_quantized(config)
        evaluated, self.evaluated = self.evaluated, []
        for parameters, value in evaluated:
            self.add_evaluated_point(parameters, value)
        return True

    def suggest(self, trial_id: str) -> dict | None:
        params = super().suggest(trial_id)
        if isinstance(params, dict):
            for name, (q, lowest, highest) in self._log_steps.items():
                if isinstance(params.get(name), float):
                    params[name] = min(max(round(round(params[name] / q) * q, 12), lowest), highest)
        return params


def log_quantized(config: dict) -> dict[str, tuple[float, float, float]]:
    """The qloguniform parameters of a Ray Tune search space: name -> (q, lowest, highest).

    Ray's ``OptunaSearch`` draws them on the log scale without ``q`` (Optuna's float steps are
    linear; Ray logs a warning and drops it): :class:`WarmOptunaSearch` rounds them to multiples
    of ``q`` as every other searcher draws them. Private API: ``Quantized.q`` around
    ``Float._LogUniform`` (checked on Ray 2.60).
    """
    from ray.tune.search.sample import Float, Quantized

    found = {}
    for name, domain in config.items():
        sampler = domain.get_sampler() if isinstance(domain, Float) else None
        if isinstance(sampler, Quantized) and isinstance(sampler.sampler, Float._LogUniform):
            found[name] = (sampler.q, domain.lower, domain.upper)
    return found


def build_conditional(metric: str, mode: str, seed: int, max_concurrent: int, space: Any,
                      points: list[dict[str, Any]] | None = None) -> Any:
    """Optuna's TPE over a define-by-run ``space`` (``raysweep run auto``'s family choice, a
    :class:`raysweep.sweep.auto.OptunaSpace`), whose ``config`` turns each flat suggestion into the
    config the trainable takes; ``points`` (in the space's flat names) are tried first."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.samplers import TPESampler
    from ray.tune.search import ConcurrencyLimiter

    with warnings.catch_warnings():
        # group=True (experimental in Optuna 5.0): each family's parameters are modelled together,
        # only over the trials of that family.
        warnings.simplefilter("ignore", ExperimentalWarning)
        sampler = TPESampler(seed=seed, multivariate=True, constant_liar=True, group=True)
    with quiet_optuna():  # given its space, OptunaSearch makes the study as it is built
        searcher = ConditionalOptunaSearch(space=space, metric=metric, mode=mode, sampler=sampler, points_to_evaluate=points or None)
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


class ConditionalOptunaSearch(_RepeatsUnsaid, OptunaSearch):
    """``OptunaSearch`` over a define-by-run space whose ``config`` reshapes each suggestion.

    Ray unflattens a suggestion on "/" only: the family's parameters, named ``<family>.<name>``,
    reach ``config`` flat.
    """

    def suggest(self, trial_id: str) -> dict | None:
        params = super().suggest(trial_id)
        return params if not isinstance(params, dict) else self._space.config(params)
