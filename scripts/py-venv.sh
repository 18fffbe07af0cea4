#!/usr/bin/env bash
# Creates (once) a Python venv with pinned packages: the OpenTelemetry SDK
# of tests/python/requirements.txt, or the given requirements file.
# Usage: scripts/py-venv.sh DIR [REQUIREMENTS]
set -euo pipefail
dir=${1:?usage: scripts/py-venv.sh DIR [REQUIREMENTS]}
root=$(cd "$(dirname "$0")/.." && pwd)
req=${2:-"$root/tests/python/requirements.txt"}
stamp="$dir/.requirements"
if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  exit 0
fi
python3 -m venv "$dir"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
cp "$req" "$stamp"
