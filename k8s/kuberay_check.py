"""KubeRay objects (ray.io/v1) against the operator's CRD schemas, every object closed as the API server's
strict field validation would treat it, plus the operator's rules that the schemas cannot express."""

from __future__ import annotations

import copy
import gzip
from pathlib import Path

import jsonschema
import yaml

CRD_DIR = Path(__file__).resolve().parent / "crds"  # vendored, gzipped; see its README
MAX_RAYJOB_NAME = 47  # KubeRay derives DNS-1035 names from it


def closed(schema: dict) -> dict:
    """Every object schema that lists properties rejects unknown fields, unless the CRD says otherwise."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return schema


def crd_validators(crd_dir: Path = CRD_DIR) -> dict[str, jsonschema.Draft7Validator]:
    validators = {}
    for path in sorted(crd_dir.glob("ray.io_*.yaml*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            crd = yaml.safe_load(f)
        for version in crd["spec"]["versions"]:
            if version["name"] == "v1":
                schema = closed(version["schema"]["openAPIV3Schema"])
                validators[crd["spec"]["names"]["kind"]] = jsonschema.Draft7Validator(schema)
    if not validators:
        raise FileNotFoundError(f"no KubeRay CRDs (ray.io_*.yaml[.gz]) in {crd_dir}")
    return validators


def field_path(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        return f"{path}: {error.message}"
    return path


def kuberay_problems(doc: dict, validators: dict) -> list[tuple[str, str]]:
    """(field, message) for everything wrong with one ray.io/v1 object."""
    kind = doc.get("kind")
    if kind not in validators:
        return [("kind", f"{kind} is not a KubeRay kind ({', '.join(validators)})")]
    problems = [(field_path(e), e.message) for e in validators[kind].iter_errors(without_status(doc))]
    if kind == "RayJob":
        problems += rayjob_rules(doc)
    for field, spec in cluster_specs(doc):
        problems += [(f"{field}.{f}", m) for f, m in raycluster_rules(spec)]
    return problems


def without_status(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "status"}


def rayjob_rules(doc: dict) -> list[tuple[str, str]]:
    """What the operator refuses although the schema allows it."""
    spec, out = doc.get("spec", {}), []
    name = doc.get("metadata", {}).get("name", "")
    if len(name) > MAX_RAYJOB_NAME:
        out.append(("metadata.name", f"{len(name)} characters; RayJob names must be at most {MAX_RAYJOB_NAME}"))
    if spec.get("clusterSelector") and spec.get("rayClusterSpec"):
        out.append(("spec.clusterSelector", "set either clusterSelector or rayClusterSpec, not both"))
    if not spec.get("clusterSelector") and not spec.get("rayClusterSpec"):
        out.append(("spec.rayClusterSpec", "a RayJob needs rayClusterSpec or clusterSelector"))
    if spec.get("clusterSelector") and "backoffLimit" in spec:
        out.append(("spec.backoffLimit", "not allowed with clusterSelector"))
    if "deletionStrategy" in spec and (spec.get("shutdownAfterJobFinishes") or "ttlSecondsAfterFinished" in spec):
        out.append(("spec.deletionStrategy", "use deletionStrategy or shutdownAfterJobFinishes/ttl, not both"))
    if spec.get("clusterSelector") and spec.get("shutdownAfterJobFinishes"):
        out.append(("spec.shutdownAfterJobFinishes", "would not apply to a selected cluster; use deletionStrategy"))
    if "activeDeadlineSeconds" not in spec:
        out.append(("spec.activeDeadlineSeconds", "set it, so a job stuck on an image pull ends"))
    return out


def cluster_specs(doc: dict) -> list[tuple[str, dict]]:
    if doc.get("kind") == "RayCluster":
        return [("spec", doc.get("spec", {}))]
    if doc.get("kind") == "RayJob" and doc.get("spec", {}).get("rayClusterSpec"):
        return [("spec.rayClusterSpec", doc["spec"]["rayClusterSpec"])]
    return []


def raycluster_rules(spec: dict) -> list[tuple[str, str]]:
    out = []
    if not spec.get("rayVersion"):
        out.append(("rayVersion", "set it to the image's Ray version"))
    groups = [("headGroupSpec", spec.get("headGroupSpec", {}))]
    groups += [(f"workerGroupSpecs.{i}", g) for i, g in enumerate(spec.get("workerGroupSpecs", []))]
    for where, group in groups:
        for key in ("replicas", "minReplicas", "maxReplicas") if where != "headGroupSpec" else ():
            if key not in group:
                out.append((f"{where}.{key}", "set it explicitly"))
        containers = group.get("template", {}).get("spec", {}).get("containers", [])
        if containers:
            res = containers[0].get("resources", {})
            if res.get("requests") != res.get("limits"):
                out.append((f"{where}.template.spec.containers.0.resources", "requests must equal limits"))
    return out
