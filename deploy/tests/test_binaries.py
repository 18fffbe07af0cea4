"""The manifests and images against the real binaries: every flag and
MERIDIAN_* variable they pass exists in the binary's --help, and the
binaries run as the non-root user with the manifests' flags and paths,
writing only to the volumes, and answer the images' health check."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

from common import DEPLOY, agent_bin, containers, gateway_bin, k8s_files, one, preset_docs, render

DOCKER = DEPLOY / "docker"
HEALTHCHECK = DOCKER / "healthcheck.sh"
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
ENV = re.compile(r"\[env: (MERIDIAN_[A-Z0-9_]+)")
SHELL_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
SHELL_ASSIGN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)=", re.M)


def help_of(binary: Path) -> tuple[set[str], set[str]]:
    """The flags and MERIDIAN_* variables a binary's --help lists."""
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=True).stdout
    return set(FLAG.findall(out)) - {"--help", "--version"}, set(ENV.findall(out))


def binary_of(container: dict) -> str | None:
    if container["name"] == "gateway":
        return "gateway"
    if container["name"] == "agent":
        return "agent"
    return None  # the chown init container runs coreutils, not Meridian


def problems(container: dict, flags: set[str], envs: set[str]) -> list[str]:
    """What in a container's command, args and env the binary does not know."""
    out = []
    script = ""
    cmd = container.get("command", [])
    if cmd[:2] == ["/bin/sh", "-c"]:
        script = cmd[2]
    for token in container.get("args", []) + [script]:
        for f in FLAG.findall(token if token is script else token.split("=", 1)[0]):
            if f not in flags:
                out.append(f"flag {f} is not in --help")
    defined = set()
    for e in container.get("env", []):
        name = e["name"]
        defined.add(name)
        if name.startswith("MERIDIAN_"):
            if name not in envs:
                out.append(f"env {name} is not in --help")
        elif name != "TMPDIR" and not re.search(r"\$\{?" + name + r"\b", script):
            out.append(f"env {name} is used by nothing")
    local = set(SHELL_ASSIGN.findall(script))
    for var in SHELL_VAR.findall(script):
        if var not in defined and var not in local and not var.isdigit():
            out.append(f"the command reads ${var}, which nothing sets")
    return out


