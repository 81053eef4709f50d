"""Copies and versions that must not drift: chart CRDs vs the generated
crds/, and the chart's appVersion vs the crate version."""

import tomllib
from pathlib import Path

import yaml


KUSTOMIZATION = "kustomization.yaml"


def crd_files(directory):
    """The CRD manifests of the generated crds/ directory, by file name; its
    kustomization.yaml (for manifests/base) is not a CRD."""
    return {p.name: p.read_bytes() for p in sorted(Path(directory).glob("*.yaml"))
            if p.name != KUSTOMIZATION}


def check_crd_copies(generated_dir, chart_crds_dir):
    """The chart's crds/ holds exactly the generated CRDs: Helm installs every
    file there, so a copied kustomization.yaml would break `helm install`."""
    generated = crd_files(generated_dir)
    copies = {p.name: p.read_bytes() for p in sorted(Path(chart_crds_dir).glob("*"))}
    hint = "copy them with `make crds` (cp crds/*.amlops.io.yaml charts/amlops/crds/)"
    if not generated:
        return [f"{generated_dir}: no CRDs found (run `make crds`)"]
    problems = []
    for name in sorted(generated.keys() - copies.keys()):
        problems.append(f"{chart_crds_dir}/{name} is missing; {hint}")
    for name in sorted(copies.keys() - generated.keys()):
        problems.append(f"{chart_crds_dir}/{name} has no source in {generated_dir}; {hint}")
    for name in sorted(generated.keys() & copies.keys()):
        if generated[name] != copies[name]:
            problems.append(f"{chart_crds_dir}/{name} differs from {generated_dir}/{name}; {hint}")
    return problems


def crate_version(cargo_toml):
    with open(cargo_toml, "rb") as f:
        return tomllib.load(f).get("package", {}).get("version")


def check_app_version(chart_yaml, cargo_toml):
    chart = yaml.safe_load(Path(chart_yaml).read_text())
    version = crate_version(cargo_toml)
    if version is None:
        return [f"{cargo_toml}: no [package] version"]
    if str(chart.get("appVersion")) != version:
        return [f"{chart_yaml}: appVersion {chart.get('appVersion')!r} != crate version "
                f"{version!r} in {cargo_toml}"]
    return []
