"""Shared helpers of the deploy tests: the chart's renders (by Helm's engine,
through deploy/tools/render.py), the committed plain manifests, and the
containers in them."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
ROOT = DEPLOY.parent
sys.path.insert(0, str(DEPLOY / "tools"))

import render  # noqa: E402


def docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def k8s_files() -> dict[str, list[dict]]:
    """deploy/k8s/*.yaml → their documents."""
    return {p.name: docs(p.read_text()) for p in sorted((DEPLOY / "k8s").glob("*.yaml"))}


def preset_docs(*presets: str, sets: tuple[str, ...] = ()) -> list[dict]:
    """`helm template meridian CHART -n meridian -f PRESET… --set SET…`."""
    files = [render.CHART / render.PRESETS[p] for p in presets]
    return docs(render.render(render.load_values(files, list(sets))))


def all_preset_renders() -> Iterator[tuple[str, list[dict]]]:
    for name in render.PRESETS:
        yield name, preset_docs(name)


def find(documents: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [
        d for d in documents if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(documents: list[dict], kind: str, name: str | None = None) -> dict:
    found = find(documents, kind, name)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def containers(documents: list[dict]) -> Iterator[tuple[dict, dict, bool]]:
    """(workload, container, is_init) for every container of every workload."""
    for d in documents:
        if d["kind"] in ("StatefulSet", "DaemonSet", "Deployment"):
            spec = d["spec"]["template"]["spec"]
            for c in spec.get("initContainers", []):
                yield d, c, True
            for c in spec["containers"]:
                yield d, c, False


def binary(env: str, name: str) -> Path:
    """The built binary the tests run (scripts/test-deploy.sh sets the env)."""
    path = os.environ.get(env)
    if not path:
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        path = str(target / "debug" / name)
    p = Path(path)
    if not p.is_file():
        raise AssertionError(f"{p} is missing: build it (cargo build -p gateway -p edge-agent --bins) or set {env}")
    return p


def gateway_bin() -> Path:
    return binary("MERIDIAN_GATEWAY_BIN", "meridian-gateway")


def agent_bin() -> Path:
    return binary("MERIDIAN_AGENT_BIN", "meridian-agent")


