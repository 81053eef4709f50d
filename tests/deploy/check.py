#!/usr/bin/env python3
"""Deployment checks: render, lint and validate the Helm chart and the
kustomize manifests with the real tools, and assert RBAC and hardening.

Run from the repository root with the tools of tests/deploy/requirements.txt
installed: `python3 tests/deploy/check.py`. Prints every problem found and
exits 1 if there is any.
"""

import io
import subprocess
import sys
import unittest
from dataclasses import dataclass
from pathlib import Path

import kubernetes_validate
import yaml

import drift
import rbac
import render
import workload

CHART = "charts/amlops"
KUBE_VERSION = "1.32.0"
RELEASE = "amlops"
NAMESPACE = "amlops-system"
HERE = Path(__file__).resolve().parent
# Custom resources kubernetes-validate has no schema for; any other missing
# schema (a typo in kind or apiVersion) is an error.
CUSTOM_GROUPS = ("amlops.io/", "monitoring.coreos.com/", "kustomize.toolkit.fluxcd.io/")
GITOPS_SAMPLES = "docs/gitops"
YAML_FILES = [f"{CHART}/Chart.yaml", f"{CHART}/values.yaml", "manifests", "tests/deploy",
              GITOPS_SAMPLES]


@dataclass
class Scenario:
    name: str
    values_file: str | None
    all_templates: bool = False  # every optional template must render


SCENARIOS = [
    Scenario("default values", None),
    Scenario("everything enabled", "tests/deploy/values-everything.yaml", all_templates=True),
    Scenario("namespaced install", "tests/deploy/values-namespaced.yaml"),
    Scenario("no leader election", "tests/deploy/values-no-leader-election.yaml"),
    Scenario("local jobs disabled", "tests/deploy/values-no-local-jobs.yaml"),
]
# (directory, whether it configures workload identity)
KUSTOMIZATIONS = [("manifests", False), ("manifests/overlays/workload-identity", True)]


