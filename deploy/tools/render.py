#!/usr/bin/env python3
"""Renders the Meridian Helm chart without Helm, like `helm template`.

    deploy/tools/render.py --preset dev            # values.yaml + values-dev.yaml
    deploy/tools/render.py -f my-values.yaml --set agent.clusterName=eu-west
    deploy/tools/render.py --write                 # regenerate deploy/k8s/*.yaml
    deploy/tools/render.py --check                 # exit 1 if deploy/k8s/ is stale

Values are merged as Helm merges them (values.yaml < each -f / --preset
file in order < --set), templates are rendered by `gotemplate` (the subset
of Go templates the chart uses), and the documents come out in Helm's
install order, each under a `# Source:` line. Needs PyYAML.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gotemplate  # noqa: E402

DEPLOY = Path(__file__).resolve().parent.parent
CHART = DEPLOY / "helm" / "meridian"
K8S = DEPLOY / "k8s"

# The plain manifests in deploy/k8s/: file name → preset files (in order).
MANIFESTS: dict[str, list[str]] = {
    "dev.yaml": ["values-dev.yaml"],
    "prod.yaml": ["values-prod.yaml"],
    "multicluster-central.yaml": ["values-multicluster.yaml"],
    "multicluster-remote-agent.yaml": ["values-multicluster-remote.yaml"],
}
PRESETS = {
    "dev": "values-dev.yaml",
    "prod": "values-prod.yaml",
    "multicluster": "values-multicluster.yaml",
    "multicluster-remote": "values-multicluster-remote.yaml",
}
RELEASE = "meridian"
NAMESPACE = "meridian"

# Helm's install order (pkg/releaseutil/kind_sorter.go); other kinds after.
KIND_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret",
    "SecretList", "ConfigMap", "StorageClass", "PersistentVolume",
    "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role",
    "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
    "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
    "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
]


def _floats(v: Any) -> Any:
    """Helm reads every number in values as a float64."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return float(v)
    if isinstance(v, dict):
        return {k: _floats(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_floats(x) for x in v]
    return v


def merge(base: dict, over: dict) -> dict:
    """Helm's coalescing: maps merge key by key, anything else replaces,
    and a null in the override deletes the key."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_value(values: dict, assignment: str) -> None:
    """`--set a.b.c=value` (the value parsed as a YAML scalar)."""
    path, sep, raw = assignment.partition("=")
    if not sep or not path:
        raise SystemExit(f"--set {assignment!r}: write KEY=VALUE")
    keys = path.split(".")
    node = values
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise SystemExit(f"--set {assignment!r}: {k} is not a map")
    node[keys[-1]] = yaml.safe_load(raw) if raw != "" else ""


def load_values(files: list[Path], sets: list[str] = ()) -> dict:
    values = yaml.safe_load((CHART / "values.yaml").read_text()) or {}
    for f in files:
        values = merge(values, yaml.safe_load(Path(f).read_text()) or {})
    for s in sets:
        set_value(values, s)
    return _floats(values)


def chart_meta() -> dict:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta.get("appVersion", "")}


def render(values: dict, release: str = RELEASE, namespace: str = NAMESPACE) -> str:
    """The chart's manifests as one multi-document YAML text."""
    engine = gotemplate.Engine()
    tdir = CHART / "templates"
    files = sorted(p for p in tdir.iterdir() if p.suffix in (".yaml", ".tpl", ".yml"))
    for p in files:
        engine.add(p.name, p.read_text())
    ctx = {
        "Values": values,
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
        "Chart": chart_meta(),
    }
    docs: list[tuple[int, str, int, str, str]] = []
    for p in files:
        if p.name.startswith("_"):
            continue
        text = engine.render(p.name, ctx)
        for part in _documents(text):
            try:
                obj = yaml.safe_load(part)
            except yaml.YAMLError as e:
                raise gotemplate.TemplateError(f"{p.name} renders invalid YAML: {e}\n{part}") from None
            if not obj:
                continue
            if not isinstance(obj, dict) or "kind" not in obj:
                raise gotemplate.TemplateError(f"{p.name} renders a document without a kind:\n{part}")
            kind = obj["kind"]
            # Helm's order: known kinds by install order, then the others
            # (here cert-manager's) by kind; within a kind, by name.
            order = (KIND_ORDER.index(kind), "") if kind in KIND_ORDER else (len(KIND_ORDER), kind)
            name = str((obj.get("metadata") or {}).get("name", ""))
            docs.append((order, name, len(docs), p.name, part.strip("\n")))
    docs.sort(key=lambda d: (d[0], d[1], d[2]))
    return "".join(f"---\n# Source: meridian/templates/{src}\n{body}\n" for _, _, _, src, body in docs)


def _documents(text: str) -> list[str]:
    parts, cur = [], []
    for line in text.split("\n"):
        if line.rstrip() == "---":
            parts.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    parts.append("\n".join(cur))
    return parts


def manifest(name: str) -> str:
    """A deploy/k8s/ file as it must read."""
    presets = MANIFESTS[name]
    cmd = " ".join(f"--preset {k}" for k, v in PRESETS.items() if v in presets)
    header = (
        f"# Generated from deploy/helm/meridian with {', '.join(presets)} by\n"
        f"#   deploy/tools/render.py --write   (or: render.py {cmd})\n"
        f"# Do not edit: change the chart or the preset and regenerate; CI checks\n"
        f"# that this file equals a fresh render. Release {RELEASE!r}, namespace {NAMESPACE!r}.\n"
    )
    return header + render(load_values([CHART / p for p in presets]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", action="append", default=[], choices=sorted(PRESETS))
    ap.add_argument("-f", "--values", action="append", default=[], type=Path)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--release-name", default=RELEASE)
    ap.add_argument("--namespace", default=NAMESPACE)
    ap.add_argument("--write", action="store_true", help="regenerate deploy/k8s/")
    ap.add_argument("--check", action="store_true", help="fail when deploy/k8s/ is stale")
    a = ap.parse_args(argv)
    try:
        if a.write or a.check:
            stale = []
            for name in MANIFESTS:
                want = manifest(name)
                path = K8S / name
                have = path.read_text() if path.exists() else ""
                if have == want:
                    continue
                if a.write:
                    path.write_text(want)
                    print(f"wrote {path.relative_to(DEPLOY.parent)}")
                else:
                    stale.append(name)
                    sys.stdout.writelines(
                        difflib.unified_diff(have.splitlines(True), want.splitlines(True), str(path), "fresh render")
                    )
            extra = sorted(p.name for p in K8S.glob("*.yaml") if p.name not in MANIFESTS)
            if extra:
                print(f"deploy/k8s/ has files no preset renders: {extra}", file=sys.stderr)
                return 1
            if stale:
                print(f"stale: {stale}; run deploy/tools/render.py --write", file=sys.stderr)
                return 1
            return 0
        files = [CHART / PRESETS[p] for p in a.preset] + a.values
        sys.stdout.write(render(load_values(files, a.sets), a.release_name, a.namespace))
        return 0
    except gotemplate.FailError as e:
        print(f"Error: execution error: {e}", file=sys.stderr)
        return 1
    except gotemplate.TemplateError as e:
        print(f"Error: template: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
