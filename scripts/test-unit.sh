#!/usr/bin/env bash
# The unit tier: every test not marked `system` (no Docker engine, images or browser; PostgreSQL and
# Redis are real), on its own test database, Redis database and channel prefix, so that it can run
# while `make test` does.
set -euo pipefail
cd "$(dirname "$0")/.."
export TEST_DB_SUFFIX="${TEST_DB_SUFFIX:-unit}"
export TEST_REDIS_URL="${TEST_UNIT_REDIS_URL:-redis://127.0.0.1:6379/15}"
export TEST_CHANNELS_PREFIX="${TEST_UNIT_CHANNELS_PREFIX:-lambdasite-test-unit}"
exec scripts/test.sh -m "not system" "$@"
