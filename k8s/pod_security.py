"""The Kubernetes Pod Security Standards' "restricted" profile (v1.32), checked on rendered manifests.

What the API server's `pod-security.kubernetes.io/enforce: restricted` admission would refuse, rule by rule
(baseline rules included, as restricted contains them). Pods are found inside RayClusters (head and each
worker group), RayJobs (the submitter and any rayClusterSpec) and built-in workloads; the autoscaler
container that KubeRay adds from `autoscalerOptions` is checked as a container too.
"""

from __future__ import annotations

from collections.abc import Iterator

ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def pod_specs(doc: dict) -> Iterator[tuple[str, dict]]:
    """(path, pod spec) for every pod template in a manifest."""
    spec = doc.get("spec", {})
    kind = doc.get("kind")
    if kind == "RayJob" and "submitterPodTemplate" in spec:
        yield "spec.submitterPodTemplate.spec", spec["submitterPodTemplate"].get("spec", {})
    if kind in ("RayCluster", "RayJob"):
        yield from ((f"{at}.spec", template.get("spec", {})) for at, template in ray_pod_templates(doc))
    elif kind == "Pod":
        yield "spec", spec
    elif "template" in spec:
        yield "spec.template.spec", spec["template"].get("spec", {})


def ray_pod_templates(doc: dict) -> Iterator[tuple[str, dict]]:
    """(path, pod template) of the Ray pods (head, then each worker group) a RayCluster makes, or a RayJob's
    own rayClusterSpec."""
    spec = doc.get("spec", {})
    if doc.get("kind") == "RayCluster":
        cluster, at = spec, "spec"
    elif doc.get("kind") == "RayJob" and "rayClusterSpec" in spec:
        cluster, at = spec["rayClusterSpec"], "spec.rayClusterSpec"
    else:
        return
    yield f"{at}.headGroupSpec.template", cluster.get("headGroupSpec", {}).get("template", {})
    for i, group in enumerate(cluster.get("workerGroupSpecs", [])):
        yield f"{at}.workerGroupSpecs[{i}].template", group.get("template", {})


def autoscaler_container(doc: dict) -> tuple[str, dict] | None:
    """The container KubeRay adds to the head when autoscaling is on, as its securityContext will be."""
    spec = doc.get("spec", {})
    spec, at = (spec["rayClusterSpec"], "spec.rayClusterSpec") if "rayClusterSpec" in spec else (spec, "spec")
    if doc.get("kind") in ("RayCluster", "RayJob") and spec.get("enableInTreeAutoscaling"):
        options = spec.get("autoscalerOptions", {})
        return f"{at}.autoscalerOptions", {"name": "autoscaler", "securityContext": options.get("securityContext")}
    return None


def containers(pod: dict) -> Iterator[tuple[str, dict]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(pod.get(key) or []):
            yield f"{key}[{i}]", c


def pod_problems(pod: dict) -> list[tuple[str, str]]:
    """Rules on the pod itself: host namespaces, volumes, sysctls, pod-level identity and seccomp."""
    out = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append((key, "host namespaces are not allowed"))
    for i, volume in enumerate(pod.get("volumes") or []):
        kinds = set(volume) - {"name"}
        if bad := kinds - ALLOWED_VOLUMES:
            out.append((f"volumes[{i}].{sorted(bad)[0]}", f"volume type {sorted(bad)[0]} is not allowed"))
    ctx = pod.get("securityContext") or {}
    for i, sysctl in enumerate(ctx.get("sysctls") or []):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            out.append((f"securityContext.sysctls[{i}]", f"sysctl {sysctl.get('name')} is not allowed"))
    if ctx.get("runAsUser") == 0:
        out.append(("securityContext.runAsUser", "must not be 0"))
    if ctx.get("seLinuxOptions", {}).get("user") or ctx.get("seLinuxOptions", {}).get("role"):
        out.append(("securityContext.seLinuxOptions", "user and role must not be set"))
    return out


def container_problems(c: dict, pod_ctx: dict) -> list[tuple[str, str]]:
    ctx = c.get("securityContext") or {}
    out = []
    if ctx.get("privileged"):
        out.append(("securityContext.privileged", "must not be true"))
    if ctx.get("allowPrivilegeEscalation") is not False:
        out.append(("securityContext.allowPrivilegeEscalation", "must be false"))
    caps = ctx.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        out.append(("securityContext.capabilities.drop", "must include ALL"))
    if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
        out.append(("securityContext.capabilities.add", "only NET_BIND_SERVICE may be added"))
    if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
        out.append(("securityContext.runAsNonRoot", "must be true (here or on the pod)"))
    if ctx.get("runAsUser") == 0:
        out.append(("securityContext.runAsUser", "must not be 0"))
    seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
    if seccomp not in SECCOMP_OK:
        out.append(("securityContext.seccompProfile.type", "must be RuntimeDefault or Localhost (here or on the pod)"))
    if ctx.get("procMount", "Default") != "Default":
        out.append(("securityContext.procMount", "must be Default"))
    for i, port in enumerate(c.get("ports") or []):
        if port.get("hostPort"):
            out.append((f"ports[{i}].hostPort", "host ports are not allowed"))
    return out


def restricted_problems(doc: dict) -> list[tuple[str, str]]:
    """(field path, rule) for every violation of the restricted profile in one manifest."""
    out = []
    for at, pod in pod_specs(doc):
        out += [(f"{at}.{field}", msg) for field, msg in pod_problems(pod)]
        pod_ctx = pod.get("securityContext") or {}
        for where, c in containers(pod):
            out += [(f"{at}.{where}.{field}", msg) for field, msg in container_problems(c, pod_ctx)]
    if found := autoscaler_container(doc):
        at, c = found
        head = doc["spec"].get("rayClusterSpec", doc["spec"])["headGroupSpec"]["template"]["spec"]
        out += [(f"{at}.{field}", msg) for field, msg in container_problems(c, head.get("securityContext") or {})]
    return out
