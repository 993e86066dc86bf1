"""Django settings for AEGIS License Server.

Every setting is read once from the environment (or a `.env` file beside manage.py) through
django-environ. The variable names are those of the v0.8 server (see `.env.example`).
With ENVIRONMENT=production the process refuses to start on an insecure configuration.
"""

import logging
import os
from pathlib import Path

import environ
from csp import constants as csp
from django.core.exceptions import ImproperlyConfigured

from aegis.core.logging import build_logging

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
# `.env.example` copied as is leaves these empty: empty means "the default", not "nothing".
for _name in ("DATABASE_URL", "DATABASE_REPLICA_URL", "CACHE_URL", "PRIVATE_KEY_PATH"):
    if not os.environ.get(_name, "").strip():
        os.environ.pop(_name, None)

AEGIS_VERSION = "1.0.0"
API_VERSION = "v1"

ENVIRONMENT = env.str("ENVIRONMENT", default="development")
if ENVIRONMENT not in {"development", "test", "production"}:
    raise ImproperlyConfigured(
        f"ENVIRONMENT must be development, test or production, not {ENVIRONMENT!r}"
    )
IS_PRODUCTION = ENVIRONMENT == "production"

DEBUG = env.bool("DEBUG", default=not IS_PRODUCTION and ENVIRONMENT != "test")

# A development-only secret: production refuses it (see the checks at the end of this file).
_DEV_SECRET = "insecure-development-secret-do-not-use-in-production-0123456789abcdef"
SECRET_KEY = env.str("API_SECRET_KEY", default=_DEV_SECRET)

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS",
    default=[] if IS_PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"],
)

INSTALLED_APPS = [
    "aegis.apps.AegisAdminConfig",  # django.contrib.admin with the dashboard site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_structlog",
    "csp",
    "django_prometheus",
    "corsheaders",
    "aegis",
    "customers",
    "licensing",
    "audit",
]

MIDDLEWARE = [
    # Request counts and latency by view and status for /metrics (first and last).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "aegis.core.middleware.RequestContextMiddleware",
    "django_structlog.middlewares.RequestMiddleware",  # request_finished lines (aegis/core/logging.py)
    "aegis.core.routers.ReplicaReadsMiddleware",  # lists and stats may read the replica
    "aegis.core.api.middleware.APIBoundaryMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "aegis.urls"
WSGI_APPLICATION = "aegis.wsgi.application"

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

# --- Database -------------------------------------------------------------------------------
# No DATABASE_URL: an SQLite file in the project (zero-setup first run).
# DATABASE_URL=postgres://user:pass@host:5432/name: PostgreSQL through psycopg 3.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault(
        "connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5)
    )
    # JIT compilation pays off in long analytical queries; here it only added compiling
    # time to the statistics aggregates (measured, docs/performance.md), so the
    # application's sessions run without it.
    DATABASES["default"]["OPTIONS"].setdefault("options", "-c jit=off")
    # The validate path's statements (aegis.core.db.prepared_cursor; on the event loop, its own
    # connections, which take these options too) are parsed and planned by PostgreSQL once
    # per connection, from their fifth run on. Django's own cursors bind parameters on the
    # client and are never prepared, whatever this says.
    # A pooler in transaction mode (pgbouncer < 1.21) cannot keep prepared statements: set
    # DB_PREPARE_THRESHOLD=0 there.
    _prepare_threshold = env.int("DB_PREPARE_THRESHOLD", default=5)
    DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", _prepare_threshold or None)
