"""Actor reuse that keeps the actors Ray is starting: a sweep grows to its concurrency.

With ``reuse_actors`` Ray Tune asks for an actor for every trial it stages and, when another
trial's actor frees up first, hands that cached actor to the staged trial and removes the actor it
had asked for (``TuneController._maybe_reuse_cached_actor``). That is right while the request
waits for resources (an autoscaler may take minutes). It is wrong once the resources are held and
the actor's process is starting: whenever trials end sooner than a process starts (short trials,
a busy machine, several sweeps sharing a cluster), every new trial takes the one cached actor and
the actor being started for it is killed, so the sweep runs one trial at a time however many CPUs
it has, and each trial costs a placement group created and removed. Measured here: 300 trials
whose first step takes milliseconds made 300 actor requests and ran on one actor of two CPUs.

:func:`keep_starting_actors` changes one decision, for the Tuners whose callbacks hold a
:class:`KeepStartingActors`: a staged trial whose own actor already holds its resources waits for
it, and the cached actor goes to the next trial. A request still waiting for resources is handed
over as before (the six sweeps of a nested job sharing 2 CPUs still make one for most trials).
Everything else (which trial runs, when actors are cached and evicted) stays Ray Tune's.
"""

from __future__ import annotations

import threading
from typing import Any

from ray.tune import Callback

_lock = threading.Lock()
_installed = False


class KeepStartingActors(Callback):
    """Marks a Tuner (through its run config's callbacks) as one whose starting actors are kept."""


def _marked(controller: Any) -> bool:
    callbacks = getattr(getattr(controller, "_callbacks", None), "_callbacks", ())
    return any(isinstance(callback, KeepStartingActors) for callback in callbacks)


def starting_own_actor(controller: Any, trial: Any) -> bool:
    """Whether ``trial``'s own actor holds its resources and has not reported it started yet."""
    actor = controller._trial_to_actor.get(trial)
    return (
        actor is not None
        and trial not in controller._resetting_trials
        and actor not in controller._started_actors
        and actor in controller._actor_manager._live_actors_to_ray_actors_resources
    )


def keep_starting_actors() -> None:
    """Install the rule on Ray Tune's controller (once per process; marked Tuners only)."""
    global _installed
    with _lock:
        if _installed:
            return
        from ray.tune.execution.tune_controller import TuneController

        original = TuneController._maybe_reuse_cached_actor

        def _maybe_reuse_cached_actor(self: Any, trial: Any) -> bool:
            try:
                wait = _marked(self) and starting_own_actor(self, trial)
            except AttributeError:  # a Ray Tune whose controller keeps these elsewhere: its own rule
                wait = False
            return False if wait else original(self, trial)

        TuneController._maybe_reuse_cached_actor = _maybe_reuse_cached_actor
        _installed = True
