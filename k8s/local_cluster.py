"""A rendered RayCluster started as the KubeRay operator would start it, without Kubernetes; RayJobs submitted
to it as the operator's submitter does. For CI, where no API server or operator can run.

What the operator does, and how this reproduces it:
- Each pod's container runs `ray start` built from its group's `rayStartParams` (every key as `--key=value`,
  through a shell, so quoted values such as custom `resources` arrive as the operator passes them), plus what
  the operator adds: `--head` or the head's address, `--block`, and `--num-cpus`, `--num-gpus` and `--memory`
  from the container's limits where the params do not set them. Here each pod is a `buildah run` container
  of the rendered image (chroot isolation, the host's network), as uid 1000.
- Volumes: a ConfigMap's keys become files at its mount path, the output claim a host directory at its mount
  path, an emptyDir a fresh directory. The container's env is passed as is (literal values only).
- Ports each pod has to itself on Kubernetes (the dashboard agent's, metrics) get distinct values here,
  because all pods share one network. This is the one deviation, and it is not in rayStartParams.
- A RayJob runs `ray job submit` with its `entrypoint` and `runtimeEnvYAML` against the head's dashboard,
  in a container of the submitter's image, and its status is read from the job server afterwards.
Nothing here stands in for Kubernetes behaviour that is then tested against; it only starts processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

STORAGE = ["--storage-driver", "vfs"]
HEAD_PORT, DASHBOARD_PORT = 6379, 8265
ENDED = ("SUCCEEDED", "FAILED", "STOPPED")


class HarnessError(RuntimeError):
    pass


@dataclass(slots=True)
class Pod:
    name: str
    image: str
    command: str  # a shell command line, as the operator's container args
    env: dict[str, str] = field(default_factory=dict)
    mounts: dict[str, Path] = field(default_factory=dict)  # container path -> host path


def cpu_count(quantity: str | int | float) -> str:
    text = str(quantity)
    return str(max(1, int(text[:-1]) // 1000)) if text.endswith("m") else str(int(float(text)))


def memory_bytes(quantity: str) -> str:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return str(int(float(quantity[: -len(suffix)]) * factor))
    return str(int(quantity))


def ray_start(params: dict[str, str], limits: dict, head_address: str | None, ports: tuple[int, int]) -> str:
    """The `ray start` line the operator builds for one pod."""
    args = {str(k): str(v) for k, v in params.items()}
    if "cpu" in limits:
        args.setdefault("num-cpus", cpu_count(limits["cpu"]))
    if "nvidia.com/gpu" in limits:
        args.setdefault("num-gpus", str(limits["nvidia.com/gpu"]))
    if "memory" in limits:
        args.setdefault("memory", memory_bytes(limits["memory"]))
    args["dashboard-agent-listen-port"], args["metrics-export-port"] = map(str, ports)
    head = ["--head", f"--port={HEAD_PORT}", f"--dashboard-port={DASHBOARD_PORT}"]
    where = head if head_address is None else [f"--address={head_address}"]
    flags = " ".join(f"--{k}={v}" for k, v in args.items())  # values unquoted: the shell reads them, as there
    return f"ulimit -n 65536; ray start {' '.join(where)} --block --disable-usage-stats {flags}"


def volumes_of(pod_spec: dict, docs: list[dict], root: Path) -> dict[str, Path]:
    """Host directories for each volume the pod mounts, filled as the kubelet would."""
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    sources = {v["name"]: v for v in pod_spec.get("volumes", [])}
    container = pod_spec["containers"][0]
    mounts = {}
    for m in container.get("volumeMounts", []):
        volume = sources[m["name"]]
        if m["mountPath"] == "/dev/shm":  # the object store: the host's /dev/shm serves every container
            continue
        host = root / "volumes" / m["name"]
        host.mkdir(parents=True, exist_ok=True)
        host.chmod(0o777)
        if "configMap" in volume:
            config_map = by_kind[("ConfigMap", volume["configMap"]["name"])]
            for key, text in config_map.get("data", {}).items():
                (host / key).write_text(text)
                (host / key).chmod(0o644)
        mounts[m["mountPath"]] = host
    return mounts


def advertised_resources(pods: list[Pod]) -> set[str]:
    """Custom resources the pods' `ray start` lines advertise (`--resources={...}`)."""
    names: set[str] = set()
    for pod in pods:
        for word in shlex.split(pod.command.split(";", 1)[1]):
            if word.startswith("--resources="):
                names |= set(json.loads(word.split("=", 1)[1]))
    return names


def check_placeable(pipeline: dict, pods: list[Pod]) -> None:
    """Every custom resource the pipeline's actors ask for must be advertised by some group, or they wait
    for ever (Ray does not say it never will)."""
    wanted = set((pipeline.get("producer") or {}).get("resources") or {})
    if missing := wanted - advertised_resources(pods):
        raise HarnessError(
            f"producer.resources asks for {sorted(missing)}, which no worker group advertises in its rayStartParams"
        )


def pods_of(docs: list[dict], root: Path) -> list[Pod]:
    (cluster,) = [d for d in docs if d["kind"] == "RayCluster"]
    name, spec = cluster["metadata"]["name"], cluster["spec"]
    groups = [("head", spec["headGroupSpec"], 1, None)]
    head_address = f"127.0.0.1:{HEAD_PORT}"
    groups += [(g["groupName"], g, g.get("replicas", 1), head_address) for g in spec.get("workerGroupSpecs", [])]
    pods, port = [], 52400
    for group, g, replicas, address in groups:
        pod_spec = g["template"]["spec"]
        container = pod_spec["containers"][0]
        limits = container.get("resources", {}).get("limits", {})
        env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
        for i in range(replicas):
            command = ray_start(g.get("rayStartParams", {}), limits, address, (port, port + 1))
            port += 2
            mounts = volumes_of(pod_spec, docs, root)
            pods.append(Pod(f"{name}-{group}-{i}", container["image"], command, env, mounts))
    return pods


