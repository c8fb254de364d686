"""Settings for Jupyter RTC.

Everything a deployment changes comes from the environment, with an embedded default that works on
a laptop: SQLite in ``var/``, the in-memory channel layer, and a Jupyter Server launched locally.
See the configuration table in README.md.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url

from jupyter_sync import conf as jupyter_conf
from rtc_project.env import env_bool, env_int, env_list, env_proxy_ssl_header, env_str
from rtc_project.private_files import private_dir, private_sqlite, write_private
from tables.conf import settings_from_environ

BASE_DIR = Path(__file__).resolve().parent.parent
# 0700 when made here, whatever the umask (rtc_project/private_files.py).
DATA_DIR = private_dir(Path(env_str("DATA_DIR", str(BASE_DIR / "var"))))


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in DATA_DIR (0600)."""
    configured = env_str("SECRET_KEY")
    if configured:
        return configured
    path = DATA_DIR / "secret_key"
    write_private(path, secrets.token_urlsafe(50))  # only if missing: never readable by others
    path.chmod(0o600)  # one made by an older version with the umask's mode
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Behind a proxy that terminates TLS: the header saying a request came over https (for Django's
# CSRF check and the WebSocket Origin check, relay.auth.server_scheme).
SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    # Not rest_framework.authtoken, which stores keys in clear: relay.models.ApiToken.
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "tables",
    "relay",
    "jupyter_sync",
    "todo",
]

MIDDLEWARE = [
    # Django's own, with the hooks that touch no database run on the event loop instead of
    # one thread hop each (rtc_project/middleware.py).
    "rtc_project.middleware.SecurityMiddleware",
    "rtc_project.middleware.SessionMiddleware",
    "rtc_project.middleware.CommonMiddleware",
    "rtc_project.middleware.CsrfViewMiddleware",
    "rtc_project.middleware.AuthenticationMiddleware",
    "rtc_project.middleware.MessageMiddleware",
    "rtc_project.middleware.XFrameOptionsMiddleware",
    # /api/: a database that cannot be reached answers a JSON 503, not a 500 page.
    "rtc_project.api_errors.APIErrorsMiddleware",
]

ROOT_URLCONF = "rtc_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "rtc_project" / "templates"],
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

WSGI_APPLICATION = None
ASGI_APPLICATION = "rtc_project.asgi.application"

# Database: SQLite file by default, anything dj-database-url understands when DATABASE_URL is set.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        # Keep connections: reconnecting on every database call costs milliseconds per write
        # (and, on SQLite, a WAL checkpoint with an fsync when the last connection closes).
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Writers take the lock up front, so two writers never deadlock upgrading a read lock.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so the test database is shared by threads and helper processes.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_db.sqlite3")}
    # Made 0600 before SQLite opens it (its -wal and -shm files take the database file's mode).
    private_sqlite(str(DATABASES["default"]["NAME"]))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Channel layer: in-memory (one process) unless REDIS_URL is set.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # Pub/sub channels ignore Redis database numbers: the prefix keeps deployments
            # sharing one Redis apart.
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("REDIS_PREFIX", "rtc")},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

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
STATIC_ROOT = DATA_DIR / "static"
# Serve /static/ from the ASGI app itself (the embedded default); turn off behind a web server.
SERVE_STATIC = env_bool("SERVE_STATIC", True)

REST_FRAMEWORK = {
    # Token first: a request without credentials gets 401 with "WWW-Authenticate: Token".
    # A bridge's token may name the Jupyter user it acts for (X-Jupyter-User; relay/identity.py).
    # Session authentication enforces CSRF on unsafe methods.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "relay.rest_auth.TokenOrJupyterUserAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON nested past RTC_MAX_NESTING (plus a request's own fields) is a 400 too-deep, never
    # a parser's recursion turned into a 500.
    "DEFAULT_PARSER_CLASSES": [
        "tables.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Rates: RTC_API_RATE_USER and RTC_API_RATE_ANON (tables/conf.py), read at each request.
    "DEFAULT_THROTTLE_CLASSES": [
        "tables.api.throttling.AnonRateThrottle",
        "tables.api.throttling.UserRateThrottle",
    ],
    # Clients are told apart by the connection's address, never by a forgeable
    # X-Forwarded-For; behind a proxy, run daphne with --proxy-headers.
    "NUM_PROXIES": 0,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Jupyter RTC API",
    "DESCRIPTION": (
        "Datastores (collaborative documents with tables), their state at any serial, their "
        "history, and writes through the same path as the WebSocket protocols. Authenticate "
        "with `Authorization: Token <key>` (manage.py create_token) or a session cookie (with "
        "the CSRF token on writes). Errors are JSON: {code, detail}. The jupyter endpoints "
        "(/api/kernels, /api/sessions, /api/contents, /api/executions...) are Jupyter Server's "
        "REST API, answered from the shared model and carried out by the supernode."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components (with what validation demands: minLength...).
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets with the same field name in several components get names of their own.
    "ENUM_NAME_OVERRIDES": {
        "DocumentTypeEnum": "jupyter_sync.api.document_serializers.DOCUMENT_TYPES",
        "DocumentFormatEnum": "jupyter_sync.api.document_serializers.FORMATS",
        "ContentTypeEnum": "jupyter_sync.api.serializers.CONTENT_TYPES",
    },
    # The schema and its viewer are public; the endpoints they describe are not.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Swagger UI's assets are served from this server's static files, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Jupyter Server the supernode talks to; unset = launch one locally.
JUPYTER_URL = env_str("JUPYTER_URL")
JUPYTER_TOKEN = env_str("JUPYTER_TOKEN")
# JupyterLab with the bridge, as people open it (linked from the front page; never a token).
JUPYTERLAB_URL = env_str("JUPYTERLAB_URL")
# Where the supernode reaches this project's relay (it is a WebSocket peer like any client).
SUPERNODE_SERVER_URL = env_str("SUPERNODE_SERVER_URL", "ws://127.0.0.1:8000")

# The project's own settings (tables/conf.py documents each one).
RTC = settings_from_environ()
# The Jupyter side's (jupyter_sync/conf.py).
RTC_JUPYTER = jupyter_conf.settings_from_environ()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # One line per HTTP request to Jupyter on every refresh says nothing worth reading.
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # A Redis outage: channels_redis logs a traceback for every second of it; the relay's
        # hub says it once, and again when fan-out resumes (relay/hub.py).
        "channels_redis.pubsub": {"level": "CRITICAL"},
        # bench/supernode.py --trace: the supernode's per-hop marks of an execution.
        "jupyter_sync.trace": {"level": "DEBUG" if env_str("TRACE_LOG", "") else "WARNING"},
    },
}
