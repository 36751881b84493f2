"""Lambdasite settings: one module, every value from the environment (see .env.example)."""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from sandbox import capacity
from sandbox.netpolicy import parse_cidrs

from .env import (
    env_bool,
    env_choice,
    env_float,
    env_hosts,
    env_int,
    env_list,
    env_str,
    secret_key,
    secrets_keys,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
TESTING = env_bool("LAMBDASITE_TESTING", False)
SECRET_KEY = secret_key(BASE_DIR / "var" / "secret_key", debug=DEBUG or TESTING)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "django_prometheus",
    "channels",
    "accounts",
    "vault",
    "jobs",
    "functions",
    "schedules",
    "webhooks",
    "routes",
    "dashboard",
    "lambdasite",  # the wiring layer's own commands (manage.py worker, scheduler), which use several apps
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    "lambdasite.middleware.ApiBodyLimitMiddleware",  # sync-only and innermost: the chain runs in one thread
]

ROOT_URLCONF = "lambdasite.urls"
ASGI_APPLICATION = "lambdasite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context_processors.invitations",
            ],
        },
    },
]

# A psycopg connection pool per process (DB_POOL_MAX_SIZE connections at most). Under ASGI
# every request runs its sync code on a fresh thread, and Django's connections are
# per thread: without a pool each request would open a PostgreSQL connection (a
# backend fork on the server). Set DB_POOL=false to use persistent connections instead.
DB_POOL = env_bool("DB_POOL", True)
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/lambdasite"),
        conn_max_age=0 if DB_POOL else env_int("DB_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=not DB_POOL,
    )
}
# A host cut off from PostgreSQL must notice, and PostgreSQL must drop what it held: keepalives and a
# TCP user timeout end a connection whose peer stopped answering within seconds (the kernel's defaults
# take hours, or ~15 min of retransmissions), and a transaction left idle that long is rolled back by
# the server, so its row locks cannot stall the reconciler that hands the host's jobs to another.
DB_DEAD_PEER_S = env_int("DB_DEAD_PEER_S", 10, minimum=4)
DB_IDLE_IN_TRANSACTION_S = env_int("DB_IDLE_IN_TRANSACTION_S", 60, minimum=0)  # 0: no limit
# keepalive probes: the first after KEEPALIVE_IDLE_S of silence, then 3 every KEEPALIVE_INTERVAL_S; the
# TCP user timeout is their sum (never less: an idle connection whose probes are answered would be
# cut at the user timeout, the kernel counting the answered probes as outstanding)
KEEPALIVE_INTERVAL_S = max(DB_DEAD_PEER_S // 6, 1)
KEEPALIVE_IDLE_S = DB_DEAD_PEER_S - 3 * KEEPALIVE_INTERVAL_S
_probe = KEEPALIVE_INTERVAL_S
DATABASES["default"].setdefault("OPTIONS", {}).update(
    {
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE_S,
        "keepalives_interval": _probe,
        "keepalives_count": 3,
        "tcp_user_timeout": DB_DEAD_PEER_S * 1000,
        # the server side probes too: a backend whose client vanished ends and releases its locks
        "options": (
            f"-c tcp_keepalives_idle={KEEPALIVE_IDLE_S} -c tcp_keepalives_interval={_probe}"
            f" -c tcp_keepalives_count=3 -c idle_in_transaction_session_timeout={DB_IDLE_IN_TRANSACTION_S}s"
        ),
    }
)
# parameters sent apart from the statement (not quoted into its text by the client), so psycopg
# prepares a statement the fifth time it runs: PostgreSQL then skips parsing and planning it
if env_bool("DB_SERVER_SIDE_BINDING", True):
    DATABASES["default"]["OPTIONS"].update(server_side_binding=True, prepare_threshold=5)
if DB_POOL:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 1, minimum=0),
        "max_size": env_int("DB_POOL_MAX_SIZE", 20, minimum=1),
        "timeout": env_float("DB_POOL_TIMEOUT_S", 10.0),
        "max_idle": 300.0,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUE = env_str("RQ_QUEUE", "jobs")
