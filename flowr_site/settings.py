"""Flowr site settings, read from the environment with safe development defaults.

Nothing set: SQLite file in the project, DEBUG on, demo mode, Django task-state store.
Production: DEBUG=0, SECRET_KEY and ALLOWED_HOSTS required, DATABASE_URL for
PostgreSQL, FLOWS_* variables for Redis. A missing required variable stops start-up
with an ImproperlyConfigured error naming it.
"""
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=None):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def require(name):
    value = env(name)
    if not value:
        raise ImproperlyConfigured(
            f"The environment variable {name} is required when DEBUG is off "
            f"(production). Set it, or set DEBUG=1 for local development."
        )
    return value


DEBUG = env_bool("DEBUG", True)
# Demo mode (demo login, demo data) is only possible with DEBUG on.
FLOWR_DEMO = DEBUG and env_bool("FLOWR_DEMO", True)

if DEBUG:
    SECRET_KEY = env("SECRET_KEY", "django-insecure-flowr-development-only-key-0123456789")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,[::1]")
else:
    SECRET_KEY = require("SECRET_KEY")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS") or require("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "grappelli.dashboard",  # before grappelli: its admin/index.html renders the desk
    "grappelli",
    "flowr_site.apps.FlowrAdminConfig",  # django.contrib.admin with Flowr's admin site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "import_export",
    "reversion",
    "rangefilter",
    "django_tasks",
    "django_tasks_db",
    "flowr",
]
# Demo rule sets (flowr/demo/flowr_rules.py); switch off with FLOWR_DEMO_RULES=0.
if env_bool("FLOWR_DEMO_RULES", True):
    INSTALLED_APPS.append("flowr.demo")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "reversion.middleware.RevisionMiddleware",
]

ROOT_URLCONF = "flowr_site.urls"
WSGI_APPLICATION = "flowr_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "flowr_site" / "templates"],
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

# SQLite by default: a file in the project, WAL journal and synchronous=NORMAL
# (a committed step survives a crash of the process; a power loss may lose the
# last few commits) and IMMEDIATE transactions so that a step takes the write
# lock up front instead of failing on lock upgrade.
SQLITE_PATH = env("FLOWR_SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Server-side binding and prepared statements for queries run often (a step's
        # three); set FLOWR_PG_PREPARED_STATEMENTS=0 behind a transaction-pooling pgbouncer.
        if env_bool("FLOWR_PG_PREPARED_STATEMENTS", True):
            DATABASES["default"].setdefault("OPTIONS", {}).update(
                server_side_binding=True, prepare_threshold=5)
        # The Procfile's worker sets it to "off": a PostgreSQL crash may then undo the
        # worker's last ~0.6 s of timed steps together with the queue rows that ran them
        # (one WAL: always a consistent prefix), and those timers fire again; no timer is
        # lost or steps twice (only signal receivers outside the database may see a
        # timed step twice). It saves an fsync per commit, three per timer.
        sync_commit = env("FLOWR_PG_SYNCHRONOUS_COMMIT", "")
        if sync_commit:
            if sync_commit not in {"on", "off", "local", "remote_write", "remote_apply"}:
                raise ImproperlyConfigured(f"FLOWR_PG_SYNCHRONOUS_COMMIT={sync_commit!r} is "
                                           f"not a synchronous_commit value (on, off, …).")
            DATABASES["default"].setdefault("OPTIONS", {})["options"] = \
                f"-c synchronous_commit={sync_commit}"
    # Lets parallel test runs on one server use different test databases.
    if env("FLOWR_PG_TEST_DB"):
        DATABASES["default"]["TEST"] = {"NAME": env("FLOWR_PG_TEST_DB")}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": (
                    "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;"
                    "PRAGMA foreign_keys=ON;"
                ),
            },
            "TEST": {"NAME": env("FLOWR_SQLITE_TEST_PATH", "")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Background work (deadlines, large migrations): Django's Tasks API with its database
# backend. Enqueueing is an INSERT in the caller's transaction; `manage.py db_worker`
# processes (Procfile: worker) run the tasks, any number of them.
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default"],
    },
}

# Diagram layouts are computed once per graph shape and shared by every worker process of
# this host through this cache (flowr.layout); FLOWR_CACHE_DIR moves it (the directory
# must be writable by the site's user only). A file cache, not the database: a GET that
# fills it changes no data.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": env("FLOWR_CACHE_DIR", str(BASE_DIR / "var" / "cache")),
        "TIMEOUT": None,
        "OPTIONS": {"MAX_ENTRIES": 1000},
    },
}
FLOWR_LAYOUT_CACHE = "default"

LOGIN_URL = "admin:login"
GRAPPELLI_ADMIN_TITLE = "Flowr"
GRAPPELLI_SWITCH_USER = False
GRAPPELLI_INDEX_DASHBOARD = "flowr.admin.desk.DeskDashboard"  # the admin index is the desk
IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env("DATA_UPLOAD_MAX_MEMORY_SIZE", str(5 * 1024 * 1024)))

# Flowr and django-flows settings: taken from the environment variable of the same
# name when it is set; every default lives in flowr/config.py.
_FLOWR_SETTINGS = {
    "FLOWS_STATE_STORE": str, "FLOWS_REDIS_STATE_STORE_HOST": str,
    "FLOWS_REDIS_STATE_STORE_PORT": int, "FLOWS_REDIS_STATE_STORE_DB": int,
    "FLOWS_REDIS_STATE_STORE_USER": str, "FLOWS_REDIS_STATE_STORE_PASSWORD": str,
    "FLOWS_REDIS_STATE_STORE_SOCKET_TIMEOUT": float,
    "FLOWS_REDIS_STATE_STORE_CONNECT_TIMEOUT": float, "FLOWS_TASK_IDLE_TIMEOUT": int,
    "FLOWR_IMPORT_MAX_BYTES": int, "FLOWR_IMPORT_MAX_STATES": int,
    "FLOWR_IMPORT_TMP_DIR": str, "FLOWR_IMPORT_TMP_MAX_AGE": int,
    "FLOWR_TIMER_RETRIES": int, "FLOWR_TIMER_RETRY_DELAY": float, "FLOWR_TIMER_LEASE": float,
    "FLOWR_TIMER_SWEEP_INTERVAL": float, "FLOWR_TIMERS_LATE_AFTER": float,
}
for _name, _type in _FLOWR_SETTINGS.items():
    if env(_name) is not None:
        try:
            globals()[_name] = _type(env(_name))
        except ValueError:
            raise ImproperlyConfigured(f"{_name}={env(_name)!r} is not a valid {_type.__name__}.")

# Cookies sent over HTTPS only: on in production (DEBUG=0). FLOWR_SECURE_COOKIES=0 lets
# production settings be tried over plain HTTP (check --deploy then warns about it).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("FLOWR_SECURE_COOKIES", not DEBUG)
# Trust the X-Forwarded-Proto header only when told a proxy sets it (and strips it
# from clients); otherwise anyone could claim HTTPS by sending the header themselves.
if env_bool("FLOWR_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"

# One console handler on the root logger. Django's own "django" logger handlers are
# replaced by none, so every record (a 500's traceback included) is written once; a
# 4xx response (403, 404, a refused CSRF token) is one line, without a traceback.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"client_errors_without_traceback": {
        "()": "flowr_site.log.ClientErrorsWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler",
                             "filters": ["client_errors_without_traceback"]}},
    "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "WARNING")},
}
