#!/usr/bin/env bash
# The deploy tests (deploy/tests, deploy/README.md "Tests"): the chart's
# renders against deploy/k8s/, Kubernetes schemas, flags against the
# binaries' --help, the binaries run as in the manifests. Installs its pinned
# Python packages in a venv, Helm's engine among them (helm-python-sdk, pinned
# by hash in deploy/requirements-helm.txt): render.py --check renders every
# preset as `helm template` does and compares it with deploy/k8s/. Uses the
# debug binaries from the target directory (scripts/test.sh's cargo test has
# built them; built here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}

venv="$target/deploy-venv"
scripts/py-venv.sh "$venv" deploy/requirements.txt
if ! cmp -s deploy/requirements-helm.txt "$venv/.requirements-helm"; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --require-hashes --no-deps -r deploy/requirements-helm.txt
  cp deploy/requirements-helm.txt "$venv/.requirements-helm"
fi

export MERIDIAN_GATEWAY_BIN="$target/debug/meridian-gateway"
export MERIDIAN_AGENT_BIN="$target/debug/meridian-agent"
if [ ! -x "$MERIDIAN_GATEWAY_BIN" ] || [ ! -x "$MERIDIAN_AGENT_BIN" ]; then
  cargo build --locked -p gateway -p edge-agent --bins
fi

"$venv/bin/python" deploy/tools/render.py --check
"$venv/bin/python" deploy/tests/run.py
