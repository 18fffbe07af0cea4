"""The chart and the plain manifests: deploy/k8s/ equals a fresh render,
every resource validates against the Kubernetes schemas (and cert-manager's
against a schema written from its documented v1 API), values are documented
and the presets use only real keys, required values fail loudly, and the
identities the workloads use are the ones their certificates carry."""

from __future__ import annotations

import base64
import copy
import fnmatch
import json
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from common import DEPLOY, containers, docs, find, k8s_files, one, preset_docs, render

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the
# newest schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.27.0", "1.37.0")
CERT_MANAGER_KINDS = {"Certificate", "Issuer", "ClusterIssuer"}
CERT_MANAGER_SCHEMA = json.loads((Path(__file__).parent / "cert-manager-v1.schema.json").read_text())

# Variants beyond the presets, so every branch of the templates is validated.
VARIANTS = {
    "agent-statefulset": ("prod", ("agent.kind=StatefulSet", "agent.replicas=3")),
    "agent-emptydir": ("dev", ("agent.buffer.volume=emptyDir",)),
    "federation-ingress": (
        "multicluster",
        ("gateway.federation.ingress.enabled=true", "gateway.federation.ingress.host=fed.example.com"),
    ),
    "user-secrets": ("prod", ("tls.mode=secrets", "tls.secrets.gateway=gw-tls", "tls.secrets.agent=agent-tls")),
    "existing-ca": ("prod", ("tls.certManager.createCA=false", "tls.certManager.caSecretName=central-ca")),
    "soft-affinity": ("prod", ("gateway.antiAffinity=none", "gateway.replicas=5")),
}


def validate(doc: dict) -> None:
    if doc["kind"] in CERT_MANAGER_KINDS:
        jsonschema.validate(doc, CERT_MANAGER_SCHEMA, cls=jsonschema.Draft202012Validator)
        return
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def all_renders() -> dict[str, list[dict]]:
    out = {f"preset {p}": preset_docs(p) for p in render.PRESETS}
    for name, (preset, sets) in VARIANTS.items():
        out[f"variant {name}"] = preset_docs(preset, sets=sets)
    return out


RENDERS = all_renders()


def fails_with(*sets: str, preset: str | None = None) -> str:
    try:
        preset_docs(*([preset] if preset else []), sets=sets)
    except render.RenderError as e:
        return str(e)
    raise AssertionError(f"rendering with {sets} did not fail")


class PlainManifests(unittest.TestCase):
    def test_committed_manifests_equal_a_fresh_render(self):
        for name in render.MANIFESTS:
            with self.subTest(name):
                path = DEPLOY / "k8s" / name
                self.assertTrue(path.exists(), f"{path} missing: run deploy/tools/render.py --write")
                self.assertEqual(path.read_text(), render.manifest(name), f"{name} is stale: run deploy/tools/render.py --write")
        self.assertEqual(sorted(p.name for p in (DEPLOY / "k8s").glob("*")), sorted(render.MANIFESTS))

    def test_check_mode_fails_on_a_stale_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            saved = render.K8S
            try:
                render.K8S = Path(tmp)
                for name in render.MANIFESTS:
                    (Path(tmp) / name).write_text(render.manifest(name))
                self.assertEqual(render.main(["--check"]), 0)
                (Path(tmp) / "dev.yaml").write_text(render.manifest("dev.yaml").replace("replicas: 1", "replicas: 2"))
                self.assertEqual(render.main(["--check"]), 1)
                (Path(tmp) / "dev.yaml").write_text(render.manifest("dev.yaml"))
                (Path(tmp) / "renamed.yaml").write_text("")
                self.assertEqual(render.main(["--check"]), 1)
            finally:
                render.K8S = saved


