#!/usr/bin/env bash
# Installs the pinned official `openai` Node SDK (tests/node/package-lock.json) into
# tests/node/node_modules for tests/api/test_node_sdk.py. `scripts/system-deps.sh test` calls it.
#
# Idempotent: skipped when node_modules was installed from the current package.json + lockfile
# (a stamp file holds their hash); otherwise `npm ci` (clean install, exactly the lockfile).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$ROOT/tests/node"
STAMP="$DIR/node_modules/.installed-from"
log() { echo "node-sdk: $*" >&2; }

want="$(cat "$DIR/package.json" "$DIR/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi
for bin in node npm; do
  command -v "$bin" >/dev/null || { log "$bin not found (scripts/system-deps.sh test installs it)"; exit 1; }
done

log "npm ci in tests/node (node $(node --version), npm $(npm --version)) ..."
start=$SECONDS
# --ignore-scripts: nothing from the registry runs at install time; the SDK has no install scripts.
(cd "$DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
echo "$want" >"$STAMP"
log "installed in $((SECONDS - start))s"
