"""The chart as an operator of a GPU cluster uses it: one source for every setting (configs/ and values.yaml;
k8s/rayjobs/ and the README table generated from them), names that follow the release, and the knobs such
operators look for (env, extra volumes, service account, priority, labels, autoscaling, metrics).
Real `helm template` throughout; each check is shown able to fail."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from .conftest import ROOT, load_script

K8S = ROOT / "k8s"
validate = load_script("peaknet_k8s_validate", K8S / "validate.py")
helm_tool = load_script("peaknet_k8s_helm", K8S / "helm.py")
sys.path.insert(0, str(K8S))
import manifests  # noqa: E402
import values_schema  # noqa: E402

CHART = validate.CHART


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_tool.find_helm()


def render(helm: str, *sets: str, release: str = "peaknet", chart=CHART, values=None) -> list[dict]:
    return validate.helm_template(helm, values, release, list(sets), chart)


def refused(helm: str, *sets: str) -> str:
    args = [helm, "template", "x", str(CHART)] + [a for s in sets for a in ("--set", s)]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode != 0, done.stdout[:500]
    return done.stderr


def one(docs: list[dict], kind: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def pipeline(docs: list[dict]) -> dict:
    return yaml.safe_load(one(docs, "ConfigMap")["data"]["pipeline.yaml"])


def pods(cluster_spec: dict) -> dict[str, dict]:
    """Pod templates by group name ('head' for the head)."""
    out = {"head": cluster_spec["headGroupSpec"]["template"]}
    return out | {g["groupName"]: g["template"] for g in cluster_spec["workerGroupSpecs"]}


# --- one source ------------------------------------------------------------------------------------------


def test_example_configs_are_the_charts_files():
    assert (ROOT / "examples" / "configs").resolve() == (CHART / "configs").resolve()


def test_the_chart_config_is_the_example_file_with_the_output_on_the_volume(helm):
    cfg = pipeline(render(helm))
    example = yaml.safe_load((ROOT / "examples" / "configs" / "gpu-512.yaml").read_text())
    assert cfg["writer"].pop("output_dir") == "/data/peaknet/cxi"  # the model's relative default, on the volume
    assert cfg.pop("lifecycle") == {"service": False}  # values.yaml's one override: stage RayJobs end
    assert cfg == example


def test_a_change_in_one_place_shows_everywhere(helm, tmp_path):
    """Batch size edited in the example config, image tag in values.yaml: the chart's ConfigMap, its pods,
    the all-in-one RayJob and the stage RayJobs all follow."""
    chart = tmp_path / "peaknet"
    shutil.copytree(CHART, chart, symlinks=False)
    config = chart / "configs" / "gpu-512.yaml"
    config.write_text(config.read_text().replace("batch_size: 64", "batch_size: 16"))
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("tag: 0.1.0-cuda ", "tag: 9.9.9-cuda "))
    cluster_docs = render(helm, "rayJob.stages={infer}", chart=chart)
    job_docs = render(helm, "mode=job", chart=chart)
    for docs in (cluster_docs, job_docs):
        assert pipeline(docs)["data"]["batch_size"] == 16
    cluster = one(cluster_docs, "RayCluster")["spec"]
    job_cluster = one(job_docs, "RayJob")["spec"]["rayClusterSpec"]
    for spec in (cluster, job_cluster):
        assert {p["spec"]["containers"][0]["image"] for p in pods(spec).values()} == {"peaknet:9.9.9-cuda"}
    assert one(cluster_docs, "RayJob")["spec"]["clusterSelector"] == {"ray.io/cluster": "peaknet"}


def test_committed_rayjobs_are_the_chart_rendered_and_an_edit_is_caught(helm):
    wanted = manifests.manifests(helm)
    assert set(wanted) == {K8S / "rayjobs" / f"{n}.yaml" for n in ("produce", "infer", "write", "all-in-one")}
    assert manifests.stale(wanted) == []
    path = K8S / "rayjobs" / "infer.yaml"
    edited = {path: wanted[path].replace("cpu: 200m", "cpu: 300m")}
    assert manifests.stale(edited) == [path]


def test_values_readme_table_and_schema_are_current_and_describe_every_value():
    assert values_schema.stale(values_schema.wanted()) == []
    documented = {key for key, _, text in values_schema.rows(values_schema.values_schema(), {}) if text}
    every = {key for key, _, _ in values_schema.rows(values_schema.values_schema(), {})}
    assert every == documented, every - documented
    # Every key of values.yaml is in the (closed) schema, so helm refuses any other; the table lists them all.
    table = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert [k for k in values if f"| `{k}" not in table] == []
    readme = values_schema.README
    assert values_schema.stale({readme: table.replace("| `mode` |", "| `mood` |")}) == [readme]


def test_pipeline_file_must_be_one_of_the_configs(helm):
    assert "pipelineFile" in refused(helm, "pipelineFile=gpu-513.yaml")


# --- names follow the release ----------------------------------------------------------------------------


def test_stage_rayjobs_follow_the_release(helm):
    docs = render(helm, "rayJob.stages={write,infer,produce}", "rayJob.submitter.image.tag=1.2.3", release="bl7")
    jobs = [d for d in docs if d["kind"] == "RayJob"]
    assert [j["metadata"]["name"] for j in jobs] == ["bl7-write", "bl7-infer", "bl7-produce"]
    for job, stage in zip(jobs, ("write", "infer", "produce"), strict=True):
        assert job["spec"]["clusterSelector"] == {"ray.io/cluster": one(docs, "RayCluster")["metadata"]["name"]}
        assert job["spec"]["entrypoint"] == f"peaknet-pipeline {stage} --config /etc/peaknet/pipeline.yaml"
        assert job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["image"] == "peaknet:1.2.3"


def test_name_overrides(helm):
    docs = render(helm, "fullnameOverride=pn", "nameOverride=peakfinder", "rayJob.stages={infer}", release="r")
    cluster = one(docs, "RayCluster")
    assert cluster["metadata"]["name"] == "pn"
    assert one(docs, "RayJob")["spec"]["clusterSelector"] == {"ray.io/cluster": "pn"}
    assert one(docs, "ConfigMap")["metadata"]["name"] == "pn-pipeline"
    assert cluster["metadata"]["labels"]["app.kubernetes.io/name"] == "peakfinder"


def test_mode_job_runs_the_whole_pipeline_on_its_own_cluster_and_refuses_stage_jobs(helm):
    docs = render(helm, "mode=job")
    assert [d for d in docs if d["kind"] == "RayCluster"] == []
    job = one(docs, "RayJob")["spec"]
    assert job["entrypoint"].startswith("peaknet-pipeline run ") and job["shutdownAfterJobFinishes"] is True
    assert "clusterSelector" not in job and job["rayClusterSpec"]["workerGroupSpecs"]
    assert "rayJob.stages needs mode: cluster" in refused(helm, "mode=job", "rayJob.stages={infer}")


# --- operator settings -----------------------------------------------------------------------------------


def test_env_volumes_service_account_priority_and_labels_reach_every_pod(helm, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "serviceAccountName": "peaknet-sa",
                "priorityClassName": "beamtime",
                "imagePullSecrets": [{"name": "registry"}],
                "podLabels": {"team": "sfx"},
                "podAnnotations": {"note": "all"},
                "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
                "envFrom": [{"secretRef": {"name": "s3"}}],
                "workerGroups": {
                    "gpu": {
                        "env": [{"name": "NCCL_DEBUG", "value": "WARN"}],
                        "priorityClassName": "gpu-first",
                        "podLabels": {"role": "infer"},
                        "extraVolumes": [{"name": "scratch", "emptyDir": {}}],
                        "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                    }
                },
            }
        )
    )
    docs = render(helm, "rayJob.stages={infer}", values=values)
    templates = pods(one(docs, "RayCluster")["spec"])
    templates["submitter"] = one(docs, "RayJob")["spec"]["submitterPodTemplate"]
    for group, t in templates.items():
        spec, container = t["spec"], t["spec"]["containers"][0]
        assert spec["serviceAccountName"] == "peaknet-sa"
        assert spec["imagePullSecrets"] == [{"name": "registry"}]
        assert spec["priorityClassName"] == ("gpu-first" if group == "gpu" else "beamtime")
        assert t["metadata"]["labels"]["team"] == "sfx" and t["metadata"]["annotations"] == {"note": "all"}
        assert t["metadata"]["labels"]["app.kubernetes.io/instance"] == "peaknet"
        names = [e["name"] for e in container["env"]]
        assert names == (["OMP_NUM_THREADS", "NCCL_DEBUG"] if group == "gpu" else ["OMP_NUM_THREADS"])
        assert container["envFrom"] == [{"secretRef": {"name": "s3"}}]
        assert ("/scratch" in [m["mountPath"] for m in container.get("volumeMounts", [])]) == (group == "gpu")
    assert templates["gpu"]["metadata"]["labels"]["role"] == "infer"
    assert "role" not in templates["cpu"]["metadata"]["labels"]


def test_weights_example_mounts_the_claim_where_the_config_looks(helm):
    docs = render(helm, values=CHART / "values-weights-pvc.yaml")
    weights = pipeline(docs)["model"]["peaknet"]["weights"]
    for group, t in pods(one(docs, "RayCluster")["spec"]).items():
        volumes = {v["name"]: v for v in t["spec"]["volumes"]}
        (mount,) = [m for m in t["spec"]["containers"][0]["volumeMounts"] if weights.startswith(m["mountPath"] + "/")]
        assert mount["readOnly"] is True, group
        assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == "peaknet-weights"


def test_security_fs_group_policy_and_worker_prestop(helm):
    templates = pods(one(render(helm), "RayCluster")["spec"])
    for group, t in templates.items():
        assert t["spec"]["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
        pre_stop = t["spec"]["containers"][0].get("lifecycle", {}).get("preStop")
        if group == "head":
            assert pre_stop is None
        else:
            assert pre_stop == {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}


def test_replicas_are_fixed_without_autoscaling_and_a_range_with_it(helm):
    fixed = one(render(helm), "RayCluster")["spec"]
    assert "enableInTreeAutoscaling" not in fixed
    cpu = next(g for g in fixed["workerGroupSpecs"] if g["groupName"] == "cpu")
    assert cpu["replicas"] == cpu["minReplicas"] == cpu["maxReplicas"] == 1
    scaled = one(render(helm, "autoscaling.enabled=true", "autoscaling.idleTimeoutSeconds=300"), "RayCluster")["spec"]
    assert scaled["enableInTreeAutoscaling"] is True
    assert scaled["autoscalerOptions"]["idleTimeoutSeconds"] == 300
    cpu = next(g for g in scaled["workerGroupSpecs"] if g["groupName"] == "cpu")
    assert (cpu["minReplicas"], cpu["replicas"], cpu["maxReplicas"]) == (1, 1, 4)


def test_metrics_port_on_every_pod_and_a_pod_monitor_that_selects_them(helm, tmp_path):
    docs = render(helm, "metrics.podMonitor.enabled=true", "metrics.port=9090", "metrics.podMonitor.labels.release=kps")
    monitor = one(docs, "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    cluster = one(docs, "RayCluster")
    for group in [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]:
        assert group["rayStartParams"]["metrics-export-port"] == "9090"
        ports = {p["name"]: p["containerPort"] for p in group["template"]["spec"]["containers"][0]["ports"]}
        assert ports["metrics"] == 9090
    assert validate.check_pod_monitor(monitor, docs, "chart") == []
    wrong_port = {**monitor, "spec": {**monitor["spec"], "podMetricsEndpoints": [{"port": "metrix"}]}}
    assert "podMetricsEndpoints[0].port" in validate.check_pod_monitor(wrong_port, docs, "x")[0].field
    wrong_labels = {**monitor, "spec": {**monitor["spec"], "selector": {"matchLabels": {"app": "other"}}}}
    assert validate.check_pod_monitor(wrong_labels, docs, "x")[0].field == "spec.selector.matchLabels"


VARIANTS = {
    "stages": ["rayJob.stages={write,infer,produce}"],
    "autoscaling+metrics": ["autoscaling.enabled=true", "metrics.podMonitor.enabled=true"],
    "mode=job+autoscaling": ["mode=job", "autoscaling.enabled=true"],
    "extras": ["env[0].name=A", "env[0].value=one", "serviceAccountName=sa", "priorityClassName=high",
               "podLabels.team=sfx", "workerGroups.gpu.extraVolumes[0].name=s",
               "workerGroups.gpu.extraVolumes[0].emptyDir.medium=Memory"],
}  # fmt: skip


@pytest.fixture(scope="module")
def validators() -> dict:
    return validate.crd_validators()


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_lints_and_validates_against_the_pinned_crds(helm, validators, name):
    sets = VARIANTS[name]
    done = subprocess.run([helm, "lint", "--strict", str(CHART), *[a for s in sets for a in ("--set", s)]],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout
    docs = render(helm, *sets)
    assert validate.check_docs(docs, name, validators) == []


def notes(helm: str, tmp_path, *sets: str) -> str:
    """What `helm install` would print: NOTES.txt rendered through a throwaway template (helm template skips it)."""
    chart = tmp_path / "peaknet"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        probe = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        probe += 'data:\n  notes: {{ include "peaknet.notes" . | quote }}\n'
        (chart / "templates" / "zz-notes.yaml").write_text(probe)
    args = [helm, "template", "bl7", str(chart), "--show-only", "templates/zz-notes.yaml"]
    done = subprocess.run(args + [a for s in sets for a in ("--set", s)], capture_output=True, text=True, check=True)
    return yaml.safe_load(done.stdout)["data"]["notes"]


def test_install_notes_say_what_to_do_next_in_each_mode(helm, tmp_path):
    plain = notes(helm, tmp_path)
    assert "kubectl get raycluster bl7" in plain and "--show-only templates/rayjob-stages.yaml" in plain
    assert 'Ray namespace "peaknet"' in plain and "/data/peaknet/cxi on claim bl7-output" in plain
    staged = notes(helm, tmp_path, "rayJob.stages={write,infer,produce}", "pipeline.ray.namespace=bl7ns")
    assert "The stages start as RayJobs (write, infer, produce)" in staged and 'Ray namespace "bl7ns"' in staged
    job = notes(helm, tmp_path, "mode=job")
    assert "RayJob bl7 starts its own RayCluster" in job and "raycluster" not in job
