#!/usr/bin/env bash
# Idempotent set-up for `make run` and `make test`: Python venv with pinned
# requirements, PostgreSQL, Redis and a Docker engine answering, the database,
# the runtime images, migrations. On a Debian host as root, whatever is missing
# is installed and started; elsewhere it says what to install. WITHOUT_DOCKER=1 (make test-unit)
# stops after PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
mkdir -p var
# SECRET_KEY keys sessions and every API key's HMAC: one random key per installation, kept
# in var/secret_key (mode 600) unless the environment or .env sets one
if [ -z "${SECRET_KEY:-}" ] && [ ! -s var/secret_key ]; then
  (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n/+=' > var/secret_key)
  echo >> var/secret_key
fi
# SECRETS_KEY (the master key of tenants' secrets, base64 of 32 bytes) likewise in var/secrets_key;
# losing it loses every stored secret, so it is written once and never replaced
if [ -z "${SECRETS_KEY:-}" ] && [ -z "${SECRETS_KEY_FILE:-}" ] && [ ! -s var/secrets_key ]; then
  (umask 077; head -c 32 /dev/urandom | base64 > var/secrets_key)
fi

if [ -f .env ]; then set -a; . ./.env; set +a; fi
export DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/lambdasite}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
WITH_BROWSER="${WITH_BROWSER:-0}"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] %s\033[0m\n' "$*" >&2; exit 1; }
is_root_debian() { [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null; }
APT_UPDATED=0
apt_install() {
  is_root_debian || die "missing: $* — install it (Debian: apt-get install $*) and run again"
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---------------------------------------------------------------- python
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || apt_install python3
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv 2>/dev/null || { apt_install python3-venv; rm -rf .venv; "$PY" -m venv .venv; }
fi
REQ_STAMP=.venv/.requirements.sha  # in the venv itself: a new venv always installs
req_sha=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$REQ_STAMP" 2>/dev/null)" != "$req_sha" ]; then
  say "installing pinned requirements"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -r requirements-dev.txt
  echo "$req_sha" > "$REQ_STAMP"
fi
VPY="$ROOT/.venv/bin/python"
if [ "${ONLY_PYTHON:-0}" = 1 ]; then exit 0; fi  # make lint needs the tools, not the services

# probe SERVICE -> exit 0 if it answers
probe() {
  "$VPY" - "$1" <<'EOF'
import os, sys
what = sys.argv[1]
try:
    if what == "postgres":
        import dj_database_url, psycopg
        cfg = dj_database_url.parse(os.environ["DATABASE_URL"])
        psycopg.connect(dbname="postgres", user=cfg["USER"], password=cfg["PASSWORD"] or None,
                        host=cfg["HOST"] or None, port=cfg["PORT"] or None, connect_timeout=3).close()
    elif what == "redis":
        import redis
        redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=3).ping()
    elif what == "docker":
        import docker
        docker.from_env(timeout=5).ping()
except Exception as exc:
    print(f"  ({what}: {str(exc).splitlines()[0][:160]})", file=sys.stderr)
    sys.exit(1)
EOF
}

wait_for() {  # wait_for SERVICE SECONDS
  for _ in $(seq 1 "$2"); do probe "$1" 2>/dev/null && return 0; sleep 1; done
  probe "$1"
}

# ---------------------------------------------------------------- postgres
if ! probe postgres 2>/dev/null; then
  is_root_debian || die "PostgreSQL does not answer at DATABASE_URL=$DATABASE_URL; install and start it (or set DATABASE_URL)"
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
    NEW_PG=1
  fi
  say "starting PostgreSQL"
  for v in /etc/postgresql/*; do
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$v")" main start 2>/dev/null || true
  done
  if [ "${NEW_PG:-0}" = 1 ]; then
    # a fresh cluster authenticates TCP clients by password: give the role the one in DATABASE_URL
    pw=$("$VPY" -c 'import dj_database_url,os; print(dj_database_url.parse(os.environ["DATABASE_URL"])["PASSWORD"] or "postgres")')
    runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD '$pw'" >/dev/null
  fi
  wait_for postgres 20 || die "PostgreSQL still does not answer"
fi
"$VPY" - <<'EOF'
import os, dj_database_url, psycopg
cfg = dj_database_url.parse(os.environ["DATABASE_URL"])
with psycopg.connect(dbname="postgres", user=cfg["USER"], password=cfg["PASSWORD"] or None,
                     host=cfg["HOST"] or None, port=cfg["PORT"] or None, autocommit=True) as conn:
    if not conn.execute("select 1 from pg_database where datname = %s", [cfg["NAME"]]).fetchone():
        conn.execute(f'create database "{cfg["NAME"]}"')
        print(f"[setup] created database {cfg['NAME']}")
EOF

# ---------------------------------------------------------------- redis
if ! probe redis 2>/dev/null; then
  is_root_debian || die "Redis does not answer at REDIS_URL=$REDIS_URL; install and start it (or set REDIS_URL)"
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/lambdasite.log
  wait_for redis 10 || die "Redis still does not answer"
fi

# ---------------------------------------------------------------- without docker (make test-unit)
# the unit tier needs PostgreSQL and Redis, and makes its own test database
if [ "${WITHOUT_DOCKER:-0}" = 1 ]; then say "ready (PostgreSQL and Redis)"; exit 0; fi

# ---------------------------------------------------------------- docker
if ! probe docker 2>/dev/null; then
  is_root_debian || die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-default socket}); install and start Docker"
  command -v dockerd >/dev/null || apt_install docker.io
  if [ -z "${DOCKER_HOST:-}" ]; then
    say "starting dockerd (log: var/dockerd.log)"
    # sandboxes use network "none"; no bridge or iptables rules are needed
    nohup dockerd --bridge=none --iptables=false >"$ROOT/var/dockerd.log" 2>&1 &
    wait_for docker 40 || die "dockerd did not come up; see var/dockerd.log"
  else
    die "the Docker engine at DOCKER_HOST=$DOCKER_HOST does not answer"
  fi
fi

# ---------------------------------------------------------------- images
if ! "$VPY" -c 'import sys, docker; from sandbox.images import IMAGES, image_tag, image_exists; c = docker.from_env(); sys.exit(0 if all(image_exists(c, image_tag(r)) for r in IMAGES) else 1)' 2>/dev/null; then
  command -v debootstrap >/dev/null || { is_root_debian && apt_install debootstrap; } || true
fi
"$VPY" manage.py sandbox_build | tee var/images.txt
# start each runtime's interpreter once, so the first job after a boot does not read it from disk
# (a cold Node start on a loaded machine can take most of a job's time limit)
grep -E '^(python|node)'$'\t' var/images.txt | while IFS=$'\t' read -r _ tag; do
  docker run --rm --network none --entrypoint /bin/sh "$tag" \
    -c 'if command -v node >/dev/null; then node -e 0; fi; python3 -c 0' >/dev/null 2>&1 || true
done || true

# ---------------------------------------------------------------- test tools (make test only)
if [ "$WITH_BROWSER" = 1 ]; then
  [ -x "${CHROMIUM:-/usr/bin/chromium}" ] || apt_install chromium
  # compose.yaml is validated and its stack run in the tests (the compose plugin may be absent)
  command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || apt_install docker-compose
  # the partition test makes network namespaces and veth pairs
  command -v ip >/dev/null || apt_install iproute2
fi

# ---------------------------------------------------------------- database schema
"$VPY" manage.py migrate --noinput >/dev/null
say "ready"