class Schemas(unittest.TestCase):
    def test_every_plain_manifest_validates(self):
        files = k8s_files()
        self.assertEqual(len(files), len(render.MANIFESTS))
        for name, documents in files.items():
            self.assertGreaterEqual(len(documents), 2, name)
            for d in documents:
                with self.subTest(file=name, kind=d["kind"], name=d["metadata"]["name"]):
                    validate(d)

    def test_every_render_validates(self):
        for label, documents in RENDERS.items():
            for d in documents:
                with self.subTest(render=label, kind=d["kind"], name=d["metadata"]["name"]):
                    validate(d)

    def test_validation_catches_mistakes(self):
        """The validators are strict: a misspelt field or a bad value fails."""
        documents = RENDERS["preset prod"]
        sts = copy.deepcopy(one(documents, "StatefulSet"))
        sts["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
        with self.assertRaises(kubernetes_validate.ValidationError):
            validate(sts)
        svc = copy.deepcopy(one(documents, "Service", "meridian-gateway-raft"))
        svc["spec"]["ports"][0]["port"] = "raft"
        with self.assertRaises(kubernetes_validate.ValidationError):
            validate(svc)
        cert = copy.deepcopy(one(documents, "Certificate", "meridian-gateway"))
        cert["spec"]["dnsName"] = cert["spec"].pop("dnsNames")
        with self.assertRaises(jsonschema.ValidationError):
            validate(cert)
        cert = copy.deepcopy(one(documents, "Certificate", "meridian-gateway"))
        cert["spec"]["usages"].append("client-auth")
        with self.assertRaises(jsonschema.ValidationError):
            validate(cert)
        issuer = copy.deepcopy(one(documents, "Issuer", "meridian-ca"))
        issuer["spec"]["selfSigned"] = {}
        with self.assertRaises(jsonschema.ValidationError):
            validate(issuer)


# Keys whose contents are data (Kubernetes fields, annotations), not chart keys.
OPAQUE = {"resources", "annotations", "podAnnotations", "nodeSelector", "issuerRef", "commonLabels"}
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][\w.-]*):(?: |$)")


def key_lines(text: str):
    """(path, previous non-blank line) for every chart key in a values file."""
    stack: list[tuple[int, str]] = []
    prev = ""
    for line in text.splitlines():
        m = KEY.match(line)
        if m:
            indent = len(m.group("indent"))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = [k for _, k in stack] + [m.group("key")]
            if not any(k in OPAQUE for k in path[:-1]):
                yield ".".join(path), prev.strip()
            stack.append((indent, m.group("key")))
        if line.strip():
            prev = line
    return


