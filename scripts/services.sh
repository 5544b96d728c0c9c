#!/usr/bin/env bash
# Throwaway PostgreSQL + Redis servers for the test suite's production path.
#
#   bash scripts/services.sh start    # initdb + start both on free loopback ports (idempotent)
#   bash scripts/services.sh env      # prints `export DATABASE_URL=...` / `export REDIS_URL=...`
#   bash scripts/services.sh status   # exit 0 if both are up
#   bash scripts/services.sh stop     # stop both and delete all their state
#
# Usage: bash scripts/services.sh start && eval "$(bash scripts/services.sh env)"
#
# Everything lives under $ASSISTANTS_SERVICES_DIR (default ${TMPDIR:-/tmp}/assistants-test-services):
# data, sockets, logs, pid files. Servers listen on 127.0.0.1 only, on ports picked free at start, and
# use their own socket directory, so a system PostgreSQL/Redis on 5432/6379 is never touched.
# PostgreSQL refuses to run as root: as root, initdb/pg_ctl run as the `postgres` user (runuser) on a
# data directory that user owns. Durability is switched off (fsync etc.): the data is disposable.
#
# Why not pytest-postgresql / pytest-redis: chatsite/settings.py reads DATABASE_URL and REDIS_URL at
# import, before any pytest fixture can start a server; the benchmarks (bench/bench_engine.py,
# bench/capacity/) need the same servers outside pytest; and pytest-postgresql runs pg_ctl as the
# current user (pg_ctl refuses root, and pytest's /tmp/pytest-of-root is 0700, out of reach of a
# `postgres` user) with no option to switch users.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${ASSISTANTS_SERVICES_DIR:-${TMPDIR:-/tmp}/assistants-test-services}"
DB_NAME="${ASSISTANTS_SERVICES_DB:-assistants}"
MARKER=".assistants-test-services"   # marks $DIR as created by this script (stop deletes it)
STATE="$DIR/state"   # shell fragment: PG_BIN= PG_OWNER= PG_USER= PG_PORT= PGDATA= REDIS_PORT=

log() { echo "services: $*" >&2; }
die() { log "$*"; exit 1; }

# --- helpers -------------------------------------------------------------------------------------

pg_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/initdb" ]] && best="$d"; done
  if [[ -z "$best" ]] && command -v pg_config >/dev/null; then best="$(pg_config --bindir)"; fi
  if [[ -z "$best" ]] && command -v initdb >/dev/null; then best="$(dirname "$(command -v initdb)")"; fi
  [[ -n "$best" && -x "$best/initdb" ]] || die "PostgreSQL server binaries not found (apt-get install postgresql, or bash scripts/system-deps.sh test)"
  echo "$best"
}