class FlagsExist(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.help = {"gateway": help_of(gateway_bin()), "agent": help_of(agent_bin())}

    def renders(self):
        yield from (("k8s/" + n, d) for n, d in k8s_files().items())
        for p in render.PRESETS:
            yield "preset " + p, preset_docs(p)
        yield "agent statefulset", preset_docs("prod", sets=("agent.kind=StatefulSet",))

    def test_help_lists_the_flags(self):
        gw_flags, gw_env = self.help["gateway"]
        self.assertTrue({"--data-dir", "--peers", "--join", "--node-id"} <= gw_flags)
        self.assertIn("MERIDIAN_ADMIN_TOKEN", gw_env)
        ag_flags, ag_env = self.help["agent"]
        self.assertTrue({"--cluster", "--buffer-max-bytes", "--sampling-config"} <= ag_flags)
        self.assertIn("MERIDIAN_BUFFER_DIR", ag_env)

    def test_every_manifest_flag_and_env_exists(self):
        checked = 0
        for label, documents in self.renders():
            for _, c, _ in containers(documents):
                which = binary_of(c)
                if which is None:
                    continue
                with self.subTest(render=label, container=c["name"]):
                    self.assertEqual(problems(c, *self.help[which]), [])
                    checked += 1
        self.assertGreaterEqual(checked, 10)

    def test_a_renamed_flag_or_variable_is_caught(self):
        documents = preset_docs("prod")
        sts = one(documents, "StatefulSet", "meridian-gateway")
        c = json.loads(json.dumps(sts["spec"]["template"]["spec"]["containers"][0]))
        c["args"][0] = c["args"][0].replace("--data-dir", "--datadir")
        c["command"][2] = c["command"][2].replace("--raft-advertise", "--raft-advertize")
        c["env"].append({"name": "MERIDIAN_STOR", "value": "x"})
        c["env"].append({"name": "UNUSED", "value": "x"})
        found = problems(c, *self.help["gateway"])
        self.assertEqual(
            sorted(found),
            sorted([
                "flag --datadir is not in --help",
                "flag --raft-advertize is not in --help",
                "env MERIDIAN_STOR is not in --help",
                "env UNUSED is used by nothing",
            ]),
        )

    def test_dockerfiles_match_the_binaries_and_the_chart(self):
        chart = preset_docs("dev")
        for role, which, port in (("gateway", "gateway", 16686), ("agent", "agent", 13133)):
            text = (DOCKER / f"{role}.Dockerfile").read_text()
            with self.subTest(role):
                flags, envs = self.help[which]
                for env in re.findall(r"^ENV (.*)$", text, re.M):
                    for name in re.findall(r"(\w+)=", env):
                        self.assertIn(name, envs)
                binary = "meridian-gateway" if role == "gateway" else "meridian-agent"
                self.assertIn(f'ENTRYPOINT ["{binary}"]', text)
                self.assertIn(f'CMD ["meridian-healthcheck", "{port}", "/healthz"]', text)
                self.assertIn("USER 65532:65532", text)
                volume = re.search(r'^VOLUME \["([^"]+)"\]', text, re.M).group(1)
                _, c, _ = [x for x in containers(chart) if x[1]["name"] == role and not x[2]][0]
                self.assertIn(volume, [m["mountPath"] for m in c["volumeMounts"]])
                pod = [x for x in containers(chart) if x[1]["name"] == role][0][0]["spec"]["template"]["spec"]
                self.assertEqual(pod["securityContext"]["runAsUser"], 65532)
                ports = {p["containerPort"] for p in c["ports"]}
                self.assertIn(port, ports)
                self.assertTrue(ports <= {int(p) for p in re.search(r"^EXPOSE (.*)$", text, re.M).group(1).split()})
        # The gateway's wrapper runs /bin/sh and the agent's init container
        # runs chown: the runtime image must be one that has them.
        for role in ("gateway", "agent"):
            self.assertRegex((DOCKER / f"{role}.Dockerfile").read_text(), r"FROM debian:\S+-slim")


# ---------------------------------------------------------------- running

LISTEN_FLAGS = {"--http", "--federation", "--raft", "--otlp-grpc", "--otlp-http", "--zipkin", "--zipkin-http", "--tempo-http", "--sampling", "--sampling-grpc", "--admin"}
AS_ROOT = os.geteuid() == 0


class Process:
    """A binary started from a manifest's container, its stderr collected."""

    def __init__(self, argv: list[str], env: dict, cwd: Path):
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_json(self, message: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    try:
                        v = json.loads(line)
                    except ValueError:
                        continue
                    if v.get("fields", {}).get("message") == message:
                        return v["fields"]
                seen = len(self.lines)
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"no {message!r} (exit {self.proc.poll()}):\n" + "\n".join(self.lines[-30:]))
                self.cond.wait(0.2)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


def healthcheck(addr: str, path: str = "/healthz") -> int:
    port = addr.rsplit(":", 1)[1]
    return subprocess.run(["bash", str(HEALTHCHECK), port, path], capture_output=True, timeout=30).returncode


class RunAsInTheManifests(unittest.TestCase):
    """Each preset's gateway (pod 0) and agent, as the pod's non-root user
    (when the tests run as root; else as the current user), with the
    container's command, args and env. Volumes become directories under a
    scratch root owned by that user; everything else is not writable by it.
    Test-only changes: listen addresses become 127.0.0.1:0, logs JSON (to
    read the bound ports), and Secrets get test values."""

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="meridian-deploy-"))
        self.tmp.chmod(0o755)
        self.procs: list[Process] = []
        self.certs = self.tmp / "certs"
        gw = str(gateway_bin())
        subprocess.run([gw, "certs", "init", "--out", str(self.certs)], check=True, capture_output=True)

    def tearDown(self):
        for p in self.procs:
            p.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, documents: list[dict], role: str, label: str) -> tuple[Process, Path]:
        wl, c = [(w, c) for w, c, init in containers(documents) if c["name"] == role and not init][0]
        pod = wl["spec"]["template"]["spec"]
        uid, gid = pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
        root = self.tmp / label
        root.mkdir(mode=0o755)
        bindir = root / "usr" / "local" / "bin"
        bindir.mkdir(parents=True)
        (bindir / "meridian-gateway").symlink_to(gateway_bin())
        (bindir / "meridian-agent").symlink_to(agent_bin())
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {}
        for m in c["volumeMounts"]:
            path = root / m["mountPath"].lstrip("/")
            path.mkdir(parents=True)
            mounts[m["mountPath"]] = path
            vol = volumes.get(m["name"], {})
            if "secret" in vol:
                self.fill_tls(path, role, c)
            elif "configMap" in vol:
                cm = one(documents, "ConfigMap", vol["configMap"]["name"])
                for k, v in cm["data"].items():
                    (path / k).write_text(v)
            if AS_ROOT:
                for f in [path, *path.iterdir()]:
                    os.chown(f, 0 if m.get("readOnly") else uid, gid)
                    f.chmod((0o440 if f.is_file() else 0o550) if m.get("readOnly") else (0o750 if f.is_dir() else 0o640))

        def relocate(value: str) -> str:
            for mp, path in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
                if value == mp or value.startswith(mp + "/"):
                    return str(path) + value[len(mp):]
            return value

        args = []
        for a in c.get("args", []):
            flag, _, value = a.partition("=")
            if flag in LISTEN_FLAGS:
                value = "127.0.0.1:0"
            elif flag == "--log-format":
                value = "json"
            args.append(f"{flag}={relocate(value)}" if value else flag)
        # listeners with a fixed default port the chart does not set
        if role == "gateway" and not any(a.startswith("--zipkin-http") for a in args):
            args.append("--zipkin-http=127.0.0.1:0")
        if role == "gateway" and not any(a.startswith("--tempo-http") for a in args):
            args.append("--tempo-http=127.0.0.1:0")
        env = {"PATH": f"{bindir}:/usr/bin:/bin", "POD_NAME": f"{wl['metadata']['name']}-0", "POD_NAMESPACE": "meridian"}
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = relocate(e["value"])
            elif "secretKeyRef" in e.get("valueFrom", {}):
                # an unreachable shard: the gateway starts and keeps trying
                env[e["name"]] = "postgres://meridian@127.0.0.1:1/traces" if e["name"] == "MERIDIAN_STORE" else "test-token"
        argv = c.get("command", [f"meridian-{role}"]) + args
        if AS_ROOT:
            argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"] + argv
        proc = Process(argv, env, cwd=root)
        self.procs.append(proc)
        return proc, root

    def fill_tls(self, path: Path, role: str, c: dict) -> None:
        gw = str(gateway_bin())
        if role == "gateway":
            subject = ["--node", "meridian-gateway", "--host", "*.meridian-gateway-raft.meridian.svc.cluster.local"]
            name = "node-meridian-gateway"
        else:
            cluster = [a for a in c["args"] if a.startswith("--cluster=")][0].split("=", 1)[1]
            subject = ["--cluster", cluster]
            name = f"cluster-{cluster}"
        subprocess.run([gw, "certs", "issue", *subject, "--out", str(self.certs), "--ca-dir", str(self.certs)], check=True, capture_output=True)
        shutil.copy(self.certs / "ca.pem", path / "ca.crt")
        shutil.copy(self.certs / f"{name}.pem", path / "tls.crt")
        shutil.copy(self.certs / f"{name}-key.pem", path / "tls.key")

    def written_outside_volumes(self, root: Path, documents: list[dict], role: str) -> list[str]:
        c = [c for _, c, init in containers(documents) if c["name"] == role and not init][0]
        allowed = [root / m["mountPath"].lstrip("/") for m in c["volumeMounts"]] + [root / "usr"]
        out = []
        for p in root.rglob("*"):
            if not any(p == a or a in p.parents or p in a.parents for a in allowed):
                out.append(str(p.relative_to(root)))
        return out

    def check_role(self, preset: str, role: str, started: str, health_key: str, ready: bool):
        documents = preset_docs(preset)
        proc, root = self.start(documents, role, f"{preset}-{role}")
        fields = proc.wait_json(started)
        self.assertEqual(healthcheck(fields[health_key]), 0, "\n".join(proc.lines[-20:]))
        if ready:
            self.assertEqual(healthcheck(fields[health_key], "/readyz"), 0)
        proc.stop()
        self.assertEqual(self.written_outside_volumes(root, documents, role), [])
        data = root / ("var/lib/meridian" if role == "gateway" else "var/lib/meridian-agent")
        self.assertTrue(any(data.iterdir()), f"{role} wrote nothing to its data volume")
        if AS_ROOT:
            owners = {p.stat().st_uid for p in data.rglob("*")}
            self.assertEqual(owners, {65532}, f"{role} files not owned by the pod's user")

    def test_dev_gateway_and_agent(self):
        self.check_role("dev", "gateway", "gateway started", "http", ready=True)
        self.check_role("dev", "agent", "agent started", "admin", ready=True)

    def test_prod_gateway_on_postgres_and_tail_sampling_agent(self):
        self.check_role("prod", "gateway", "gateway started", "http", ready=False)
        self.check_role("prod", "agent", "agent started", "admin", ready=True)

    def test_multicluster_remote_agent(self):
        self.check_role("multicluster-remote", "agent", "agent started", "admin", ready=True)

    def test_healthcheck_fails_when_nothing_answers(self):
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.assertEqual(healthcheck(f"127.0.0.1:{port}"), 1)


if __name__ == "__main__":
    unittest.main()
