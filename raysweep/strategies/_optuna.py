"""Optuna's multivariate TPE through Ray Tune's ``OptunaSearch``, trying the starting points first.

``constant_liar`` makes concurrent trials look at each other: a running trial counts as a poor
result, so two trials at once are not sent to the same place. ``OptunaSearch`` refuses a
``seed`` beside a ``sampler``, so the seed goes to the sampler.
"""

from __future__ import annotations

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


class WarmOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that adds evaluated points once Ray Tune has given it the search space.

    They go in through ``OptunaSearch.add_evaluated_point``, which needs the study (made in
    ``set_search_properties``), not through the constructor's ``evaluated_rewards``, which would
    mark every starting point as evaluated. Checked on Ray 2.60 with Optuna 5.0.
    """

    def __init__(self, *, evaluated: list[tuple[dict[str, Any], float]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.evaluated = list(evaluated or [])

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        with quiet_optuna():  # the study is made here
            if not super().set_search_properties(metric, mode, config, **spec):
                return False
        evaluated, self.evaluated = self.evaluated, []
        for parameters, value in evaluated:
            self.add_evaluated_point(parameters, value)
        return True


def build_conditional(metric: str, mode: str, seed: int, max_concurrent: int, space: Any,
                      points: list[dict[str, Any]] | None = None) -> Any:
    """Optuna's TPE over a define-by-run ``space`` (``raysweep run auto``'s family choice, a
    :class:`raysweep.sweep.auto.OptunaSpace`), whose ``config`` turns each flat suggestion into the
    config the trainable takes; ``points`` (in the space's flat names) are tried first."""
    import warnings

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


class ConditionalOptunaSearch(OptunaSearch):
    """``OptunaSearch`` over a define-by-run space whose ``config`` reshapes each suggestion.

    Ray unflattens a suggestion on "/" only: the family's parameters, named ``<family>.<name>``,
    reach ``config`` flat.
    """

    def suggest(self, trial_id: str) -> dict | None:
        params = super().suggest(trial_id)
        return params if not isinstance(params, dict) else self._space.config(params)
