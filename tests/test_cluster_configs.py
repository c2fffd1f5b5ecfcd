"""The cluster configs in cluster/ are ones Ray's cluster launcher and KubeRay accept.

The launcher YAMLs go through Ray's own schema (ray/autoscaler/ray-schema.json) and Ray's own
offline `prepare_config` / `validate_config`, the steps `ray up` runs before it talks to a cloud.
KubeRay's CRDs are not installed here, so the manifests are checked against the fields KubeRay
requires, written down below. Every check is also shown to reject a broken config.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Callable

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_DIR = ROOT / "cluster"
LAUNCHER_CONFIGS = ["aws.yaml", "gcp.yaml"]
KUBERAY_MANIFESTS = {"kuberay/raycluster.yaml": "RayCluster", "kuberay/rayjob.yaml": "RayJob"}
RAY_VERSION = "2.60.0"
RAY_IMAGE = "rayproject/ray:2.60.0-py311-cpu"


def load(name: str) -> dict[str, Any]:
    documents = list(yaml.safe_load_all((CLUSTER_DIR / name).read_text()))
    assert len(documents) == 1, f"{name}: expected one YAML document, found {len(documents)}"
    return documents[0]


# -- the Ray cluster launcher ---------------------------------------------------------------------
def ray_schema() -> dict[str, Any]:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def launcher_errors(config: dict[str, Any]) -> list[str]:
    """What `ray up` would reject before contacting the cloud: Ray's schema, then Ray's own
    prepare (merge the provider's defaults) and validate steps."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema = ray_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'.'.join(map(str, error.absolute_path)) or '<top>'}: {error.message}"
        for error in validator.iter_errors(config)
    ]
    if errors:
        return errors
    try:
        validate_config(prepare_config(copy.deepcopy(config)))
    except (ValueError, RuntimeError, KeyError, AssertionError, jsonschema.ValidationError) as exc:
        return [f"{type(exc).__name__}: {exc}"]
    return []


def start_command(config: dict[str, Any], which: str) -> str:
    return " ".join(config[f"{which}_start_ray_commands"])


def raysweep_launcher_errors(config: dict[str, Any]) -> list[str]:
    """raysweep's own rules for a launcher config (README: token auth, loopback dashboard, raysweep
    on every node, a head that only schedules, autoscaling workers, the pinned Ray image)."""
    errors = []
    head, worker = start_command(config, "head"), start_command(config, "worker")
    if "--dashboard-host=127.0.0.1" not in head:
        errors.append("head_start_ray_commands: the dashboard must listen on 127.0.0.1 (--dashboard-host=127.0.0.1)")
    for which, command in (("head", head), ("worker", worker)):
        if "RAY_AUTH_MODE=token" not in command:
            errors.append(f"{which}_start_ray_commands: `ray start` must run with RAY_AUTH_MODE=token")
    if not any(source == "~/.ray/auth_token" and target.endswith("/.ray/auth_token") for target, source in config.get("file_mounts", {}).items()):
        errors.append("file_mounts: must copy ~/.ray/auth_token to every node's ~/.ray/auth_token")
    if not any(re.search(r"pip install .*raysweep", command) for command in config.get("setup_commands", [])):
        errors.append("setup_commands: must pip install raysweep on every node")
    if config.get("docker", {}).get("image") != RAY_IMAGE:
        errors.append(f"docker.image: must be {RAY_IMAGE}")
    node_types = config["available_node_types"]
    if node_types[config["head_node_type"]]["resources"].get("CPU") != 0:
        errors.append("the head node type must offer no CPUs (resources: {CPU: 0})")
    workers = [t for name, t in node_types.items() if name != config["head_node_type"]]
    if not any(t.get("max_workers", config["max_workers"]) > t.get("min_workers", 0) for t in workers):
        errors.append("no autoscaling worker type (max_workers > min_workers)")
    return errors


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_is_accepted_by_ray(name: str) -> None:
    assert launcher_errors(load(name)) == []


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_follows_raysweep_rules(name: str) -> None:
    assert raysweep_launcher_errors(load(name)) == []


def _drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]

    return mutate


