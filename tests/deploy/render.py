"""Rendering with the real tools: the Helm v4 engine (helm-python-sdk) and
`kubectl kustomize`. Each function returns (objects, problems)."""

import re
import subprocess

import helm_python as helm
import yaml

SOURCE = re.compile(r"^# Source: [^/]+/(templates/[^\s]+)$", re.M)


def parse_docs(text, origin):
    """Parses a multi-document YAML stream, skipping empty documents."""
    try:
        return [d for d in yaml.safe_load_all(text) if d], []
    except yaml.YAMLError as e:
        return [], [f"{origin}: not valid YAML: {e}"]


def helm_lint(chart_dir, values, kube_version):
    try:
        result = helm.lint(chart_dir, values, strict=True, kube_version=kube_version)
    except helm.HelmError as e:
        return [f"helm lint: {e}"]
    return [f"helm lint: {err}" for err in result.get("errors") or []]


def helm_template(chart_dir, release, namespace, values):
    """Equivalent of `helm template --include-crds`; also returns the
    template files that produced output (from the `# Source:` comments)."""
    try:
        with helm.Chart.load(chart_dir) as chart, \
                helm.Config(namespace=namespace, storage_driver="memory") as cfg:
            result = cfg.install(chart, release, values, dry_run="client", namespace=namespace)
            crds = [c["data"] for c in chart.crds]
    except helm.HelmError as e:
        return [], set(), [f"helm template: {e}"]
    manifest = result["manifest"]
    objects, problems = [], []
    for text in crds + [manifest]:
        docs, errs = parse_docs(text, "helm template")
        objects += docs
        problems += errs
    return objects, set(SOURCE.findall(manifest)), problems


def kustomize(directory):
    try:
        proc = subprocess.run(["kubectl", "kustomize", directory],
                              capture_output=True, text=True, check=False)
    except OSError as e:
        return [], [f"kubectl kustomize {directory}: cannot run kubectl: {e}"]
    if proc.returncode != 0:
        return [], [f"kubectl kustomize {directory}: {proc.stderr.strip()}"]
    return parse_docs(proc.stdout, f"kubectl kustomize {directory}")
