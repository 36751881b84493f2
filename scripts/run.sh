#!/usr/bin/env bash
# Run web + workers + scheduler in the foreground; Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .env ]; then set -a; . ./.env; set +a; fi
export DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/lambdasite}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
PORT="${PORT:-8000}"
WORKERS="${WORKERS:-2}"
PY=.venv/bin/python

KEY=$($PY manage.py demo_setup | tail -n 1)

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "[run] stopping ${#pids[@]} processes"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  # workers finish their running job first; after the grace period nothing may linger
  for _ in $(seq 1 "${STOP_GRACE_S:-20}"); do
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

.venv/bin/uvicorn lambdasite.asgi:application --host "${HOST:-127.0.0.1}" --port "$PORT" \
  --workers "${WEB_CONCURRENCY:-1}" --no-access-log --log-config deploy/uvicorn-logging.json &
pids+=($!)
for _ in $(seq 1 "$WORKERS"); do
  $PY manage.py worker &
  pids+=($!)
done
$PY manage.py scheduler &
pids+=($!)
$PY manage.py webhooks &
pids+=($!)

cat <<MSG

  Lambdasite is running on http://127.0.0.1:$PORT  (web + $WORKERS workers + scheduler + webhook deliveries)
  dashboard: http://127.0.0.1:$PORT/login/  (admin@example.com / admin unless DEMO_ADMIN_* say otherwise)
  admin:    http://127.0.0.1:$PORT/admin/
  API docs: http://127.0.0.1:$PORT/api/docs/
  demo API key (new on every start, shown once):

      export LAMBDASITE_KEY=$KEY

  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}" || true
echo "[run] a process exited"
