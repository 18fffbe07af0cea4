"""The OpenTelemetry Collector configuration in deploy/README.md uses only
real, current Collector keys.

KNOWN lists the configuration keys of the Collector components the example
uses, as the Collector's own configuration schemas define them (core
repository: the otlp receiver, the otlp_grpc exporter — renamed from `otlp`,
which is now a deprecated alias —, config/configgrpc's client and server
settings, config/configtls, config/configretry, exporterhelper's timeout and
queue settings). Written for this test from those schemas; a key outside it
fails, and so does a deprecated component name.
"""

from __future__ import annotations

import re
import unittest

import yaml

from common import DEPLOY

TLS_CLIENT = {
    "insecure", "insecure_skip_verify", "server_name_override", "ca_file", "ca_pem", "cert_file",
    "cert_pem", "key_file", "key_pem", "min_version", "max_version", "cipher_suites",
    "curve_preferences", "include_system_ca_certs_pool", "reload_interval", "tpm",
}
TLS_SERVER = (TLS_CLIENT - {"insecure", "insecure_skip_verify", "server_name_override"}) | {
    "client_ca_file", "client_ca_file_reload",
}
RETRY = {"enabled", "initial_interval", "randomization_factor", "multiplier", "max_interval",
         "max_elapsed_time", "max_retries"}
QUEUE = {"enabled", "num_consumers", "queue_size", "sizer", "storage", "wait_for_result",
         "block_on_overflow", "batch"}
KEEPALIVE_CLIENT = {"time", "timeout", "permit_without_stream"}
GRPC_SERVER = {"endpoint", "transport", "tls", "max_recv_msg_size_mib", "max_concurrent_streams",
               "read_buffer_size", "write_buffer_size", "keepalive", "auth", "include_metadata",
               "middlewares"}
HTTP_SERVER = {"endpoint", "tls", "cors", "auth", "max_request_body_size", "include_metadata",
               "response_headers", "compression_algorithms", "keepalive", "middlewares",
               "traces_url_path", "metrics_url_path", "logs_url_path"}

# A key → the keys allowed under it (a set), a nested map, or None (free-form).
OTLP_GRPC_EXPORTER = {
    "endpoint": None, "compression": None, "headers": None, "balancer_name": None, "authority": None,
    "auth": None, "wait_for_ready": None, "read_buffer_size": None, "write_buffer_size": None,
    "middlewares": None, "timeout": None,
    "tls": TLS_CLIENT, "keepalive": KEEPALIVE_CLIENT, "sending_queue": QUEUE, "retry_on_failure": RETRY,
}
OTLP_RECEIVER = {"protocols": {"grpc": GRPC_SERVER, "http": HTTP_SERVER}}
COMPONENTS = {
    "receivers": {"otlp": OTLP_RECEIVER},
    "exporters": {"otlp_grpc": OTLP_GRPC_EXPORTER},
}
DEPRECATED = {"exporters": {"otlp": "otlp_grpc", "otlphttp": "otlp_http"}}
TOP = {"receivers", "processors", "exporters", "extensions", "connectors", "service"}
PIPELINE = {"receivers", "processors", "exporters"}


def check(node, schema, path: str) -> list[str]:
    if schema is None:
        return []
    if not isinstance(node, dict):
        return [f"{path} must be a map"]
    errors = []
    for k, v in node.items():
        here = f"{path}.{k}"
        if isinstance(schema, set):
            if k not in schema:
                errors.append(f"unknown key {here}")
            elif isinstance(v, dict) and k not in {"batch", "tpm", "storage"}:
                errors.append(f"{here} is not a map key")
        elif k not in schema:
            errors.append(f"unknown key {here}")
        else:
            errors.extend(check(v, schema[k], here))
    return errors


def problems(config: dict) -> list[str]:
    errors = [f"unknown top-level key {k}" for k in config if k not in TOP]
    declared = set()
    for section, kinds in COMPONENTS.items():
        for cid, body in (config.get(section) or {}).items():
            kind = cid.split("/", 1)[0]
            declared.add((section, cid))
            if kind in DEPRECATED.get(section, {}):
                errors.append(f"{section}.{cid}: '{kind}' is deprecated, use '{DEPRECATED[section][kind]}'")
            elif kind not in kinds:
                errors.append(f"{section}.{cid}: component '{kind}' is not checked by this test")
            else:
                errors.extend(check(body or {}, kinds[kind], f"{section}.{cid}"))
    service = config.get("service") or {}
    for k in service:
        if k not in {"pipelines", "extensions", "telemetry"}:
            errors.append(f"unknown key service.{k}")
    for name, pipeline in (service.get("pipelines") or {}).items():
        if name.split("/", 1)[0] not in {"traces", "metrics", "logs"}:
            errors.append(f"pipeline {name} is not a signal")
        for k, ids in pipeline.items():
            if k not in PIPELINE:
                errors.append(f"unknown key service.pipelines.{name}.{k}")
                continue
            for cid in ids:
                if (k, cid) not in declared:
                    errors.append(f"service.pipelines.{name}.{k} names undeclared {cid}")
    return errors


def readme_config() -> dict:
    text = (DEPLOY / "README.md").read_text()
    m = re.search(r"<!-- otel-collector-config -->\s*```yaml\n(.*?)```", text, re.S)
    if not m:
        raise AssertionError("deploy/README.md has no <!-- otel-collector-config --> yaml block")
    return yaml.safe_load(m.group(1))


class CollectorConfig(unittest.TestCase):
    def test_readme_example_uses_real_keys(self):
        config = readme_config()
        self.assertEqual(problems(config), [])
        exporter = config["exporters"]["otlp_grpc/meridian"]
        self.assertTrue(exporter["endpoint"].endswith(":4317"), "the agent's OTLP gRPC port")
        self.assertEqual(config["service"]["pipelines"]["traces"]["exporters"], ["otlp_grpc/meridian"])

    def test_checker_refuses_made_up_or_old_keys(self):
        base = readme_config()
        cases = {
            "tls.insecure_skip": ("exporters", "otlp_grpc/meridian", "tls", {"insecure_skip": True}),
            "retry_settings": ("exporters", "otlp_grpc/meridian", "retry_settings", {"disabled": False}),
            "cert_pem_file": ("exporters", "otlp_grpc/meridian", "cert_pem_file", "ca.pem"),
        }
        for label, (section, cid, key, value) in cases.items():
            with self.subTest(label):
                cfg = yaml.safe_load(yaml.safe_dump(base))
                cfg[section][cid][key] = value
                self.assertNotEqual(problems(cfg), [])
        cfg = yaml.safe_load(yaml.safe_dump(base))
        cfg["exporters"] = {"otlp/meridian": cfg["exporters"]["otlp_grpc/meridian"]}
        cfg["service"]["pipelines"]["traces"]["exporters"] = ["otlp/meridian"]
        self.assertIn("deprecated", " ".join(problems(cfg)))
        cfg = yaml.safe_load(yaml.safe_dump(base))
        cfg["service"]["pipelines"]["traces"]["exporters"] = ["otlp_grpc/other"]
        self.assertIn("undeclared", " ".join(problems(cfg)))


if __name__ == "__main__":
    unittest.main()
