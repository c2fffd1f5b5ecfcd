"""The Gaussian-process model behind ``--searcher gp``: encoding, fitting and proposing points.

No Ray here: :mod:`raysweep.strategies._gp` puts this behind Ray Tune's ``Searcher`` interface.
Every parameter is encoded into the unit cube (log scales in log space, integers and
quantized values on their grid, a categorical as one-hot columns); candidates are always
snapped to configs that exist, so the GP only ever scores real configurations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: expected-improvement margin, in units of the (transformed) objective
XI = 0.01
#: the kernel's hyperparameters are re-fitted on at most this many observations
MAX_FIT_POINTS = 200
#: Gamma(shape, rate) prior on each length-scale of the unit cube (mode 1/3, mean 1/2), the
#: kernel's hyperparameters being fitted by maximum a posteriori, as BoTorch's GP did by default
#: for years. Maximum likelihood alone, on the ten-odd points of an early sweep, switches most
#: parameters off (length-scale at its bound of 100) and pins one to a spike: measured on
#: Hartmann-6 (seed 1), the fitted GP ignored 3 to 4 of 6 dimensions until trial 30 and found
#: nothing better from trial 4 to 29. A hyperparameter space of ML has the same few points per
#: dimension early on; the prior gives way as the trials show a parameter not to matter.
LENGTH_SCALE_PRIOR = (3.0, 6.0)


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: a numeric range (maybe log, integer or quantized) or a set of categories."""

    name: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    integer: bool = False
    #: grid step of integer and quantized parameters (1 for plain integers), None for a continuum
    q: float | None = None
    #: the values of a categorical parameter (any objects, lists included), else None
    categories: tuple[Any, ...] | None = None

    @property
    def width(self) -> int:
        """How many columns of the unit cube this parameter takes."""
        return len(self.categories) if self.categories is not None else 1

    def _edges(self) -> tuple[float, float]:
        # A grid value owns the half step on each side of it, so each is equally likely when
        # a point is drawn uniformly in the cube.
        low, high = self.low, self.high
        if self.q is not None:
            low, high = low - self.q / 2, high + self.q / 2
            if self.log:
                low = max(low, self.low / 2)
        return (math.log(low), math.log(high)) if self.log else (low, high)

    def encode(self, value: Any) -> np.ndarray:
        """``value`` as this parameter's columns of the unit cube (clipped into the range)."""
        if self.categories is not None:
            column = np.zeros(self.width)
            column[self.index(value)] = 1.0
            return column
        low, high = self._edges()
        x = min(max(float(value), self.low), self.high)
        x = math.log(x) if self.log else x
        return np.array([(x - low) / (high - low)])

    def index(self, value: Any) -> int:
        """The position of ``value`` among the categories."""
        for i, category in enumerate(self.categories or ()):
            if category == value and type(category) is type(value):
                return i
        for i, category in enumerate(self.categories or ()):
            if category == value:
                return i
        raise ValueError(f"{self.name}: {value!r} is not one of {list(self.categories or ())}")

    def decode(self, columns: np.ndarray) -> Any:
        """The parameter value that the unit-cube columns stand for."""
        if self.categories is not None:
            return self.categories[int(np.argmax(columns))]
        low, high = self._edges()
        x = low + float(np.clip(columns[0], 0.0, 1.0)) * (high - low)
        x = math.exp(x) if self.log else x
        if self.q is not None:
            x = round(x / self.q) * self.q
        x = min(max(x, self.low), self.high)
        if self.integer:
            return int(round(x))
        return float(round(x, 12)) if self.q is not None else float(x)

    def snap(self, block: np.ndarray) -> np.ndarray:
        """Rows of this parameter's columns moved onto values that exist (the grid, one-hot)."""
        if self.categories is not None:
            snapped = np.zeros_like(block)
            snapped[np.arange(len(block)), np.argmax(block, axis=1)] = 1.0
            return snapped
        block = np.clip(block, 0.0, 1.0)
        if self.q is None:
            return block
        low, high = self._edges()
        x = low + block[:, 0] * (high - low)
        x = np.exp(x) if self.log else x
        x = np.clip(np.round(x / self.q) * self.q, self.low, self.high)
        x = np.log(x) if self.log else x
        return ((x - low) / (high - low))[:, None]


