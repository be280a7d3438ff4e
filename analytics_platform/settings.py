"""The one settings module. Everything comes from the environment.

Nothing set is the embedded default (SQLite file, local-memory cache, RQ jobs run inline,
in-memory channel layer), so `make run` works on a bare machine. `DATABASE_URL` and
`REDIS_URL` switch to PostgreSQL and Redis; no code path exists only in one mode.
"""

import hashlib
import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# What people copy from examples and tutorials instead of generating a key: compared
# lower-cased without separators, whole ("secret") or as a part ("change-me-in-production",
# Django's "django-insecure-..." startproject keys, our own DEBUG-only fallback below).
SECRET_KEY_PLACEHOLDERS = {"secret", "secretkey", "mysecretkey", "djangosecretkey", "password", "default"}
SECRET_KEY_PLACEHOLDER_WORDS = ("changeme", "replaceme", "yoursecret", "insecure", "donotuse", "example")
SECRET_KEY_MIN_LENGTH = 32
SECRET_KEY_MIN_UNIQUE = 5
_KEY_GENERATOR = 'python3 -c "import secrets; print(secrets.token_urlsafe(50))"'


def secret_key_problem(key: str) -> str | None:
    """Why `key` must not sign sessions and CSRF tokens in production, or None. 32 characters
    (an `openssl rand -hex 16`: 128 bits) is the least accepted, so keys made by the usual
    tools pass; Django's `check --deploy` still warns below 50. Fewer than 5 distinct
    characters is Django's "insecure" rule too."""
    normalized = "".join(char for char in key.lower() if char.isalnum())
    if normalized in SECRET_KEY_PLACEHOLDERS or any(word in normalized for word in SECRET_KEY_PLACEHOLDER_WORDS):
        return "is a placeholder from an example"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"is {len(key)} characters long, fewer than {SECRET_KEY_MIN_LENGTH}"
    if len(set(key)) < SECRET_KEY_MIN_UNIQUE:
        return f"has fewer than {SECRET_KEY_MIN_UNIQUE} distinct characters"
    return None


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (generate one: "
            f"{_KEY_GENERATOR}). For local use, `export DEBUG=1` (as `make run` does)."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105 (DEBUG only)
elif not DEBUG and (problem := secret_key_problem(SECRET_KEY)):
    raise ImproperlyConfigured(
        f"SECRET_KEY {problem}: anyone could forge sessions and CSRF tokens with it. Generate one: {_KEY_GENERATOR}"
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# The dashboard's pages: Django's own session login (API.md, "Dashboard").
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
SESSION_ENGINE = "accounts.sessions"  # Django's database sessions, refusing keys it cannot have made

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
DATA_DIR = Path(os.environ.get("DATA_DIR", BASE_DIR))

# Product settings (names as in the seed service's README).
RATE_LIMIT_WINDOW_MS = env_int("RATE_LIMIT_WINDOW_MS", 900_000)
RATE_LIMIT_MAX_REQUESTS = env_int("RATE_LIMIT_MAX_REQUESTS", 100)
# POST /events: a token bucket per key, this many requests per second, bursts of twice that.
INGEST_RATE_LIMIT_PER_SECOND = env_int("INGEST_RATE_LIMIT_PER_SECOND", 1000)
EVENT_BATCH_SIZE = env_int("EVENT_BATCH_SIZE", 1000)
EVENT_BUFFER_TIMEOUT_MS = env_int("EVENT_BUFFER_TIMEOUT_MS", 5000)
CACHE_TTL_SECONDS = env_int("CACHE_TTL_SECONDS", 300)
# The column store (warehouse/): the Parquet mirror of the events, read by DuckDB in every
# process that answers analytics (web and worker must see the same directory).
ANALYTICS_DIR = Path(os.environ.get("ANALYTICS_DIR") or DATA_DIR / "analytics")
# DuckDB's bounds per process: memory before it spills to ANALYTICS_SPILL_DIR, and threads.
ANALYTICS_MEMORY_LIMIT = os.environ.get("ANALYTICS_MEMORY_LIMIT", "1GB")
# A worker's DuckDB only writes files (exports, compactions): a smaller bound, spilling the
# rest (a compaction sorting a busy day took a worker past 500 MB at 1GB; 128MB: 356 MB, 64MB: 297).
ANALYTICS_WORKER_MEMORY_LIMIT = os.environ.get("ANALYTICS_WORKER_MEMORY_LIMIT", "64MB")
ANALYTICS_SPILL_DIR = Path(os.environ.get("ANALYTICS_SPILL_DIR") or ANALYTICS_DIR / "spill")
ANALYTICS_THREADS = env_int("ANALYTICS_THREADS", 2)
# How long a file compaction retired stays on disk for the readers that listed it.
ANALYTICS_GRACE_SECONDS = env_int("ANALYTICS_GRACE_SECONDS", 600)
# Threads per web process running Django's (synchronous) request handling.
HTTP_THREADS = env_int("HTTP_THREADS", 8)
# Live stream: events queued per socket before a slow reader starts losing them (it is told
# how many), and seconds between stats messages.
LIVE_QUEUE_EVENTS = env_int("LIVE_QUEUE_EVENTS", 1000)
LIVE_STATS_SECONDS = env_int("LIVE_STATS_SECONDS", 5)
# Proxies (IPs or CIDRs) whose X-Forwarded-For is believed for the client's address.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
# Ingestion bodies may be 5 MB; events.payload enforces that limit itself.
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024 + 1

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "accounts",
    "events",  # before django_rq: its `rqworker` (always with the scheduler) takes precedence
    "funnels",
    "retention",
    "warehouse",
    "dashboard",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "channels",
    "axes",  # failed sign-ins counted, and too many locked out (AXES_* below)
]

MIDDLEWARE = [
    "analytics_platform.logging.RequestLogMiddleware",
    # Probes call by address, not by an ALLOWED_HOSTS name: /health before host validation.
    "analytics_platform.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "analytics_platform.cors.EventsCorsMiddleware",  # after the Host header is validated
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# Sign-in throttling (the dashboard's login and the admin's): django-axes counts failures
# per username and client address (TRUSTED_PROXIES honoured, as for events); the 5th in a row
# locks that pair out for 15 minutes with a 429 page. A success resets the count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "events.payload.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

ROOT_URLCONF = "analytics_platform.urls"
WSGI_APPLICATION = "analytics_platform.wsgi.application"
ASGI_APPLICATION = "analytics_platform.asgi.application"

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
            ],
        },
    },
]

