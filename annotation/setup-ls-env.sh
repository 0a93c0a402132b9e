#!/usr/bin/env bash
# Create the separate virtual environment that runs Label Studio (.venv-ls).
#
# Label Studio pins openai<2 and pyarrow<25, which the workbench's own .venv cannot
# satisfy, so it lives apart and is only ever started as a subprocess.
#
# It also builds an empty, fully migrated database next to it
# (.venv-ls/vstw-db-template/label_studio.sqlite3): a new Label Studio home starts from a copy
# of it, so a first start takes seconds instead of minutes of migrations. The template holds
# no user, token or project (those are created at the first start).
#
# Idempotent: does nothing when both are there for the pinned version.
set -euo pipefail

LS_VERSION="${LS_VERSION:-1.23.2}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VSTW_LS_VENV:-$ROOT/.venv-ls}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
TEMPLATE="$VENV/vstw-db-template"
CONSTRAINTS="$ROOT/annotation/ls-constraints.txt"

installed() {
  [ -x "$VENV/bin/label-studio" ] && \
    "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('label-studio') != '$LS_VERSION')" 2>/dev/null
}

if installed; then
  echo "label-studio $LS_VERSION already in $VENV"
  # A no-op when the pins hold; brings an older .venv-ls back to them (e.g. sentry-sdk 3).
  "$VENV/bin/python" -m pip install --quiet -c "$CONSTRAINTS" "label-studio==$LS_VERSION" $(grep -i '^sentry-sdk==' "$CONSTRAINTS")
else
  echo "creating $VENV with label-studio==$LS_VERSION (takes a few minutes)"
  rm -rf "$TEMPLATE"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -c "$CONSTRAINTS" "label-studio==$LS_VERSION"
  # Only import it: `label-studio --version` would create a database in the user's home.
  "$VENV/bin/python" -c "import label_studio"
fi

if [ ! -f "$TEMPLATE/label_studio.sqlite3" ]; then
  echo "migrating an empty Label Studio database template (a few minutes, once)"
  work="$(mktemp -d "$VENV/.db-template-XXXXXX")"
  app="$("$VENV/bin/python" -c "import label_studio, os; print(os.path.dirname(label_studio.__file__))")"
  # A throw-away secret: Django wants one to start, nothing of it lands in the database.
  (cd "$app" && env -u VIRTUAL_ENV -u PYTHONPATH \
      LABEL_STUDIO_BASE_DATA_DIR="$work" LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false \
      SECRET_KEY="template-$RANDOM$RANDOM" \
      "$VENV/bin/python" manage.py migrate --no-color -v 0 >"$work/migrate.log" 2>&1) || {
    tail -20 "$work/migrate.log"; rm -rf "$work"; exit 1; }
  mkdir -p "$TEMPLATE"
  mv "$work/label_studio.sqlite3" "$TEMPLATE/label_studio.sqlite3.tmp"
  mv "$TEMPLATE/label_studio.sqlite3.tmp" "$TEMPLATE/label_studio.sqlite3"
  rm -rf "$work"
  echo "database template ready in $TEMPLATE"
fi
