"""One settings module, driven by environment variables with safe defaults.

Without any environment the app runs on an embedded default: SQLite, a file-system
Celery broker (so a worker still runs imports in the background) and a file cache.
With DATABASE_URL and REDIS_URL it uses PostgreSQL and Redis.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("LHS_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    """An unset or empty variable means the default: `DJANGO_SECURE_SSL_REDIRECT=` is not "off"."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)


def _local_secret(name: str) -> str:
    """A random secret kept in var/ for installs that set none (a laptop, the demo).

    Production sets DJANGO_SECRET_KEY; this keeps the default safe without a known key.
    """
    path = VAR_DIR / name
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or _local_secret("secret_key")
# Subject keys in imports are stored only as an HMAC with this secret. It is separate from
# SECRET_KEY so that rotating one does not make the same patient hash differently.
SUBJECT_KEY_SECRET = os.environ.get("LHS_SUBJECT_KEY_SECRET") or _local_secret("subject_key")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "simple_history",
    "axes",
    "csp",
    # Object permissions as predicates (initiatives/rules.py), for views, API and templates.
    "rules",
    "units",
    "forums",
    "measures",
    "initiatives",
    "dashboards",
    "demo",
]

MIDDLEWARE = [
    "lhs.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "lhs.middleware.AuditContextMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "lhs.middleware.IdleSessionTimeoutMiddleware",
    "lhs.middleware.PrivateNoStoreMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: it turns a locked-out log-in into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "lhs.urls"
WSGI_APPLICATION = "lhs.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "lhs.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'lhs.sqlite3'}",
        # Persistent connections: ~6x more requests/s than reconnecting (DESIGN.md §7).
        conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # JIT compilation cost ~0.4 s per aggregation query here and never paid back on queries
    # of a few seconds at most (measured on the aggregation GROUP BY: 1.14 s → 0.76 s).
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # A file, not :memory:, so a separate Celery worker process can see test data.
    # One per test run, so that runs side by side do not delete each other's database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("LHS_TEST_DB") or str(VAR_DIR / f"test-{os.getpid()}.sqlite3")
    }
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Progress, upload limits and worker heartbeats live here: with Redis away a page
            # must answer at once (they degrade, measures.services), not wait for TCP.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
else:
    # A file cache is shared between the web process and the embedded worker.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out account or address is refused before its password is checked.
    "axes.backends.AxesStandaloneBackend",
    # django-rules: `user.has_perm("initiatives.transition", initiative)` asks the predicates.
    "rules.permissions.ObjectPermissionBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Log-in throttling (django-axes): per account and per client address, each counted alone.
