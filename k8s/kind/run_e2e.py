"""CPU end-to-end on kind: cluster, image, KubeRay operator, peaknet chart, the three stage RayJobs,
CXI files out and checked, teardown. Needs docker, kind and kubectl on PATH (helm: PATH or k8s/helm.py).
Sized for a 4-CPU / 8 GB laptop (helm/peaknet/values-kind.yaml). It has not run on the machines this
project is developed on (no Docker engine there); tests/test_images.py builds the same image with buildah.

    python3 k8s/kind/run_e2e.py [--keep] [--out DIR]

Waiting and checking go through the kubernetes Python client (RayCluster/RayJob status from the custom
objects API, pod logs on failure); the command-line tools only create, build, load and install.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "peaknet-e2e"
IMAGE = "peaknet:0.1.0-cpu"
CPU_TORCH = "https://download.pytorch.org/whl/cpu"
KUBERAY_VERSION = "1.7.0"  # the one operator version: its CRDs are k8s/crds, the tests validate against them
NAMESPACE = "default"
RELEASE = "peaknet"
STAGES = ("write", "infer", "produce")  # consumers first, so nothing waits on a queue nobody reads
GROUP, VERSION = "ray.io", "v1"


def sh(*args: str) -> None:
    if args[0] == "helm":
        sys.path.insert(0, str(ROOT / "k8s"))
        from helm import find_helm

        args = (find_helm(), *args[1:])
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


def create_cluster_and_install() -> None:
    sh("kind", "create", "cluster", "--name", CLUSTER, "--config", "k8s/kind/cluster.yaml", "--wait", "180s")
    sh("docker", "build", "-f", "docker/Dockerfile", "--build-arg", f"TORCH_INDEX={CPU_TORCH}", "-t", IMAGE, ".")
    sh("kind", "load", "docker-image", IMAGE, "--name", CLUSTER)
    sh("helm", "repo", "add", "kuberay", "https://ray-project.github.io/kuberay-helm/", "--force-update")
    sh(
        "helm", "install", "kuberay-operator", "kuberay/kuberay-operator", "--version", KUBERAY_VERSION,
        "--set", "featureGates[0].name=RayJobDeletionPolicy", "--set", "featureGates[0].enabled=true", "--wait",
    )  # fmt: skip
    sh("helm", "install", RELEASE, "helm/peaknet", "-f", "helm/peaknet/values-kind.yaml")


class Cluster:
    """Reads state through the API server, never by parsing kubectl output."""

    def __init__(self) -> None:
        from kubernetes import client, config

        config.load_kube_config(context=f"kind-{CLUSTER}")
        self.custom = client.CustomObjectsApi()
        self.core = client.CoreV1Api()

    def get(self, plural: str, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)

    def wait_ready(self, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.get("rayclusters", RELEASE).get("status", {}).get("state")
            if state == "ready":
                return
            time.sleep(5)
        raise TimeoutError(f"RayCluster {RELEASE} not ready in {timeout_s}s")

    def wait_jobs(self, names: list[str], timeout_s: float = 900) -> dict[str, str]:
        """Ends when every job has ended, by its Ray job status or by its deployment status (a submitter
        that fails, a job that cannot be created, never reaches a Ray job status)."""
        deadline, status = time.monotonic() + timeout_s, {}
        while time.monotonic() < deadline:
            status = {n: job_state(self.get("rayjobs", n).get("status", {})) for n in names}
            if all(s in ENDED for s in status.values()):
                return status
            time.sleep(5)
        return status

    def head_pod(self) -> str:
        selector = f"ray.io/cluster={RELEASE},ray.io/node-type=head"
        return self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items[0].metadata.name

    def dump_logs(self) -> None:
        from kubernetes.client.exceptions import ApiException

        for pod in self.core.list_namespaced_pod(NAMESPACE).items:
            name, phase = pod.metadata.name, pod.status.phase
            if not name.startswith(RELEASE):
                continue
            print(f"----- {name} ({phase})")
            if phase == "Pending":  # no container has run: the reason is in the pod's conditions and events
                for c in pod.status.conditions or []:
                    print(f"  {c.type}={c.status} {c.reason or ''} {c.message or ''}")
                continue
            try:
                print(self.core.read_namespaced_pod_log(name, NAMESPACE, tail_lines=80))
            except ApiException as exc:
                print(f"  no logs: {exc.reason}")


ENDED = ("SUCCEEDED", "FAILED", "STOPPED", "Failed", "Complete", "ValidationFailed")


def job_state(status: dict) -> str:
    """The Ray job's status once it has one, else the RayJob's deployment status (Failed, ...)."""
    return status.get("jobStatus") or status.get("jobDeploymentStatus", "")


def check_cxi(folder: Path) -> int:
    """Every file complete and readable; events carry peaks. Returns the number of events."""
    import h5py

    files = sorted(folder.rglob("*.cxi"))
    if not files:
        raise AssertionError(f"no CXI files under {folder}")
    events = 0
    for path in files:
        with h5py.File(path, "r") as f:
            n = f["/entry_1/result_1/nPeaks"][:]
            assert len(n) and (n > 0).all(), f"{path}: events without peaks"
            events += len(n)
    return events


def run(keep: bool, out: Path) -> int:
    try:
        create_cluster_and_install()
        cluster = Cluster()
        cluster.wait_ready()
        # values-kind.yaml sets rayJob.stages: `helm install` created the stage RayJobs with the cluster.
        status = cluster.wait_jobs([f"{RELEASE}-{stage}" for stage in STAGES])
        print("RayJobs:", status)
        if any(s != "SUCCEEDED" for s in status.values()):
            cluster.dump_logs()
            return 1
        out.mkdir(parents=True, exist_ok=True)
        sh(
            "kubectl",
            "--context",
            f"kind-{CLUSTER}",
            "cp",
            f"{NAMESPACE}/{cluster.head_pod()}:/data/peaknet/cxi",
            str(out),
        )
        print(f"{check_cxi(out)} events in CXI files under {out}")
        return 0
    finally:
        if not keep:
            sh("kind", "delete", "cluster", "--name", CLUSTER)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="leave the kind cluster running")
    ap.add_argument("--out", type=Path, default=ROOT / "kind-cxi")
    args = ap.parse_args()
    return run(args.keep, args.out)


if __name__ == "__main__":
    sys.exit(main())
