"""deploy/tools/render.py renders with Helm's own engine, and the little it
does around the engine is what the helm CLI does: the pinned Helm, offline,
values read and merged as `helm template -f … --set …` reads them, Helm's
output order and errors, and nothing of the chart left out."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import helm_python

from common import DEPLOY, containers, docs, one, preset_docs, render

# Helm's install order (pkg/release/v1/util/kind_sorter.go, v4.2.3); the
# output keeps template-file order within a kind, unknown kinds come last.
INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret",
    "SecretList", "ConfigMap", "StorageClass", "PersistentVolume",
    "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role",
    "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
    "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
    "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
]


def values_files(*texts: str) -> tuple[tempfile.TemporaryDirectory, list[Path]]:
    tmp = tempfile.TemporaryDirectory()
    paths = []
    for i, text in enumerate(texts):
        p = Path(tmp.name) / f"v{i}.yaml"
        p.write_text(text)
        paths.append(p)
    return tmp, paths


class Engine(unittest.TestCase):
    def test_the_engine_is_the_pinned_helm(self):
        self.assertEqual(render.HELM_SDK_VERSION, "v4.2.3")
        self.assertEqual(helm_python.helm_sdk_version(), render.HELM_SDK_VERSION)
        self.assertEqual(helm_python.__version__, "0.2.2")
        pin = (DEPLOY / "requirements-helm.txt").read_text()
        self.assertRegex(pin, r"helm-python-sdk==0\.2\.2 \\\n +--hash=sha256:[0-9a-f]{64}")
        # the library inside the installed package, not one named by HELM_C_LIB
        self.assertEqual(Path(helm_python.library_path).parent, Path(helm_python.__file__).parent / "lib")

    def test_renders_without_network_or_cluster(self):
        """`unshare -rn`: a network namespace with only a loopback that is
        down, no kubeconfig, an empty home."""
        with tempfile.TemporaryDirectory() as home:
            env = {"PATH": os.environ["PATH"], "HOME": home, "KUBECONFIG": str(Path(home) / "none")}
            r = subprocess.run(
                ["unshare", "-rn", sys.executable, str(DEPLOY / "tools" / "render.py"), "--preset", "prod"],
                env=env, capture_output=True, text=True,
            )
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, render.render(render.load_values([render.CHART / "values-prod.yaml"])))

    def test_output_is_helm_templates(self):
        values = render.load_values([render.CHART / "values-prod.yaml"])
        text = render.render(values)
        self.assertTrue(text.startswith("---\n# Source: meridian/templates/"))
        self.assertTrue(text.endswith("\n") and not text.endswith("\n\n"))
        sources = re.findall(r"^# Source: meridian/templates/(\S+)$", text, re.M)
        documents = docs(text)
        self.assertEqual(len(sources), len(documents))
        # kinds in install order, the unknown (cert-manager's) last
        rank = [INSTALL_ORDER.index(d["kind"]) if d["kind"] in INSTALL_ORDER else len(INSTALL_ORDER) for d in documents]
        self.assertEqual(rank, sorted(rank))
        # within a kind: template files in path order, each file's documents
        # as the engine rendered them (not sorted by name)
        services = [(s, d["metadata"]["name"]) for s, d in zip(sources, documents) if d["kind"] == "Service"]
        self.assertEqual([s for s, _ in services], sorted(s for s, _ in services))
        with helm_python.Chart.load(str(render.CHART)) as chart:
            per_file = chart.render(values, name=render.RELEASE, namespace=render.NAMESPACE)
        written = [d["metadata"]["name"] for d in docs(per_file["meridian/templates/gateway-services.yaml"])]
        self.assertEqual([n for s, n in services if s == "gateway-services.yaml"], written)
        self.assertNotEqual(written, sorted(written))

    def test_nothing_of_the_chart_is_left_out(self):
        """render.py prints the release manifest; `helm template` would add
        hooks, and Helm handles crds/, NOTES.txt and subcharts apart. The
        chart has none of them."""
        self.assertFalse((render.CHART / "crds").exists())
        self.assertFalse((render.CHART / "charts").exists())
        self.assertFalse((render.CHART / "templates" / "NOTES.txt").exists())
        for p in (render.CHART / "templates").iterdir():
            self.assertNotIn("helm.sh/hook", p.read_text(), p.name)
        self.assertNotIn("dependencies", (render.CHART / "Chart.yaml").read_text())


class Values(unittest.TestCase):
    def test_files_merge_in_order_and_maps_merge(self):
        tmp, (a, b) = values_files("agent:\n  clusterName: a\n  replicas: 2\n", "agent:\n  clusterName: b\n")
        with tmp:
            self.assertEqual(render.load_values([a, b]), {"agent": {"clusterName": "b", "replicas": 2}})
            self.assertEqual(render.load_values([b, a]), {"agent": {"clusterName": "a", "replicas": 2}})
            got = render.load_values([a], ["agent.clusterName=c,gateway.replicas=3"])
            self.assertEqual(got, {"agent": {"clusterName": "c", "replicas": 2}, "gateway": {"replicas": 3}})

    def test_a_file_is_read_by_helms_yaml_reader(self):
        tmp, (a,) = values_files("a: 1e3\nb: 2001-12-14\nc: 0x1F\n---\n# the second document\nd: x\n--- # a third\na: 2\n")
        with tmp:
            # Helm's YAML (not PyYAML's: that reads 1e3 as a string and the
            # date as a date), every document merged like loader.LoadValues
            self.assertEqual(render.load_values([a]), {"a": 2, "b": "2001-12-14", "c": 31, "d": "x"})
        tmp, (bad,) = values_files("a: [\n")
        with tmp, self.assertRaisesRegex(render.RenderError, "failed to parse .*v0.yaml"):
            render.load_values([bad])

    def test_set_is_parsed_by_helm(self):
        self.assertEqual(render.load_values([], ["a.b=1,c=x,d=true,e=01"]), {"a": {"b": 1}, "c": "x", "d": True, "e": "01"})
        with self.assertRaisesRegex(render.RenderError, "list indices"):
            render.load_values([], ["a[0]=x"])
        with self.assertRaisesRegex(render.RenderError, "--set"):
            render.load_values([], ["a.b"])

    def test_null_deletes_a_chart_default(self):
        def gateway(documents):
            return one(documents, "StatefulSet", "meridian-gateway")["spec"]["template"]["spec"]["containers"][0]

        self.assertIn("resources", gateway(preset_docs("dev")))
        tmp, (f,) = values_files("gateway:\n  resources: null\n")
        with tmp:
            files = [render.CHART / "values-dev.yaml", f]
            self.assertNotIn("resources", gateway(docs(render.render(render.load_values(files)))))
        self.assertNotIn("resources", gateway(preset_docs("dev", sets=("gateway.resources=null",))))

    def test_numbers_render_as_integers(self):
        """Numbers reach the templates as float64 (as from values files in
        Helm); the chart converts, so a million is not printed as 1e+06."""
        for sets in (("agent.buffer.maxBytes=1000000",), ()):
            documents = preset_docs("dev", sets=sets)
            agent = [c for _, c, init in containers(documents) if c["name"] == "agent"][0]
            want = "1000000" if sets else "134217728"  # values-dev.yaml's
            self.assertIn(f"--buffer-max-bytes={want}", agent["args"])


class Errors(unittest.TestCase):
    def test_fail_and_required_are_helms_errors(self):
        with self.assertRaisesRegex(render.RenderError, r"^execution error at \(meridian/templates/.*agent\.clusterName is required"):
            preset_docs("dev", sets=("agent.clusterName=",))
        with self.assertRaisesRegex(render.RenderError, "gateway.antiAffinity must be soft, hard or none"):
            preset_docs("prod", sets=("gateway.antiAffinity=maybe",))

    def test_release_name_is_checked_by_helm(self):
        with self.assertRaisesRegex(render.RenderError, "invalid release name"):
            render.render(render.load_values([render.CHART / "values-dev.yaml"]), release="Not_Valid")

    def test_release_and_namespace_reach_the_templates(self):
        documents = docs(render.render(render.load_values([render.CHART / "values-dev.yaml"]), "tracing", "obs"))
        sts = one(documents, "StatefulSet", "tracing-meridian-gateway")
        self.assertEqual(sts["metadata"]["namespace"], "obs")
        self.assertEqual(sts["metadata"]["labels"]["app.kubernetes.io/instance"], "tracing")
        self.assertEqual(sts["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm")


if __name__ == "__main__":
    unittest.main()