def deep_merge(base, override):
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def label(obj):
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def validate_objects(objects):
    """kubernetes-validate --strict on every object."""
    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problems.append(f"kubernetes-validate {label(obj)}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            if not str(obj.get("apiVersion", "")).startswith(CUSTOM_GROUPS):
                problems.append(f"kubernetes-validate {label(obj)}: no schema for "
                                f"{obj.get('apiVersion')} {obj.get('kind')}")
    return problems


def check_install(objects, expected_rules, image_tag):
    """RBAC and Deployment assertions shared by chart and kustomize renders."""
    deployments = [o for o in objects if o.get("kind") == "Deployment"]
    if len(deployments) != 1:
        return [f"expected one Deployment, found {len(deployments)}"], None
    deployment = deployments[0]
    sas = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ServiceAccount"}
    ctx = rbac.context_from_deployment(deployment)
    problems = rbac.check(objects, expected_rules, ctx)
    problems += workload.check_deployment(deployment, sas, image_tag)
    return problems, ctx


def check_values_agree(values, ctx, deployment):
    """The flags the chart renders say what values.yaml asked for."""
    want = (tuple(dict.fromkeys(values["controller"]["watchNamespaces"])),
            values["leaderElection"]["enabled"],
            values["controller"]["enableKubernetesCompute"],
            values["controller"]["localJobs"]["enabled"],
            values["workloadIdentity"]["enabled"])
    got = (ctx.watch_namespaces, ctx.leader_election, ctx.kubernetes_compute, ctx.local_jobs,
           workload.workload_identity_enabled(deployment))
    if want != got:
        return [f"rendered controller (namespaces, leader election, kubernetes compute, "
                f"local jobs, workload identity) = {got}, values ask for {want}"]
    return []


def check_scenario(scenario, defaults, expected_rules, version):
    overrides = {}
    if scenario.values_file:
        overrides = yaml.safe_load(Path(scenario.values_file).read_text()) or {}
    values = deep_merge(defaults, overrides)
    problems = render.helm_lint(CHART, overrides, f"v{KUBE_VERSION}")
    objects, sources, errs = render.helm_template(CHART, RELEASE, NAMESPACE, overrides)
    problems += errs
    if not objects:
        return problems
    problems += validate_objects(objects)
    pinned_tag = None if values["image"]["tag"] or values["image"]["digest"] else version
    install_problems, ctx = check_install(objects, expected_rules, pinned_tag)
    problems += install_problems
    if ctx is not None:
        deployment = next(o for o in objects if o.get("kind") == "Deployment")
        problems += check_values_agree(values, ctx, deployment)
    if scenario.all_templates:
        templates = {f"templates/{p.name}" for p in Path(CHART, "templates").glob("*.yaml")}
        for missing in sorted(templates - sources):
            problems.append(f"{missing} rendered nothing; enable it in {scenario.values_file}")
    return problems


def check_kustomization(directory, workload_identity, expected_rules, version):
    if not Path("crds/kustomization.yaml").is_file():
        return ["crds/kustomization.yaml is missing: manifests/base includes ../../crds as a "
                "kustomization (kustomize refuses single files outside its own directory)"]
    objects, problems = render.kustomize(directory)
    if not objects:
        return problems
    problems += validate_objects(objects)
    install_problems, ctx = check_install(objects, expected_rules, version)
    problems += install_problems
    if ctx is not None:
        deployment = next(o for o in objects if o.get("kind") == "Deployment")
        if workload.workload_identity_enabled(deployment) != workload_identity:
            problems.append(f"workload identity should be {'on' if workload_identity else 'off'}")
    crds = {o["metadata"]["name"] for o in objects if o.get("kind") == "CustomResourceDefinition"}
    generated = {yaml.safe_load(b)["metadata"]["name"]
                 for b in drift.crd_files("crds").values()}
    if crds != generated:
        problems.append(f"CRDs rendered {sorted(crds)} != generated {sorted(generated)}")
    return problems


def check_gitops_samples():
    """The Flux and Argo CD samples in the docs are valid objects."""
    problems = []
    for path in sorted(Path(GITOPS_SAMPLES).glob("*.yaml")):
        objects, errs = render.parse_docs(path.read_text(), str(path))
        problems += errs + validate_objects(objects)
    return problems


def yamllint():
    proc = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-f", "parsable",
         "-c", str(HERE / ".yamllint"), *YAML_FILES],
        capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return []
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return [f"yamllint: {line}" for line in lines] or [f"yamllint exited {proc.returncode}"]


def self_tests():
    """The checkers' own tests (test_checks.py): a check that cannot fail
    proves nothing."""
    stream = io.StringIO()
    suite = unittest.defaultTestLoader.discover(str(HERE), pattern="test_*.py")
    result = unittest.TextTestRunner(stream=stream, verbosity=0).run(suite)
    if result.wasSuccessful() and result.testsRun:
        return []
    failed = result.failures + result.errors
    return [f"{test.id()}:\n{trace}" for test, trace in failed] or ["no self-test ran"]


def main():
    expected_rules = yaml.safe_load((HERE / "expected-rbac.yaml").read_text())
    defaults = yaml.safe_load(Path(CHART, "values.yaml").read_text())
    version = drift.crate_version("Cargo.toml")
    sections = [
        ("self-tests of the checkers", self_tests),
        ("chart CRDs match crds/", lambda: drift.check_crd_copies("crds", f"{CHART}/crds")),
        ("chart appVersion matches Cargo.toml",
         lambda: drift.check_app_version(f"{CHART}/Chart.yaml", "Cargo.toml")),
        ("yamllint", yamllint),
        ("GitOps health-check samples", check_gitops_samples),
    ]
    for s in SCENARIOS:
        sections.append((f"helm chart, {s.name}",
                         lambda s=s: check_scenario(s, defaults, expected_rules, version)))
    for d, wi in KUSTOMIZATIONS:
        sections.append((f"kubectl kustomize {d}",
                         lambda d=d, wi=wi: check_kustomization(d, wi, expected_rules, version)))
    failed = 0
    for name, run in sections:
        problems = run()
        print(f"{'FAIL' if problems else 'ok  '} {name}")
        for p in problems:
            print(f"     - {p}")
        failed += bool(problems)
    print(f"deploy: {len(sections) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