class Space:
    """The searched parameters, and the map between configs and rows of the unit cube."""

    def __init__(self, dimensions: list[Dimension]) -> None:
        self.dimensions = list(dimensions)
        self.slices = []
        start = 0
        for dimension in self.dimensions:
            self.slices.append(slice(start, start + dimension.width))
            start += dimension.width
        self.width = start

    def encode(self, config: dict[str, Any]) -> np.ndarray:
        return np.concatenate([d.encode(config[d.name]) for d in self.dimensions])

    def decode(self, row: np.ndarray) -> dict[str, Any]:
        return {d.name: d.decode(row[s]) for d, s in zip(self.dimensions, self.slices)}

    def snap(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty_like(rows)
        for dimension, columns in zip(self.dimensions, self.slices):
            out[:, columns] = dimension.snap(rows[:, columns])
        return out

    def sample(self, rng: np.random.Generator, n: int, unit: np.ndarray | None = None) -> np.ndarray:
        """``n`` rows drawn uniformly over the configs (from ``unit``, one column per parameter, if given)."""
        unit = rng.random((n, len(self.dimensions))) if unit is None else unit
        rows = np.zeros((n, self.width))
        for k, (dimension, columns) in enumerate(zip(self.dimensions, self.slices)):
            if dimension.categories is None:
                rows[:, columns] = unit[:, [k]]
            else:
                picked = np.minimum((unit[:, k] * dimension.width).astype(int), dimension.width - 1)
                rows[np.arange(n), columns.start + picked] = 1.0
        return self.snap(rows)


class GPProposer:
    """Proposes the next point to evaluate: a Latin-hypercube design first, then expected improvement.

    Values are minimised (the caller negates a metric to maximise). Points handed out and not
    yet told are *pending*: the GP is refitted with each believed at its posterior mean
    (kriging believer), so concurrent suggestions are distinct and still model-based.
    """

    def __init__(self, space: Space, seed: int | None, n_initial: int | None = None) -> None:
        from scipy.stats import qmc

        self.space = space
        self.rng = np.random.default_rng(seed)
        n_params = len(space.dimensions)
        self.n_initial = n_initial if n_initial is not None else max(5, min(10, 2 * n_params + 1))
        self.design_ = space.sample(self.rng, self.n_initial, qmc.LatinHypercube(d=n_params, seed=self.rng).random(self.n_initial))
        self.asked_ = 0
        #: evaluated points registered from elsewhere (earlier sweeps): they stand in for as many
        #: points of the initial design
        self.prior_ = 0
        self.X_: list[np.ndarray] = []
        self.y_: list[float] = []
        self.pending_: dict[str, np.ndarray] = {}
        self.kernel_: Any = None
        self.kernel_fitted_at_ = 0

    # -- the history ------------------------------------------------------------------------------
    def hold(self, key: str, row: np.ndarray) -> None:
        """Note ``row`` as handed out under ``key`` (a trial) and not evaluated yet."""
        self.pending_[key] = row
        self.asked_ += 1

    def release(self, key: str) -> np.ndarray | None:
        """Forget the pending point of ``key`` (its trial ended); returns its row."""
        return self.pending_.pop(key, None)

    def tell(self, row: np.ndarray, value: float) -> None:
        """Register an evaluated point (``value`` to minimise); non-finite values are ignored."""
        if math.isfinite(value):
            self.X_.append(np.asarray(row, dtype=float))
            self.y_.append(float(value))

    def tell_prior(self, row: np.ndarray, value: float) -> None:
        """Register a point evaluated elsewhere (an earlier sweep's trial), as :meth:`tell` does;
        it takes the place of one point of the initial design."""
        if math.isfinite(value):
            self.tell(row, value)
            self.prior_ += 1

    # -- proposing --------------------------------------------------------------------------------
    def propose(self) -> np.ndarray:
        """The next row to evaluate (not yet held: call :meth:`hold` with it)."""
        if self.asked_ + self.prior_ < self.n_initial or len(self.y_) < 2:
            if self.asked_ < len(self.design_):
                return self.design_[self.asked_]
            return self.space.sample(self.rng, 1)[0]
        return self._model_based()

    def _model_based(self) -> np.ndarray:
        X = np.array(self.X_)
        z = _gaussianise(np.array(self.y_))
        self._refit_kernel(X, z)
        gp = _fit(X, z, self.kernel_)
        pending = np.array(list(self.pending_.values())) if self.pending_ else np.zeros((0, self.space.width))
        if len(pending):
            believed = gp.predict(pending)
            gp = _fit(np.vstack([X, pending]), np.concatenate([z, believed]), self.kernel_)
        taken = np.vstack([X, pending])
        best_z = float(z.min())

        def score(rows: np.ndarray) -> np.ndarray:
            return _expected_improvement(gp, rows, best_z)

        candidates = self.space.sample(self.rng, 1000)
        order = np.argsort(z)
        candidates = np.vstack([candidates, self._around(X[order[:5]], (0.2, 0.05, 0.01), 100)])
        values = score(candidates)
        for scale in (0.02, 0.005):
            top = candidates[np.argsort(-values)[:10]]
            extra = self._around(top, (scale,), 40)
            candidates, values = np.vstack([candidates, extra]), np.concatenate([values, score(extra)])
        fresh = _distance_to(candidates, taken) > 1e-9
        if fresh.any():
            candidates, values = candidates[fresh], values[fresh]
        return candidates[int(np.argmax(values))]

    def _around(self, centres: np.ndarray, scales: tuple[float, ...], n: int) -> np.ndarray:
        """Rows near each centre: numeric columns jittered, each categorical switched with some probability."""
        blocks = []
        for scale in scales:
            rows = np.repeat(centres, n, axis=0)
            rows = rows + self.rng.normal(0.0, scale, rows.shape)
            for dimension, columns in zip(self.space.dimensions, self.space.slices):
                if dimension.categories is not None:
                    switch = self.rng.random(len(rows)) < min(0.5, 2 * scale)
                    noise = self.rng.random((int(switch.sum()), dimension.width))
                    rows[switch, columns] = noise
            blocks.append(self.space.snap(rows))
        return np.vstack(blocks)

    def _refit_kernel(self, X: np.ndarray, z: np.ndarray) -> None:
        # Fitting the kernel's hyperparameters is the costly part (O(n^3) per optimiser step):
        # redo it as the history grows by a fifth, on at most MAX_FIT_POINTS points.
        n = len(z)
        if self.kernel_ is not None and n - self.kernel_fitted_at_ < max(1, self.kernel_fitted_at_ // 5):
            return
        if n > MAX_FIT_POINTS:
            order = np.argsort(z)
            best = order[: MAX_FIT_POINTS // 2]
            rest = self.rng.choice(order[MAX_FIT_POINTS // 2 :], MAX_FIT_POINTS - len(best), replace=False)
            X, z = X[np.concatenate([best, rest])], z[np.concatenate([best, rest])]
        gp = _fit(X, z, self.kernel_ or _kernel(self.space.width), optimise=True, seed=int(self.rng.integers(2**31 - 1)))
        self.kernel_ = gp.kernel_
        self.kernel_fitted_at_ = n


def _kernel(width: int) -> Any:
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    return ConstantKernel(1.0, (1e-2, 1e2)) * Matern(np.full(width, 0.3), (1e-2, 1e2), nu=2.5) + WhiteKernel(1e-3, (1e-6, 1e-1))


def _fit(X: np.ndarray, z: np.ndarray, kernel: Any, optimise: bool = False, seed: int = 0) -> Any:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor

    gp = GaussianProcessRegressor(
        kernel=kernel,
        optimizer=_map_optimiser(kernel) if optimise else None,
        n_restarts_optimizer=1 if optimise else 0,
        normalize_y=False,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gp.fit(X, z)


def _map_optimiser(kernel: Any) -> Any:
    """An optimiser for scikit-learn's GP: L-BFGS-B on the negative log marginal likelihood plus
    the negative log of :data:`LENGTH_SCALE_PRIOR` on every length-scale."""
    mask = np.concatenate([np.full(h.n_elements, "length_scale" in h.name) for h in kernel.hyperparameters if not h.fixed])
    shape, rate = LENGTH_SCALE_PRIOR

    def optimise(objective: Any, theta: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
        from scipy.optimize import minimize

        def posterior(theta: np.ndarray) -> tuple[float, np.ndarray]:
            value, gradient = objective(theta, eval_gradient=True)
            log_scale = theta[mask]  # scikit-learn's theta is the log of each hyperparameter
            value = value + float(np.sum(rate * np.exp(log_scale) - (shape - 1) * log_scale))
            gradient = np.array(gradient, dtype=float)
            gradient[mask] += rate * np.exp(log_scale) - (shape - 1)
            return value, gradient

        result = minimize(posterior, theta, method="L-BFGS-B", jac=True, bounds=bounds)
        return result.x, float(result.fun)

    return optimise


def _gaussianise(y: np.ndarray) -> np.ndarray:
    """Values standardised, then made closer to normal by a fitted Yeo-Johnson transform.

    A few very poor trials (a diverged model, Branin's corners) would otherwise flatten
    everything else; a rank transform would lose how much better the best are.
    """
    from sklearn.preprocessing import PowerTransformer

    spread = float(y.std())
    if not spread > 0:
        return np.zeros_like(y)
    z = (y - y.mean()) / spread
    return PowerTransformer(method="yeo-johnson").fit_transform(z[:, None])[:, 0]


def _expected_improvement(gp: Any, rows: np.ndarray, best: float) -> np.ndarray:
    from scipy.stats import norm

    mean, std = gp.predict(rows, return_std=True)
    std = np.maximum(std, 1e-9)
    improvement = best - mean - XI
    t = improvement / std
    ei = improvement * norm.cdf(t) + std * norm.pdf(t)
    if not np.any(ei > 0):  # far past the best everywhere: fall back to a lower confidence bound
        return -(mean - 2 * std)
    return ei


def _distance_to(rows: np.ndarray, others: np.ndarray) -> np.ndarray:
    if not len(others):
        return np.full(len(rows), np.inf)
    from scipy.spatial.distance import cdist

    return cdist(rows, others).min(axis=1)
