#!/usr/bin/env bash
# Builds the code interpreter's sandbox venv: numpy, pandas, matplotlib on the same Python as .venv.
#
#   bash scripts/sandbox-venv.sh            # at $CODE_INTERPRETER_VENV, else ${DATA_DIR:-var}/sandbox-venv
#   bash scripts/sandbox-venv.sh PATH       # somewhere else
#
# Idempotent and quiet: when the stamp of a finished build matches, it exits at once. The venv is
# separate from .venv (the server's packages never enter the sandbox). It also holds, in base-python/,
# a hard-linked (or copied) snapshot of the base interpreter's prefix that the sandbox mounts at the
# base prefix's real path: that path may be unreachable for the sandbox uid (pyenv under /root, 0700).
# The default location must match venv_path() in assistants_app/tools/code_interpreter/sandbox.py.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
PACKAGES=("numpy>=2,<3" "pandas>=2.2,<4" "matplotlib>=3.9,<4")
STAMP_VERSION=2
log() { echo "sandbox-venv: $*" >&2; }

VENV="${1:-${CODE_INTERPRETER_VENV:-${DATA_DIR:-$ROOT/var}/sandbox-venv}}"
[[ -x "$PY" ]] || { log "$PY not found: create .venv first (make venv)"; exit 1; }
BASE="$("$PY" -c 'import sys; print(sys.base_prefix)')"
BASE_PY="$BASE/bin/python3"
"$BASE_PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' \
  || { log "$BASE_PY is older than 3.12"; exit 1; }
STAMP="$STAMP_VERSION $BASE $("$BASE_PY" -c 'import sys; print(sys.version.split()[0])') ${PACKAGES[*]}"

# The stamp is written last, after an import check, so stamp + interpreter means a finished build.
up_to_date() {
  [[ -f "$VENV/.sandbox-stamp" && "$(cat "$VENV/.sandbox-stamp")" == "$STAMP" && -x "$VENV/bin/python3" ]]
}
up_to_date && exit 0

mkdir -p "$(dirname "$VENV")"
# Two `make` targets may build at once: one builds, the other waits and then finds it done.
exec 9>"$VENV.lock"
flock 9
up_to_date && exit 0

if [[ -e "$VENV" ]]; then
  # Only ever delete something this script made.
  if [[ -f "$VENV/pyvenv.cfg" ]]; then rm -rf "$VENV"
  else log "$VENV exists and is not a venv; refusing to replace it"; exit 1; fi
fi

log "building $VENV (Python $BASE; ${PACKAGES[*]})"
LOGFILE="$(mktemp)"
trap 'rm -f "$LOGFILE"' EXIT
if ! {
  "$BASE_PY" -m venv "$VENV" \
  && "$VENV/bin/python3" -m pip install -q --disable-pip-version-check --no-input "${PACKAGES[@]}"
} >"$LOGFILE" 2>&1; then
  grep -v "WARNING: Location" "$LOGFILE" >&2 || true
  log "failed"
  exit 1
fi

# The base prefix, minus its test suite and its own site-packages (the venv does not use them).
# Hard links cost no space; across filesystems, start again with a plain copy (never cp onto links).
mkdir -p "$VENV/base-python"
if ! cp -al "$BASE/." "$VENV/base-python/" 2>/dev/null; then
  rm -rf "$VENV/base-python" && mkdir "$VENV/base-python" && cp -a "$BASE/." "$VENV/base-python/"
fi
rm -rf "$VENV/base-python/lib/python3."*/test "$VENV/base-python/lib/python3."*/site-packages/*
# Check everything imports. Matplotlib scans the fonts on its first import (2-3 s): keep the font
# list it writes in mplconfig/, which the sandbox copies into its fresh MPLCONFIGDIR on every run.
MPLCONFIGDIR="$VENV/mplconfig" MPLBACKEND=Agg "$VENV/bin/python3" -c \
  'import numpy, pandas, matplotlib.pyplot' >/dev/null 2>&1 || { log "import check failed"; exit 1; }
echo "$STAMP" >"$VENV/.sandbox-stamp"
log "done"
