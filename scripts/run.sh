#!/usr/bin/env bash
# Run web + job workers + build workers + scheduler + webhook deliveries in the foreground under supervisord:
# a process that dies (a crash, the OOM killer, a SIGKILL) is restarted, its jobs recovered by
# the lease/reconcile path; Ctrl-C stops everything gracefully (workers finish the jobs they run first).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
if [ -f .env ]; then set -a; . ./.env; set +a; fi
export DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/lambdasite}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export HOST="${HOST:-127.0.0.1}" PORT="${PORT:-8000}" WEB_CONCURRENCY="${WEB_CONCURRENCY:-1}"
# one job-worker process holds every cell of the host and runs many jobs at once, bounded by memory
# (HOST_MEMORY_BUDGET_MB, WORKER_MAX_INFLIGHT); more processes split the host's budget between them
WORKERS="${WORKERS:-1}"
export WORKERS_PER_HOST="${WORKERS_PER_HOST:-$WORKERS}"
BUILD_WORKERS="${BUILD_WORKERS:-1}"  # function builds have their own workers: a job never waits behind one
STOP_GRACE_S="${STOP_GRACE_S:-20}"
# where supervisord keeps its socket and pid file (one per running stack; tests use their own)
RUN_DIR="$(mkdir -p "${RUN_DIR:-var/run}" && cd "${RUN_DIR:-var/run}" && pwd)"
PY="$ROOT/.venv/bin/python"

KEY=$($PY manage.py demo_setup | tail -n 1)

CONF="$RUN_DIR/supervisord.conf"
# supervisord runs as whoever started it; saying so (user=) is what keeps it from logging a CRIT
# about running as root when that is root (as in a container). A uid without a name stays unset.
AS_USER="$(id -un 2>/dev/null || true)"
# the control socket asks for a password (a fresh one per start; the config is readable by this user
# only): without one supervisord logs a CRIT about an unauthenticated server at every start
CTL_PASSWORD="$($PY -c 'import secrets; print(secrets.token_hex(16))')"
install -m 600 /dev/null "$CONF"
program() {  # name, command, [extra lines]
  cat <<INI

[program:$1]
command=$2
directory=$ROOT
autostart=true
autorestart=true
; exiting within startsecs counts as a failed start: retried startretries times, each retry waiting
; one second longer, then the program is marked FATAL and supervisord says so on this console
startsecs=3
startretries=5
stopsignal=TERM
stopwaitsecs=$STOP_GRACE_S
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=/dev/stdout
stdout_logfile_maxbytes=0
${3:-}
INI
}
{
  cat <<INI
[supervisord]
nodaemon=true
; its log goes to stdout once: as the logfile, and not again through nodaemon's own echo (silent)
silent=true
logfile=/dev/stdout
logfile_maxbytes=0
${AS_USER:+user=$AS_USER}
loglevel=info
pidfile=$RUN_DIR/supervisord.pid
childlogdir=$RUN_DIR

[unix_http_server]
file=$RUN_DIR/supervisor.sock
chmod=0700
username=lambdasite
password=$CTL_PASSWORD

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$RUN_DIR/supervisor.sock
username=lambdasite
password=$CTL_PASSWORD
INI
  program web "$ROOT/.venv/bin/uvicorn lambdasite.asgi:application --host $HOST --port $PORT --workers $WEB_CONCURRENCY --no-access-log --log-config deploy/uvicorn-logging.json" "priority=10"
  program worker "$PY manage.py worker" "numprocs=$WORKERS
process_name=%(program_name)s-%(process_num)d
priority=20"
  program build-worker "$PY manage.py worker --builds" "numprocs=$BUILD_WORKERS
process_name=%(program_name)s-%(process_num)d
priority=20"
  program scheduler "$PY manage.py scheduler" "priority=30"
  program webhooks "$PY manage.py webhooks" "priority=30"
} > "$CONF"

cat <<MSG

  Lambdasite is running on http://$HOST:$PORT  (web + $WORKERS workers + $BUILD_WORKERS build worker(s) + scheduler + webhook deliveries)
  dashboard: http://$HOST:$PORT/login/  (admin@example.com / admin unless DEMO_ADMIN_* say otherwise)
  admin:    http://$HOST:$PORT/admin/
  API docs: http://$HOST:$PORT/api/docs/
  demo API key (new on every start, shown once):

      export LAMBDASITE_KEY=$KEY

  Processes are supervised: one that dies is restarted.  Fleet health: curl http://$HOST:$PORT/healthz/fleet
  Status: .venv/bin/supervisorctl -c $CONF status      Ctrl-C stops everything.

MSG
exec "$ROOT/.venv/bin/supervisord" -c "$CONF"
