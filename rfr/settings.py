"""rfr settings: one module, driven by the environment.

No environment at all gives the embedded default: SQLite, media on local disk, and Celery tasks run in the
calling process. DATABASE_URL and REDIS_URL switch to PostgreSQL and a Redis broker served by separate Celery
workers: the production shape. Every variable is listed in docs/configuration.md.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from rfr.env import (
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_path,
    env_str,
    redis_url,
)
from rfr.objectstore import local_storages, storages_switch
from rfr.queues import TASK_QUEUES, Queue, TaskName

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("RFR_DEBUG", default=False)
_DEV_SECRET = "rfr-embedded-default-insecure-secret-key-change-me-0123456789"
SECRET_KEY = env_str("RFR_SECRET_KEY", _DEV_SECRET)
RFR_DEFAULT_SECRET_KEY = _DEV_SECRET  # so that `check --deploy` (rfr/checks.py) can recognise it
DATABASE_CONFIG = database_from_url("DATABASE_URL")
REDIS_URL = redis_url("REDIS_URL")
PRODUCTION_SHAPE = DATABASE_CONFIG is not None and REDIS_URL is not None
# The embedded default may run on the built-in key; the production shape (or RFR_REQUIRE_SECRET_KEY) may not:
# anyone who reads this file could forge its sessions and CSRF tokens.
if SECRET_KEY == _DEV_SECRET and (PRODUCTION_SHAPE or env_bool("RFR_REQUIRE_SECRET_KEY", default=False)):
    raise ImproperlyConfigured(
        "RFR_SECRET_KEY must be set (a long random value) when DATABASE_URL and REDIS_URL are set or "
        "RFR_REQUIRE_SECRET_KEY is on; the built-in key is public."
    )

ALLOWED_HOSTS = env_list("RFR_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("RFR_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "accounts.admin_apps.RfrAdminConfig",  # django.contrib.admin with rfr's site policy (accounts.admin_site)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "rfr.apps.RfrConfig",  # deployment checks (rfr/checks.py)
    *(["drf_spectacular_sidecar"] if importlib.util.find_spec("drf_spectacular_sidecar") else []),
    "guardian",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "audit",
    "accounts",
    "cases",
    "search",
]

MIDDLEWARE = [
    # First: the client's address (from a trusted proxy only) before anything reads REMOTE_ADDR.
    "rfr.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "rfr.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.AdminTOTPRequiredMiddleware",
    "accounts.middleware.PasswordChangeRequiredMiddleware",  # after an admin's reset: choose your own first
    "django.contrib.messages.middleware.MessageMiddleware",
    # After auth and messages, so the 413 page for a body refused by rfr.wsgi renders like any other page.
    "rfr.middleware.RequestTooLargeMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it sees a view's refusal first: an ApplicationError becomes a page message (rfr.error_handling).
    "rfr.error_handling.ApplicationErrorMiddleware",
]

ROOT_URLCONF = "rfr.urls"
WSGI_APPLICATION = "rfr.wsgi.application"

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
                "rfr.context_processors.rfr",
                "cases.context_processors.review_queue",  # the review queue's counts in the navigation
            ],
        },
    },
]

# Data directory: media, model packs and the derived search index all live under it.
DATA_DIR = env_path("RFR_DATA_DIR", BASE_DIR / "var")
MEDIA_ROOT = env_path("RFR_MEDIA_ROOT", DATA_DIR / "media")
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("RFR_STATIC_ROOT", DATA_DIR / "static")
# Every stored file goes through a named storage (rfr/objectstore.py): local folders by default; with
# RFR_STORAGE=s3 each entry moves into one S3-compatible bucket (switched at the end of this module, so that
# it covers entries added below too). Add new entries before that line.
STORAGES = local_storages()

if DATABASE_CONFIG is not None:
    DATABASES = {"default": DATABASE_CONFIG}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "rfr.sqlite3",
            # WAL lets readers run beside the one writer; NORMAL sync is durable across application crashes.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "accounts.backends.LockoutBackend",  # first: refuses locked username+address before any password check
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Sign-in: failures per username+address within the window lock it out; admins may be required to use TOTP.
RFR_LOGIN_MAX_FAILURES = env_int("RFR_LOGIN_MAX_FAILURES", 5, minimum=1)
RFR_LOGIN_FAILURE_WINDOW_SECONDS = env_int("RFR_LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60, minimum=60)
RFR_LOGIN_LOCKOUT_SECONDS = env_int("RFR_LOGIN_LOCKOUT_SECONDS", 15 * 60, minimum=60)
RFR_REQUIRE_ADMIN_TOTP = env_bool("RFR_REQUIRE_ADMIN_TOTP", default=False)
# API tokens expire this long after issue (a working day: scripts ask again, with the TOTP code where needed).
RFR_TOKEN_TTL_HOURS = env_int("RFR_TOKEN_TTL_HOURS", 12, minimum=1, maximum=24 * 90)
OTP_TOTP_ISSUER = "rfr"

SESSION_COOKIE_AGE = env_int("RFR_SESSION_IDLE_SECONDS", 30 * 60, minimum=60)
SESSION_SAVE_EVERY_REQUEST = True  # idle expiry: each request pushes the deadline on
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("RFR_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# HSTS goes with secure cookies: once the site is HTTPS-only, browsers are told never to try plain HTTP.
SECURE_HSTS_SECONDS = env_int("RFR_HSTS_SECONDS", 365 * 24 * 60 * 60 if SESSION_COOKIE_SECURE else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("RFR_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("RFR_HSTS_PRELOAD", default=False)
SECURE_SSL_REDIRECT = env_bool("RFR_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the container health check speaks plain HTTP
# Proxies whose X-Forwarded-For / X-Real-IP / X-Forwarded-Proto are believed (addresses or CIDR networks).
# From any other peer those headers are dropped (rfr.middleware.TrustedProxyMiddleware).
RFR_TRUSTED_PROXIES = env_list("RFR_TRUSTED_PROXIES", [])
for _proxy in RFR_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"RFR_TRUSTED_PROXIES entry {_proxy!r} is not an IP address or CIDR network (e.g. 172.30.57.0/24)."
        ) from None
if RFR_TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content-Security-Policy on every response (rfr.middleware.SecurityHeadersMiddleware): scripts only from
# rfr's own static files, never inline. Styles also allow 'unsafe-inline', for the Django admin's and the
# API docs' own <style> blocks; no rfr template uses inline styles.
RFR_CONTENT_SECURITY_POLICY = env_str(
    "RFR_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'",
)

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("RFR_TIME_ZONE", "Europe/London")
USE_I18N = True
USE_TZ = True

# Uploads: one stated limit, 40 MB (binary: 41,943,040 bytes) per image (rfr/limits.py). A request body may
# carry one image plus the envelope (form fields, multipart headers); a larger one is refused by rfr.wsgi
# before any of it is read. Form fields and JSON bodies without a file may use the envelope only.
RFR_MAX_UPLOAD_BYTES = env_int("RFR_MAX_UPLOAD_BYTES", 40 * 1024 * 1024, minimum=1024)
RFR_REQUEST_ENVELOPE_BYTES = env_int("RFR_REQUEST_ENVELOPE_BYTES", 1024 * 1024, minimum=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = RFR_REQUEST_ENVELOPE_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024  # larger files are spooled to a temporary file, not memory

REST_FRAMEWORK = {
    # Token first: a request with no credentials gets 401 with `WWW-Authenticate: Token`, which tells an API
    # client what to send; the browser's session still works for the pages' own calls.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.tokens.ExpiringTokenAuthentication",  # hashed, expiring, revocable (accounts.tokens)
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "rfr.api_schema.ErrorDocumentingAutoSchema",
    # Every API refusal, whatever raised it, is {"error": CODE, "message": TEXT[, "fields": {...}]}.
    "EXCEPTION_HANDLER": "rfr.error_handling.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {"token": env_str("RFR_TOKEN_THROTTLE_RATE", "20/minute")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "rfr API",
    "DESCRIPTION": "Retrospective facial recognition workbench. Results are intelligence only, never identification.",
    "VERSION": "0.1.0",
    # The schema and docs are for signed-in people (session or token), and Swagger UI comes from this
    # server's static files (drf-spectacular-sidecar), never a CDN: rfr/api_docs.py.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No online validator badge: Swagger UI would load it from validator.swagger.io for any non-local host.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Several models have a "status"; each gets its own, named enum in the schema.
    "ENUM_NAME_OVERRIDES": {
        "CaseStatusEnum": "cases.models.Case.Status",
        "ProbeStatusEnum": "cases.models.Probe.Status",
        "SearchStatusEnum": "cases.models.Search.Status",
    },
}

# Celery: eager (in-process) without a broker, real workers with REDIS_URL.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = REDIS_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-task leaves the message for another worker
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A message taken by a worker that then dies (kill -9, power loss) is handed out again after this many
# seconds. Tasks are idempotent (they re-fetch by primary key and skip finished work), so a redelivery of a
# task that was merely slow costs time, not correctness.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("RFR_TASK_VISIBILITY_TIMEOUT", 600, minimum=1),
    # A broker that is down must cost a request a second or two, not hang it (rfr.queues).
    "socket_connect_timeout": 2,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.25, "interval_max": 0.5}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Each task runs on its queue (rfr.queues): inference, search or housekeeping. Anything unrouted goes to
# housekeeping, which every deployment runs.
CELERY_TASK_DEFAULT_QUEUE = Queue.HOUSEKEEPING.value
CELERY_TASK_ROUTES = {name.value: {"queue": queue.value} for name, queue in TASK_QUEUES.items()}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# How often kept searches are re-run on new enrolments (cases.research): one housekeeping cycle.
RFR_RESEARCH_INTERVAL_SECONDS = env_int("RFR_RESEARCH_INTERVAL_SECONDS", 10 * 60, minimum=10)
# Retention purges, run by `celery -A rfr beat` beside the workers (production shape).
CELERY_BEAT_SCHEDULE = {
    "purge-expired-cases": {"task": TaskName.CASES_PURGE_EXPIRED.value, "schedule": 24 * 60 * 60},
    "purge-expired-gallery-images": {"task": TaskName.GALLERY_PURGE_EXPIRED.value, "schedule": 24 * 60 * 60},
    # A checkpoint of the audit chain's head, besides the one written as each event commits (audit.anchor).
    "audit-anchor-head": {"task": TaskName.AUDIT_ANCHOR.value, "schedule": 60 * 60},
    # Healing after faults (cases.housekeeping): work the broker lost or never got, dead enrolment runs, and
    # files no row names.
    "requeue-waiting-work": {"task": TaskName.WORK_REQUEUE.value, "schedule": 60},
    "check-enrolment-runs": {"task": TaskName.ENROLMENT_RUNS_CHECK.value, "schedule": 5 * 60},
    "sweep-orphan-files": {"task": TaskName.STORAGE_SWEEP.value, "schedule": 6 * 60 * 60},
    # Searches kept searching are re-run on their galleries' new enrolments (cases.research).
    "re-search-new-enrolments": {"task": TaskName.RESEARCH_DUE.value, "schedule": RFR_RESEARCH_INTERVAL_SECONDS},
}
# Probes and searches waiting this long with no sign of a worker are sent again (then twice as long, up to
# 32 times); ones processing with no progress for RFR_TASK_STALE_SECONDS are taken as lost with their worker.
RFR_REQUEUE_AFTER_SECONDS = env_int("RFR_REQUEUE_AFTER_SECONDS", 120, minimum=1)
RFR_TASK_STALE_SECONDS = env_int("RFR_TASK_STALE_SECONDS", 300, minimum=1)
# A running enrolment run with no heartbeat for this long is marked interrupted (its command or job died).
RFR_ENROLMENT_RUN_DEAD_SECONDS = env_int("RFR_ENROLMENT_RUN_DEAD_SECONDS", 600, minimum=1)
# Files under media that no row names are removed by the sweep once older than this (uploads in flight are not).
RFR_ORPHAN_GRACE_SECONDS = env_int("RFR_ORPHAN_GRACE_SECONDS", 3600, minimum=0)

# Face engine and model packs.
RFR_MODEL_PACK_DIR = env_path("RFR_MODEL_PACK_DIR", DATA_DIR / "modelpacks")
RFR_MODEL_PACK = env_str("RFR_MODEL_PACK", "opencv-yunet2023mar-sface2021dec")
# One worker process per core, each with one inference thread, keeps two workers on two cores from
# oversubscribing; a process that runs alone (web in embedded mode, management commands) may use more.
RFR_ENGINE_THREADS = env_int("RFR_ENGINE_THREADS", 0 if CELERY_TASK_ALWAYS_EAGER else 1, minimum=0, maximum=64)
# FAISS threads per process for gallery search: single queries run fastest on one (bench/index).
RFR_SEARCH_THREADS = env_int("RFR_SEARCH_THREADS", 1, minimum=1, maximum=64)
# Search nodes (docs/galleries-and-index.md): only a Celery worker consuming the search queue, or a process
# started with RFR_SEARCH_NODE=1, may load a gallery index; the embedded default (tasks in-process) is one.
RFR_SEARCH_NODE = env_bool("RFR_SEARCH_NODE", False)
# The gallery index implementation behind search.index.interface (the seam for pgvector, Milvus, Qdrant).
RFR_INDEX_BACKEND = env_str("RFR_INDEX_BACKEND", "search.index.live.get_index")
# Index snapshots go through STORAGES["index"]: local files here by default; S3-compatible storage in production.
STORAGES["index"] = {
    "BACKEND": "search.index.store.SnapshotFileStorage",
    "OPTIONS": {"location": str(env_path("RFR_INDEX_STORAGE_DIR", DATA_DIR / "index"))},
}
RFR_MAX_IMAGE_PIXELS = env_int("RFR_MAX_IMAGE_PIXELS", 60_000_000, minimum=10_000)
RFR_MAX_IMAGE_SIDE = env_int("RFR_MAX_IMAGE_SIDE", 16_384, minimum=64)
RFR_DEFAULT_THRESHOLD = env_float("RFR_DEFAULT_THRESHOLD", 0.30, minimum=-1.0, maximum=1.0)
# Case workbench: how long a closed case's probes and results are kept, and who may give the second review.
RFR_CASE_RETENTION_DAYS = env_int("RFR_CASE_RETENTION_DAYS", 6 * 365, minimum=0)
RFR_SECOND_REVIEWER_GROUPS = env_list("RFR_SECOND_REVIEWER_GROUPS", ["supervisor", "reviewer"])
RFR_DEFAULT_TOP_K = env_int("RFR_DEFAULT_TOP_K", 50, minimum=1, maximum=500)
# Video evidence (cases.video): the largest footage accepted (bytes, seconds, frame size), how many frames a
# second are analysed (0: every frame), how many sampled frames are stored per resumable step, and how many
# best shots each track keeps and fuses for its search (8: faceengine.tracking.FUSED_SHOTS, what
# `evaluate video` measures).
RFR_VIDEO_MAX_BYTES = env_int("RFR_VIDEO_MAX_BYTES", 2 * 1024 * 1024 * 1024, minimum=1024)
RFR_VIDEO_MAX_DURATION_S = env_float("RFR_VIDEO_MAX_DURATION_S", 2 * 3600.0, minimum=1.0)
RFR_VIDEO_MAX_WIDTH = env_int("RFR_VIDEO_MAX_WIDTH", 3840, minimum=16)
RFR_VIDEO_MAX_HEIGHT = env_int("RFR_VIDEO_MAX_HEIGHT", 2160, minimum=16)
RFR_VIDEO_SAMPLE_FPS = env_float("RFR_VIDEO_SAMPLE_FPS", 5.0, minimum=0.0, maximum=240.0)
RFR_VIDEO_CHUNK_FRAMES = env_int("RFR_VIDEO_CHUNK_FRAMES", 25, minimum=1, maximum=10_000)
RFR_VIDEO_BEST_SHOTS = env_int("RFR_VIDEO_BEST_SHOTS", 8, minimum=1, maximum=50)
# Bulk enrolment from the gallery page (search.gallery_admin): the folders the server may read from (comma
# separated; none by default, so naming a folder is refused until an operator lists one), and the caps on an
# uploaded zip, checked before anything is extracted (zip bombs): size of the upload, members, uncompressed bytes.
RFR_ENROLMENT_ROOTS = [Path(p).expanduser().resolve() for p in env_list("RFR_ENROLMENT_ROOTS", [])]
# Server folders an admin may queue an accuracy evaluation on (search.evaluations); the enrolment roots if unset.
RFR_EVALUATION_ROOTS = [
    Path(p).expanduser().resolve() for p in env_list("RFR_EVALUATION_ROOTS", [])
] or RFR_ENROLMENT_ROOTS
RFR_ENROLMENT_ZIP_MAX_BYTES = env_int("RFR_ENROLMENT_ZIP_MAX_BYTES", 512 * 1024 * 1024, minimum=1024)
RFR_ENROLMENT_ZIP_MAX_MEMBERS = env_int("RFR_ENROLMENT_ZIP_MAX_MEMBERS", 20_000, minimum=1)
RFR_ENROLMENT_ZIP_MAX_UNCOMPRESSED_BYTES = env_int(
    "RFR_ENROLMENT_ZIP_MAX_UNCOMPRESSED_BYTES", 2 * 1024 * 1024 * 1024, minimum=1024
)
RFR_FACES_DATA = env_path("RFR_FACES_DATA", (BASE_DIR.parent / "shared" / "data" / "faces").resolve())

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("RFR_LOG_LEVEL", "INFO")},
    "loggers": {"faiss.loader": {"level": "WARNING"}},
}

# Audit trail tamper evidence (docs/audit-and-permissions.md): the key of the row hashes, held outside the
# database, and the append-only file (and optionally syslog) that the chain's head is anchored in.
RFR_AUDIT_KEY = env_str("RFR_AUDIT_KEY", "")
RFR_AUDIT_KEY_FILE = env_path("RFR_AUDIT_KEY_FILE", DATA_DIR / "audit.key")
RFR_AUDIT_ANCHOR_FILE = env_path("RFR_AUDIT_ANCHOR_FILE", DATA_DIR / "audit-anchor.log")
RFR_AUDIT_ANCHOR_SYSLOG = env_str("RFR_AUDIT_ANCHOR_SYSLOG", "")  # "/dev/log" or "host:port" (UDP); "" = off
if RFR_AUDIT_KEY and len(RFR_AUDIT_KEY) < 32:
    raise ImproperlyConfigured("RFR_AUDIT_KEY must be at least 32 characters (e.g. `openssl rand -hex 32`).")
# The embedded default generates its key file on first use. With a database server the operator must choose
# the key, so that a new container never silently starts a new one (the test suite sets its own key in
# tests/settings.py).
if DATABASE_CONFIG is not None and not RFR_AUDIT_KEY:
    if not os.environ.get("RFR_AUDIT_KEY_FILE"):
        raise ImproperlyConfigured("RFR_AUDIT_KEY or RFR_AUDIT_KEY_FILE must be set when DATABASE_URL is set.")
    if not RFR_AUDIT_KEY_FILE.is_file():
        raise ImproperlyConfigured(f"RFR_AUDIT_KEY_FILE={RFR_AUDIT_KEY_FILE} does not exist.")

os.makedirs(DATA_DIR, exist_ok=True)

# Last: every STORAGES entry, whichever app added it, on local disk or in the object store (rfr/objectstore.py).
RFR_STORAGE = env_str("RFR_STORAGE", "local")
try:
    STORAGES = storages_switch(
        STORAGES,
        backend=RFR_STORAGE,
        data_dir=DATA_DIR,
        bucket=env_str("RFR_S3_BUCKET", ""),
        endpoint_url=env_str("RFR_S3_ENDPOINT_URL", ""),
        region=env_str("RFR_S3_REGION", ""),
        prefix=env_str("RFR_S3_PREFIX", ""),
        addressing_style=env_str("RFR_S3_ADDRESSING_STYLE", ""),
    )
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from error
