"""RBAC expectation: the rendered roles grant exactly what the controller calls.

Pure functions over parsed Kubernetes objects, so the self-tests can feed
them broken renders. A grant is (where, apiGroup, resource, verb) with
`where` = CLUSTER for a cluster-wide grant or a namespace name.
"""

from dataclasses import dataclass

CLUSTER = "<cluster>"
RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Context:
    """What the controller is configured to do, read from its Deployment."""

    operator_namespace: str
    service_account: str
    watch_namespaces: tuple  # empty: all namespaces
    leader_election: bool
    kubernetes_compute: bool
    local_jobs: bool

    def feature(self, name):
        features = {
            "leaderElection": self.leader_election,
            "localJobs": self.local_jobs,
        }
        if name not in features:
            raise ValueError(f"expected-rbac.yaml: unknown `when: {name}`")
        return features[name]


def context_from_deployment(deployment):
    """Reads the flags the chart/manifests pass to `amlops controller`."""
    spec = deployment["spec"]["template"]["spec"]
    args = spec["containers"][0].get("args", [])
    namespaces = ()
    for arg in args:
        if arg.startswith("--namespaces="):
            value = arg.split("=", 1)[1]
            namespaces = tuple(n for n in value.split(",") if n)
    return Context(
        operator_namespace=deployment["metadata"].get("namespace", ""),
        service_account=spec.get("serviceAccountName", "default"),
        watch_namespaces=namespaces,
        leader_election="--no-leader-election" not in args,
        kubernetes_compute="--enable-kubernetes-compute" in args,
        local_jobs="--disable-local-jobs" not in args,
    )


def expected_grants(expected_rules, ctx):
    """Expands expected-rbac.yaml for one configuration into grants."""
    grants = set()
    for rule in expected_rules:
        when = rule.get("when")
        if when is not None and not ctx.feature(when):
            continue
        scope = rule["scope"]
        if scope == "cluster":
            places = [CLUSTER]
        elif scope == "operatorNamespace":
            places = [ctx.operator_namespace]
        elif scope == "namespace":
            places = list(ctx.watch_namespaces) or [CLUSTER]
        else:
            raise ValueError(f"expected-rbac.yaml: unknown scope {scope!r}")
        for where in places:
            for verb in rule["verbs"]:
                grants.add((where, rule["apiGroup"], rule["resource"], verb))
    return grants


def _kind_name(obj):
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{name}"


def _rule_grants(role, where, problems):
    grants = set()
    for rule in role.get("rules") or []:
        label = _kind_name(role)
        fields = ("apiGroups", "resources", "verbs")
        if any("*" in (rule.get(f) or []) for f in fields):
            problems.append(f"{label}: wildcard in rule {rule}")
        if rule.get("nonResourceURLs"):
            problems.append(f"{label}: nonResourceURLs are never needed: {rule}")
        if rule.get("resourceNames"):
            problems.append(f"{label}: unexpected resourceNames in {rule}")
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    grants.add((where, group, resource, verb))
    return grants


def rendered_grants(objects, ctx):
    """Grants the rendered bindings give the operator's ServiceAccount.

    Also reports bindings to any other subject, bindings to roles that are
    not part of the render (e.g. cluster-admin), and roles nobody binds.
    """
    problems = []
    roles = {}
    for obj in objects:
        if obj.get("kind") in ("Role", "ClusterRole"):
            meta = obj["metadata"]
            roles[(obj["kind"], meta.get("namespace"), meta["name"])] = obj
    used = set()
    grants = set()
    for obj in objects:
        kind = obj.get("kind")
        if kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        label = _kind_name(obj)
        ns = obj["metadata"].get("namespace")
        want = [{"kind": "ServiceAccount", "name": ctx.service_account,
                 "namespace": ctx.operator_namespace}]
        if obj.get("subjects") != want:
            problems.append(f"{label}: subjects {obj.get('subjects')} != {want}")
            continue
        ref = obj["roleRef"]
        if ref.get("apiGroup") != RBAC_GROUP:
            problems.append(f"{label}: roleRef apiGroup {ref.get('apiGroup')!r}")
        role_ns = ns if ref["kind"] == "Role" else None
        key = (ref["kind"], role_ns, ref["name"])
        if kind == "ClusterRoleBinding" and ref["kind"] != "ClusterRole":
            problems.append(f"{label}: a ClusterRoleBinding must reference a ClusterRole")
            continue
        role = roles.get(key)
        if role is None:
            problems.append(f"{label}: binds {ref['kind']} {ref['name']}, "
                            "which this render does not define")
            continue
        used.add(key)
        where = CLUSTER if kind == "ClusterRoleBinding" else ns
        grants |= _rule_grants(role, where, problems)
    for key, role in roles.items():
        if key not in used:
            problems.append(f"{_kind_name(role)}: defined but not bound")
    return grants, problems


def _fmt(grant):
    where, group, resource, verb = grant
    scope = "cluster-wide" if where == CLUSTER else f"in namespace {where}"
    return f"{verb} {resource}.{group or 'core'} {scope}"


def check(objects, expected_rules, ctx):
    """Returns the list of problems; empty means exactly the expected rules."""
    grants, problems = rendered_grants(objects, ctx)
    want = expected_grants(expected_rules, ctx)
    for grant in sorted(want - grants):
        problems.append(f"RBAC missing: {_fmt(grant)}")
    for grant in sorted(grants - want):
        problems.append(f"RBAC grants more than the controller calls: {_fmt(grant)}")
    return problems
