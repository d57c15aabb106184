"""The chart's RayCluster started from `helm template` output as the KubeRay operator would start its pods,
inside the built CPU image, and the three stage RayJobs submitted to it as the operator's submitter does
(k8s/local_cluster.py). No Kubernetes here: the harness reproduces what the operator does, nothing more."""

from __future__ import annotations

import copy
import sys

import h5py
import pytest
import yaml

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "k8s"))
import local_cluster  # noqa: E402
import validate  # noqa: E402
from helm import find_helm  # noqa: E402

STAGES = ("write", "infer", "produce")  # consumers first, as an operator would apply them
VALUES = validate.CHART / "values-kind.yaml"


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    return validate.helm_template(find_helm(), VALUES)


def rayjobs(docs: list[dict]) -> dict[str, dict]:
    """The stage RayJobs the kind values render, by stage, in the order the chart lists them."""
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] == "RayJob"}


def pipeline_of(docs: list[dict]) -> dict:
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap" and "pipeline.yaml" in d.get("data", {})]
    return yaml.safe_load(config_map["data"]["pipeline.yaml"])


def test_the_rendered_cluster_runs_the_three_stage_rayjobs_and_fails_a_bad_one(image, rendered, tmp_path):
    pods = local_cluster.pods_of(rendered, tmp_path)
    local_cluster.check_placeable(pipeline_of(rendered), pods)
    submitter = local_cluster.Pod("submitter", image, "")
    stages = rayjobs(rendered)
    assert tuple(stages) == STAGES
    bad = copy.deepcopy(stages["write"])
    bad["metadata"]["name"], bad["spec"]["entrypoint"] = "bad-flag", bad["spec"]["entrypoint"] + " --no-such-flag"
    with local_cluster.LocalCluster(pods, image, tmp_path / "logs") as cluster:
        jobs = [cluster.submit(job, submitter) for job in stages.values()]
        bad_id = cluster.submit(bad, submitter)
        status = cluster.wait([*jobs, bad_id])
        logs = {j: cluster.logs(j) for j in [*jobs, bad_id]}
    # An entrypoint with an unknown flag fails its job, and only its job.
    assert status.pop(bad_id) == "FAILED" and "unrecognized arguments: --no-such-flag" in logs[bad_id]
    assert all(s == "SUCCEEDED" for s in status.values()), f"{status}\n" + "\n".join(logs.values())
    output = next(p for p in pods if "/data/peaknet" in p.mounts).mounts["/data/peaknet"]
    ids = []
    for path in sorted((output / "cxi").glob("*.cxi")):
        with h5py.File(path) as f:
            ids += [x.decode() for x in f["/entry_1/event_id"][:]]
    total = pipeline_of(rendered)["producer"]["total_frames"]
    assert ids and len(ids) == len(set(ids))
    write_log = logs["peaknet-write"]
    filtered = int(write_log.split("'filtered_min_num_peak': ")[1].split("}")[0]) if "filtered_min" in write_log else 0
    assert len(ids) + filtered == total, write_log[-2000:]  # every frame written or filtered, once


def test_a_wrong_ray_start_param_fails_the_pod(image, rendered, tmp_path):
    docs = copy.deepcopy(rendered)
    (cluster,) = [d for d in docs if d["kind"] == "RayCluster"]
    cluster["spec"]["headGroupSpec"]["rayStartParams"]["num-cpu"] = "1"  # a typo of num-cpus
    pods = local_cluster.pods_of(docs, tmp_path)[:1]
    with (
        pytest.raises(local_cluster.HarnessError, match="ray start"),
        local_cluster.LocalCluster(pods, image, tmp_path / "logs"),
    ):
        pass


def test_a_resource_no_group_advertises_is_refused_before_submitting(rendered, tmp_path):
    pods = local_cluster.pods_of(rendered, tmp_path)
    pipeline = pipeline_of(rendered)
    pipeline["producer"]["resources"] = {"ingest": 1}  # socket producers pinned to a group that is disabled
    with pytest.raises(local_cluster.HarnessError, match=r"producer.resources asks for \['ingest'\]"):
        local_cluster.check_placeable(pipeline, pods)