RQ_QUEUES = {RQ_QUEUE: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600}}
# Live dashboard events ride Redis pub/sub: a publish to a group nobody watches costs
# one PUBLISH. Pub/sub channels ignore the Redis database number, so processes of
# different deployments sharing one Redis need different CHANNELS_PREFIX values.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("CHANNELS_PREFIX", "lambdasite-ch")},
    }
}
LIVE_EVENTS = env_bool("LIVE_EVENTS", True)  # workers and web publish status and log events for the dashboard
# an open websocket re-checks its user's session and membership at least this often (and at once
# on logout, password change or a membership change)
LIVE_RECHECK_S = env_float("LIVE_RECHECK_S", 10.0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/app/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True

# -- API -------------------------------------------------------------------
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
# the hot endpoints (submit, a job's detail, invoke) answered by lambdasite.fasthttp where it can
API_FAST_PATH = env_bool("API_FAST_PATH", True)
API_FAST_PATH_THREADS = env_int("API_FAST_PATH_THREADS", 8, minimum=1)  # its database threads per process
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
API_KEY_LAST_USED_RESOLUTION_S = env_int("API_KEY_LAST_USED_RESOLUTION_S", 60, minimum=0)
# an authenticated key is reused in process while nothing it depends on changed (accounts.authcache),
# for at most this long; 0 turns the cache off
API_KEY_CACHE_MAX_AGE_S = env_float("API_KEY_CACHE_MAX_AGE_S", 30.0)
LOGIN_ATTEMPTS_PER_IP_PER_MINUTE = env_int("LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", 30, minimum=1)
LOGIN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE = env_int("LOGIN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE", 10, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasTenant"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttle.TenantWriteThrottle"],  # Quota.writes_per_minute
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["lambdasite.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "lambdasite.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lambdasite API",
    "DESCRIPTION": "Run Python and JavaScript functions in hardened sandboxes, per tenant.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # the rules the server enforces beyond the declared fields (lambdasite/openapi.py)
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "lambdasite.openapi.strict_requests",
    ],
}

# -- Jobs and sandbox ---------------------------------------------------------
SANDBOX_REUSE = env_choice("SANDBOX_REUSE", "tenant", ("tenant", "never"))
SANDBOX_IDLE_TTL_S = env_float("SANDBOX_IDLE_TTL_S", 300.0)
# an idle cell whose tenant code used more CPU than this since its last job: retired, CPU billed (0: off)
SANDBOX_IDLE_CPU_MAX_MS = env_float("SANDBOX_IDLE_CPU_MAX_MS", 250.0)
SANDBOX_SPARES = env_int("SANDBOX_SPARES", 1, minimum=0)  # blank spares per runtime at least...
SANDBOX_SPARES_MAX = env_int("SANDBOX_SPARES_MAX", 16, minimum=0)  # ...and at most, as new tenants arrive
SANDBOX_SWEEP_INTERVAL_S = env_float("SANDBOX_SWEEP_INTERVAL_S", 10.0)  # orphaned containers of dead workers
SANDBOX_CPUS = env_float("SANDBOX_CPUS", 1.0)
SANDBOX_PIDS = env_int("SANDBOX_PIDS", 64, minimum=8)
SANDBOX_TMPFS_MB = env_int("SANDBOX_TMPFS_MB", 16, minimum=1)
SANDBOX_NOFILE = env_int("SANDBOX_NOFILE", 256, minimum=16)
SANDBOX_FSIZE_MB = env_int("SANDBOX_FSIZE_MB", 16, minimum=1)
# jobs of tenant t run as uid SANDBOX_UID_BASE + 2t + 1 (its cells' runners as one less): no two
# tenants share a uid, so per-uid kernel budgets (message queues, pipe buffers) are never shared.
# Keep the range clear of real users on the Docker host.
SANDBOX_UID_BASE = env_int("SANDBOX_UID_BASE", 200_000, minimum=65_536)