AXES_ENABLED = env_bool("LHS_LOGIN_THROTTLING", True)
AXES_FAILURE_LIMIT = env_int("LHS_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LHS_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# Log-ins are kept in the audit log (units.AuditEvent, with its retention), not twice.
AXES_DISABLE_ACCESS_LOG = True
AXES_LOCKOUT_CALLABLE = "units.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "units.audit.client_address"
# Only behind a proxy that appends the client's address to X-Forwarded-For (and strips what
# clients send): without it every log-in would seem to come from the proxy.
LHS_TRUST_X_FORWARDED_FOR = env_bool("LHS_TRUST_X_FORWARDED_FOR", False)
# The audit log is kept this long (Swedish rules: access logs at least 5 years).
LHS_AUDIT_RETENTION_DAYS = env_int("LHS_AUDIT_RETENTION_DAYS", 1900)

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("sv", _("Swedish"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("LHS_TIME_ZONE", "Europe/Stockholm")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))
# Development and tests serve straight from the apps' folders, without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG or env_bool("LHS_PLAIN_STATIC")
if WHITENOISE_USE_FINDERS and not STATIC_ROOT.is_dir():
    STATIC_ROOT = None
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or env_bool("LHS_PLAIN_STATIC")
            # Compressed, hashed names with far-future caching (plotly.js is 4.8 MB raw).
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Uploads of up to a million rows: keep them on disk, never whole in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# The address people reach the app at, for links in e-mails sent by workers.
LHS_SITE_URL = os.environ.get("LHS_SITE_URL", "http://127.0.0.1:8000")
# Mail goes to the console unless SMTP is configured (EMAIL_HOST and friends).
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if os.environ.get("DJANGO_EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = os.environ.get("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("DJANGO_EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "lhs@localhost")
# For DJANGO_EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend (the e2e tests).
EMAIL_FILE_PATH = os.environ.get("DJANGO_EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
# Notifications (initiatives.notifications): the local hour from which each day's digest goes
# out (beat looks every hour, so a digest missed while a worker was down goes at the next),
# and how long before a vote's deadline the members who have not voted are reminded.
LHS_DIGEST_HOUR = env_int("LHS_DIGEST_HOUR", 7)
LHS_VOTE_REMINDER_HOURS = env_int("LHS_VOTE_REMINDER_HOURS", 24)
LHS_IMPORT_MAX_BYTES = int(os.environ.get("LHS_IMPORT_MAX_BYTES", str(200 * 1024 * 1024)))
# Files attached to initiatives (initiatives.attachments): the largest accepted, and how many
# one initiative may hold.
LHS_ATTACHMENT_MAX_BYTES = env_int("LHS_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024)
LHS_ATTACHMENTS_PER_INITIATIVE = env_int("LHS_ATTACHMENTS_PER_INITIATIVE", 50)

# Security: safe when DEBUG is off; HTTPS settings follow the deployment.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Absolute from log-in (units.signals fixes the expiry date then), besides the idle timeout.
SESSION_COOKIE_AGE = 12 * 60 * 60
# Read from the cache, written through to the database: a page's session costs one cache read
# instead of a query and the ORM around it (~2 ms of ~12 on a warm dashboard), and a session
# survives a cache flush. Ending one goes through the store (units.services), never the table.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
LHS_SESSION_IDLE_MINUTES = env_int("LHS_SESSION_IDLE_MINUTES", 30)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# No inline scripts or styles and no foreign origins (templates use static files only).
# data: images: Swagger UI and the admin draw their icons as data: SVG; blob: images: plotly
# draws a chart into one to save it as PNG (its download button and ours).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "units.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_RATES": {"imports": "120/hour"},
    # The services' refusals (Django ValidationErrors with codes) become 400/403/404/409.
    "EXCEPTION_HANDLER": "lhs.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Learning Health System API",
    "DESCRIPTION": "Data import and read access to measures and their series.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "APPEND_COMPONENTS": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    "SECURITY": [{"bearerAuth": []}, {"cookieAuth": []}],
    # A measure's frequency and a series' grain are one choice set.
    "ENUM_NAME_OVERRIDES": {
        "FrequencyEnum": "measures.enums.Frequency",
        # An initiative's state, kind and origin, and a forum's kind: one name each.
        "InitiativeStateEnum": "initiatives.enums.State",
        "InitiativeKindEnum": "initiatives.enums.InitiativeKind",
        "OriginKindEnum": "initiatives.enums.OriginKind",
        "ForumKindEnum": "forums.enums.ForumKind",
        "SupportKindEnum": "initiatives.enums.SupportKind",
        "SupportStateEnum": "initiatives.enums.SupportState",
    },
}

# Celery: Redis when configured, else kombu's SQLAlchemy transport on a SQLite file of its own
# (lhs/broker.py), so that `make run` needs no services and background work still happens in a
# real worker process. (The file-system transport could hand out half-written messages.)
CELERY_BROKER_URL = REDIS_URL or f"lhs-sqlite+sqlite:///{VAR_DIR / 'broker.sqlite3'}"
if not REDIS_URL:
    # Polled; a fifth of a second keeps imports feeling immediate at no measurable cost.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.2}
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A message delivered to a worker that died is re-sent after this long; the sweeper
        # re-sends an import long before (its state is in PostgreSQL, measures.services).
        "visibility_timeout": 3600,
        # An outage must not hang a web request: fail fast, the sweeper sends it later.
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
# Publishing while the broker is down fails after about a second instead of hanging the
# upload; the batch is kept and the sweeper enqueues it once the broker is back.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 0.5,
}
# Keep reconnecting for as long as the broker is away; never give up and exit.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("LHS_CELERY_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "purge-audit-events": {
        "task": "units.tasks.audit_events_purge_task",
        "schedule": crontab(hour=3, minute=15),
    },
    # Finds imports whose message or worker was lost; cheap (a query or two), so often.
    "sweep-import-batches": {
        "task": "measures.tasks.import_batches_sweep",
        "schedule": float(os.environ.get("LHS_SWEEP_SECONDS", "15")),
    },
    # Attachment files that no row names (an upload whose transaction rolled back, a deleted
    # initiative's files): initiatives.attachments explains why some can be left.
    "sweep-attachment-files": {
        "task": "initiatives.tasks.attachment_files_sweep_task",
        "schedule": crontab(hour=3, minute=45),
    },
    # Voting rounds close at their deadline (a minute late at most); a round closes once.
    "close-due-voting-rounds": {
        "task": "initiatives.tasks.voting_rounds_close_due_task",
        "schedule": 60.0,
    },
    # Notifications: the day's digests (from LHS_DIGEST_HOUR; one per person, forum and day),
    # immediate e-mails whose task was lost (broker or worker down), and vote reminders.
    "send-notification-digests": {
        "task": "initiatives.tasks.notifications_send_digests_task",
        "schedule": crontab(minute=2),
    },
    "send-lost-immediate-notifications": {
        "task": "initiatives.tasks.notifications_send_immediate_task",
        "schedule": 300.0,
    },
    "remind-voting-rounds": {
        "task": "initiatives.tasks.voting_rounds_remind_task",
        "schedule": crontab(minute="*/15"),
    },
    # Every series from the raw observations, at night (imports refresh theirs as they land).
    "recompute-all-series": {
        "task": "measures.tasks.series_recompute_all_task",
        "schedule": crontab(hour=2, minute=30),
    },
}
# Measures per nightly task. Each task scans the observations once (in parallel on the
# server), so one task for all measures is fastest; split only when one would not fit in memory.
LHS_AGGREGATION_CHUNK_MEASURES = int(os.environ.get("LHS_AGGREGATION_CHUNK_MEASURES", "200"))
# Parallel workers PostgreSQL may use for that scan. Its leader process scans too, so by
# default one process per core of this machine: the default deployment (docker-compose) runs
# the database beside the app. Where the database has a host of its own: its cores - 1.
LHS_AGGREGATION_DB_WORKERS = int(
    os.environ.get("LHS_AGGREGATION_DB_WORKERS", max(1, (os.cpu_count() or 2) - 1))
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LHS_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
