#!/usr/bin/env python3
"""Renders the Meridian Helm chart with Helm's own engine, as `helm template`.

    deploy/tools/render.py --preset dev            # values.yaml + values-dev.yaml
    deploy/tools/render.py -f my-values.yaml --set agent.clusterName=eu-west
    deploy/tools/render.py --write                 # regenerate deploy/k8s/*.yaml
    deploy/tools/render.py --check                 # exit 1 if deploy/k8s/ is stale

There is no Go template code here. The engine is Helm v4.2.3's Go SDK,
compiled into the native library of the PyPI package `helm-python-sdk`
(pinned by hash in deploy/requirements-helm.txt; scripts/test-deploy.sh
installs it). The chart is rendered by Helm's install action in client-only
dry-run mode, the code path of `helm template`: no cluster, no network, an
in-memory release store. So `render.py --preset dev` prints what
`helm template meridian deploy/helm/meridian -n meridian -f
deploy/helm/meridian/values-dev.yaml` prints.

What this file does itself is the part of the helm CLI around the action,
kept as Helm v4.2.3 does it:
- values: each -f file is parsed by Helm's YAML reader (one document at a
  time, merged like `loader.LoadValues`), the files are merged in order and
  then each --set (parsed by Helm's strvals) with `loader.MergeMaps`; the
  chart's values.yaml is coalesced by the action, so a null deletes a
  default;
- output: the release manifest, trimmed, with a newline (`helm template`
  prints hooks after it; the chart has none, which test_render checks).

Two limits, both refused or harmless: a --set with a list index (`a[0]=x`)
is refused (Helm edits the list in place, a merge would replace it; use -f),
and numbers reach the templates as float64 (the values cross to the library
as JSON), where `helm template --set n=3` passes an int64. Values files give
float64 in Helm too, so the chart converts with int64 wherever it compares or
prints a number.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Any

DEPLOY = Path(__file__).resolve().parent.parent
CHART = DEPLOY / "helm" / "meridian"
K8S = DEPLOY / "k8s"

# The Helm release compiled into the pinned helm-python-sdk; render.py
# refuses any other, so a changed pin is a deliberate, visible change.
HELM_SDK_VERSION = "v4.2.3"

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


class RenderError(Exception):
    """Helm refused the values or the chart: a `fail` or `required` in a
    template, invalid YAML, a bad release name. The message is Helm's."""


def _helm():
    """The helm_python module, checked to carry the pinned Helm."""
    try:
        import helm_python
    except ImportError as e:
        raise SystemExit(
            f"render.py needs Helm's engine ({e}): run scripts/test-deploy.sh, or "
            "pip install --require-hashes --no-deps -r deploy/requirements-helm.txt"
        ) from None
    have = helm_python.helm_sdk_version()
    if have != HELM_SDK_VERSION:
        raise SystemExit(f"helm-python-sdk carries Helm {have}, render.py is pinned to {HELM_SDK_VERSION}")
    return helm_python


def merge_maps(a: dict, b: dict) -> dict:
    """Helm's loader.MergeMaps: maps merge key by key, anything else (null
    included) replaces."""
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_maps(out[k], v)
        else:
            out[k] = v
    return out


# apimachinery's YAMLReader: a line starting with "---" ends a document
# unless something other than a comment follows on it.
_SEPARATOR = re.compile(r"^---[ \t]*(#.*)?$")


def _yaml_documents(text: str) -> list[str]:
    docs, cur = [], []
    for line in text.splitlines(keepends=True):
        if _SEPARATOR.match(line.rstrip("\r\n")):
            docs.append("".join(cur))
            cur = []
        else:
            cur.append(line)
    docs.append("".join(cur))
    return docs


