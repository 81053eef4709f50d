"""Assertions on the operator Deployment: hardening, probes, flags, identity.

Pure functions over parsed objects; each returns a list of problems.
"""

# The `amlops controller` flags of the controller contract. Anything else
# in the rendered args would make the binary refuse to start.
KNOWN_FLAGS = {
    "--namespaces", "--concurrency", "--resync-period", "--metrics-addr",
    "--leader-election", "--no-leader-election", "--leader-election-namespace",
    "--lease-name", "--log-level", "--log-format", "--enable-kubernetes-compute",
    "--disable-local-jobs", "--arm-writes-per-second", "--arm-write-burst",
}
WI_CLIENT_ID = "azure.workload.identity/client-id"
WI_USE = "azure.workload.identity/use"


def _seccomp_runtime_default(*contexts):
    for ctx in contexts:
        profile = (ctx or {}).get("seccompProfile")
        if profile:
            return profile.get("type") == "RuntimeDefault"
    return False


def _check_container(name, container, pod_sc):
    problems = []
    sc = container.get("securityContext") or {}
    where = f"container {name}"
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation must be false")
    if sc.get("privileged"):
        problems.append(f"{where}: must not be privileged")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        problems.append(f"{where}: capabilities.drop must contain ALL")
    if caps.get("add"):
        problems.append(f"{where}: must not add capabilities {caps['add']}")
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    if non_root is not True:
        problems.append(f"{where}: runAsNonRoot must be true")
    if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
        problems.append(f"{where}: runAsUser must not be 0")
    if not _seccomp_runtime_default(sc, pod_sc):
        problems.append(f"{where}: seccompProfile must be RuntimeDefault")
    return problems


def _check_probes(container):
    problems = []
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (container.get(probe) or {}).get("httpGet") or {}
        if get.get("path") != path:
            problems.append(f"{probe} must GET {path}, found {get.get('path')!r}")
        port = get.get("port")
        if port not in ports and port not in ports.values():
            problems.append(f"{probe} port {port!r} is not a container port")
    metrics_addr = [a for a in container.get("args") or [] if a.startswith("--metrics-addr=")]
    if "metrics" not in ports:
        problems.append("no container port named metrics")
    elif not metrics_addr or not metrics_addr[0].endswith(f":{ports['metrics']}"):
        problems.append(f"--metrics-addr {metrics_addr} does not listen on the metrics port "
                        f"{ports['metrics']}")
    return problems


def _check_args(container):
    args = container.get("args") or []
    if not args or args[0] != "controller":
        return [f"args must start with the controller subcommand, found {args[:1]}"]
    return [f"unknown controller flag {a!r}" for a in args[1:]
            if a.split("=", 1)[0] not in KNOWN_FLAGS]


def _check_env_and_tmp(pod, container):
    problems = []
    env = {e.get("name"): e for e in container.get("env") or []}
    field = ((env.get("POD_NAMESPACE") or {}).get("valueFrom") or {}).get("fieldRef") or {}
    if field.get("fieldPath") != "metadata.namespace":
        problems.append("POD_NAMESPACE must come from the downward API (metadata.namespace)")
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    tmp = [m for m in container.get("volumeMounts") or [] if m.get("mountPath") == "/tmp"]
    if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
        problems.append("/tmp must be a writable emptyDir mount")
    return problems


def check_deployment(deployment, service_accounts, image_tag=None):
    """Hardening and contract checks for the operator Deployment.

    service_accounts: rendered ServiceAccounts by name (the one the pod
    uses must be among them). image_tag: expected tag, if pinned.
    """
    label = f"Deployment {deployment['metadata']['name']}"
    template = deployment["spec"]["template"]
    pod = template["spec"]
    pod_sc = pod.get("securityContext") or {}
    problems = []
    if pod_sc.get("runAsNonRoot") is not True:
        problems.append("pod securityContext.runAsNonRoot must be true")
    if not _seccomp_runtime_default(pod_sc):
        problems.append("pod securityContext.seccompProfile must be RuntimeDefault")
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            problems.append(f"{host} must not be set")
    if not pod.get("terminationGracePeriodSeconds"):
        problems.append("terminationGracePeriodSeconds must be set")
    for c in pod.get("initContainers", []) + pod["containers"]:
        problems += _check_container(c["name"], c, pod_sc)
    main = pod["containers"][0]
    problems += _check_probes(main) + _check_args(main) + _check_env_and_tmp(pod, main)
    if image_tag is not None and not main["image"].endswith(f":{image_tag}"):
        problems.append(f"image {main['image']} is not tagged {image_tag}")
    sa = service_accounts.get(pod.get("serviceAccountName"))
    if sa is None:
        problems.append(f"serviceAccountName {pod.get('serviceAccountName')!r} "
                        "is not a rendered ServiceAccount")
    else:
        problems += _check_workload_identity(template, sa)
    return [f"{label}: {p}" for p in problems]


def _check_workload_identity(template, service_account):
    """The pod label and the ServiceAccount annotation go together."""
    uses = (template["metadata"].get("labels") or {}).get(WI_USE) == "true"
    client_id = (service_account["metadata"].get("annotations") or {}).get(WI_CLIENT_ID)
    if uses and not client_id:
        return [f"pod label {WI_USE} without the {WI_CLIENT_ID} ServiceAccount annotation"]
    if client_id and not uses:
        return [f"ServiceAccount has {WI_CLIENT_ID} but the pod lacks label {WI_USE}=true"]
    return []


def workload_identity_enabled(deployment):
    labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
    return labels.get(WI_USE) == "true"
