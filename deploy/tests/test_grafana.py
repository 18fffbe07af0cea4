"""deploy/grafana/datasources.yaml against a real gateway: a gateway with
`--auth tokens` issues a read token; every data source of the file, with
the URL's host pointed at the gateway and the header the file configures
(the token substituted as Grafana substitutes $VARIABLES), answers each
request Grafana's Jaeger and Tempo data sources make; without the header
they are refused."""

from __future__ import annotations

import json
import os
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from common import DEPLOY, gateway_bin
from test_binaries import Process

ADMIN = "grafana-test-bootstrap-admin"
# What each data source type calls: Grafana's Jaeger data source (search
# form and health check) and Tempo data source (health check, query
# builder, TraceQL search, trace by id).
CALLS = {
    "jaeger": ["/api/services", "/api/services/checkout/operations", "/api/traces?service=checkout&limit=20"],
    "tempo": [
        "/api/echo",
        "/api/status/buildinfo",
        "/api/v2/search/tags?scope=resource",
        "/api/v2/search/tag/resource.service.name/values",
        "/api/search?q=%7B%7D&limit=20&spss=3",
    ],
}


def call(url: str, headers: dict, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class GrafanaProvisioning(unittest.TestCase):
    def test_every_data_source_answers_with_its_configured_header(self):
        doc = yaml.safe_load((DEPLOY / "grafana" / "datasources.yaml").read_text())
        sources = {d["type"]: d for d in doc["datasources"]}
        self.assertEqual(set(sources), {"jaeger", "tempo"})
        with tempfile.TemporaryDirectory() as tmp:
            argv = [str(gateway_bin()), "--data-dir", tmp, "--log-format", "json", "--auth", "tokens", "--admin-token", ADMIN]
            for flag in ("--http", "--tempo-http", "--zipkin-http", "--federation", "--raft", "--otlp-grpc", "--otlp-http"):
                argv += [flag, "127.0.0.1:0"]
            gw = Process(argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, Path(tmp))
            try:
                fields = gw.wait_json("gateway started")
                ports = {"16686": fields["http"], "3200": fields["tempo_http"]}
                admin = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
                token = None
                for _ in range(100):  # the single node leads once bootstrapped
                    status, body = call(f"http://{ports['16686']}/api/v1/admin/tokens", admin, json.dumps({"name": "grafana", "role": "read", "clusters": ["*"]}).encode())
                    if status == 200:
                        token = json.loads(body)["token"]
                        break
                    time.sleep(0.2)
                self.assertIsNotNone(token, "no read token")
                for kind, ds in sources.items():
                    self.assertEqual(ds["access"], "proxy")
                    host, _, port = ds["url"].removeprefix("http://").partition(":")
                    self.assertEqual(host, "gateway")
                    base = f"http://{ports[port]}"
                    name = ds["jsonData"]["httpHeaderName1"]
                    value = ds["secureJsonData"]["httpHeaderValue1"].replace("${MERIDIAN_GRAFANA_TOKEN}", token)
                    for path in CALLS[kind]:
                        status, body = call(base + path, {name: value})
                        self.assertEqual(status, 200, f"{kind} {path}: {body[:200]!r}")
                        status, _ = call(base + path, {})
                        self.assertEqual(status, 401, f"{kind} {path} without the header")
                self.assertEqual(sources["tempo"]["jsonData"]["streamingEnabled"], {"search": False, "metrics": False})
            finally:
                gw.stop()


if __name__ == "__main__":
    unittest.main()
