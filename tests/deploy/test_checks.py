"""Self-tests: each deploy check must catch the mistake it exists for.

Renders the chart once, then feeds the checkers broken copies.
Run: `python3 -m unittest discover -s tests/deploy` from the repository root.
"""

import copy
import sys
import tempfile
import unittest
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check  # noqa: E402
import drift  # noqa: E402
import rbac  # noqa: E402
import render  # noqa: E402
import workload  # noqa: E402

HERE = Path(__file__).resolve().parent
EXPECTED = yaml.safe_load((HERE / "expected-rbac.yaml").read_text())


def render_chart(values_file=None):
    values = yaml.safe_load(Path(values_file).read_text()) if values_file else {}
    objects, _, problems = render.helm_template(check.CHART, "amlops", "amlops-system", values)
    assert not problems, problems
    return objects


def find(objects, kind, name=None):
    return next(o for o in objects
                if o["kind"] == kind and (name is None or o["metadata"]["name"] == name))


def install_problems(objects):
    return check.check_install(objects, EXPECTED, None)[0]


class RbacTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.default = render_chart()
        cls.namespaced = render_chart("tests/deploy/values-namespaced.yaml")
        cls.everything = render_chart("tests/deploy/values-everything.yaml")

    def mutate(self, objects, kind, name, change):
        broken = copy.deepcopy(objects)
        change(find(broken, kind, name))
        return install_problems(broken)

    def test_renders_are_exact(self):
        for objects in (self.default, self.namespaced, self.everything):
            self.assertEqual(install_problems(objects), [])

    def test_wildcard_verb_is_refused(self):
        problems = self.mutate(self.default, "ClusterRole", "amlops",
                               lambda r: r["rules"][0]["verbs"].append("*"))
        self.assertTrue(any("wildcard" in p for p in problems), problems)

    def test_extra_secret_verb_is_refused(self):
        def add_delete(role):
            role["rules"].append({"apiGroups": [""], "resources": ["secrets"],
                                  "verbs": ["delete"]})
        problems = self.mutate(self.default, "ClusterRole", "amlops", add_delete)
        self.assertIn("RBAC grants more than the controller calls: "
                      "delete secrets.core cluster-wide", problems)

    def test_missing_events_rule_is_reported(self):
        def drop_events(role):
            role["rules"] = [r for r in role["rules"] if "events.k8s.io" not in r["apiGroups"]]
        problems = self.mutate(self.default, "ClusterRole", "amlops", drop_events)
        self.assertIn("RBAC missing: create events.events.k8s.io cluster-wide", problems)

    def test_binding_to_foreign_role_is_refused(self):
        problems = self.mutate(self.default, "ClusterRoleBinding", "amlops",
                               lambda b: b["roleRef"].update(name="cluster-admin"))
        self.assertTrue(any("cluster-admin" in p for p in problems), problems)

    def test_namespaced_install_grants_nothing_cluster_wide(self):
        broken = copy.deepcopy(self.namespaced)
        role = find(broken, "Role", "amlops")
        broken.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": {"name": "extra"}, "rules": role["rules"]})
        broken.append({"apiVersion": "rbac.authorization.k8s.io/v1",
                       "kind": "ClusterRoleBinding", "metadata": {"name": "extra"},
                       "roleRef": {"apiGroup": rbac.RBAC_GROUP, "kind": "ClusterRole",
                                   "name": "extra"},
                       "subjects": [{"kind": "ServiceAccount", "name": "amlops",
                                     "namespace": "amlops-system"}]})
        problems = install_problems(broken)
        self.assertIn("RBAC grants more than the controller calls: "
                      "get secrets.core cluster-wide", problems)

    def test_namespaced_install_has_a_role_per_namespace(self):
        namespaces = {o["metadata"]["namespace"] for o in self.namespaced
                      if o["kind"] == "Role" and o["metadata"]["name"] == "amlops"}
        self.assertEqual(namespaces, {"team-a", "team-b"})
        self.assertFalse([o for o in self.namespaced if o["kind"] == "ClusterRole"])

    def test_jobs_pods_and_config_map_writes_only_with_local_jobs(self):
        def grants(objects):
            ctx = rbac.context_from_deployment(find(objects, "Deployment"))
            granted, _ = rbac.rendered_grants(objects, ctx)
            return {(g[2], g[3]) for g in granted}
        without = render_chart("tests/deploy/values-no-local-jobs.yaml")
        for grant in [("jobs", "create"), ("pods", "list"), ("pods/log", "get"),
                      ("configmaps", "create"), ("configmaps", "patch")]:
            self.assertIn(grant, grants(self.default))
            self.assertNotIn(grant, grants(without))
        self.assertIn(("configmaps", "get"), grants(without), "sources are still read")
        self.assertEqual(install_problems(without), [])

    def test_jobs_with_local_jobs_disabled_are_refused(self):
        broken = copy.deepcopy(self.default)
        args = find(broken, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        args.append("--disable-local-jobs")
        problems = install_problems(broken)
        self.assertIn("RBAC grants more than the controller calls: "
                      "create jobs.batch cluster-wide", problems)

    def test_unknown_when_is_an_error(self):
        ctx = rbac.context_from_deployment(find(self.default, "Deployment"))
        with self.assertRaises(ValueError):
            rbac.expected_grants([{"apiGroup": "", "resource": "pods", "verbs": ["get"],
                                   "scope": "cluster", "when": "typo"}], ctx)


class WorkloadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.default = render_chart()

    def problems_after(self, change):
        broken = copy.deepcopy(self.default)
        deployment = find(broken, "Deployment")
        change(deployment["spec"]["template"]["spec"], deployment)
        sas = {o["metadata"]["name"]: o for o in broken if o["kind"] == "ServiceAccount"}
        return workload.check_deployment(deployment, sas)

    def container(self, pod):
        return pod["containers"][0]

    def test_writable_root_is_refused(self):
        problems = self.problems_after(
            lambda pod, _: self.container(pod)["securityContext"].update(
                readOnlyRootFilesystem=False))
        self.assertTrue(any("readOnlyRootFilesystem" in p for p in problems), problems)

    def test_capabilities_must_be_dropped(self):
        problems = self.problems_after(
            lambda pod, _: self.container(pod)["securityContext"].pop("capabilities"))
        self.assertTrue(any("drop must contain ALL" in p for p in problems), problems)

    def test_root_user_is_refused(self):
        problems = self.problems_after(lambda pod, _: pod["securityContext"].update(runAsUser=0))
        self.assertTrue(any("runAsUser must not be 0" in p for p in problems), problems)

    def test_seccomp_is_required(self):
        def drop(pod, _):
            pod["securityContext"].pop("seccompProfile")
            self.container(pod)["securityContext"].pop("seccompProfile")
        problems = self.problems_after(drop)
        self.assertTrue(any("RuntimeDefault" in p for p in problems), problems)

    def test_probe_paths(self):
        problems = self.problems_after(
            lambda pod, _: self.container(pod)["livenessProbe"]["httpGet"].update(path="/"))
        self.assertTrue(any("livenessProbe must GET /healthz" in p for p in problems), problems)

    def test_unknown_flag_is_refused(self):
        problems = self.problems_after(
            lambda pod, _: self.container(pod)["args"].append("--watch-namespace=x"))
        self.assertTrue(any("--watch-namespace=x" in p for p in problems), problems)

    def test_pod_namespace_from_downward_api(self):
        problems = self.problems_after(lambda pod, _: self.container(pod).update(env=[]))
        self.assertTrue(any("POD_NAMESPACE" in p for p in problems), problems)

    def test_tmp_must_be_mounted(self):
        problems = self.problems_after(lambda pod, _: self.container(pod).pop("volumeMounts"))
        self.assertTrue(any("/tmp" in p for p in problems), problems)

    def test_workload_identity_label_needs_annotation(self):
        problems = self.problems_after(
            lambda _, d: d["spec"]["template"]["metadata"]["labels"].update(
                {workload.WI_USE: "true"}))
        self.assertTrue(any(workload.WI_CLIENT_ID in p for p in problems), problems)


class ChartGuardrailsTest(unittest.TestCase):
    """Values mistakes fail the render with a message naming the value."""

    def render_error(self, values):
        _, _, problems = render.helm_template(check.CHART, "amlops", "amlops-system", values)
        self.assertEqual(len(problems), 1, problems)
        return problems[0]

    def test_misspelt_value_is_rejected_by_the_schema(self):
        self.assertIn("'controler' not allowed", self.render_error({"controler": {}}))

    def test_wrong_type_is_rejected_by_the_schema(self):
        self.assertIn("/replicaCount", self.render_error({"replicaCount": "two"}))

    def test_workload_identity_needs_a_client_id(self):
        self.assertIn("workloadIdentity.clientId is required",
                      self.render_error({"workloadIdentity": {"enabled": True}}))

    def test_replicas_need_leader_election(self):
        self.assertIn("needs leaderElection.enabled", self.render_error(
            {"replicaCount": 2, "leaderElection": {"enabled": False}}))

    def test_pdb_only_with_more_than_one_replica(self):
        def kinds(objects):
            return {o["kind"] for o in objects}
        self.assertNotIn("PodDisruptionBudget", kinds(render_chart()))
        self.assertIn("PodDisruptionBudget",
                      kinds(render_chart("tests/deploy/values-everything.yaml")))


class ValidateTest(unittest.TestCase):
    def test_unknown_field_and_unknown_kind_fail_custom_resources_pass(self):
        bad_field = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                     "spec": {"ports": [{"port": 80}], "bogus": True}}
        typo_kind = {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "d"}}
        custom = {"apiVersion": "amlops.io/v1alpha1", "kind": "Experiment",
                  "metadata": {"name": "e"}}
        problems = check.validate_objects([bad_field, typo_kind, custom])
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("Service s", problems[0])
        self.assertIn("Deploymnet", problems[1])