def _set(value: Any, *path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value

    return mutate


def _first_worker_type(config: dict[str, Any]) -> dict[str, Any]:
    return next(t for name, t in config["available_node_types"].items() if name != config["head_node_type"])


LAUNCHER_BREAKAGES = [
    ("no provider", _drop("provider"), r"'provider' is a required property"),
    ("no provider type", _drop("provider", "type"), r"'type' is a required property"),
    ("no cluster name", _drop("cluster_name"), r"'cluster_name' is a required property"),
    ("misspelt key", _set(4, "max_worker"), r"Additional properties are not allowed \('max_worker'"),
    ("commands not a list", _set("pip install raysweep", "setup_commands"), r"is not of type 'array'"),
    ("unknown docker key", _set(True, "docker", "pull_before_start"), r"Additional properties are not allowed"),
    ("head type not defined", _set("ray.head.gone", "head_node_type"), r"head_node_type` must be one of"),
    (
        "node type without node_config",
        lambda c: _first_worker_type(c).pop("node_config"),
        r"'node_config' is a required property",
    ),
    ("negative CPUs", lambda c: _first_worker_type(c).update(resources={"CPU": -1}), r"-1 is less than the minimum of 0"),
    (
        "more min workers than max_workers",
        lambda c: _first_worker_type(c).update(min_workers=c["max_workers"] + 1, max_workers=c["max_workers"] + 1),
        r"max_workers` is smaller than the sum of `min_workers`",
    ),
]


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
@pytest.mark.parametrize(("breakage", "mutate", "message"), LAUNCHER_BREAKAGES, ids=[b[0] for b in LAUNCHER_BREAKAGES])
def test_ray_rejects_a_broken_launcher_config(name: str, breakage: str, mutate: Callable, message: str) -> None:
    config = load(name)
    mutate(config)

    errors = launcher_errors(config)

    assert errors, f"{breakage}: accepted"
    assert re.search(message, "\n".join(errors)), errors


# -- KubeRay --------------------------------------------------------------------------------------
# The fields KubeRay's ray.io/v1 CRDs require (RayCluster: headGroupSpec.template, worker groups'
# groupName / minReplicas / maxReplicas / template; RayJob: an entrypoint and a rayClusterSpec to
# create the cluster from), plus what raysweep's manifests always set (replicas, rayStartParams,
# rayVersion). rayStartParams is a map of strings in the CRD: `num-cpus: 0` is rejected there.
_POD_TEMPLATE = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["containers"],
            "properties": {
                "containers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "image"],
                        "properties": {"name": {"type": "string", "minLength": 1}, "image": {"type": "string", "minLength": 1}},
                    },
                }
            },
        }
    },
}
_RAY_START_PARAMS = {"type": "object", "additionalProperties": {"type": "string"}}
_COUNT = {"type": "integer", "minimum": 0}
_RAY_CLUSTER_SPEC = {
    "type": "object",
    "required": ["rayVersion", "headGroupSpec", "workerGroupSpecs"],
    "properties": {
        "rayVersion": {"type": "string"},
        "enableInTreeAutoscaling": {"type": "boolean"},
        "authOptions": {"type": "object", "properties": {"mode": {"enum": ["disabled", "token"]}}},
        "headGroupSpec": {
            "type": "object",
            "required": ["rayStartParams", "template"],
            "properties": {"rayStartParams": _RAY_START_PARAMS, "template": _POD_TEMPLATE},
        },
        "workerGroupSpecs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template"],
                "properties": {
                    "groupName": {"type": "string", "minLength": 1},
                    "replicas": _COUNT,
                    "minReplicas": _COUNT,
                    "maxReplicas": _COUNT,
                    "rayStartParams": _RAY_START_PARAMS,
                    "template": _POD_TEMPLATE,
                },
            },
        },
    },
}
_METADATA = {
    "type": "object",
    "required": ["name"],
    # A Kubernetes object name (RFC 1123 label: KubeRay derives Service names from it).
    "properties": {"name": {"type": "string", "maxLength": 63, "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}},
}
KUBERAY_SCHEMAS = {
    "RayCluster": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "ray.io/v1"},
            "kind": {"const": "RayCluster"},
            "metadata": _METADATA,
            "spec": _RAY_CLUSTER_SPEC,
        },
    },
    "RayJob": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "ray.io/v1"},
            "kind": {"const": "RayJob"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["entrypoint", "rayClusterSpec"],
                "properties": {
                    "entrypoint": {"type": "string", "minLength": 1},
                    "runtimeEnvYAML": {"type": "string"},
                    "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
                    "shutdownAfterJobFinishes": {"type": "boolean"},
                    "ttlSecondsAfterFinished": _COUNT,
                    "activeDeadlineSeconds": _COUNT,
                    "backoffLimit": _COUNT,
                    "rayClusterSpec": _RAY_CLUSTER_SPEC,
                },
            },
        },
    },
}


