#!/usr/bin/env bash
# The whole test suite (what `make test` runs after scripts/system-deps.sh test).
#
#   phase 1: every test on the embedded defaults: SQLite, no Redis (DATABASE_URL/REDIS_URL unset).
#            Tests that need Redis/PostgreSQL skip themselves (the redis_url / postgres fixtures).
#   phase 2: the production path: throwaway PostgreSQL + Redis from scripts/services.sh, then every
#            test that uses the database, Redis or the live server runs against them
#            (pytest --only-stack-tests; the selection is in tests/support/stack.py).
#
# Environment:
#   TEST_PHASES=1 | 2 | 1,2 (default)   which phases to run
# Extra arguments go to pytest in both phases, e.g. bash scripts/test.sh -x -k events
#   or bash scripts/test.sh tests/tools/file_search
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 2
PYTEST="$ROOT/.venv/bin/pytest"
[[ -x "$PYTEST" ]] || { echo "test.sh: $PYTEST not found; run 'make venv' first" >&2; exit 2; }

PHASES="${TEST_PHASES:-1,2}"
want() { [[ "$PHASES" == *"$1"* ]]; }
want 1 || want 2 || { echo "test.sh: TEST_PHASES='$PHASES' selects no phase (use 1, 2 or 1,2)" >&2; exit 2; }

header() {
  echo
  echo "================================================================================"
  echo "== $*"
  echo "================================================================================"
}

# Results: "not run" | "passed" | "FAILED (...)".
P1_RC=""; P2_RC=""
P1_RESULT="not run"; P2_RESULT="not run"

# --- phase 1: embedded defaults -------------------------------------------------------------------
if want 1; then
  header "Phase 1/2: all tests on the embedded defaults (SQLite, in-process events, no Redis)"
  t0=$SECONDS
  env -u DATABASE_URL -u REDIS_URL -u TEST_DATABASE_URL "$PYTEST" "$@"
  P1_RC=$?
  case $P1_RC in
    0) P1_RESULT="passed" ;;
    5) P1_RESULT="FAILED (no tests collected)" ;;
    *) P1_RESULT="FAILED (pytest exit $P1_RC)" ;;
  esac
  echo "-- phase 1: $P1_RESULT in $((SECONDS - t0))s"
fi

# --- phase 2: production path ---------------------------------------------------------------------
if want 2; then
  header "Phase 2/2: production path (PostgreSQL + Redis): the tests that use the database, Redis or the live server"
  t0=$SECONDS
  # A private state dir per run, so two runs on one machine (or a developer's own
  # `services.sh start`) never share or stop each other's servers.
  ASSISTANTS_SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/assistants-test-services.XXXXXX")"
  export ASSISTANTS_SERVICES_DIR
  cleanup() { bash "$ROOT/scripts/services.sh" stop >/dev/null 2>&1 || true; }
  trap cleanup EXIT
  trap 'cleanup; exit 130' INT
  trap 'cleanup; exit 143' TERM

  if bash "$ROOT/scripts/services.sh" start && SERVICES_ENV="$(bash "$ROOT/scripts/services.sh" env)"; then
    eval "$SERVICES_ENV"
    echo "DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL"
    # DB_POOL_SIZE=0 for the test process only: its threads (executor fixtures, consumers under
    # WebsocketCommunicator, ORM calls from test code) never end a request, so a pool's connections
    # are never handed back and 20 run out. The live servers, the production path, keep the pool
    # (tests/support/live_server.py drops DB_POOL_SIZE from their environment).
    DB_POOL_SIZE=0 TEST_DATABASE_URL="$DATABASE_URL" "$PYTEST" --only-stack-tests "$@"
    P2_RC=$?
    case $P2_RC in
      0) P2_RESULT="passed" ;;
      5)
        # The selected tests (e.g. bash scripts/test.sh tests/web/test_rendering.py) use no service:
        # fine only if phase 1 did run tests.
        if [[ "$P1_RC" == 0 || "$P1_RC" == 1 ]]; then
          P2_RESULT="passed (none of the selected tests uses the database, Redis or the live server)"; P2_RC=0
        else
          P2_RESULT="FAILED (no tests collected, and phase 1 ran none)"
        fi ;;
      *) P2_RESULT="FAILED (pytest exit $P2_RC)" ;;
    esac
  else
    P2_RC=3
    P2_RESULT="FAILED (could not start PostgreSQL/Redis; see above)"
  fi
  cleanup
  trap - EXIT INT TERM
  echo "-- phase 2: $P2_RESULT in $((SECONDS - t0))s"
fi

header "Summary"
echo "phase 1 (embedded defaults): $P1_RESULT"
echo "phase 2 (production path):   $P2_RESULT"
[[ -z "$P1_RC" || "$P1_RC" == 0 ]] && [[ -z "$P2_RC" || "$P2_RC" == 0 ]]
