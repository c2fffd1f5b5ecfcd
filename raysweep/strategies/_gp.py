"""Gaussian-process Bayesian optimisation (scikit-learn's GP) as a Ray Tune ``Searcher``.

Ray Tune runs the trials; this searcher only says what to try next. Ray's own
``BayesOptSearch`` is not used: it calls ``bayes_opt.UtilityFunction`` (removed in
bayesian-optimization 2.0) and takes floats only.

What the GP learns from a trial: the last result it reported. A trial that ASHA or HyperBand
stopped early is therefore learnt at the lower resource it reached, where it scored worse than
the trials that went on; that is the scheduler's own verdict on it, so the GP is steered away
from it rather than left to propose its neighbourhood again. A trial that failed, or that ended
with no result, teaches nothing.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

from ray.tune.search import Searcher
from ray.tune.search.sample import Categorical, Domain, Float, Integer, LogUniform, Quantized, Uniform

from raysweep.strategies._gp_model import Dimension, GPProposer, Space


def build(metric: str, mode: str, seed: int, max_concurrent: int, points: list[dict[str, Any]] | None,
          evaluated: list[tuple[dict[str, Any], float]] | None = None) -> Any:
    """``evaluated`` (earlier trials, ``(config, score)``) become the GP's first observations."""
    from ray.tune.search import ConcurrencyLimiter

    searcher = GPSearch(seed=seed, points_to_evaluate=points)
    searcher.add_evaluated_points(list(evaluated or []))
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


def dimension(name: str, domain: Domain) -> Dimension:
    """The :class:`Dimension` a Ray Tune domain stands for; a domain the GP cannot model raises ValueError."""
    sampler = domain.get_sampler()
    q = None
    if isinstance(sampler, Quantized):
        q, sampler = sampler.q, sampler.get_sampler()
    log = isinstance(sampler, LogUniform)
    if isinstance(domain, Categorical) and isinstance(sampler, Uniform):
        return Dimension(name, categories=tuple(domain.categories))
    if isinstance(domain, Float) and isinstance(sampler, (Uniform, LogUniform)):
        low, high = domain.lower, domain.upper
        if q is not None:  # Ray snaps quantized bounds inwards onto the grid
            low, high = math.ceil(round(low / q, 9)) * q, math.floor(round(high / q, 9)) * q
        return Dimension(name, low=low, high=high, log=log, q=q)
    if isinstance(domain, Integer) and isinstance(sampler, (Uniform, LogUniform)):
        if q is None or q == 1:  # upper bound exclusive
            return Dimension(name, low=domain.lower, high=domain.upper - 1, log=log, integer=True, q=1)
        low, high = math.ceil(domain.lower / q) * q, math.floor(domain.upper / q) * q  # inclusive
        return Dimension(name, low=low, high=high, log=log, integer=True, q=q)
    raise ValueError(f"{name}: the GP searcher cannot model {type(domain).__name__} with {type(sampler).__name__.lstrip('_')} sampling")


class GPSearch(Searcher):
    """Proposes configs by expected improvement under a GP fitted to the finished trials.

    ``points_to_evaluate`` are tried first and count toward the initial design. Several trials
    at once get distinct points: each pending one is believed at the GP's prediction.
    """

    def __init__(
        self,
        metric: str | None = None,
        mode: str | None = None,
        seed: int | None = None,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        n_initial: int | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.seed = seed
        self.n_initial = n_initial
        self.points_to_evaluate = [dict(p) for p in points_to_evaluate or []]
        self.space_: Space | None = None
        self.proposer_: GPProposer | None = None
        self._evaluated: list[tuple[dict[str, Any], float]] = []

    # -- Ray Tune's Searcher interface -----------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        if self.proposer_ is not None:
            return False
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        dimensions = [dimension(name, value) for name, value in config.items() if isinstance(value, Domain)]
        self.space_ = Space(dimensions)
        self.proposer_ = GPProposer(self.space_, self.seed, self.n_initial)
        evaluated, self._evaluated = self._evaluated, []
        self.add_evaluated_points(evaluated)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.proposer_ is None:
            raise RuntimeError("GPSearch has no search space yet: Ray Tune sets it from the Tuner's param_space")
        if self.points_to_evaluate:
            config = self.points_to_evaluate.pop(0)
            self.proposer_.hold(trial_id, self.space_.encode(config))
            return dict(config)
        row = self.proposer_.propose()
        self.proposer_.hold(trial_id, row)
        return self.space_.decode(row)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        row = self.proposer_.release(trial_id) if self.proposer_ is not None else None
        value = self.learnt_value(result, error)
        if row is not None and value is not None:
            self.proposer_.tell(row, value)

    def learnt_value(self, result: dict[str, Any] | None, error: bool = False) -> float | None:
        """The value (to minimise) the GP learns from a trial's last result; None: nothing to learn.

        Early-stopped or not, a trial is learnt at its last reported value; a failed trial or
        one without the metric teaches nothing.
        """
        if error or not result or self._metric not in result:
            return None
        value = float(result[self._metric])
        if not math.isfinite(value):
            return None
        return -value if self._mode == "max" else value

    # -- evaluated points from elsewhere (e.g. earlier sweeps) -----------------------------------
    def add_evaluated_points(self, points: list[tuple[dict[str, Any], float]]) -> int:
        """Register already-evaluated ``(config, metric value)`` pairs as observations.

        Values are in the metric's own direction (``mode``); each stands in for one point of the
        initial design, so enough of them start the model at once. Before the search space is known
        they are kept and registered once it is. Returns how many were registered (a config
        that lacks a parameter or holds an unknown category is skipped).
        """
        if self.proposer_ is None:
            self._evaluated.extend(points)
            return 0
        registered = 0
        for config, value in points:
            learnt = self.learnt_value({self._metric: value})
            try:
                row = self.space_.encode(config)
            except (KeyError, ValueError, TypeError):
                continue
            if learnt is not None:
                self.proposer_.tell_prior(row, learnt)
                registered += 1
        return registered

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__dict__, file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))
