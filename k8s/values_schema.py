"""Write the chart's values.schema.json and the values table in its README.md, both from this one
description of the values; `pipeline` takes peaknet's own config model, so `helm install/lint/template`
reject a mistyped pipeline key with its path.

    python3 k8s/values_schema.py           # regenerate after changing PipelineConfig or the values layout
    python3 k8s/values_schema.py --check   # exit 1 if either committed file is stale (the tests do this)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))
from peaknet_pipeline.generated import between_markers, stale, write_or_check  # noqa: E402, F401 (stale: tests)

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "peaknet"
TARGET = CHART / "values.schema.json"
README = CHART / "README.md"
TABLE_START, TABLE_END = "<!-- values table: k8s/values_schema.py -->", "<!-- end of values table -->"


def closed(properties: dict, required: list[str] | None = None, description: str = "") -> dict:
    """An object that rejects keys it does not list."""
    out = {"type": "object", "additionalProperties": False, "properties": properties}
    out |= {"required": required} if required else {}
    return out | ({"description": description} if description else {})


def d(description: str, schema: dict | None = None, **kw) -> dict:
    return {**(schema or {}), **kw, "description": description}


STRING = {"type": "string"}
OBJECTS = {"type": "array", "items": {"type": "object"}}
STRING_MAP = {"type": "object", "additionalProperties": STRING}
COUNT = {"type": "integer", "minimum": 0}
RESOURCES = closed(
    {"cpu": d("CPU request = limit", STRING), "memory": d("memory request = limit", STRING)},
    ["cpu", "memory"],
    "requests = limits",
)


def pod_extras(scope: str) -> dict:
    """Settings a pod takes from the top level and, added to them, from its group."""
    return {
        "env": d(f"container env {scope} (list of EnvVar)", OBJECTS),
        "envFrom": d(f"container envFrom {scope} (ConfigMaps, Secrets)", OBJECTS),
        "extraVolumes": d(f"pod volumes {scope}, e.g. a claim or Secret holding model weights", OBJECTS),
        "extraVolumeMounts": d(f"container mounts of extraVolumes {scope}", OBJECTS),
        "podLabels": d(f"pod labels {scope}", STRING_MAP),
        "podAnnotations": d(f"pod annotations {scope}", STRING_MAP),
    }


def group_schema(worker: bool) -> dict:
    props = {
        "resources": RESOURCES,
        "shmSize": d("size of the /dev/shm memory volume: Ray's object store on this pod", STRING),
        "rayStartParams": d("`ray start` flags (values are quoted: KubeRay wants strings)", STRING_MAP),
        "nodeSelector": d(
            "pod nodeSelector (null removes a default key)",
            {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        ),
        "tolerations": d("pod tolerations", OBJECTS),
        "affinity": d("pod affinity", {"type": "object"}),
        "priorityClassName": d("priority class of this group's pods (else the top-level one)", STRING),
        **pod_extras("added for this group"),
    }
    required = ["resources", "shmSize"]
    if worker:
        props |= {
            "disabled": d("true drops the group", {"type": "boolean"}),
            "replicas": d("pods started (and kept, without autoscaling)", COUNT),
            "minReplicas": d("fewest pods when autoscaling.enabled", COUNT),
            "maxReplicas": d("most pods when autoscaling.enabled", COUNT),
            "gpus": d("nvidia.com/gpu per pod", COUNT),
        }
        required += ["replicas", "minReplicas", "maxReplicas"]
    return closed(props, required)


def pipeline_schema() -> tuple[dict, dict]:
    from peaknet_pipeline.config import PipelineConfig

    pipeline = PipelineConfig.model_json_schema()
    defs = pipeline.pop("$defs")
    pipeline["description"] = (
        "merged over pipelineFile: any key of peaknet's pipeline config (`peaknet-pipeline config show`)"
    )
    return pipeline, defs


def values_schema() -> dict:
    pipeline, defs = pipeline_schema()
    files = sorted(p.name for p in (CHART / "configs").glob("*.yaml"))
    image = closed({"repository": d("image repository", STRING), "tag": d("image tag", STRING)})
    props = {
        "nameOverride": d("app.kubernetes.io/name label (default: the chart's name)", STRING),
        "fullnameOverride": d("name of the RayCluster, RayJobs and the rest (default: the release name)", STRING),
        "mode": d(
            "`cluster`: a long-lived RayCluster that stage RayJobs select; "
            "`job`: one RayJob running the whole pipeline on a cluster of its own",
            {"enum": ["cluster", "job"]},
        ),
        "image": closed(
            {
                **image["properties"],
                "pullPolicy": d("image pull policy", {"enum": ["Always", "IfNotPresent", "Never"]}),
            },
            description="the Ray pods' image (docker/)",
        ),
        "imagePullSecrets": d("pull secrets for every pod", OBJECTS),
        "rayVersion": d("Ray in the image (KubeRay picks probes by it)", STRING, pattern=r"^\d+\.\d+\.\d+$"),
        "pipelineFile": d("the pipeline config from the chart's configs/ (= examples/configs/)", {"enum": files}),
        "pipeline": pipeline,
        "output": closed(
            {
                "mountPath": d("where the output volume is mounted on every Ray pod", STRING, pattern="^/"),
                "existingClaim": d("use this claim; then no PVC is made", STRING),
                "storageClassName": d('class of the PVC made here ("": the cluster\'s default)', STRING),
                "accessModes": d(
                    "PVC access modes (ReadWriteMany when writers run on several nodes)",
                    {"type": "array", "items": STRING},
                ),
                "size": d("PVC size", STRING),
            },
            description="the CXI output volume",
        ),
        "serviceAccountName": d("service account of every pod", STRING),
        "priorityClassName": d("priority class of every pod", STRING),
        **pod_extras("for every pod"),
        "podSecurityContext": d("pod securityContext of every pod", {"type": "object"}),
        "securityContext": d("container securityContext of every container, the autoscaler's too", {"type": "object"}),
        "head": group_schema(worker=False) | {"description": "the Ray head pod"},
        "workerGroups": d("worker groups by groupName", {"type": "object", "additionalProperties": group_schema(True)}),
        "autoscaling": closed(
            {
                "enabled": d(
                    "Ray's in-tree autoscaler: groups between minReplicas and maxReplicas", {"type": "boolean"}
                ),
                "upscalingMode": d("autoscaler upscaling", {"enum": ["Default", "Aggressive", "Conservative"]}),
                "idleTimeoutSeconds": d("idle time before a worker pod is removed", COUNT),
                "resources": RESOURCES | {"description": "the autoscaler container's requests = limits"},
            },
            description="Ray autoscaling",
        ),
        "metrics": closed(
            {
                "port": d("Ray's metrics port on every pod (named `metrics`)", {"type": "integer"}),
                "podMonitor": closed(
                    {
                        "enabled": d("make a prometheus-operator PodMonitor for every Ray pod", {"type": "boolean"}),
                        "interval": d("scrape interval", STRING),
                        "labels": d("PodMonitor labels (to match your Prometheus' selector)", STRING_MAP),
                    },
                    description="Prometheus scraping",
                ),
            },
            description="Prometheus metrics",
        ),
        "rayJob": closed(
            {
                "stages": d(
                    "stage RayJobs rendered with the cluster (mode: cluster)",
                    {"type": "array", "items": {"enum": ["produce", "infer", "write"]}, "uniqueItems": True},
                ),
                "activeDeadlineSeconds": d("a RayJob running longer fails", COUNT),
                "preRunningDeadlineSeconds": d("a RayJob not running by then fails (e.g. an image not pulled)", COUNT),
                "keepSucceededSeconds": d("a succeeded RayJob is deleted after this", COUNT),
                "keepFailedSeconds": d("a failed stage RayJob is deleted after this", COUNT),
                "submitter": closed(
                    {
                        "image": image | {"description": "submitter image (small: it runs `ray job submit`)"},
                        "resources": RESOURCES,
                    },
                    description="the submitter pod of each RayJob",
                ),
            },
            description="RayJobs",
        ),
        "ingest": closed(
            {
                "enabled": d("a Service in front of the ingest group", {"type": "boolean"}),
                "group": d("the worker group the socket producers are pinned to", STRING),
                "type": d("Service type", {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}),
                "ports": d(
                    "ports the socket producers listen on",
                    {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}},
                ),
            },
            description="socket ingest for lclstreamer senders",
        ),
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "peaknet chart values",
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "$defs": defs,
    }


def rows(schema: dict, values: object, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, description) for every documented value; `pipeline` is one row."""
    out = []
    for key, prop in schema.get("properties", {}).items():
        path, default = f"{prefix}{key}", values.get(key) if isinstance(values, dict) else None
        if "properties" in prop and key != "pipeline":
            out += rows(prop, default, f"{path}.")
        elif isinstance(prop.get("additionalProperties"), dict) and "properties" in prop["additionalProperties"]:
            out.append((path, "", prop["description"]))
            out += rows(prop["additionalProperties"], None, f"{path}.<name>.")
        else:
            shown = "" if default is None else json.dumps(default)
            out.append((path, shown, prop.get("description", "")))
    return out


def table() -> str:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    lines = ["| key | default | description |", "|---|---|---|"]
    lines += [f"| `{k}` | {f'`{v}`' if v else ''} | {text} |" for k, v, text in rows(values_schema(), values)]
    return "\n".join(lines)


def readme() -> str:
    return between_markers(README.read_text(), TABLE_START, TABLE_END, table())


def render() -> str:
    return json.dumps(values_schema(), indent=2, sort_keys=True) + "\n"


def wanted() -> dict[Path, str]:
    return {TARGET: render(), README: readme()}


def main() -> int:
    return write_or_check(__doc__, wanted, "python3 k8s/values_schema.py")


if __name__ == "__main__":
    sys.exit(main())