if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "analytics_platform.postgresql"  # the pool survives restarts
        # Under ASGI every request may run on a thread of its own, so persistent per-thread
        # connections would pile up; a per-process pool hands them back after each request.
        options = DATABASES["default"].setdefault("OPTIONS", {})
        options["pool"] = {"min_size": 1, "max_size": env_int("DATABASE_POOL_SIZE", 10), "timeout": 10}
        # The pool checks a connection before handing it out, so the first requests after a
        # database restart get fresh connections, not 503s. Django 5.2 passes the pool
        # check=ConnectionPool.check_connection itself when this is on (a "check" among the
        # pool options would be a duplicate keyword argument).
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
        # JIT compilation cost ~170 ms per analytics query here and saved nothing; the
        # analytics' hash aggregates spill to disk at the default 4 MB of work_mem.
        options.setdefault("options", f"-c jit=off -c work_mem={env_int('DATABASE_WORK_MEM_MB', 64)}MB")
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }


def database_identity(database: dict) -> str:
    """Which database this is, whoever connects to it: engine, host, port and name (not the
    user, password or options, which change without the data changing)."""
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:{Path(database['NAME']).resolve()}"
    port = database.get("PORT") or (5432 if database["ENGINE"].endswith("postgresql") else "")
    return f"{database['ENGINE']}:{str(database.get('HOST') or '').lower()}:{port}/{database['NAME']}"


# The namespace of this deployment's keys in Django's cache and the channel layer, so that
# deployments sharing one Redis (staging and production) never serve each other's cached
# answers, data versions or live events. By default a short hash of the database's identity:
# every process of a deployment (web, workers, manage.py) agrees without configuration. Set
# it where one database is reached under different host names, or to make keys readable.
DEPLOYMENT_NAME = os.environ.get("DEPLOYMENT_NAME", "").strip()
if not DEPLOYMENT_NAME:
    DEPLOYMENT_NAME = hashlib.sha256(database_identity(DATABASES["default"]).encode()).hexdigest()[:12]
elif not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", DEPLOYMENT_NAME):
    raise ImproperlyConfigured(
        f"DEPLOYMENT_NAME must be 1-64 letters, digits, '.', '_' or '-', got {DEPLOYMENT_NAME!r}"
    )
CACHE_KEY_PREFIX = f"ap:{DEPLOYMENT_NAME}"

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {
                # Fail fast: the rate limiter and health check must not hang on a dead Redis.
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{CACHE_KEY_PREFIX}:channels"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": CACHE_KEY_PREFIX}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Without Redis, jobs run inline in the request (RQ's synchronous mode), same code path.
RQ_QUEUES = {
    "default": {"URL": REDIS_URL or "redis://127.0.0.1:6379/0", "ASYNC": bool(REDIS_URL), "DEFAULT_TIMEOUT": 300},
}
RQ_SHOW_ADMIN_LINK = bool(REDIS_URL)
# Jobs run in the worker process itself, not a fork per job: a persist job is ~20 ms of
# work, and a fork plus fresh database and Redis connections cost ten times that.
# events.worker.RecoveringWorker is a SimpleWorker that notices dead workers and Redis
# restarts in seconds (RQ alone: at its 10-minute maintenance).
RQ = {"WORKER_CLASS": "events.worker.RecoveringWorker"}
# A worker lowers its own CPU priority by this much (nice), so that on a machine it shares
# with the web processes an answer never waits behind background work: at 35k events/s of
# 1,000-event batches (about 70 % of the most), their p99 fell from 172-252 ms to 62-72 ms
# (bench/README, sixth pass).
# The workers still get whatever the web leaves, which under any load short of the most is
# plenty; 0 leaves the priority alone.
WORKER_NICE = env_int("WORKER_NICE", 10)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]  # analytics.js, the tracking script sites include
# Optional: `collectstatic` into STATIC_ROOT adds compressed copies; nothing needs it.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
# Static assets (admin, Swagger UI) are served by WhiteNoise straight from the installed
# packages, so a deployment needs no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.auth.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.ratelimit.ApiKeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["analytics_platform.parsers.SafeJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "analytics_platform.negotiation.JSONOnlyNegotiation",
    "EXCEPTION_HANDLER": "analytics_platform.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Event Analytics Platform API",
    "DESCRIPTION": "Ingest product events and query funnels, retention, metrics and journeys.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
    },
    "SECURITY": [{"ApiKeyAuth": []}],
}

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOGGING_CONFIG = None  # analytics_platform.logging configures stdlib + structlog once.

from analytics_platform.logging import configure_logging  # noqa: E402

configure_logging(LOG_LEVEL)