# -- Egress: the door out of a cell (sandbox/egress/, one proxy per worker) ------------
# extra ranges jobs may reach through their door (labs, tests: 198.18.0.0/15); never loopback, link-local
# and metadata, the forms that embed another address, the platform's own services or port 25
try:
    EGRESS_ALLOW_CIDRS = parse_cidrs(env_str("EGRESS_ALLOW_CIDRS", ""))
except ValueError as exc:
    raise ImproperlyConfigured(f"EGRESS_ALLOW_CIDRS: {exc}") from None
# each cell's door is a socket in a directory made under this one, bind-mounted into the cell: a path the
# Docker engine sees (under compose, a host directory mounted at the same path, or EGRESS_HOST_DIR)
EGRESS_DIR = env_str("EGRESS_DIR", str(BASE_DIR / "var" / "egress"))
EGRESS_HOST_DIR = env_str("EGRESS_HOST_DIR", "")
# host:port pairs jobs may never reach, beyond the database, Redis, the Docker engine and web (always)
EGRESS_DENY_ENDPOINTS = env_list("EGRESS_DENY_ENDPOINTS", [])
EGRESS_MAX_CONNECTIONS = env_int("EGRESS_MAX_CONNECTIONS", 256, minimum=1)  # per attempt
EGRESS_MAX_BYTES = env_int("EGRESS_MAX_BYTES", 256 << 20, minimum=0)  # per attempt, both ways
EGRESS_CONNECT_TIMEOUT_S = env_float("EGRESS_CONNECT_TIMEOUT_S", 10.0)
# how old a worker's reading of a tenant's monthly egress budget (Quota.max_egress_bytes_month less this
# month's attempts' egress bytes) may be when a door is bound to an attempt
EGRESS_BUDGET_CACHE_S = env_float("EGRESS_BUDGET_CACHE_S", 5.0)
# TESTS ONLY: "name=address,name=address": the workers' egress proxy resolves names from this table alone
# (the system tests' local internet at 198.18.0.0/15); every address still passes the deny table. Refused
# outside the test suite (LAMBDASITE_TESTING).
EGRESS_TEST_HOSTS = env_hosts("EGRESS_TEST_HOSTS")
if EGRESS_TEST_HOSTS and not TESTING:
    raise ImproperlyConfigured("EGRESS_TEST_HOSTS is for the test suite only (LAMBDASITE_TESTING=1)")

JOB_MIN_TIMEOUT_MS = 100  # the smallest limits a job, a version or an invocation may ask for
JOB_MIN_MEMORY_MB = 32
JOB_DEFAULT_TIMEOUT_MS = env_int("JOB_DEFAULT_TIMEOUT_MS", 5000, minimum=JOB_MIN_TIMEOUT_MS)
JOB_DEFAULT_MEMORY_MB = env_int("JOB_DEFAULT_MEMORY_MB", 128, minimum=JOB_MIN_MEMORY_MB)

