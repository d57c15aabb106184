"""Write helm/peaknet/values.schema.json: the chart's values, with `pipeline` taken from peaknet's own
config model, so `helm install/lint/template` reject a mistyped pipeline key with its path.

    python3 k8s/values_schema.py           # regenerate after changing PipelineConfig or the values layout
    python3 k8s/values_schema.py --check   # exit 1 if the committed schema is stale (the tests do this)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "helm" / "peaknet" / "values.schema.json"


def closed(properties: dict, required: list[str] | None = None) -> dict:
    """An object that rejects keys it does not list."""
    out = {"type": "object", "additionalProperties": False, "properties": properties}
    return out | ({"required": required} if required else {})


STRING = {"type": "string"}
STRING_MAP = {"type": "object", "additionalProperties": STRING}
RESOURCES = closed({"cpu": STRING, "memory": STRING}, ["cpu", "memory"])
PLACEMENT = {
    "nodeSelector": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
    "tolerations": {"type": "array", "items": {"type": "object"}},
    "affinity": {"type": "object"},
}


def group_schema(worker: bool) -> dict:
    props = {
        "resources": RESOURCES,
        "shmSize": {"type": "string", "description": "size of the /dev/shm memory volume (the object store)"},
        "rayStartParams": STRING_MAP,
        **PLACEMENT,
    }
    required = ["resources", "shmSize"]
    if worker:
        count = {"type": "integer", "minimum": 0}
        props |= {"disabled": {"type": "boolean"}, "replicas": count, "minReplicas": count, "maxReplicas": count}
        props["gpus"] = {"type": "integer", "minimum": 0, "description": "nvidia.com/gpu per pod"}
        required += ["replicas", "minReplicas", "maxReplicas"]
    return closed(props, required)


def values_schema() -> dict:
    sys.path.insert(0, str(ROOT / "app"))
    from peaknet_pipeline.config import PipelineConfig

    pipeline = PipelineConfig.model_json_schema()
    defs = pipeline.pop("$defs")
    pipeline["description"] = "peaknet's pipeline config (PipelineConfig), mounted at /etc/peaknet/pipeline.yaml"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "peaknet chart values",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "image": closed(
                {"repository": STRING, "tag": STRING, "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}}
            ),
            "imagePullSecrets": {"type": "array", "items": {"type": "object"}},
            "rayVersion": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
            "pipeline": pipeline,
            "output": closed(
                {
                    "mountPath": {"type": "string", "pattern": "^/"},
                    "existingClaim": STRING,
                    "storageClassName": STRING,
                    "accessModes": {"type": "array", "items": STRING},
                    "size": STRING,
                }
            ),
            "podSecurityContext": {"type": "object"},
            "securityContext": {"type": "object"},
            "head": group_schema(worker=False),
            "workerGroups": {"type": "object", "additionalProperties": group_schema(worker=True)},
            "ingest": closed(
                {
                    "enabled": {"type": "boolean"},
                    "group": STRING,
                    "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                    "ports": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}},
                }
            ),
        },
        "$defs": defs,
    }


def render() -> str:
    return json.dumps(values_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python3 k8s/values_schema.py")
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
