"""Every pod the chart and k8s/ make passes the Kubernetes Pod Security "restricted" profile: the Ray head
and workers, each RayJob's submitter, the clusters of whole-pipeline RayJobs and the autoscaler container.
No API server here, so k8s/pod_security.py applies the profile's rules; each rule is shown able to fail."""

from __future__ import annotations

import copy

import pytest

from .conftest import ROOT, load_script

K8S = ROOT / "k8s"
validate = load_script("peaknet_k8s_validate", K8S / "validate.py")
helm_tool = load_script("peaknet_k8s_helm", K8S / "helm.py")
pod_security = load_script("peaknet_k8s_pod_security", K8S / "pod_security.py")

VARIANTS = {
    "default+stages": ["rayJob.stages={write,infer,produce}"],
    "autoscaling": ["autoscaling.enabled=true"],
    "mode=job+autoscaling": ["mode=job", "autoscaling.enabled=true"],
    "ingest": ["ingest.enabled=true", "workerGroups.ingest.disabled=false"],
}


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_tool.find_helm()


def render(helm: str, *sets: str, values=None) -> list[dict]:
    return validate.helm_template(helm, values, sets=list(sets))


def problems(docs: list[dict]) -> list[str]:
    return [f"{d['kind']} {field}: {msg}" for d in docs for field, msg in pod_security.restricted_problems(d)]


@pytest.mark.parametrize("values", [None, *validate.values_files()], ids=lambda v: v.name if v else "values.yaml")
def test_every_values_file_renders_restricted_pods(helm, values):
    docs = render(helm, "rayJob.stages={write,infer,produce}", values=values)
    assert sum(len(list(pod_security.pod_specs(d))) for d in docs) >= 5  # head, 2 groups, 3 submitters
    assert problems(docs) == []


@pytest.mark.parametrize("name", VARIANTS)
def test_chart_variants_render_restricted_pods(helm, name):
    docs = render(helm, *VARIANTS[name])
    assert problems(docs) == []


@pytest.mark.parametrize("path", sorted((K8S / "rayjobs").glob("*.yaml")), ids=lambda p: p.name)
def test_committed_rayjobs_are_restricted(path):
    assert problems(validate.load_manifests(path)) == []


@pytest.mark.parametrize(
    "setting, field",
    [
        ("securityContext.allowPrivilegeEscalation=true", "containers[0].securityContext.allowPrivilegeEscalation"),
        ("securityContext.capabilities.drop=null", "containers[0].securityContext.capabilities.drop"),
        ("securityContext.capabilities.add={SYS_ADMIN}", "containers[0].securityContext.capabilities.add"),
        ("securityContext.privileged=true", "containers[0].securityContext.privileged"),
        ("podSecurityContext.runAsNonRoot=false", "containers[0].securityContext.runAsNonRoot"),
        ("podSecurityContext.runAsUser=0", "spec.securityContext.runAsUser"),
        ("podSecurityContext.seccompProfile.type=Unconfined", "seccompProfile.type"),
        ("extraVolumes[0].name=host", "volumes[3].hostPath"),
    ],
)
def test_a_setting_that_breaks_the_profile_is_named(helm, setting, field):
    sets = [setting, "autoscaling.enabled=true"]
    if setting.startswith("extraVolumes"):
        sets.append("extraVolumes[0].hostPath.path=/var/run")
    found = problems(render(helm, *sets))
    assert any(field in p for p in found), found


def test_the_autoscaler_container_is_checked_on_its_own(helm):
    (cluster,) = [d for d in render(helm, "autoscaling.enabled=true") if d["kind"] == "RayCluster"]
    broken = copy.deepcopy(cluster)
    broken["spec"]["autoscalerOptions"]["securityContext"] = {}
    found = problems([broken])
    field = "RayCluster spec.autoscalerOptions.securityContext.allowPrivilegeEscalation"
    assert any(p.startswith(field) for p in found)


def test_host_namespaces_ports_and_sysctls_are_refused():
    pod = {
        "kind": "Pod",
        "spec": {
            "hostNetwork": True,
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
            "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}],
        },
    }
    fields = [f for f, _ in pod_security.restricted_problems(pod)]
    assert {"spec.hostNetwork", "spec.securityContext.sysctls[0]", "spec.containers[0].ports[0].hostPort"} <= set(
        fields
    )