# -- Capacity: how much one host runs at once (sandbox/capacity.py; README "Capacity and host sizing") --
# the memory the host gives to jobs and warm cells: by default 75% of its RAM (or of its cgroup's limit)
HOST_MEMORY_BUDGET_MB = env_int("HOST_MEMORY_BUDGET_MB", capacity.default_budget_mb(), minimum=64)
# job-worker processes sharing one host's budget (make run and compose: one, holding every cell of the host)
WORKERS_PER_HOST = env_int("WORKERS_PER_HOST", 1, minimum=1)
WORKER_MEMORY_SHARE_MB = capacity.worker_share_mb(HOST_MEMORY_BUDGET_MB, WORKERS_PER_HOST)
# jobs one worker runs at once: a job is admitted only while the running jobs' memory limits and its own
# fit in the worker's share; this caps the count as well (default: as many of the smallest jobs as fit)
WORKER_MAX_INFLIGHT = env_int(
    "WORKER_MAX_INFLIGHT",
    capacity.default_max_inflight(WORKER_MEMORY_SHARE_MB, JOB_MIN_MEMORY_MB),
    minimum=1,
)
# an idle cell's cost to the host: its cgroup (~13.5 MB: the runner and the next job's pre-started
# process) and its share of the engine's shim; measured 17.5-18.7 MB per cell (bench/tenants.py)
SANDBOX_IDLE_CELL_MB = env_int("SANDBOX_IDLE_CELL_MB", 18, minimum=1)
# the part of a worker's share never given to jobs: warm cells for the next jobs when the host is full
SANDBOX_WARM_RESERVE_MB = env_int(
    "SANDBOX_WARM_RESERVE_MB", capacity.default_warm_reserve_mb(WORKER_MEMORY_SHARE_MB), minimum=0
)
SANDBOX_STARTS_AT_ONCE = env_int(
    "SANDBOX_STARTS_AT_ONCE", 8, minimum=1
)  # container starts in flight per worker

# -- Delivery: leases, retries, reconciler ---------------------------------------
LEASE_S = env_float("LEASE_S", 15.0)  # a running attempt whose lease is not renewed for this long is lost
LEASE_RENEW_S = env_float("LEASE_RENEW_S", 0.5)  # renewal (and cancel check) period while a job runs
FINISH_RETRY_S = env_float(
    "FINISH_RETRY_S", 60.0
)  # a finished attempt retries its record while PostgreSQL is away
RETRY_BACKOFF_BASE_S = env_float("RETRY_BACKOFF_BASE_S", 1.0)
RETRY_BACKOFF_FACTOR = env_float("RETRY_BACKOFF_FACTOR", 2.0)
RETRY_BACKOFF_CAP_S = env_float("RETRY_BACKOFF_CAP_S", 300.0)
SYSTEM_RETRIES = env_int(
    "SYSTEM_RETRIES", 3, minimum=0
)  # extra attempts after lost workers / sandbox failures
RECONCILE_INTERVAL_S = env_float("RECONCILE_INTERVAL_S", 1.0)
REDISPATCH_AFTER_S = env_float(
    "REDISPATCH_AFTER_S", 5.0
)  # waiting this long without reaching Redis: dispatch again
WAIT_MAX_S = env_float("WAIT_MAX_S", 30.0)  # cap of ?wait= on submit
IDEMPOTENCY_TTL_H = env_float("IDEMPOTENCY_TTL_H", 24.0)
BATCH_MAX_JOBS = env_int("BATCH_MAX_JOBS", 100, minimum=1)
# flow control's Prometheus gauges: the busiest functions and keys only (a bounded label count)
FLOW_METRICS_TOP = env_int("FLOW_METRICS_TOP", 20, minimum=0)

