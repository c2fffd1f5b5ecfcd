"""The runtime env Tune gives trial actors while a raysweep sweep runs, and after it."""

from __future__ import annotations

import pytest

from raysweep.sweep.environment import trial_runtime_env


class Trainable:
    """Stands in for the sweep's trainable class: only its remote options are read."""


@pytest.fixture()
def tune_class_cache(monkeypatch: pytest.MonkeyPatch):
    """Tune's actor-class cache module, its module-level settings put back after the test."""
    from ray.tune.execution import class_cache

    monkeypatch.setattr(class_cache, "DEFAULT_ENV_VARS", dict(class_cache.DEFAULT_ENV_VARS))
    monkeypatch.setattr(class_cache, "ENV_VARS_TO_PROPAGATE", set(class_cache.ENV_VARS_TO_PROPAGATE))
    return class_cache


def _trial_env_vars(class_cache) -> dict[str, str]:
    remote = class_cache._ActorClassCache().get(Trainable)
    return (remote._default_options.get("runtime_env") or {}).get("env_vars", {})


def test_trial_actors_get_an_empty_runtime_env_so_they_start_in_the_workers_ray_started(tune_class_cache, tmp_path):
    # Without raysweep's setup Tune asks for PyTorch Lightning's variable: the case this guards.
    assert _trial_env_vars(tune_class_cache) == {"PL_DISABLE_FORK": "1"}
    with trial_runtime_env(str(tmp_path)):
        assert _trial_env_vars(tune_class_cache) == {}
    # Put back for plain Tune runs in the same process.
    assert _trial_env_vars(tune_class_cache) == {"PL_DISABLE_FORK": "1"}


def test_the_env_stays_empty_until_the_last_of_several_sweeps_at_once_ends(tune_class_cache, tmp_path):
    # A nested job runs its sweeps in threads at once: the first to end must not put it back.
    first, second = trial_runtime_env(str(tmp_path)), trial_runtime_env(str(tmp_path))
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert _trial_env_vars(tune_class_cache) == {}
    second.__exit__(None, None, None)
    assert _trial_env_vars(tune_class_cache) == {"PL_DISABLE_FORK": "1"}


def test_cloud_credentials_reach_trial_actors_only_when_results_go_to_the_cloud(tune_class_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    with trial_runtime_env(str(tmp_path)):
        assert "AWS_ACCESS_KEY_ID" not in _trial_env_vars(tune_class_cache)
    with trial_runtime_env("s3://bucket/sweeps"):
        assert _trial_env_vars(tune_class_cache)["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE"
    # After the sweep a plain Tune run gets Tune's own choice back: it propagates them.
    with trial_runtime_env(str(tmp_path)):
        pass
    assert _trial_env_vars(tune_class_cache)["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE"


def test_tunes_own_lines_are_dropped_outside_verbose_and_the_others_kept():
    """With the caller's ray.init at INFO, run_sweep printed Tune's "Wrote the latest version of all
    result files" though the Python API prints nothing unless given progress=True."""
    import logging

    from raysweep.sweep.environment import _TUNE_ERROR_FILTER

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("ray.tune.tune", logging.INFO, __file__, 1, message, None, None)

    assert not _TUNE_ERROR_FILTER.filter(record("Wrote the latest version of all result files and experiment state to '/r'"))
    assert not _TUNE_ERROR_FILTER.filter(record("Trial task failed for trial x_00001"))
    assert _TUNE_ERROR_FILTER.filter(record("Something else Tune has to say"))