# DATABASE_REPLICA_URL: a streaming replica of the primary. GET requests of the list and
# statistics routes read from it; writes, the validate lookup and authentication never do
# (aegis/core/routers.py). Test runs use one database: the replica alias mirrors the primary.
if "DATABASE_REPLICA_URL" in os.environ:
    DATABASES["replica"] = env.db_url("DATABASE_REPLICA_URL")
    DATABASES["replica"]["CONN_MAX_AGE"] = DATABASES["default"]["CONN_MAX_AGE"]
    DATABASES["replica"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["replica"]["OPTIONS"] = dict(DATABASES["default"].get("OPTIONS", {}))
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["aegis.core.routers.PrimaryReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttles, shared by every worker and instance in production) --------------------
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://aegis")}
if CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache":
    # Every rate-limited request asks Redis (validations from the workers' event loop): an
    # unreachable or stalled Redis must fail fast (503) rather than hold them all.
    CACHES["default"].setdefault("OPTIONS", {})
    CACHES["default"]["OPTIONS"].setdefault(
        "SOCKET_CONNECT_TIMEOUT", env.float("CACHE_CONNECT_TIMEOUT", default=1.0)
    )
    CACHES["default"]["OPTIONS"].setdefault(
        "SOCKET_TIMEOUT", env.float("CACHE_TIMEOUT", default=1.0)
    )

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
# Where collectstatic puts files (relative to the project unless absolute).
STATIC_ROOT = BASE_DIR / env.str("STATIC_ROOT", default="staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if IS_PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Licensing ------------------------------------------------------------------------------
# A relative KEYS_DIR is relative to the project, whatever the working directory.
KEYS_DIR = BASE_DIR / env.str("KEYS_DIR", default="keys")
KEY_ID = env.str("KEY_ID", default="aegis-dev")
PRIVATE_KEY_PATH = Path(
    env.str("PRIVATE_KEY_PATH", default=str(KEYS_DIR / f"{KEY_ID}.private.pem"))
)
PRIVATE_KEY_PASSPHRASE = env.str("PRIVATE_KEY_PASSPHRASE", default="") or None
LICENSE_ISSUER = env.str("LICENSE_ISSUER", default="https://license.biz4a.com")
DEFAULT_DEMO_DURATION_DAYS = env.int("DEFAULT_DEMO_DURATION_DAYS", default=30)
DEMO_MAX_DURATION_DAYS = env.int("DEMO_MAX_DURATION_DAYS", default=90)
SUBSCRIPTION_MAX_DURATION_DAYS = env.int("SUBSCRIPTION_MAX_DURATION_DAYS", default=3650)
# Staging seats of a license issued without max_staging_instances (CONTRACT §9).
DEFAULT_MAX_STAGING_INSTANCES = env.int("DEFAULT_MAX_STAGING_INSTANCES", default=2)
VALIDATION_LEEWAY_SECONDS = env.int("VALIDATION_LEEWAY_SECONDS", default=0)
# Under the ASGI server (aegis.asgi), the validate transport's own asynchronous connections
# to the primary, per worker process (licensing/validate_asgi.py), and the seconds a
# validation waits for one.
VALIDATE_DB_POOL_SIZE = env.int("VALIDATE_DB_POOL_SIZE", default=4)
VALIDATE_DB_POOL_TIMEOUT = env.float("VALIDATE_DB_POOL_TIMEOUT", default=5.0)
# Tokens whose signature verified, kept per worker process so a client presenting the same
# token again skips the Ed25519 check (licensing/validation.py); 0 turns the cache off.
VALIDATION_CACHE_SIZE = env.int("VALIDATION_CACHE_SIZE", default=20_000)
REVOCATION_LIST_TTL_HOURS = env.int("REVOCATION_LIST_TTL_HOURS", default=24)
# Days a lease (CONTRACT §9) lasts at most: an instance that stops checking in frees its seat
# this long after its last activation or heartbeat (never later than its license's expiry).
LEASE_TTL_DAYS = env.int("LEASE_TTL_DAYS", default=14)

# --- Statistics (audit/rollups.py) ----------------------------------------------------------
# Validation rows younger than this are left to the raw tail: ids become visible at commit,
# not in id order, and a validation commits within milliseconds.
VALIDATION_ROLLUP_SETTLE_SECONDS = env.int("VALIDATION_ROLLUP_SETTLE_SECONDS", default=30)
# Days per-minute counts are kept (they answer windows that do not start on the hour).
VALIDATION_ROLLUP_MINUTES_DAYS = env.int("VALIDATION_ROLLUP_MINUTES_DAYS", default=35)

# --- Logging --------------------------------------------------------------------------------
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if IS_PRODUCTION else "text")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# structlog for every logger; json: one object per line, secrets masked (aegis/core/logging.py).
LOGGING = build_logging(log_format=LOG_FORMAT, level=LOG_LEVEL)
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False  # aegis binds the peer address, never X-Forwarded-For
DJANGO_STRUCTLOG_USER_ID_FIELD = None  # the `actor` field says who

# --- Security -------------------------------------------------------------------------------
CORS_ORIGINS = env.list("CORS_ORIGINS", default=[])
RATE_LIMIT_ENABLED = env.bool("RATE_LIMIT_ENABLED", default=True)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if IS_PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Probes from the load balancer, Docker and Prometheus speak plain HTTP to the instance.
    SECURE_REDIRECT_EXEMPT = [r"^health/?$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Content Security Policy (django-csp 4), in every environment so development shows what
# production enforces. Every script, style sheet and font is served by the server itself
# (admin, Swagger UI, ReDoc through drf-spectacular-sidecar); no inline script runs but with
# the request's nonce. Inline styles are allowed: Swagger UI and ReDoc set them at run time.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF, csp.NONCE],
        "style-src": [csp.SELF, csp.UNSAFE_INLINE],
        "img-src": [csp.SELF, "data:"],
        "font-src": [csp.SELF, "data:"],
        "connect-src": [csp.SELF],
        "worker-src": [csp.SELF, "blob:"],  # ReDoc's search runs in a blob: worker
        "object-src": [csp.NONE],
        "base-uri": [csp.SELF],
        "form-action": [csp.SELF],
        "frame-ancestors": [csp.NONE],
    },
}

# --- REST API (aegis/api/) --------------------------------------------------------------------
# Requests per client IP on public routes (validate, fingerprint, health, ...), and per API
# key elsewhere; <count>/<second|minute|hour|day>. RATE_LIMIT_ENABLED=false turns both off.
THROTTLE_RATE_PUBLIC = env.str("THROTTLE_RATE_PUBLIC", default="600/min")
THROTTLE_RATE_API_KEY = env.str("THROTTLE_RATE_API_KEY", default="3000/min")
# Wrong API keys per client IP; past it, that address gets 429 for any key until the window
# ends, before any database lookup (aegis/core/api/authentication.py). Counted even when the
# key was merely malformed.
THROTTLE_RATE_FAILED_API_KEY = env.str("THROTTLE_RATE_FAILED_API_KEY", default="30/min")
# Failed staff logins at /admin/ per client address (aegis/admin_site.py).
THROTTLE_RATE_FAILED_LOGIN = env.str("THROTTLE_RATE_FAILED_LOGIN", default="10/min")
# Request bodies under /api larger than this are refused with 413.
API_MAX_BODY_BYTES = 64 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "aegis.authentication.APIKeyAuthentication",
        "aegis.core.api.authentication.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["aegis.core.api.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["aegis.core.api.throttles.ClientRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["aegis.core.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "aegis.core.api.renderers.BrowsableAPIOrJSONErrorsRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "aegis.core.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["aegis.core.api.filters.StrictFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "aegis.core.api.exceptions.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AEGIS License Server API",
    "DESCRIPTION": (
        "Issue, validate and revoke Ed25519-signed licenses for commercial Odoo modules. "
        "Send an API key as the `X-API-Key` header (all routes but validate, fingerprint "
        "and the public documents). Every error body is `{detail, code}`, plus `errors` "
        "(field → messages) for invalid fields."
    ),
    "VERSION": AEGIS_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs and the schema are public: no key is read there, so a stale one cannot 401.
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["aegis.core.api.schema.strip_optional_slash"],
    "ENUM_NAME_OVERRIDES": {
        "LicenseStatusEnum": [("active", "active"), ("revoked", "revoked"), ("expired", "expired")],
        "HealthPartStatusEnum": ["ok", "unavailable"],
    },
}

# Browsers on these origins may call the API (django-cors-headers); none by default.
CORS_ALLOWED_ORIGINS = CORS_ORIGINS
CORS_URLS_REGEX = r"^/(api/|\.well-known/|health$|info$)"
CORS_ALLOW_HEADERS = ["accept", "content-type", "x-api-key", "x-request-id"]
CORS_EXPOSE_HEADERS = ["retry-after", "x-request-id"]


def _refuse_insecure_production() -> None:
    """Fail closed: a production process does not start on an insecure setting."""
    problems = []
    if DEBUG:
        problems.append("DEBUG must be false")
    if SECRET_KEY == _DEV_SECRET or len(SECRET_KEY) < 50:
        problems.append("API_SECRET_KEY must be set to a random value of at least 50 characters")
    if not ALLOWED_HOSTS:
        problems.append("ALLOWED_HOSTS must list the host names the server answers to")
    if problems:
        raise ImproperlyConfigured(
            "Refusing to start with ENVIRONMENT=production: " + "; ".join(problems)
        )


def _refuse_unusable_numbers() -> None:
    """Settings that break a feature outright at zero or below, in any environment: a
    revocation list or a lease expired when signed, a validate path without connections."""
    minimums = {
        "REVOCATION_LIST_TTL_HOURS": (REVOCATION_LIST_TTL_HOURS, 1),
        "LEASE_TTL_DAYS": (LEASE_TTL_DAYS, 1),
        "VALIDATE_DB_POOL_SIZE": (VALIDATE_DB_POOL_SIZE, 1),
        "VALIDATE_DB_POOL_TIMEOUT": (VALIDATE_DB_POOL_TIMEOUT, 0.1),
    }
    wrong = [
        f"{name} must be at least {low}" for name, (value, low) in minimums.items() if value < low
    ]
    if wrong:
        raise ImproperlyConfigured("; ".join(wrong))


_refuse_unusable_numbers()
if IS_PRODUCTION:
    _refuse_insecure_production()