def kuberay_errors(manifest: Any, kind: str) -> list[str]:
    """What KubeRay would reject in a manifest of ``kind``, plus raysweep's rules for them
    (token auth, Ray 2.60 everywhere, sane replica bounds, a raysweep entrypoint)."""
    schema = KUBERAY_SCHEMAS[kind]
    errors = [
        f"{'.'.join(map(str, error.absolute_path)) or '<top>'}: {error.message}"
        for error in jsonschema.Draft7Validator(schema).iter_errors(manifest)
    ]
    if errors:
        return errors
    spec = manifest["spec"]
    cluster = spec["rayClusterSpec"] if kind == "RayJob" else spec
    if cluster["rayVersion"] != RAY_VERSION:
        errors.append(f"rayVersion: must be {RAY_VERSION}, got {cluster['rayVersion']}")
    if cluster.get("authOptions", {}).get("mode") != "token":
        errors.append("authOptions.mode: must be token")
    templates = [cluster["headGroupSpec"]["template"]] + [group["template"] for group in cluster["workerGroupSpecs"]]
    for container in (c for template in templates for c in template["spec"]["containers"]):
        if container["image"] != RAY_IMAGE:
            errors.append(f"container {container['name']}: image must be {RAY_IMAGE}, got {container['image']}")
    for group in cluster["workerGroupSpecs"]:
        if not group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]:
            errors.append(
                f"workerGroupSpecs {group['groupName']}: need minReplicas <= replicas <= maxReplicas, got "
                f"{group['minReplicas']} <= {group['replicas']} <= {group['maxReplicas']}"
            )
    if kind == "RayJob":
        if not re.match(r"raysweep run \S+ .*--dataset \S+", spec["entrypoint"]) or "--json" not in spec["entrypoint"].split():
            errors.append(f"entrypoint: must be `raysweep run RECIPE --dataset ... --json`, got {spec['entrypoint']!r}")
        if spec.get("shutdownAfterJobFinishes") and "--tracking-uri" not in spec["entrypoint"].split():
            # The cluster goes when the job ends: a sqlite store on the head (the fallback without a
            # tracking URI) would go with it, every run of the sweep lost.
            head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
            uri = next((env for env in head.get("env", []) if env["name"] == "MLFLOW_TRACKING_URI"), None)
            if uri is None or uri.get("valueFrom", {}).get("secretKeyRef", {}).get("optional", False):
                errors.append("MLFLOW_TRACKING_URI: a job whose cluster is deleted after it needs a tracking server, not an optional one")
        runtime_env = yaml.safe_load(spec.get("runtimeEnvYAML") or "{}")
        if not isinstance(runtime_env, dict) or not any("raysweep" in str(p) for p in runtime_env.get("pip", [])):
            errors.append("runtimeEnvYAML: must pip install raysweep (the stock image does not have it)")
    return errors


@pytest.mark.parametrize(("name", "kind"), KUBERAY_MANIFESTS.items())
def test_kuberay_manifest_has_what_kuberay_requires(name: str, kind: str) -> None:
    assert kuberay_errors(load(name), kind) == []


# -- the docs point at files that exist ----------------------------------------------------------
def test_every_config_the_docs_and_cli_mention_exists() -> None:
    texts = [(CLUSTER_DIR / "README.md").read_text(), (CLUSTER_DIR / "mlflow-server.md").read_text()]
    texts += [path.read_text() for path in (ROOT / "raysweep" / "cluster").glob("*.py")]
    texts.append((ROOT / "raysweep" / "cli" / "cluster.py").read_text())
    mentioned = {m for text in texts for m in re.findall(r"cluster/[\w/.-]+\.(?:yaml|md)", text)}

    assert {"cluster/aws.yaml", "cluster/gcp.yaml", "cluster/kuberay/raycluster.yaml"} <= mentioned
    assert sorted(m for m in mentioned if not (ROOT / m).is_file()) == []
