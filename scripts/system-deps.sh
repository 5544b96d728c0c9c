#!/usr/bin/env bash
# Installs the Debian packages the product and its tests need, then builds the sandbox venv.
#
#   bash scripts/system-deps.sh runtime   # bubblewrap (code-interpreter sandbox)
#   bash scripts/system-deps.sh test      # runtime + postgresql, redis-server, chromium, fonts,
#                                         # node/npm if absent, then the Node SDK (scripts/node-sdk.sh)
#   bash scripts/system-deps.sh           # same as "test"
#
# Idempotent and fast when everything is present: one dpkg-query call, no apt unless a package is
# missing. As root it installs with apt-get (apt-get update only then); otherwise it uses
# passwordless sudo when available, else prints the apt-get command and carries on for "runtime"
# (so `make run` works on a dev box without sudo) or fails for "test".
set -euo pipefail

MODE="${1:-test}"
case "$MODE" in
  runtime|test) ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "usage: $0 [runtime|test]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
log() { echo "system-deps: $*" >&2; }

# libseccomp2: the sandbox's seccomp filter (pyseccomp loads libseccomp.so.2).
RUNTIME_PKGS=(bubblewrap libseccomp2)
# Debian's chromium only depends on libfontconfig1: without a font package headless pages render
# with no glyphs at all, so install metric-compatible Liberation fonts plus DejaVu. Recommends are
# skipped (they pull in printing/desktop packages); of them only Mesa's software GL is kept.
TEST_PKGS=(postgresql redis-server chromium fonts-liberation fonts-dejavu-core libgl1-mesa-dri)
# The Node SDK conformance tests (scripts/node-sdk.sh) need node + npm: Debian's only when the
# machine has none (a node from elsewhere, e.g. NodeSource's nodejs that bundles npm, is kept).
command -v node >/dev/null || TEST_PKGS+=(nodejs)
command -v npm >/dev/null || TEST_PKGS+=(npm)

PKGS=("${RUNTIME_PKGS[@]}")
[[ "$MODE" == test ]] && PKGS+=("${TEST_PKGS[@]}")

# Which of PKGS are not installed (one dpkg-query call; unknown packages count as missing).
missing_pkgs() {
  local installed
  installed="$(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" 2>/dev/null \
    | awk '$NF == "installed" && $(NF-1) == "ok" {print $1}')" || true
  local p
  for p in "${PKGS[@]}"; do
    grep -qxF "$p" <<<"$installed" || echo "$p"
  done
}

# Binaries the scripts actually call: a package can be "installed" yet the binary be absent.
missing_bins() {
  command -v bwrap >/dev/null || echo bwrap
  if [[ "$MODE" == test ]]; then
    command -v redis-server >/dev/null || echo redis-server
    [[ -x /usr/bin/chromium ]] || echo /usr/bin/chromium
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || echo initdb
    command -v node >/dev/null || echo node
    command -v npm >/dev/null || echo npm
  fi
}

mapfile -t MISSING < <(missing_pkgs)
if ((${#MISSING[@]} == 0)) && [[ -n "$(missing_bins)" ]]; then
  # Packages present but files gone (e.g. removed by hand): reinstall everything we need.
  MISSING=("${PKGS[@]}")
fi

if ((${#MISSING[@]} > 0)); then
  SUDO=()
  if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      SUDO=(sudo -n)
    else
      log "missing Debian packages: ${MISSING[*]}"
      log "install them with: sudo apt-get install -y ${MISSING[*]}"
      if [[ "$MODE" == runtime ]]; then
        log "continuing without them (the code-interpreter sandbox will be unavailable)"
      else
        log "the test suite needs them (or run only phase 1: TEST_PHASES=1 bash scripts/test.sh)"
        exit 1
      fi
      MISSING=()
    fi
  fi

  if ((${#MISSING[@]} > 0)); then
    log "installing ${MISSING[*]} ..."
    export DEBIAN_FRONTEND=noninteractive
    APT_LOG="$(mktemp "${TMPDIR:-/tmp}/system-deps-apt.XXXXXX")"
    trap 'rm -f "$APT_LOG"' EXIT
    APT_OPTS=(-q -y -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef
              -o Dpkg::Options::=--force-confold --no-install-recommends)
    apt_install() { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install "${MISSING[@]}"; }
    apt_update() { "${SUDO[@]}" apt-get -q -o DPkg::Lock::Timeout=600 update; }
    start=$SECONDS
    ok=0
    for attempt in 1 2 3; do
      if apt_update >>"$APT_LOG" 2>&1 && apt_install >>"$APT_LOG" 2>&1; then ok=1; break; fi
      log "apt-get attempt $attempt failed; retrying in $((attempt * 5))s"
      sleep $((attempt * 5))
    done
    if ((ok == 0)); then
      log "apt-get failed; last lines of its output:"
      tail -n 40 "$APT_LOG" >&2
      exit 1
    fi
    log "installed in $((SECONDS - start))s"
    if [[ -n "$(missing_bins)" ]]; then
      log "still missing after install: $(missing_bins | tr '\n' ' ')"
      exit 1
    fi
  fi
fi

# The code-interpreter sandbox's own venv (script owned by another part of the project).
if [[ -f "$ROOT/scripts/sandbox-venv.sh" ]]; then
  bash "$ROOT/scripts/sandbox-venv.sh"
fi

# The pinned openai Node SDK for tests/api/test_node_sdk.py (npm ci, skipped when up to date).
if [[ "$MODE" == test ]]; then
  bash "$ROOT/scripts/node-sdk.sh"
fi