def leaf_paths(v, prefix=""):
    if isinstance(v, dict) and v and prefix.rsplit(".", 1)[-1] not in OPAQUE:
        for k, x in v.items():
            yield from leaf_paths(x, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix


class Values(unittest.TestCase):
    def test_every_key_is_documented(self):
        text = (render.CHART / "values.yaml").read_text()
        keys = list(key_lines(text))
        self.assertGreater(len(keys), 60)
        for path, prev in keys:
            with self.subTest(path):
                self.assertTrue(prev.startswith("#"), f"values.yaml: {path} has no comment above it")

    def test_presets_use_only_keys_of_values_yaml(self):
        base = set(leaf_paths(yaml.safe_load((render.CHART / "values.yaml").read_text())))
        for preset in render.PRESETS.values():
            for path in leaf_paths(yaml.safe_load((render.CHART / preset).read_text())):
                with self.subTest(preset=preset, key=path):
                    self.assertTrue(
                        path in base or any(path.startswith(b + ".") for b in base),
                        f"{preset}: {path} is not a key of values.yaml",
                    )

    def test_required_values_fail_with_a_message(self):
        self.assertIn("agent.clusterName is required", fails_with("gateway.store.existingSecret=pg"))
        self.assertIn("agent.clusterName", fails_with("agent.clusterName=Not_Valid", preset="dev"))
        self.assertIn("store.existingSecret is required", fails_with("agent.clusterName=a"))
        self.assertIn("use gateway.replicas=1", fails_with("gateway.replicas=3", "gateway.initialMembers=3", preset="dev"))
        self.assertIn("tls.secrets.agent is required", fails_with("tls.mode=secrets", "tls.secrets.gateway=g", preset="dev"))
        self.assertIn("tls.secrets.gateway is required", fails_with("tls.mode=secrets", "tls.secrets.agent=a", preset="dev"))
        self.assertIn("agent.gateways is required", fails_with("gateway.enabled=false", preset="dev"))
        self.assertIn("antiAffinity", fails_with("gateway.antiAffinity=maybe", preset="prod"))
        self.assertIn("agent.kind", fails_with("agent.kind=Deployment", preset="dev"))
        self.assertIn("createCA", fails_with("tls.certManager.createCA=false", preset="dev"))
        self.assertIn("ingress.host is required", fails_with("gateway.federation.ingress.enabled=true", preset="prod"))
        self.assertIn("gateway.authProxy.trusted is required", fails_with("gateway.auth=proxy", preset="prod"))

    def test_cli_reports_failures(self):
        r = subprocess.run(
            [sys.executable, str(DEPLOY / "tools" / "render.py"), "--set", "gateway.store.existingSecret=x"],
            capture_output=True, text=True,
        )
        self.assertEqual(r.returncode, 1)
        self.assertIn("agent.clusterName is required", r.stderr)


def arg(container: dict, flag: str) -> str | None:
    for a in container.get("args", []):
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def covered(host: str, dns_names: list[str]) -> bool:
    """TLS name matching: exact, or a wildcard for exactly one left label."""
    for n in dns_names:
        if n == host:
            return True
        if n.startswith("*.") and "." in host and host.split(".", 1)[1] == n[2:]:
            return True
    return False


class Workloads(unittest.TestCase):
    def test_pods_are_non_root_with_read_only_root(self):
        for label, documents in RENDERS.items():
            for wl, c, init in containers(documents):
                with self.subTest(render=label, container=c["name"]):
                    pod = wl["spec"]["template"]["spec"]
                    sc = c["securityContext"]
                    self.assertTrue(sc["readOnlyRootFilesystem"])
                    self.assertFalse(sc["allowPrivilegeEscalation"])
                    self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                    self.assertFalse(pod["automountServiceAccountToken"])
                    if init:  # only the hostPath chown step runs as root, with CHOWN alone
                        self.assertEqual(c["name"], "buffer-owner")
                        self.assertEqual(sc["capabilities"]["add"], ["CHOWN"])
                    else:
                        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
                        self.assertNotEqual(pod["securityContext"]["runAsUser"], 0)
                        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
                        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")

    def test_a_bootstrap_admin_token_is_created_unless_one_is_named(self):
        dev = RENDERS["preset dev"]
        secret = one(dev, "Secret", "meridian-admin")
        token = base64.b64decode(secret["data"]["token"]).decode()
        self.assertRegex(token, r"^[A-Za-z0-9]{48}$")
        self.assertEqual(secret["metadata"]["annotations"]["helm.sh/resource-policy"], "keep")
        c = one(dev, "StatefulSet", "meridian-gateway")["spec"]["template"]["spec"]["containers"][0]
        env = [e for e in c["env"] if e["name"] == "MERIDIAN_ADMIN_TOKEN"]
        self.assertEqual(env[0]["valueFrom"]["secretKeyRef"], {"name": "meridian-admin", "key": "token"})
        # Generated per install, never a value fixed in the chart.
        again = one(preset_docs("dev"), "Secret", "meridian-admin")
        self.assertNotEqual(again["data"]["token"], secret["data"]["token"])
        # A named Secret is used as it is; the chart creates none.
        prod = RENDERS["preset prod"]
        self.assertEqual(find(prod, "Secret"), [])
        c = one(prod, "StatefulSet", "meridian-gateway")["spec"]["template"]["spec"]["containers"][0]
        env = [e for e in c["env"] if e["name"] == "MERIDIAN_ADMIN_TOKEN"]
        self.assertEqual(env[0]["valueFrom"]["secretKeyRef"]["name"], "meridian-admin")
        # Opting out leaves no credential; the plain manifests carry none.
        off = preset_docs("dev", sets=("gateway.adminToken.create=false",))
        self.assertEqual(find(off, "Secret"), [])
        for name, documents in k8s_files().items():
            with self.subTest(manifest=name):
                self.assertEqual([d for d in find(documents, "Secret") if d["metadata"]["name"].endswith("-admin")], [])

    def test_https_and_proxy_auth_are_opt_in(self):
        def gateway(documents):
            sts = one(documents, "StatefulSet", "meridian-gateway")
            return sts["spec"]["template"]["spec"], sts["spec"]["template"]["spec"]["containers"][0]
        spec, c = gateway(RENDERS["preset prod"])
        self.assertIsNone(arg(c, "--http-tls-cert"))
        self.assertIsNone(arg(c, "--auth-proxy-trusted"))
        self.assertNotIn("scheme", c["readinessProbe"]["httpGet"])
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump({"gateway": {
                "auth": "proxy",
                "authProxy": {"trusted": ["10.0.0.0/8", "192.168.7.1"]},
                "httpTls": {"existingSecret": "meridian-http-tls"},
            }}, f)
            f.flush()
            files = [render.CHART / render.PRESETS["prod"], Path(f.name)]
            spec, c = gateway(docs(render.render(render.load_values(files))))
        self.assertEqual(arg(c, "--auth"), "proxy")
        self.assertEqual(arg(c, "--auth-proxy-trusted"), "10.0.0.0/8,192.168.7.1")
        self.assertEqual(arg(c, "--auth-proxy-header"), "X-Forwarded-User")
        self.assertEqual(arg(c, "--http-tls-cert"), "/etc/meridian/http-tls/tls.crt")
        self.assertEqual(arg(c, "--http-tls-key"), "/etc/meridian/http-tls/tls.key")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            self.assertEqual(c[probe]["httpGet"]["scheme"], "HTTPS", probe)
        mount = [m for m in c["volumeMounts"] if m["name"] == "http-tls"]
        self.assertEqual(mount[0]["mountPath"], "/etc/meridian/http-tls")
        volume = [v for v in spec["volumes"] if v["name"] == "http-tls"]
        self.assertEqual(volume[0]["secret"]["secretName"], "meridian-http-tls")

    def test_gateway_cluster_shape(self):
        documents = RENDERS["preset prod"]
        sts = one(documents, "StatefulSet", "meridian-gateway")
        self.assertEqual(sts["spec"]["replicas"], 3)
        self.assertEqual(sts["spec"]["podManagementPolicy"], "Parallel")
        raft = one(documents, "Service", sts["spec"]["serviceName"])
        self.assertEqual(raft["spec"]["clusterIP"], "None")
        self.assertTrue(raft["spec"]["publishNotReadyAddresses"])
        self.assertEqual(one(documents, "PodDisruptionBudget")["spec"]["maxUnavailable"], 1)
        pod = sts["spec"]["template"]["spec"]
        self.assertIn("requiredDuringSchedulingIgnoredDuringExecution", pod["affinity"]["podAntiAffinity"])
        self.assertEqual(sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "data")
        c = pod["containers"][0]
        self.assertEqual(arg(c, "--data-dir"), "/var/lib/meridian")
        self.assertIn({"name": "data", "mountPath": "/var/lib/meridian"}, c["volumeMounts"])
        store = [e for e in c["env"] if e["name"] == "MERIDIAN_STORE"][0]
        self.assertEqual(store["valueFrom"]["secretKeyRef"], {"name": "meridian-postgres", "key": "urls"})
        self.assertEqual(arg(c, "--retention-hours"), "168")
        self.assertEqual(find(RENDERS["preset dev"], "PodDisruptionBudget"), [])
        fed = one(RENDERS["preset multicluster"], "Service", "meridian-gateway-federation")
        self.assertEqual(fed["spec"]["type"], "LoadBalancer")

    def test_agent_buffer_is_capped_and_sized(self):
        for label, documents in RENDERS.items():
            for wl, c, init in containers(documents):
                if init or c["name"] != "agent":
                    continue
                with self.subTest(render=label):
                    cap = int(arg(c, "--buffer-max-bytes"))
                    self.assertEqual(arg(c, "--buffer-dir"), "/var/lib/meridian-agent")
                    pod = wl["spec"]["template"]["spec"]
                    vol = [v for v in pod["volumes"] if v["name"] == "buffer"]
                    if wl["kind"] == "StatefulSet":
                        size = wl["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
                        self.assertGreater(int(size), cap)
                    elif "emptyDir" in vol[0]:
                        self.assertGreater(int(vol[0]["emptyDir"]["sizeLimit"]), cap)
                    else:
                        self.assertEqual(vol[0]["hostPath"]["type"], "DirectoryOrCreate")
        service = one(RENDERS["preset dev"], "Service", "meridian-agent")
        self.assertEqual(sorted(p["port"] for p in service["spec"]["ports"]), [4317, 4318, 5778, 5779, 9411])

    def test_prod_agent_gets_the_tail_sampling_policy(self):
        documents = RENDERS["preset prod"]
        _, c, _ = [x for x in containers(documents) if x[1]["name"] == "agent"][0]
        path = arg(c, "--sampling-config")
        cm = one(documents, "ConfigMap", "meridian-agent-sampling")
        self.assertEqual(path, "/etc/meridian/sampling/sampling.toml")
        self.assertIn("[tail]", cm["data"]["sampling.toml"])
        self.assertIsNone(arg([x for x in containers(RENDERS["preset dev"]) if x[1]["name"] == "agent"][0][1], "--sampling-config"))


class Identities(unittest.TestCase):
    def test_agent_certificate_names_its_cluster(self):
        for label, documents in RENDERS.items():
            for wl, c, init in containers(documents):
                if init or c["name"] != "agent":
                    continue
                cluster = arg(c, "--cluster")
                secret = [v for v in wl["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"][0]["secret"]["secretName"]
                certs = [d for d in find(documents, "Certificate") if d["spec"]["secretName"] == secret]
                with self.subTest(render=label):
                    if "user-secrets" in label or "remote" in label:
                        self.assertEqual(certs, [])  # the user supplies this Secret
                        continue
                    self.assertEqual(len(certs), 1)
                    self.assertEqual(certs[0]["spec"]["uris"], [f"spiffe://meridian/cluster/{cluster}"])
                    self.assertIn("client auth", certs[0]["spec"]["usages"])

    def test_remote_cluster_certificates(self):
        documents = RENDERS["preset multicluster"]
        for cluster in ("us-east", "eu-west"):
            cert = one(documents, "Certificate", f"meridian-agent-{cluster}")
            self.assertEqual(cert["spec"]["uris"], [f"spiffe://meridian/cluster/{cluster}"])
            self.assertEqual(cert["spec"]["secretName"], f"meridian-agent-{cluster}-tls")
        remote = RENDERS["preset multicluster-remote"]
        self.assertEqual(find(remote, "StatefulSet"), [])
        _, c, _ = [x for x in containers(remote) if x[1]["name"] == "agent"][0]
        self.assertEqual(arg(c, "--cluster"), "us-east")
        central_fed = one(documents, "Certificate", "meridian-gateway")["spec"]["dnsNames"]
        host = re.match(r"https://([^:/]+)", arg(c, "--gateway")).group(1)
        self.assertTrue(covered(host, central_fed), f"{host} not in the central gateway certificate")

    def test_gateway_certificate_covers_every_name_it_is_dialled_at(self):
        for label, documents in RENDERS.items():
            sts = find(documents, "StatefulSet", "meridian-gateway")
            if not sts or "user-secrets" in label:
                continue
            cert = one(documents, "Certificate", "meridian-gateway")
            names = cert["spec"]["dnsNames"]
            with self.subTest(render=label):
                self.assertEqual(cert["spec"]["uris"], ["spiffe://meridian/node/meridian-gateway"])
                self.assertTrue({"server auth", "client auth"} <= set(cert["spec"]["usages"]))
                env = {e["name"]: e.get("value") for e in sts[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
                for ordinal in range(sts[0]["spec"]["replicas"] + 4):  # room to scale
                    pod = f"{env['STATEFULSET']}-{ordinal}.{env['RAFT_SERVICE']}.meridian.svc.{env['CLUSTER_DOMAIN']}"
                    self.assertTrue(covered(pod, names), pod)
                for _, c, init in containers(documents):
                    if c["name"] == "agent" and arg(c, "--gateway"):
                        for url in arg(c, "--gateway").split(","):
                            host = re.match(r"https://([^:/]+)", url).group(1)
                            self.assertTrue(covered(host, names), host)
                self.assertFalse(covered("a.b.meridian-gateway-raft.meridian.svc.cluster.local", names))


def wrapper_run(documents: list[dict], pod_name: str) -> list[str]:
    """Runs the gateway container's shell wrapper with a stub binary; the
    arguments the real binary would get."""
    sts = one(documents, "StatefulSet", "meridian-gateway")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    env = {"PATH": "", "POD_NAME": pod_name, "POD_NAMESPACE": "meridian"}
    for e in c["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
    with tempfile.TemporaryDirectory() as tmp:
        stub = Path(tmp) / "meridian-gateway"
        stub.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
        stub.chmod(0o755)
        env["PATH"] = f"{tmp}:/usr/bin:/bin"
        out = subprocess.run(c["command"] + c["args"], env=env, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


class GatewayWrapper(unittest.TestCase):
    """The container command derives the node id and bootstrap from the pod's ordinal."""

    def test_initial_members_form_the_cluster_with_peers(self):
        documents = RENDERS["preset prod"]
        domain = "meridian-gateway-raft.meridian.svc.cluster.local"
        peers = ",".join(f"{i + 1}=meridian-gateway-{i}.{domain}:4321" for i in range(3))
        for ordinal in range(3):
            args = wrapper_run(documents, f"meridian-gateway-{ordinal}")
            self.assertIn(f"--node-id={ordinal + 1}", args)
            self.assertIn(f"--peers={peers}", args)
            self.assertIn(f"--raft-advertise=meridian-gateway-{ordinal}.{domain}:4321", args)
            self.assertIn(f"--advertise-host=meridian-gateway-{ordinal}.{domain}", args)
            self.assertFalse(any(a.startswith("--join") for a in args))
            self.assertEqual(args[-1], "--retention-hours=168")  # the container's args follow

    def test_later_pods_join_pod_zero(self):
        args = wrapper_run(RENDERS["preset prod"], "meridian-gateway-3")
        self.assertIn("--node-id=4", args)
        self.assertIn("--join=meridian-gateway-0.meridian-gateway-raft.meridian.svc.cluster.local:4321", args)
        self.assertFalse(any(a.startswith("--peers") for a in args))

    def test_single_node_and_no_pod_address(self):
        args = wrapper_run(RENDERS["preset dev"], "meridian-gateway-0")
        self.assertIn("--node-id=1", args)
        self.assertFalse(any(a.startswith(("--peers", "--join")) for a in args))
        args = wrapper_run(RENDERS["preset dev"], "meridian-gateway-1")
        self.assertIn("--join=meridian-gateway-0.meridian-gateway-raft.meridian.svc.cluster.local:4321", args)
        args = wrapper_run(RENDERS["preset multicluster"], "meridian-gateway-2")
        self.assertFalse(any(a.startswith("--advertise-host") for a in args))


if __name__ == "__main__":
    unittest.main()
