"""A complete copy of Tune's experiment state, for a sweep whose driver was killed while saving it.

Tune writes ``experiment_state-<session>.json`` in place, first into the driver's staging folder
and then over the copy in the sweep's folder. A driver killed in the middle of either write leaves
an empty or cut file, and ``Tuner.restore`` then starts the whole sweep again from nothing. The
:class:`StateCopy` callback keeps, beside Tune's file, the last complete one (written to a temporary
file and renamed, so it is never half written); :func:`mend` puts it back before a resume.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ray.tune import Callback

from raysweep.errors import UserError

#: Tune's file name pattern for the experiment state (``TuneController.CKPT_FILE_TMPL``)
STATE_PATTERN = "experiment_state-*.json"
#: the folder, in the sweep's folder, holding the last complete experiment state
COPY_FOLDER = ".raysweep-state"


class DropFinishedCheckpoints(Callback):
    """Deletes a trial's checkpoints once it has completed (a completed trial is never restored)
    and Tune has saved an experiment state that says so.

    Tune's ``num_to_keep`` deletes a running trial's older checkpoints as it goes, and its
    experiment state, saved every 10 s or more, can still name one of them when the driver is
    killed: the resumed trial then fails with "Could not recover from checkpoint as it does not
    exist on storage anymore". raysweep therefore keeps a running trial's checkpoints (at most one
    per step of the trials in flight) and deletes them all once the trial has completed. Not at
    once: until Tune saves its state again, its saved state names the trial running, from its last
    checkpoint, and a resume would restore it from there. Tune asks its callbacks for their state
    (``get_state``) as it saves its own, after :class:`StateCopy` has copied that state (it comes
    first among the sweep's callbacks): the checkpoints go then.
    """

    def __init__(self) -> None:
        self._completed: list[Path] = []

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        folder = Path(str(trial.path))
        if folder.is_dir():  # a local folder; a URI's checkpoints stay where they are
            self._completed.append(folder)

    def get_state(self) -> None:
        completed, self._completed = self._completed, []
        for folder in completed:
            for checkpoint in folder.glob("checkpoint_*"):
                shutil.rmtree(checkpoint, ignore_errors=True)
        return None


class StateCopy(Callback):
    """Copies Tune's experiment state each time Tune has saved it whole.

    Tune asks its callbacks for their state (``get_state``) right after it has written and closed
    the experiment state file in the driver's staging folder: the copy is taken then.
    """

    def __init__(self, sweep_folder: str | Path) -> None:
        self.sweep_folder = Path(sweep_folder)
        self._staging: Path | None = None

    def get_state(self) -> None:
        try:
            newest = _newest(self._staging_folder())
            if newest is not None and _readable(newest):
                _copy_atomically(newest, self.sweep_folder / COPY_FOLDER / newest.name)
        except OSError:
            pass  # a copy that cannot be taken leaves Tune's own file as the only one
        return None

    def _staging_folder(self) -> Path | None:
        if self._staging is None:
            self._staging = _find_staging(self.sweep_folder.name)
        return self._staging


def mend(sweep_folder: str | Path, name: str) -> bool:
    """Put the last complete experiment state back when Tune's newest one is cut, or older than the copy.

    Tune syncs its state from the driver's staging folder into the sweep's folder after saving
    it; :class:`StateCopy` copies it before that sync, and :class:`DropFinishedCheckpoints`
    deletes the checkpoints of the trials it records complete. A driver killed between the two
    leaves Tune's own file one save behind the copy (its loop counter, ``_iteration``, lower):
    the copy is the state to resume from.

    Returns whether a file was mended. Raises :class:`UserError` when Tune's state is cut and no
    complete copy is left: Tune would otherwise start the sweep again from its first trial.
    """
    folder = Path(sweep_folder)
    newest = _newest(folder)
    if newest is None:
        return False
    copy = folder / COPY_FOLDER / newest.name
    tunes, ours = _load(newest), _load(copy)  # each read once: at 10,000 trials a state is tens of MB
    if tunes is not None:
        if ours is not None and _iteration(ours) > _iteration(tunes):
            _copy_atomically(copy, newest)
            return True
        return False
    if ours is None:
        raise UserError(
            f"sweep {name}: Ray's saved state {newest} was cut off when the sweep's driver stopped, "
            "and no complete copy of it is left; start the sweep again with raysweep run"
        )
    _copy_atomically(copy, newest)
    return True


def has_saved_state(sweep_folder: Path) -> bool:
    """Whether Tune saved the sweep's experiment state (a sweep killed before has nothing to restore)."""
    return _newest(sweep_folder) is not None


def budget_used(sweep_folder: str | Path) -> float | None:
    """Seconds of the sweep's time budget that Tune counted in its saved sessions (None: no saved
    state with a budget in it).

    Tune keeps its ``TimeoutStopper`` in the experiment state and a resumed sweep goes on with what
    is left of the budget, not with the whole of it: a resume's own clock must start that far in.
    Private API: the stopper is ``runner_data["_stopper"]``, pickled (a ``CombinedStopper`` holding
    it beside the sweep's own stopper), its budget left ``_budget``; checked on Ray 2.60.
    """
    import cloudpickle

    newest = _newest(Path(sweep_folder))
    state = _load(newest) if newest is not None else None
    try:
        pickled = state["runner_data"]["_stopper"]["value"]
        stopper = cloudpickle.loads(bytes.fromhex(pickled))
    except Exception:  # no state, no stopper, or not Tune's layout
        return None
    found = [stopper]
    while found:
        candidate = found.pop()
        found.extend(getattr(candidate, "_stoppers", ()) or ())
        if hasattr(candidate, "_timeout_seconds") and hasattr(candidate, "_budget"):
            return max(0.0, float(candidate._timeout_seconds) - float(candidate._budget))
    return None


def _newest(folder: Path | None) -> Path | None:
    # The file Tune restores from: the greatest name (Tune's _find_newest_experiment_checkpoint).
    if folder is None or not folder.is_dir():
        return None
    names = fnmatch.filter(os.listdir(folder), STATE_PATTERN)
    return folder / max(names) if names else None


def _iteration(state: dict[str, Any]) -> int:
    """Tune's loop counter when it saved ``state`` (later saves have higher ones); -1 if absent."""
    try:
        return int(state["runner_data"]["_iteration"])
    except (KeyError, TypeError, ValueError):
        return -1


def _load(path: Path) -> dict[str, Any] | None:
    """The experiment state in ``path``; None when it is absent, cut or not Tune's."""
    try:
        state = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _readable(path: Path) -> bool:
    return _load(path) is not None


def _copy_atomically(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def _find_staging(experiment_name: str) -> Path | None:
    """The driver's staging folder of this experiment (see ``StorageContext.experiment_driver_staging_path``)."""
    # Private API: Tune's staging folder has no public accessor. Checked on Ray 2.60, as is the
    # order StateCopy relies on (TuneController.save_to_dir writes the state file, then asks the
    # callbacks for theirs) and Tune restoring from the greatest file name.
    try:
        from ray.train.constants import _get_ray_train_session_dir

        artifacts = Path(_get_ray_train_session_dir())
    except Exception:  # not connected the usual way (Ray Client): Tune's own file is the only one
        return None
    found = [path for path in artifacts.glob(f"*/{experiment_name}/driver_artifacts") if path.is_dir()]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None



def saved_results(path: str, metric: str, mode: str) -> Any:
    """The trials of the sweep saved at ``path`` as Tune's ``ResultGrid``, without running any."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    return ResultGrid(ExperimentAnalysis(path, default_metric=metric, default_mode=mode))
