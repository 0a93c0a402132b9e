#!/usr/bin/env bash
# Create the separate virtual environment that runs Label Studio (.venv-ls).
#
# Label Studio pins openai<2 and pyarrow<25, which the workbench's own .venv cannot
# satisfy, so it lives apart and is only ever started as a subprocess.
# Idempotent: does nothing when .venv-ls already has the pinned version.
set -euo pipefail

LS_VERSION="${LS_VERSION:-1.23.2}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VSTW_LS_VENV:-$ROOT/.venv-ls}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ -x "$VENV/bin/label-studio" ] && \
   "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('label-studio') != '$LS_VERSION')" 2>/dev/null; then
  echo "label-studio $LS_VERSION already in $VENV"
  exit 0
fi

echo "creating $VENV with label-studio==$LS_VERSION (takes a few minutes)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "label-studio==$LS_VERSION"
# Only import it: `label-studio --version` would create a database in the user's home.
"$VENV/bin/python" -c "import label_studio"
echo "label-studio $LS_VERSION ready in $VENV"
