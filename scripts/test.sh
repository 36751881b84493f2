#!/usr/bin/env bash
# Run the whole suite against real PostgreSQL, Redis and Docker (set up by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .env ]; then set -a; . ./.env; set +a; fi
export DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/lambdasite}"
# tests use their own Redis database and flush it; never the one `make run` uses
export REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/14}"
export LAMBDASITE_TESTING=1
# pub/sub channels ignore the Redis db number: keep the suite's live events apart from `make run`'s
export CHANNELS_PREFIX="${TEST_CHANNELS_PREFIX:-lambdasite-test}"
exec .venv/bin/pytest "$@"