# N distinct free TCP ports on 127.0.0.1 (held open together so they differ; tiny race after close).
free_ports() {
  local py
  py="$(command -v python3 || true)"
  [[ -x "$ROOT/.venv/bin/python" ]] && py="$ROOT/.venv/bin/python"
  [[ -n "$py" ]] || die "python3 is needed to pick free ports"
  "$py" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Run a PostgreSQL command as the data directory's owner.
as_pg() {
  if [[ "$PG_OWNER" == "$(id -un)" ]]; then "$@"; else runuser -u "$PG_OWNER" -- "$@"; fi
}

load_state() {
  [[ -f "$STATE" ]] || return 1
  # shellcheck disable=SC1090
  source "$STATE"
}

redis_cli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# Probe the servers over TCP: a pid check can be fooled by a dead, not yet reaped (zombie) server.
pg_running() { [[ -n "${PG_PORT:-}" ]] && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 5; }
redis_running() { [[ -n "${REDIS_PORT:-}" ]] && [[ "$(redis_cli ping 2>/dev/null)" == PONG ]]; }

database_url() { echo "postgres://$PG_USER@127.0.0.1:$PG_PORT/$DB_NAME"; }
redis_url() { echo "redis://127.0.0.1:$REDIS_PORT/0"; }

print_env() {
  echo "export DATABASE_URL=$(database_url)"
  echo "export REDIS_URL=$(redis_url)"
}

# --- start ---------------------------------------------------------------------------------------

start_postgres() {
  PG_BIN="$(pg_bin)"
  if [[ $EUID -eq 0 ]]; then
    PG_OWNER="${ASSISTANTS_SERVICES_PG_USER:-postgres}"
    id "$PG_OWNER" >/dev/null 2>&1 || die "running as root but there is no '$PG_OWNER' user to run PostgreSQL as"
  else
    PG_OWNER="$(id -un)"
  fi
  PG_USER=postgres   # database superuser name, independent of the OS user

  # The data directory must be owned by PG_OWNER and reachable by it: as root under a TMPDIR such as
  # /root/tmp the postgres user cannot traverse the path, so fall back to a private dir in /tmp.
  PGDATA="$DIR/pg"
  mkdir -p "$PGDATA"
  if [[ $EUID -eq 0 ]]; then
    chown "$PG_OWNER:" "$PGDATA"
    if ! runuser -u "$PG_OWNER" -- test -w "$PGDATA"; then
      rmdir "$PGDATA"
      PGDATA="$(mktemp -d /tmp/assistants-test-pg.XXXXXX)"
      chown "$PG_OWNER:" "$PGDATA"
      log "note: $DIR is not accessible to '$PG_OWNER'; PostgreSQL data is in $PGDATA"
    fi
  fi
  chmod 700 "$PGDATA"

  as_pg "$PG_BIN/initdb" -D "$PGDATA/data" -U "$PG_USER" --auth=trust -E UTF8 --locale=C \
    --no-sync >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
  as_pg mkdir -p "$PGDATA/sock"

  local attempt
  for attempt in 1 2 3; do
    PG_PORT="$(free_ports 1)"
    if as_pg "$PG_BIN/pg_ctl" -D "$PGDATA/data" -l "$PGDATA/postgres.log" -w -t 60 start -o \
      "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PGDATA/sock \
       -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
       -c shared_buffers=64MB -c log_min_messages=warning" >/dev/null 2>&1; then
      break
    fi
    [[ $attempt -eq 3 ]] && { tail -n 30 "$PGDATA/postgres.log" >&2 2>/dev/null; die "PostgreSQL did not start"; }
    log "PostgreSQL failed to start on port $PG_PORT (attempt $attempt); retrying on another port"
  done
  PGDATA="$PGDATA/data"
  write_state
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$DB_NAME" \
    || die "createdb $DB_NAME failed"
}

start_redis() {
  command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server, or bash scripts/system-deps.sh test)"
  local attempt
  for attempt in 1 2 3; do
    REDIS_PORT="$(free_ports 1)"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
      --dir "$DIR" --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" \
      >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do
      redis_running && { write_state; return 0; }
      sleep 0.05
    done
    log "Redis failed to start on port $REDIS_PORT (attempt $attempt); retrying on another port"
  done
  tail -n 20 "$DIR/redis.log" >&2 2>/dev/null || true
  die "Redis did not start"
}

write_state() {
  cat >"$STATE" <<EOF
PG_BIN=${PG_BIN:-}
PG_OWNER=${PG_OWNER:-}
PG_USER=${PG_USER:-}
PG_PORT=${PG_PORT:-}
PGDATA=${PGDATA:-}
REDIS_PORT=${REDIS_PORT:-}
EOF
}

# Connect the way the tests will: psycopg (from the project venv) and redis-py.
check_clients() {
  local py="$ROOT/.venv/bin/python"
  if ! "$py" -c "" 2>/dev/null; then
    log "note: $py not usable by $(id -un); skipped the psycopg connection check"
    return 0
  fi
  "$py" - "$(database_url)" "$(redis_url)" <<'EOF' || die "client connection check failed"
import sys
import psycopg
with psycopg.connect(sys.argv[1], connect_timeout=10) as conn:
    version = conn.execute("select current_setting('server_version')").fetchone()[0]
try:
    import redis
except ImportError:
    redis = None
if redis is not None:
    r = redis.Redis.from_url(sys.argv[2], socket_timeout=10)
    assert r.ping()
    r.close()
print(f"services: psycopg connected (PostgreSQL {version}); redis-py PING ok", file=sys.stderr)
EOF
}

