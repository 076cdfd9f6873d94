"""Settings for Smart City Safety Net.

Every value comes from an environment variable (documented in README with its default),
so one build runs unchanged on a laptop, in CI and on a city's servers. Secrets may
instead come from a file named by `<NAME>_FILE` (see `env_secret`).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_secret(name: str, default: str = "") -> str:
    """`NAME` from the environment, or the contents of the file named by `NAME_FILE`.

    Docker/Kubernetes secrets and systemd `LoadCredential=` hand secrets over as files, so
    they never show in `ps e`, `docker inspect` or a unit's Environment=. Surrounding
    whitespace (the trailing newline of `echo … > file`) is dropped. Setting both is an
    error rather than a silent choice; an unreadable file names the variable, never a value.
    """
    path = os.environ.get(f"{name}_FILE", "")
    if not path:
        return os.environ.get(name, default)
    if os.environ.get(name):
        raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImproperlyConfigured(f"{name}_FILE: cannot read {path} ({exc.__class__.__name__})") from exc


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set (or SECRET_KEY_FILE) when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-for-debug-mode-0123456789abcdef"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.gis",
    "rest_framework",
    "rest_framework_gis",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "leaflet",
    "axes",
    "cameras",
    "incidents",
    "partners",
    "audit",
]

MIDDLEWARE = [
    "smartcity.middleware.RequestIdMiddleware",
    "smartcity.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "smartcity.middleware.SecurityHeadersMiddleware",
    "smartcity.middleware.ApiBodyLimitMiddleware",
    "smartcity.middleware.StaticFilesMiddleware",  # WhiteNoise, ASGI-native
    "django.contrib.sessions.middleware.SessionMiddleware",
    "smartcity.middleware.ExplicitLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "smartcity.urls"
ASGI_APPLICATION = "smartcity.asgi.application"
WSGI_APPLICATION = "smartcity.wsgi.application"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# PostGIS is required: the spatial selectors rely on KNN (<->) and geography dwithin.
DATABASE_URL = env_secret("DATABASE_URL", "postgis://postgres@127.0.0.1:5432/smartcity")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
# PostGIS, with a cheaper check of pooled connections (smartcity/dbbackend/base.py).
DATABASES["default"]["ENGINE"] = "smartcity.dbbackend"
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
# Under Daphne every sync view may run on a different thread, and persistent
# per-thread connections pile up until PostgreSQL refuses more clients. A small pool
# per process keeps connections bounded and reused (psycopg's pool, Django ≥ 5.1).
DB_POOL_MAX = int(os.environ.get("DB_POOL_MAX", "10"))
# HTTP requests served at once per Daphne process, each in a pooled thread holding at
# most one database connection (smartcity/http.py), in two lanes: the partner API
# (/api/v1/) and everything else, so a slow page never holds up an emergency event. The
# API's threads are few on purpose: more only take turns on the GIL (README, issue 3).
# The pool must also leave a connection for the WebSocket consumers' thread and one for
# the relays' clip claims.
HTTP_API_THREADS = int(os.environ.get("HTTP_API_THREADS", "3"))
HTTP_THREADS = int(os.environ.get("HTTP_THREADS", "4"))
# Requests that may wait for a thread in each lane, and for how long; beyond either they
# are answered 503 + Retry-After (overload: a queue without bound answers everyone too late).
HTTP_QUEUE_MAX = int(os.environ.get("HTTP_QUEUE_MAX", "64"))
HTTP_QUEUE_TIMEOUT_S = float(os.environ.get("HTTP_QUEUE_TIMEOUT_S", "2"))
if HTTP_API_THREADS < 1 or HTTP_THREADS < 1 or HTTP_QUEUE_MAX < 0 or HTTP_QUEUE_TIMEOUT_S <= 0:
    raise ImproperlyConfigured(
        "HTTP_API_THREADS and HTTP_THREADS must be ≥ 1, HTTP_QUEUE_MAX ≥ 0 and HTTP_QUEUE_TIMEOUT_S > 0"
    )
if 0 < DB_POOL_MAX < HTTP_API_THREADS + HTTP_THREADS + 2:
    raise ImproperlyConfigured(
        f"DB_POOL_MAX={DB_POOL_MAX} is too small for HTTP_API_THREADS={HTTP_API_THREADS} + "
        f"HTTP_THREADS={HTTP_THREADS}: requests would wait for connections; "
        f"use at least {HTTP_API_THREADS + HTTP_THREADS + 2}"
    )
if DB_POOL_MAX > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX,
        "timeout": 10,
        # While PostgreSQL is away the pool retries connecting with a doubling delay; left
        # at psycopg's 5 minutes that delay reaches a minute or two, and requests would
        # keep failing that long after the database is back. Giving up after a few
        # seconds lets the next request start a fresh attempt at once.
        "reconnect_timeout": 5,
    }
    # After a PostgreSQL restart every pooled connection is dead: the pool checks each one
    # as it lends it out and replaces it at once, instead of failing one request per stale
    # connection (the check is smartcity/dbbackend's: no round trip for a healthy one).

REDIS_URL = env_secret("REDIS_URL", "redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "smartcity",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

CHANNEL_LAYERS = {
    "default": {
        # Redis pub/sub: a push is published once and each process fans it out to its own
        # sockets; a lost subscription is announced to every socket (smartcity/layers.py).
        "BACKEND": "smartcity.layers.PubSubChannelLayer",
        "CONFIG": {
            # redis-py 8 gives connections a 5 s socket timeout by default; a subscription
            # on a quiet Redis must be allowed to wait indefinitely.
            # After Redis restarts, every pooled connection is dead, and without a retry
            # each fails one command: an operator's reconnecting dashboard is refused once
            # per stale connection, waiting its backoff each time. One retry on a fresh
            # connection (the failed one is dropped first) lets the first attempt succeed.
            # The health check pings an idle subscription, so a Redis that vanished without
            # closing the connection (a network split) is noticed within seconds.
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_timeout": None,
                    "retry": Retry(NoBackoff(), 1),
                    "health_check_interval": 5,
                }
            ],
            "prefix": "smartcity",
        },
    }
}

CELERY_BROKER_URL = env_secret("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "Asia/Seoul"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "ko")
LANGUAGES = [("ko", "한국어"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Seoul")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    # Serve straight from the app folders while developing; no collectstatic needed.
    WHITENOISE_USE_FINDERS = True
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Brute-force protection for the operator and admin logins (django-axes). Locking by
# user name *and* address means an attacker cannot lock a real operator out of a
# 24/7 control room just by failing with their user name from elsewhere.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("LOGIN_LOCKOUT_HOURS", "0.25"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
AXES_IPWARE_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "0")) or None
AXES_VERBOSE = False
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["partners.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "partners.api.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Smart City Safety Net partner API",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
}

# Map widgets: Leaflet ships with django-leaflet's static files, so no CDN is involved.
# Tiles are the one thing fetched from outside; without them the map still draws the
# geometry on a plain background.
MAP_TILE_URL = os.environ.get("MAP_TILE_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
LEAFLET_CONFIG = {
    "DEFAULT_CENTER": (37.5636, 126.9976),
    "DEFAULT_ZOOM": 12,
    "TILES": [("OSM", MAP_TILE_URL, {"attribution": "&copy; OpenStreetMap", "maxZoom": 19})],
    "NO_GLOBALS": False,
}

# Product knobs.
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "safenet-demo")
DEMO_API_KEYS = env_bool("DEMO_API_KEYS", False)  # seed_demo prints one key per partner that has none
DEFAULT_RETENTION_DAYS = int(os.environ.get("DEFAULT_RETENTION_DAYS", "30"))
DEMO_RTSP_HOST = os.environ.get("DEMO_RTSP_HOST", "127.0.0.1")
DEMO_RTSP_PORT = int(os.environ.get("DEMO_RTSP_PORT", "8554"))
DEMO_RTSP_STREAMS = int(os.environ.get("DEMO_RTSP_STREAMS", "4"))

# Production safety. TLS is normally terminated by a reverse proxy that sets
# X-Forwarded-Proto; only trust that header when told to.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(12 * 3600)))
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Content-Security-Policy of every page: scripts only from our own static files, video
# only from MediaSource blobs, sockets and API calls only to this origin. The admin and
# the API docs (third-party templates with inline scripts) get a looser policy.
_tiles = urlsplit(MAP_TILE_URL.replace("{s}", "*"))  # Leaflet's {s} subdomains → a CSP wildcard
MAP_TILE_ORIGIN = f"{_tiles.scheme}://{_tiles.netloc}" if _tiles.netloc else ""
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    f"img-src 'self' data: blob: {MAP_TILE_ORIGIN}; media-src 'self' blob:; "
    "connect-src 'self'; worker-src 'self' blob:; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
CONTENT_SECURITY_POLICY_RELAXED = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    f"img-src 'self' data: blob: {MAP_TILE_ORIGIN}; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'"
)
CSP_RELAXED_PATHS = ("/admin/", "/api/docs/", "/api/redoc/")
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
# /metrics (Prometheus): only from these networks, or with this bearer token.
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", "127.0.0.1/32,::1/128")
METRICS_TOKEN = env_secret("METRICS_TOKEN")
# /healthz is probed by load balancers over plain HTTP inside the private network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]

SILENCED_SYSTEM_CHECKS = ["gis.W001"]  # Debian 12's GDAL 3.6 is older than Django's preferred 3.9.

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")  # "json": one JSON object per line
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "smartcity.logs.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "smartcity.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Incidents: how many cameras an event gets, and how far they may be.
INCIDENT_CAMERA_COUNT = int(os.environ.get("INCIDENT_CAMERA_COUNT", "8"))
INCIDENT_CAMERA_RADIUS_M = float(os.environ.get("INCIDENT_CAMERA_RADIUS_M", "500"))
# Partner API limits.
API_MAX_BODY_BYTES = int(os.environ.get("API_MAX_BODY_BYTES", str(64 * 1024)))
API_SIGNATURE_MAX_AGE_S = int(os.environ.get("API_SIGNATURE_MAX_AGE_S", "300"))
EVENT_MAX_FUTURE_S = int(os.environ.get("EVENT_MAX_FUTURE_S", "300"))


def env_seconds_map(name: str, default: str) -> dict[str, int]:
    """`default=120,police.emergency_video=30` → {"default": 120, "police.emergency_video": 30}."""
    result = {}
    for item in os.environ.get(name, default).split(","):
        key, _, value = item.partition("=")
        if key.strip() and value.strip().isdigit():
            result[key.strip()] = int(value)
    return result


# Escalation: a new incident nobody acknowledged within this many seconds is raised to
# priority 1 and announced to supervisors.
ESCALATION_SECONDS = env_seconds_map(
    "ESCALATION_SECONDS",
    "default=120,police.emergency_video=30,fire.dispatch=30,safety.sos=30,moj.victim_approach=30,market.fire_alarm=30",
)
CELERY_BEAT_SCHEDULE["incidents-escalate"] = {
    "task": "incidents.tasks.escalate_overdue",
    "schedule": float(os.environ.get("ESCALATION_CHECK_EVERY_S", "5")),
}

# --- Shares and outbound webhooks (issue 6: partners/sharing.py, partners/webhooks.py) ---
# Absolute base of the share links partners receive (`viewer_url`).
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Key share tokens are derived with (HMAC); changing it voids every open share link.
SHARE_TOKEN_SECRET = env_secret("SHARE_TOKEN_SECRET") or SECRET_KEY
# How many of the incident's nearest cameras a share carries.
SHARE_CAMERA_COUNT = int(os.environ.get("SHARE_CAMERA_COUNT", "4"))
# An open share video socket re-reads its share this often (revocations also arrive at once).
SHARE_SOCKET_RECHECK_S = float(os.environ.get("SHARE_SOCKET_RECHECK_S", "5"))
# Unknown share tokens tried from one address per minute before 429 (guessing).
SHARE_GUESS_LIMIT_PER_MINUTE = int(os.environ.get("SHARE_GUESS_LIMIT_PER_MINUTE", "30"))
WEBHOOK_TIMEOUT_S = float(os.environ.get("WEBHOOK_TIMEOUT_S", "5"))
WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "8"))
WEBHOOK_BACKOFF_BASE_S = float(os.environ.get("WEBHOOK_BACKOFF_BASE_S", "2"))
WEBHOOK_BACKOFF_MAX_S = float(os.environ.get("WEBHOOK_BACKOFF_MAX_S", "600"))
WEBHOOK_REQUIRE_HTTPS = env_bool("WEBHOOK_REQUIRE_HTTPS", True)
CELERY_BEAT_SCHEDULE["partners-shares-expire"] = {
    "task": "partners.tasks.shares_expire",
    "schedule": float(os.environ.get("SHARE_EXPIRY_CHECK_EVERY_S", "2")),
}
CELERY_BEAT_SCHEDULE["partners-webhooks-sweep"] = {
    "task": "partners.tasks.webhooks_sweep",
    "schedule": float(os.environ.get("WEBHOOK_SWEEP_EVERY_S", "30")),
}

# --- Ledger, saved clips and retention (issue 7).
CLIP_STORAGE_DIR = Path(os.environ.get("CLIP_STORAGE_DIR", str(BASE_DIR / ".run" / "clips")))
CLIP_MAX_SECONDS = int(os.environ.get("CLIP_MAX_SECONDS", "300"))
CLIP_PURGE_FSYNC = env_bool("CLIP_PURGE_FSYNC", True)  # flush the overwrite to disk before removing
CLIP_DUE_WARNING_HOURS = float(os.environ.get("CLIP_DUE_WARNING_HOURS", "24"))
# "Save the last N seconds": each relay keeps this much of every camera it relays, at most
# RELAY_BUFFER_MAX_MB per camera (0 seconds: no buffer, only "the next N seconds").
RELAY_BUFFER_SECONDS = float(os.environ.get("RELAY_BUFFER_SECONDS", "30"))
RELAY_BUFFER_MAX_MB = float(os.environ.get("RELAY_BUFFER_MAX_MB", "16"))
# How long a "last N seconds" request waits for a relay holding the camera to take it.
CLIP_LAST_ANSWER_S = float(os.environ.get("CLIP_LAST_ANSWER_S", "3"))
LEDGER_PAGE_SIZE = int(os.environ.get("LEDGER_PAGE_SIZE", "50"))
CELERY_BEAT_SCHEDULE["cameras-purge-footage"] = {
    "task": "cameras.tasks.purge_footage",
    "schedule": float(os.environ.get("CLIP_PURGE_EVERY_S", "300")),
}

# Camera health and snapshots (issue 5): Celery beat probes every camera with a stream
# (RTSP over TCP, one video packet) at most CAMERA_PROBE_CONCURRENCY at a time.
CAMERA_PROBE_EVERY_S = float(os.environ.get("CAMERA_PROBE_EVERY_S", "60"))
CAMERA_PROBE_CONCURRENCY = int(os.environ.get("CAMERA_PROBE_CONCURRENCY", "16"))
CAMERA_PROBE_TIMEOUT_S = float(os.environ.get("CAMERA_PROBE_TIMEOUT_S", "5"))
CELERY_BEAT_SCHEDULE["cameras-probe"] = {
    "task": "cameras.tasks.probe_cameras",
    "schedule": CAMERA_PROBE_EVERY_S,
}
# Snapshots (`/cameras/<id>/snapshot.jpg`): how long one JPEG is reused, and how long a
# snapshot may wait for a camera nobody is watching.
CAMERA_SNAPSHOT_CACHE_S = float(os.environ.get("CAMERA_SNAPSHOT_CACHE_S", "5"))
CAMERA_SNAPSHOT_TIMEOUT_S = float(os.environ.get("CAMERA_SNAPSHOT_TIMEOUT_S", "5"))
# Several cameras relayed by one process: their frames reach the viewers in batches, at
# most this late (cameras/relay.py, Mailbox); 0 hands over every frame on its own.
RELAY_BATCH_MS = float(os.environ.get("RELAY_BATCH_MS", "20"))
if not 0 <= RELAY_BATCH_MS <= 40:
    raise ImproperlyConfigured("RELAY_BATCH_MS must be between 0 and 40 (a frame interval at 25 fps)")
# Camera codes (comma-separated) whose relay every Daphne process keeps open from its
# first request on, viewers or not: their first viewer starts from the GOP cache at once.
CAMERA_PRELOAD_CODES = [c.strip() for c in os.environ.get("CAMERA_PRELOAD_CODES", "").split(",") if c.strip()]