def values_file(path: Path) -> dict:
    """A -f file as Helm reads it (loader.LoadValues)."""
    helm = _helm()
    out: dict = {}
    for i, doc in enumerate(_yaml_documents(Path(path).read_text())):
        try:
            out = merge_maps(out, helm.values_from_yaml(doc) or {})
        except helm.HelmError as e:
            raise RenderError(f"failed to parse {path} (document {i + 1}): {e}") from None
    return out


def set_value(values: dict, assignment: str) -> dict:
    """`--set a.b=1,c=x` parsed by Helm's strvals, merged over values."""
    helm = _helm()
    if "[" in assignment.partition("=")[0]:
        raise RenderError(f"--set {assignment!r}: list indices are not supported here, use -f")
    try:
        return merge_maps(values, helm.parse_set_string(assignment))
    except helm.HelmError as e:
        raise RenderError(f"failed parsing --set data: {e}") from None


def load_values(files: list[Path], sets: list[str] = ()) -> dict:
    """The user-supplied values of `helm template -f … --set …` (values.yaml
    is not among them: Helm coalesces it during rendering)."""
    values: dict[str, Any] = {}
    for f in files:
        values = merge_maps(values, values_file(f))
    for s in sets:
        values = set_value(values, s)
    return values


def render(values: dict, release: str = RELEASE, namespace: str = NAMESPACE) -> str:
    """The chart's manifests as one multi-document YAML text, as
    `helm template RELEASE deploy/helm/meridian -n NAMESPACE` prints them."""
    helm = _helm()
    try:
        with helm.Config(storage_driver="memory", namespace=namespace) as cfg:
            rel = cfg.install(str(CHART), release, values, namespace=namespace, dry_run="client")
    except helm.HelmError as e:
        raise RenderError(str(e)) from None
    return rel["manifest"].strip() + "\n"


# The plain manifests carry no generated admin token: a random value would
# change on every render (and one committed here would be known to all).
# With them, create the Secret the preset names, or none (deploy/README.md).
PLAIN_SETS = ["gateway.adminToken.create=false"]


def manifest(name: str) -> str:
    """A deploy/k8s/ file as it must read."""
    presets = MANIFESTS[name]
    cmd = " ".join(f"--preset {k}" for k, v in PRESETS.items() if v in presets)
    flags = " ".join(f"-f deploy/helm/meridian/{p}" for p in presets)
    flags += "".join(f" --set {s}" for s in PLAIN_SETS)
    header = (
        f"# Generated from deploy/helm/meridian with {', '.join(presets)} by\n"
        f"#   deploy/tools/render.py --write   (or: render.py {cmd})\n"
        f"# with Helm {HELM_SDK_VERSION}'s engine; the same as\n"
        f"#   helm template {RELEASE} deploy/helm/meridian -n {NAMESPACE} {flags}\n"
        f"# Do not edit: change the chart or the preset and regenerate; CI checks\n"
        f"# that this file equals a fresh render.\n"
    )
    return header + render(load_values([CHART / p for p in presets], PLAIN_SETS))


def check_or_write(write: bool) -> int:
    stale = []
    for name in MANIFESTS:
        want = manifest(name)
        path = K8S / name
        have = path.read_text() if path.exists() else ""
        if have == want:
            continue
        if write:
            path.write_text(want)
            print(f"wrote {path.relative_to(DEPLOY.parent)}")
        else:
            stale.append(name)
            sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), want.splitlines(True), str(path), "fresh render"))
    extra = sorted(p.name for p in K8S.glob("*.yaml") if p.name not in MANIFESTS)
    if extra:
        print(f"deploy/k8s/ has files no preset renders: {extra}", file=sys.stderr)
        return 1
    if stale:
        print(f"stale: {stale}; run deploy/tools/render.py --write", file=sys.stderr)
        return 1
    return 0


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
            return check_or_write(a.write)
        files = [CHART / PRESETS[p] for p in a.preset] + a.values
        sys.stdout.write(render(load_values(files, a.sets), a.release_name, a.namespace))
        return 0
    except RenderError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