cmd_start() {
  if load_state && pg_running && redis_running; then
    log "already running under $DIR"
    return 0
  fi
  if [[ -f "$DIR/$MARKER" ]]; then
    log "removing stale state in $DIR"
    cmd_stop >/dev/null 2>&1 || true
  elif [[ -e "$DIR" && -n "$(ls -A "$DIR" 2>/dev/null)" ]]; then
    die "$DIR exists and is not ours (no $MARKER); set ASSISTANTS_SERVICES_DIR elsewhere"
  fi
  mkdir -p "$DIR"
  chmod 755 "$DIR"   # the postgres user must be able to traverse it when we are root
  touch "$DIR/$MARKER"
  local t0=$SECONDS
  PG_BIN="" PG_OWNER="" PG_USER="" PG_PORT="" PGDATA="" REDIS_PORT=""
  # If starting fails half way, take down whatever did start.
  trap 'if [[ $? -ne 0 ]]; then log "start failed; cleaning up"; cmd_stop >/dev/null 2>&1 || true; fi' EXIT
  start_postgres
  start_redis
  check_clients
  trap - EXIT
  log "PostgreSQL on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT (state in $DIR, $((SECONDS - t0))s)"
}

# --- stop / env / status -------------------------------------------------------------------------

cmd_stop() {
  if load_state; then
    if [[ -n "${PGDATA:-}" && -d "$PGDATA" ]] && pg_running; then
      as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    if [[ -n "${REDIS_PORT:-}" ]]; then
      redis_cli shutdown nosave >/dev/null 2>&1 || true
    fi
  fi
  # Belt and braces: if a server outlived the polite stop, kill it by its recorded pid (checking
  # that the pid still belongs to a postgres/redis-server process, in case it was reused).
  local pidfile pid
  for pidfile in "$DIR/redis.pid" "${PGDATA:-/nonexistent}/postmaster.pid"; do
    [[ -f "$pidfile" ]] || continue
    pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(ps -o comm= -p "$pid" 2>/dev/null)" =~ ^(postgres|redis-server) ]]; then
      kill "$pid" 2>/dev/null || true
    fi
  done
  # The PostgreSQL dir may be outside $DIR (root + inaccessible TMPDIR fallback).
  if [[ -n "${PGDATA:-}" && "$PGDATA" == /tmp/assistants-test-pg.*/data ]]; then
    rm -rf "$(dirname "$PGDATA")"
  fi
  # Only ever delete a directory this script created.
  if [[ -f "$DIR/$MARKER" ]]; then
    rm -rf "$DIR"
    log "stopped; removed $DIR"
  elif rmdir "$DIR" 2>/dev/null; then
    log "stopped; removed empty $DIR"
  elif [[ -e "$DIR" ]]; then
    log "left $DIR alone: not created by this script (no $MARKER)"
  else
    log "nothing to stop in $DIR"
  fi
}

cmd_env() {
  if ! load_state || [[ -z "${PG_PORT:-}" || -z "${REDIS_PORT:-}" ]]; then
    die "not running (no state in $DIR); run: bash scripts/services.sh start"
  fi
  print_env
}

cmd_status() {
  load_state || die "not running (no state in $DIR)"
  local ok=0
  if pg_running; then log "PostgreSQL up: $(database_url)"; else log "PostgreSQL down"; ok=1; fi
  if redis_running; then log "Redis up: $(redis_url)"; else log "Redis down"; ok=1; fi
  return $ok
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|env|status   (state dir: $DIR)" >&2; exit 2 ;;
esac