# -- Functions: dependency builds, layers, warm cells ---------------------------------
BUILD_TIMEOUT_S = env_float("BUILD_TIMEOUT_S", 600.0)  # one resolve or install step
BUILD_MEMORY_MB = env_int("BUILD_MEMORY_MB", 1024, minimum=256)
BUILD_TMP_MB = env_int("BUILD_TMP_MB", 2048, minimum=64)  # the builder's tmpfs: caps what an install occupies
# builders have network none; their only way out is a proxy (sandbox/buildproxy.py) on a Unix socket in a
# directory made under this one, bind-mounted into the builder: it must be a path the Docker engine sees
# (the system's temp dir when empty; under compose, a host directory mounted at the same path)
BUILD_PROXY_DIR = env_str("BUILD_PROXY_DIR", "")
# in a container, how the engine sees BUILD_PROXY_DIR: a named volume mounted there (compose), or the host
# path of that directory (Kubernetes: the pod's emptyDir); unset, the same path
BUILD_PROXY_VOLUME = env_str("BUILD_PROXY_VOLUME", "")
BUILD_PROXY_HOST_DIR = env_str("BUILD_PROXY_HOST_DIR", "")
BUILD_FETCH_TIMEOUT_S = env_float("BUILD_FETCH_TIMEOUT_S", 60.0)  # pip's and npm's per-request timeout
BUILD_PYPI_INDEX = env_str("BUILD_PYPI_INDEX", "https://pypi.org/simple")
BUILD_NPM_REGISTRY = env_str("BUILD_NPM_REGISTRY", "https://registry.npmjs.org/")
BUILD_MAX_ATTEMPTS = env_int("BUILD_MAX_ATTEMPTS", 3, minimum=1)  # builds the platform failed to run
BUILD_LEASE_S = env_float("BUILD_LEASE_S", 60.0)  # a build whose worker stops renewing this long is retried
BUILD_DEFER_S = env_float("BUILD_DEFER_S", 5.0)  # a build given back (tenant at capacity, layer busy) waits
LAYER_MAX_FILES = env_int("LAYER_MAX_FILES", 100_000, minimum=1)  # files and directories in one layer
LAYER_MAX_BYTES = env_int("LAYER_MAX_BYTES", 1024 * 1024 * 1024, minimum=1)  # any tenant's cap is below this
LAYER_GC_AFTER_S = env_float("LAYER_GC_AFTER_S", 3600.0)  # a layer no version uses is removed after this
LAYER_GC_INTERVAL_S = env_float("LAYER_GC_INTERVAL_S", 300.0)  # how often workers look for such layers
PROVISION_INTERVAL_S = env_float("PROVISION_INTERVAL_S", 10.0)  # workers re-read provisioned functions
FUNCTION_WARM_MAX = env_int("FUNCTION_WARM_MAX", 8, minimum=1)  # cells one POST …/warm may start
FUNCTION_WARM_TTL_S = env_float("FUNCTION_WARM_TTL_S", 300.0)  # how long POST …/warm keeps its cells wanted

# -- Delayed runs, schedules, webhooks ------------------------------------------------
JOB_MAX_DELAY_S = env_int("JOB_MAX_DELAY_S", 30 * 86400, minimum=1)  # how far ahead run_at/delay_s may be
# durable runs: events posted to /api/v1/events are kept this long for runs that ask for them later
EVENT_RETENTION_S = env_int("EVENT_RETENTION_S", 30 * 86400, minimum=60)
SCHEDULE_MISSED_AFTER_S = env_float("SCHEDULE_MISSED_AFTER_S", 60.0)  # a tick older than this was missed
# bounded storage: each tenant's Quota.retention_days; the purge runs this often, this many jobs a batch
RETENTION_INTERVAL_S = env_float("RETENTION_INTERVAL_S", 60.0)
RETENTION_BATCH = env_int("RETENTION_BATCH", 500, minimum=1)
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False)  # local development only
WEBHOOK_RESOLVE_TIMEOUT_S = env_float("WEBHOOK_RESOLVE_TIMEOUT_S", 3.0)  # a webhook name must resolve in time
WEBHOOK_TIMEOUT_S = env_float("WEBHOOK_TIMEOUT_S", 10.0)  # one delivery attempt
WEBHOOK_RETRY_DELAYS_S = env_str("WEBHOOK_RETRY_DELAYS_S", "5,30,120,900,3600,14400,43200")  # about a day
WEBHOOK_DISABLE_AFTER_S = env_float("WEBHOOK_DISABLE_AFTER_S", 3 * 86400.0)  # an endpoint failing this long
WEBHOOK_WORKERS = env_int("WEBHOOK_WORKERS", 8, minimum=1)  # deliveries in flight per delivery process
WEBHOOK_POLL_S = env_float("WEBHOOK_POLL_S", 0.5)
# wall clock for one attempt: connect, TLS, send and read (WEBHOOK_TIMEOUT_S bounds each step; this their sum)
WEBHOOK_DEADLINE_S = env_float("WEBHOOK_DEADLINE_S", 15.0)
WEBHOOK_RESOLVE_PER_TENANT = env_int("WEBHOOK_RESOLVE_PER_TENANT", 2, minimum=1)  # lookups per process
WEBHOOK_TENANT_IN_FLIGHT = env_int("WEBHOOK_TENANT_IN_FLIGHT", 4, minimum=1)  # sends at once, fleet-wide
WEBHOOK_MAX_REDELIVERIES = env_int("WEBHOOK_MAX_REDELIVERIES", 5, minimum=0)  # by hand, per message
WEBHOOK_WRITES_PER_MINUTE = env_int("WEBHOOK_WRITES_PER_MINUTE", 30, minimum=1)  # a tenant's webhook changes
WEBHOOK_TEST_INTERVAL_S = env_float("WEBHOOK_TEST_INTERVAL_S", 5.0)  # between two test events to one endpoint