class LocalCluster:
    """Start the pods, wait for every node, submit jobs, stop. A context manager: always cleans up."""

    def __init__(self, pods: list[Pod], image: str, logs: Path):
        self.pods = pods
        self.image = image  # the image tag built here stands in for the rendered one (no registry)
        self.log_dir = logs
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self._submitters: dict[str, str] = {}  # submitter pod name -> its container, made on first use

    def __enter__(self) -> LocalCluster:
        try:
            for pod in self.pods:
                self._procs.append((pod.name, self._start(pod)))
                if pod is self.pods[0]:
                    self._wait_dashboard()
            self._wait_nodes(len(self.pods))
        except BaseException:
            self.__exit__()
            raise
        return self

    def _container(self, name: str) -> str:
        # A container of this name that a killed earlier run left behind would make `from --name` fail.
        subprocess.run(["buildah", *STORAGE, "rm", name], capture_output=True)
        out = subprocess.run(["buildah", *STORAGE, "from", "-q", "--name", name, self.image],
                             capture_output=True, text=True)  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"buildah from --name {name} {self.image}: {out.stderr.strip()}")
        return out.stdout.strip()

    def _run_args(self, ctr: str, pod: Pod, script: str) -> list[str]:
        args = ["buildah", *STORAGE, "run", "--isolation", "chroot", "--user", "1000"]
        for path, host in pod.mounts.items():
            args += ["-v", f"{host}:{path}"]
        for key, value in {"RAY_AUTH_MODE": "disabled", **pod.env}.items():
            args += ["--env", f"{key}={value}"]
        return [*args, ctr, "--", "bash", "-c", script]

    def _start(self, pod: Pod) -> subprocess.Popen:
        ctr = self._container(pod.name)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{pod.name}.log", "w") as log:
            return subprocess.Popen(self._run_args(ctr, pod, pod.command), stdout=log, stderr=subprocess.STDOUT)

    def pod_log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text()

    def _dead(self) -> list[str]:
        return [name for name, proc in self._procs if proc.poll() is not None]

    def _wait_dashboard(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if dead := self._dead():
                raise HarnessError(f"pod {dead[0]} exited: its `ray start` failed (see its log)")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{DASHBOARD_PORT}/api/version", timeout=2):
                    return
            except OSError:
                time.sleep(1)
        raise HarnessError(f"the head's dashboard did not answer within {timeout_s}s")

    def _wait_nodes(self, expected: int, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if dead := self._dead():
                raise HarnessError(f"pod {dead[0]} exited: its `ray start` failed (see its log)")
            if self.alive_nodes() >= expected:
                return
            time.sleep(1)
        raise HarnessError(f"fewer than {expected} Ray nodes joined within {timeout_s}s")

    def alive_nodes(self) -> int:
        nodes = self.get("/api/v0/nodes?limit=1000")["data"]["result"]["result"]
        return sum(n.get("state") == "ALIVE" for n in nodes)

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{DASHBOARD_PORT}{path}", timeout=10) as r:
            return json.loads(r.read())

    def submit(self, rayjob: dict, submitter: Pod, timeout_s: float = 600) -> str:
        """`ray job submit` as the submitter pod runs it; returns the job's final status."""
        spec, job_id = rayjob["spec"], rayjob["metadata"]["name"]
        command = ["ray", "job", "submit", f"--address=http://127.0.0.1:{DASHBOARD_PORT}", f"--submission-id={job_id}"]
        if "runtimeEnvYAML" in spec:
            command.append(f"--runtime-env-json={json.dumps(yaml.safe_load(spec['runtimeEnvYAML']))}")
        script = f"{shlex.join(command)} --no-wait -- {spec['entrypoint']}"
        # One container per submitter, reused for every job: each `ray job submit` is its own process, as in
        # its own submitter pod, and a vfs container is a whole copy of the image.
        if submitter.name not in self._submitters:
            self._submitters[submitter.name] = self._container(f"{self.pods[0].name}-{submitter.name}")
        done = subprocess.run(self._run_args(self._submitters[submitter.name], submitter, script),
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            raise HarnessError(f"ray job submit for {job_id} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return job_id

    def wait(self, job_ids: list[str], timeout_s: float = 600) -> dict[str, str]:
        deadline, status = time.monotonic() + timeout_s, {}
        while time.monotonic() < deadline:
            status = {j: self.get(f"/api/jobs/{j}")["status"] for j in job_ids}
            if all(s in ENDED for s in status.values()):
                return status
            time.sleep(2)
        return status

    def logs(self, job_id: str) -> str:
        return self.get(f"/api/jobs/{job_id}/logs").get("logs", "")

    def __exit__(self, *exc: object) -> None:
        """Stop every pod's processes: its own process tree only (`ray stop` would reach every Ray on the
        host, since chroot isolation shares the host's process table)."""
        for name, proc in reversed(self._procs):
            for pid in [*descendants(proc.pid), proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(30)
            subprocess.run(["buildah", *STORAGE, "rm", name], capture_output=True)
        self._procs.clear()
        for ctr in self._submitters.values():
            subprocess.run(["buildah", *STORAGE, "rm", ctr], capture_output=True)
        self._submitters.clear()


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