class DriftTest(unittest.TestCase):
    def test_changed_missing_and_extra_copies(self):
        with tempfile.TemporaryDirectory() as tmp:
            gen, chart = Path(tmp, "crds"), Path(tmp, "chart")
            gen.mkdir()
            chart.mkdir()
            (gen / "a.yaml").write_text("a: 1\n")
            (gen / "b.yaml").write_text("b: 1\n")
            (gen / "kustomization.yaml").write_text("resources: []\n")
            (chart / "a.yaml").write_text("a: 2\n")
            (chart / "c.yaml").write_text("c: 1\n")
            (chart / "kustomization.yaml").write_text("resources: []\n")
            problems = drift.check_crd_copies(gen, chart)
            self.assertEqual(len(problems), 4, problems)
            self.assertTrue(any("kustomization.yaml has no source" in p for p in problems))
            self.assertTrue(any("b.yaml is missing" in p for p in problems))
            self.assertTrue(any("c.yaml has no source" in p for p in problems))
            self.assertTrue(any("a.yaml differs" in p for p in problems))
            (chart / "a.yaml").write_text("a: 1\n")
            (chart / "b.yaml").write_text("b: 1\n")
            (chart / "c.yaml").unlink()
            (chart / "kustomization.yaml").unlink()
            self.assertEqual(drift.check_crd_copies(gen, chart), [])

    def test_app_version_mismatch(self):
        with tempfile.TemporaryDirectory() as tmp:
            chart, cargo = Path(tmp, "Chart.yaml"), Path(tmp, "Cargo.toml")
            chart.write_text('appVersion: "0.1.0"\n')
            cargo.write_text('[package]\nname = "x"\nversion = "0.2.0"\n')
            self.assertEqual(len(drift.check_app_version(chart, cargo)), 1)
            cargo.write_text('[package]\nname = "x"\nversion = "0.1.0"\n')
            self.assertEqual(drift.check_app_version(chart, cargo), [])


if __name__ == "__main__":
    unittest.main()
