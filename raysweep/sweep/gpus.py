"""GPUs for trials: the per-trial request, the cluster's check, and what the trials really used."""

from __future__ import annotations

import math
from typing import Any

from raysweep.errors import UserError
from raysweep.tracking import schema


def check_gpus_per_trial(value: Any) -> float | None:
    """``--gpus-per-trial`` as Ray takes it: a fraction in (0, 1] or a whole number >= 1, else a UserError."""
    if value is None:
        return None
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if isinstance(value, str):  # as typed on the command line
        try:
            number = float(value)
        except ValueError:
            pass
    if number is None or not math.isfinite(number) or number <= 0 or (number > 1 and not float(number).is_integer()):
        raise UserError(
            f"--gpus-per-trial {value}: must be a fraction in (0, 1] (trials share a GPU) or a whole number >= 1, "
            "e.g. --gpus-per-trial 0.25 for four trials per GPU"
        )
    return float(number)


def family_note(families: Any, gpus_per_trial: float | None) -> str | None:
    """The line that says the families (one, or an auto sweep's members) asked for GPUs cannot use them, or None."""
    if not gpus_per_trial:
        return None
    listed = families if isinstance(families, (list, tuple)) else [families]
    idle = list(dict.fromkeys(family.name for family in listed if not family.uses_gpu))
    if not idle:
        return None
    if len(idle) == 1:
        return f"--gpus-per-trial {gpus_per_trial:g}: {idle[0]} trains on the CPU only; its trials hold their GPU share without using it"
    return f"--gpus-per-trial {gpus_per_trial:g}: {', '.join(idle)} train on the CPU only; their trials hold their GPU share without using it"


def trial_resources(gpus_per_trial: float | None) -> dict[str, float]:
    """What Ray reserves for each trial: one CPU, and the GPU share asked for."""
    return {"cpu": 1, "gpu": gpus_per_trial} if gpus_per_trial else {"cpu": 1}


def check_cluster_gpus(gpus_per_trial: float | None, resuming: bool = False) -> None:
    """Refuse, before any trial or MLflow run, a GPU request no node of the connected cluster can meet
    (a trial takes its CPU and its GPUs on one node: two nodes of 1 GPU do not hold a 2-GPU trial)."""
    if not gpus_per_trial:
        return
    import ray

    total, largest = float(ray.cluster_resources().get("GPU", 0)), largest_node_gpus(ray.nodes())
    if largest < gpus_per_trial:
        if not total:
            where = "has no GPU"
        elif largest == total:
            where = f"has {total:g} GPU(s)"
        else:
            where = f"has {total:g} GPUs, at most {largest:g} on one node with a CPU, and a trial's GPUs must be on one node"
        fix = "resume it on a cluster with GPUs (--address)" if resuming else "join a cluster with GPUs (--address), or leave --gpus-per-trial out to train on the CPUs"
        raise UserError(f"--gpus-per-trial {gpus_per_trial:g}: the Ray cluster {where}, so no trial could start; {fix}")


def largest_node_gpus(nodes: list[dict[str, Any]]) -> float:
    """The most GPUs one live node offers a trial (which also needs a CPU there), from ``ray.nodes()``."""
    sizes = [
        float(node.get("Resources", {}).get("GPU", 0))
        for node in nodes
        if node.get("Alive") and float(node.get("Resources", {}).get("CPU", 0)) >= 1
    ]
    return max(sizes, default=0.0)


def trial_gpu_ids() -> list[Any]:
    """The GPUs Ray gave this trial's actor; none outside a Ray worker."""
    try:
        import ray

        return list(ray.get_gpu_ids())
    except Exception:  # outside a Ray worker (direct use in tests)
        return []


def fallback_warnings(gpus_per_trial: float | None, family: Any, results: Any, members: dict[str, Any] | None = None) -> list[str]:
    """One warning for each family that trains on a GPU whose trials were given one and trained on the
    CPU all the same. ``members`` (an auto sweep's: name -> family) counts each family over its own trials."""
    if not gpus_per_trial:
        return []
    results = list(results)
    if members is None:
        groups = [("", family, results)]
    else:
        from raysweep.sweep.auto import split

        groups = [(name, member, [r for r in results if split(dict(r.config or {}))[0] == name]) for name, member in members.items()]
    warnings = []
    for name, trained, own in groups:
        devices = [str((r.metrics or {}).get(schema.DEVICE_RESULT) or "") for r in own]
        on_cpu = sum(device.startswith("cpu") for device in devices)
        if trained.uses_gpu and on_cpu:
            counted = f"{name} trials" if name else "trials"
            warnings.append(
                f"{on_cpu} of {len(devices)} {counted} asked for a GPU (--gpus-per-trial {gpus_per_trial:g}) but {trained.name} "
                f"trained them on the CPU: no GPU was visible to them (see the {schema.DEVICE} tag of each trial run)"
            )
    return warnings