# -- Routes: public HTTP endpoints /fn/<tenant>/<path> (routes/) -----------------------------------
ROUTES_MAX_PER_TENANT = env_int("ROUTES_MAX_PER_TENANT", 100, minimum=1)
ROUTE_MAX_BODY_BYTES = env_int("ROUTE_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)  # any route's cap is below
ROUTE_DEFAULT_BODY_BYTES = 64 * 1024  # a route's max_body_bytes when not given
ROUTE_WAIT_S = env_float("ROUTE_WAIT_S", 30.0)  # a sync route waits this long for its job, then 504
ROUTE_SIGNATURE_TOLERANCE_S = 300  # Stripe's, Slack's and Standard Webhooks' replay window

# -- Secrets and configuration (vault; a version's egress, secrets and env) -------------------
# the master key wrapping every tenant's data key (lambdasite.env.secrets_keys: SECRETS_KEY,
# SECRETS_KEY_FILE or var/secrets_key; SECRETS_KEY_OLD while secrets_rotate_master re-wraps)
SECRETS_KEY, SECRETS_KEY_OLD = secrets_keys(BASE_DIR / "var" / "secrets_key", debug=DEBUG or TESTING)
SECRET_MAX_BYTES = 64 * 1024  # one secret's value
SECRET_MAX_BINDINGS = 50  # secrets one version binds (its env's size and patterns: sandbox.egress_policy)
CONNECTIONS_RECORDED_PER_ATTEMPT = 1000  # rows of an attempt's connections (the rest counted, bytes billed)

# -- Usage and cost (defaults: AWS Lambda's published x86 prices, EC2's first tier of data out) ---
PRICE_PER_GB_SECOND = env_float("PRICE_PER_GB_SECOND", 0.0000166667)
PRICE_PER_MILLION_REQUESTS = env_float("PRICE_PER_MILLION_REQUESTS", 0.20)
PRICE_PER_GB_EGRESS = env_float("PRICE_PER_GB_EGRESS", 0.09)  # bytes through the door, both ways (GiB)
PRICE_CURRENCY = env_str("PRICE_CURRENCY", "USD")

# -- Operations ----------------------------------------------------------------
METRICS_TOKEN = env_str("METRICS_TOKEN", "")  # when set, /metrics needs `Authorization: Bearer <token>`
READYZ_RECONCILER_MAX_AGE_S = env_float("READYZ_RECONCILER_MAX_AGE_S", 15.0)  # /healthz/fleet: older is bad
WORKER_HEARTBEAT_S = env_float("WORKER_HEARTBEAT_S", 5.0)  # a worker missing 3 beats is not counted live
WORKER_POOLS = env_list("WORKER_POOLS", ["default"])  # the pools a job worker serves (jobs.pools)
WORKER_ASYNC_COMMIT = env_bool("WORKER_ASYNC_COMMIT", True)  # see jobs.worker.relax_commit_durability

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "lambdasite.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "rq.worker": {"level": "WARNING"},
    },
}

if TESTING:
    # personas set passwords in every test; PBKDF2's deliberate slowness would dominate the suite
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
