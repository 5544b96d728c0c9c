"""Django settings. Every knob comes from an environment variable with a documented default.

The README's "Configuration" table lists the same variables; keep both in step.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from assistants_app.conf import DEFAULTS

BASE_DIR = Path(__file__).resolve().parent.parent
# ModelAdmin[Assistant], ModelForm[ApiKey], CharField[str, str] ... as base classes (django-stubs-ext).
django_stubs_ext.monkeypatch()


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc


def app_setting(name: str) -> Any:
    """The app setting `name` from the environment, parsed like its default in assistants_app.conf."""
    default = DEFAULTS[name]
    if isinstance(default, bool):
        return env_bool(name, default)
    if isinstance(default, int):
        return env_int(name, default)
    if isinstance(default, float):
        return env_float(name, default)
    return env_str(name, default)


# Where SQLite, uploaded files and other runtime state live by default.
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)
_secret = env_str("DJANGO_SECRET_KEY")
if not _secret:
    if not DEBUG and env_bool("DJANGO_REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production")
    # A stable per-installation key so sessions survive restarts without configuration.
    _key_file = DATA_DIR / "secret_key"
    try:
        _secret = _key_file.read_text().strip()
    except FileNotFoundError:
        import secrets

        DATA_DIR.mkdir(parents=True, exist_ok=True)
        _secret = secrets.token_urlsafe(50)
        _key_file.write_text(_secret)
        _key_file.chmod(0o600)
SECRET_KEY = _secret

ALLOWED_HOSTS = [
    h.strip() for h in env_str("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "assistants_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

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

# SQLite is the embedded default; DATABASE_URL (e.g. postgres://user:pw@host/db) is the production path.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
# --- PostgreSQL connection pool (issue 13) ---
# Django's native psycopg pool, per process: every request runs a sync view on a thread of its own,
# so a burst of 1,000 sends would otherwise open 1,000 connections (PostgreSQL refuses past
# max_connections). With the pool they wait up to DB_POOL_TIMEOUT for one of DB_POOL_SIZE
# connections; a request that still gets none is answered "busy" (OperationalError), never 500.
DB_POOL_SIZE = env_int("DB_POOL_SIZE", 20)
DB_POOL_TIMEOUT = env_float("DB_POOL_TIMEOUT", 30.0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_SIZE > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # pooled connections go back to the pool instead
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DB_POOL_SIZE),
        "max_size": DB_POOL_SIZE,
        "timeout": DB_POOL_TIMEOUT,
    }
# --- end PostgreSQL connection pool ---
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE transactions: the run executor thread writes while requests read and write,
    # and deferred transactions that upgrade to writes are what produce "database is locked".
    # The same backend, with this process's write transactions queued on a lock before SQLite's
    # (assistants_app/sqlite/base.py): a burst of sends no longer races SQLite's busy handler.
    DATABASES["default"]["ENGINE"] = "assistants_app.sqlite"
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
    # Tests use a file (not the shared-cache in-memory database, whose table locks ignore
    # busy_timeout), one per test process so that parallel runs never collide.
    import tempfile

    DATABASES["default"]["TEST"] = {
        "NAME": env_str("TEST_SQLITE_NAME", "")
        or str(Path(tempfile.gettempdir()) / f"assistants-test-{os.getpid()}.sqlite3")
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "staticfiles")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("STATIC_MANIFEST", not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"
# Password-reset mail. The console backend prints messages to the server log; set EMAIL_BACKEND to
# django.core.mail.backends.smtp.EmailBackend and the EMAIL_* variables below for real delivery.
MAILERS = {
    "default": {
        "BACKEND": env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"),
        "OPTIONS": {
            k: v
            for k, v in {
                "host": env_str("EMAIL_HOST", ""),
                "port": env_int("EMAIL_PORT", 0),
                "username": env_str("EMAIL_HOST_USER", ""),
                "password": env_str("EMAIL_HOST_PASSWORD", ""),
                "use_tls": env_bool("EMAIL_USE_TLS", False),
            }.items()
            if v
        }
        if env_str("EMAIL_BACKEND", "").endswith("smtp.EmailBackend")
        else {},
    }
}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "assistants@localhost")

SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Events and channels -----------------------------------------------------------------------
# Without REDIS_URL everything runs in one process: run events go through an in-process bus and
# runs execute on an in-process executor thread. With REDIS_URL, run events are Redis Streams
# (durable, ordered, resumable by position) and runs may execute on separate worker processes.
REDIS_URL: str = app_setting("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # channels_redis polls with a 5 s blocking pop; redis-py 8's default 5 s socket timeout
            # would cut that poll and close idle sockets, so the layer's connections wait longer.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "capacity": 1000},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }

# Connections one process may open to Redis: each reader blocked on a run's event stream holds one.
REDIS_MAX_CONNECTIONS: int = app_setting("REDIS_MAX_CONNECTIONS")

# --- Runs ------------------------------------------------------------------------------------------
# "embedded": this process executes runs on a background thread (the default, no external service).
# "external": runs are executed only by `manage.py run_worker` processes (needs REDIS_URL for events).
RUN_EXECUTOR: str = app_setting("RUN_EXECUTOR")
if RUN_EXECUTOR not in {"embedded", "external"}:
    raise ImproperlyConfigured("RUN_EXECUTOR must be 'embedded' or 'external'")
if RUN_EXECUTOR == "external" and not REDIS_URL:
    raise ImproperlyConfigured(
        "RUN_EXECUTOR=external needs REDIS_URL so that run events reach the web process"
    )
RUN_CONCURRENCY: int = app_setting("RUN_CONCURRENCY")
RUN_EXPIRES_SECONDS: int = app_setting("RUN_EXPIRES_SECONDS")
RUN_LEASE_SECONDS: float = app_setting("RUN_LEASE_SECONDS")
RUN_POLL_SECONDS: float = app_setting("RUN_POLL_SECONDS")
RUN_MAX_ATTEMPTS: int = app_setting("RUN_MAX_ATTEMPTS")
RUN_CHECKPOINT_SECONDS: float = app_setting("RUN_CHECKPOINT_SECONDS")
RUN_EVENTS_RETENTION_SECONDS: int = app_setting("RUN_EVENTS_RETENTION_SECONDS")
RUN_MAX_TOOL_ROUNDS: int = app_setting("RUN_MAX_TOOL_ROUNDS")
POLL_AFTER_MS: int = app_setting("POLL_AFTER_MS")
# Requests per minute per API key and process (0: no limit); over it, /v1 answers 429.
API_RATE_LIMIT_PER_MINUTE: int = app_setting("API_RATE_LIMIT_PER_MINUTE")

# --- Model backend ---------------------------------------------------------------------------------
# "openai": any OpenAI-compatible Chat Completions endpoint. "fake": the scripted test backend.
MODEL_BACKEND: str = app_setting("MODEL_BACKEND")
OPENAI_BASE_URL: str = app_setting("OPENAI_BASE_URL")
OPENAI_API_KEY: str = app_setting("OPENAI_API_KEY")
DEFAULT_MODEL: str = app_setting("DEFAULT_MODEL")
# `manage.py bootstrap` creates this superuser when both are set.
ADMIN_USERNAME: str = app_setting("ADMIN_USERNAME")
ADMIN_PASSWORD: str = app_setting("ADMIN_PASSWORD")
UPSTREAM_CONNECT_TIMEOUT: float = app_setting("UPSTREAM_CONNECT_TIMEOUT")
# A stream that sends nothing for this long is considered stalled.
UPSTREAM_STALL_TIMEOUT: float = app_setting("UPSTREAM_STALL_TIMEOUT")
UPSTREAM_MAX_RETRIES: int = app_setting("UPSTREAM_MAX_RETRIES")
UPSTREAM_RETRY_BASE_SECONDS: float = app_setting("UPSTREAM_RETRY_BASE_SECONDS")
# Coalescing window for a streaming reply's reads (ms); the first token is never delayed.
UPSTREAM_READ_INTERVAL_MS: int = app_setting("UPSTREAM_READ_INTERVAL_MS")
# Context window used for truncation when the model is not in the built-in table.
MODEL_CONTEXT_TOKENS: int = app_setting("MODEL_CONTEXT_TOKENS")
TOKENIZER_ENCODING: str = app_setting("TOKENIZER_ENCODING")
# Seconds the admin's assistant form waits for the backend's model list.
ADMIN_LIST_MODELS_TIMEOUT: float = app_setting("ADMIN_LIST_MODELS_TIMEOUT")
# --- API parity: /v1/models, vision, rewrite_query (README, "Compatibility notes") ---------------
MODELS_CACHE_SECONDS: float = app_setting("MODELS_CACHE_SECONDS")
MODELS_LIST_TIMEOUT: float = app_setting("MODELS_LIST_TIMEOUT")
VECTOR_STORE_REWRITE_MODEL: str = app_setting("VECTOR_STORE_REWRITE_MODEL")
VECTOR_STORE_REWRITE_TIMEOUT: float = app_setting("VECTOR_STORE_REWRITE_TIMEOUT")
VISION_MAX_IMAGE_BYTES: int = app_setting("VISION_MAX_IMAGE_BYTES")
VISION_MAX_PROMPT_IMAGE_BYTES: int = app_setting("VISION_MAX_PROMPT_IMAGE_BYTES")

# --- File search ---------------------------------------------------------------------------------
# Lexical ranking (SQLite FTS5 / PostgreSQL full text) always; fused with dense similarity when an
# OpenAI-compatible embeddings endpoint is configured.
EMBEDDINGS_BASE_URL: str = app_setting("EMBEDDINGS_BASE_URL")
EMBEDDINGS_API_KEY: str = app_setting("EMBEDDINGS_API_KEY")
EMBEDDINGS_MODEL: str = app_setting("EMBEDDINGS_MODEL")
EMBEDDINGS_TIMEOUT: float = app_setting("EMBEDDINGS_TIMEOUT")
FILE_SEARCH_MAX_FILE_BYTES: int = app_setting("FILE_SEARCH_MAX_FILE_BYTES")
FILE_SEARCH_MAX_UNPACKED_BYTES: int = app_setting("FILE_SEARCH_MAX_UNPACKED_BYTES")
FILE_SEARCH_MAX_FILE_TOKENS: int = app_setting("FILE_SEARCH_MAX_FILE_TOKENS")
FILE_SEARCH_LEASE_SECONDS: float = app_setting("FILE_SEARCH_LEASE_SECONDS")
FILE_SEARCH_MAX_ATTEMPTS: int = app_setting("FILE_SEARCH_MAX_ATTEMPTS")
FILE_SEARCH_LEXICAL_BUDGET: int = app_setting("FILE_SEARCH_LEXICAL_BUDGET")

# --- Code interpreter ------------------------------------------------------------------------------
# Model-written Python runs under bubblewrap (Debian package `bubblewrap`) with these limits.
CODE_INTERPRETER_CPU_SECONDS: float = app_setting("CODE_INTERPRETER_CPU_SECONDS")
CODE_INTERPRETER_WALL_SECONDS: float = app_setting("CODE_INTERPRETER_WALL_SECONDS")
CODE_INTERPRETER_MEMORY_BYTES: int = app_setting("CODE_INTERPRETER_MEMORY_BYTES")
CODE_INTERPRETER_MAX_PROCESSES: int = app_setting("CODE_INTERPRETER_MAX_PROCESSES")
CODE_INTERPRETER_MAX_OUTPUT_BYTES: int = app_setting("CODE_INTERPRETER_MAX_OUTPUT_BYTES")
CODE_INTERPRETER_MAX_FILE_BYTES: int = app_setting("CODE_INTERPRETER_MAX_FILE_BYTES")
CODE_INTERPRETER_TMPFS_BYTES: int = app_setting("CODE_INTERPRETER_TMPFS_BYTES")
# The sandbox's own Python environment (numpy, pandas, matplotlib), built by scripts/sandbox-venv.sh.
CODE_INTERPRETER_VENV: str = app_setting("CODE_INTERPRETER_VENV") or str(DATA_DIR / "sandbox-venv")
# Unprivileged host uid the sandbox runs as when the server runs as root.
CODE_INTERPRETER_SANDBOX_UID: int = app_setting("CODE_INTERPRETER_SANDBOX_UID")
# Per-thread working directories (/mnt/data inside); every directory above must be world-searchable.
CODE_INTERPRETER_WORKDIR_ROOT: str = app_setting("CODE_INTERPRETER_WORKDIR_ROOT") or str(
    DATA_DIR / "code-interpreter"
)
# --- Code interpreter isolation and quotas (docs/security.md, "The code interpreter sandbox") ------
# Size (allocated bytes) and entries (files + directories) of one thread's /mnt/data, enforced while
# the code runs; the number of files one execution may turn into downloadable outputs.
CODE_INTERPRETER_WORKDIR_BYTES: int = app_setting("CODE_INTERPRETER_WORKDIR_BYTES")
CODE_INTERPRETER_WORKDIR_MAX_FILES: int = app_setting("CODE_INTERPRETER_WORKDIR_MAX_FILES")
CODE_INTERPRETER_MAX_OUTPUT_FILES: int = app_setting("CODE_INTERPRETER_MAX_OUTPUT_FILES")
# Per-execution cgroups: auto (v2 if delegated, else v1), v2, v1, or off (per-process rlimits only).
CODE_INTERPRETER_CGROUPS: str = app_setting("CODE_INTERPRETER_CGROUPS")
# The seccomp filter (libseccomp via pyseccomp); 0 turns it off.
CODE_INTERPRETER_SECCOMP: bool = app_setting("CODE_INTERPRETER_SECCOMP")
# --- Code interpreter Python sessions (tools/code_interpreter/sessions.py) ------------------------
# A thread's interpreter is kept between executions; it ends after this idle time (0: no sessions,
# a fresh process per execution). At most CODE_INTERPRETER_MAX_SESSIONS per executor process (LRU).
CODE_INTERPRETER_SESSION_IDLE_SECONDS: float = app_setting("CODE_INTERPRETER_SESSION_IDLE_SECONDS")
CODE_INTERPRETER_MAX_SESSIONS: int = app_setting("CODE_INTERPRETER_MAX_SESSIONS")
# Total bytes of one user's files (uploads and code-interpreter outputs); 0 = unlimited.
USER_STORAGE_QUOTA_BYTES: int = app_setting("USER_STORAGE_QUOTA_BYTES")

# --- Function endpoints (docs/security.md, "Function endpoints") ----------------------------------
# Endpoints staff attach to function tools are called only on public addresses, except these
# comma-separated host names, addresses and CIDR networks.
FUNCTION_ENDPOINTS_ALLOWED_PRIVATE: str = app_setting("FUNCTION_ENDPOINTS_ALLOWED_PRIVATE")

# --- Files -----------------------------------------------------------------------------------------
FILE_UPLOAD_MAX_BYTES: int = app_setting("FILE_UPLOAD_MAX_BYTES")
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 4 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # httpx2 (the SDK's httpx) logs every request's URL at INFO: query strings carry function arguments.
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}

# --- Web server and API defences (docs/security.md, "The web server and the API") -----------------
# Request bodies: serve's HTTP layer refuses a body over its limit with 413 before buffering it:
# FILE_UPLOAD_MAX_BYTES (+ multipart framing) on the upload routes, DATA_UPLOAD_MAX_MEMORY_SIZE
# elsewhere (both above, in "Files"). See assistants_app/server/bodies.py.

# Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or CIDR networks,
# comma-separated). Empty: none; the client is the TCP peer.
TRUSTED_PROXIES = [p.strip() for p in env_str("TRUSTED_PROXIES", "").split(",") if p.strip()]
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an IP address or network") from exc

# Runs one user may have queued or active at once (0: no cap); over it, starting a run answers 429.
RUN_MAX_ACTIVE_PER_USER: int = app_setting("RUN_MAX_ACTIVE_PER_USER")
USER_DAILY_TOKEN_BUDGET: int = app_setting("USER_DAILY_TOKEN_BUDGET")

# Login guessing (django-axes): after LOGIN_FAILURE_LIMIT failed logins for one username, or from
# one address, that username / address is locked out for LOGIN_LOCKOUT_SECONDS.
LOGIN_FAILURE_LIMIT: int = app_setting("LOGIN_FAILURE_LIMIT")
LOGIN_LOCKOUT_SECONDS: int = app_setting("LOGIN_LOCKOUT_SECONDS")
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last, as axes requires
AUTHENTICATION_BACKENDS = [
    "assistants_app.web.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = max(1, LOGIN_FAILURE_LIMIT)
AXES_ENABLED = LOGIN_FAILURE_LIMIT > 0
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_LOCKOUT_SECONDS)
# A success must not wipe the failures: any account holder could then reset their address's count
# (and with it the guesses at someone else's username) between guesses.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "assistants_app.web.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "assistants_app.server.proxies.client_address"
AXES_USERNAME_CALLABLE = "assistants_app.web.lockout.username_of"
AXES_VERBOSE = False

# Bad API keys: more than API_KEY_FAILURE_LIMIT from one address within
# API_KEY_FAILURE_WINDOW_SECONDS, and that address's bad keys are answered 429 until the window
# ends (0: off). Counted in the cache, shared by every process when REDIS_URL is set.
API_KEY_FAILURE_LIMIT: int = app_setting("API_KEY_FAILURE_LIMIT")
API_KEY_FAILURE_WINDOW_SECONDS: int = app_setting("API_KEY_FAILURE_WINDOW_SECONDS")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# --- the chat page (issue 11) ---
CHAT_RENDER_INTERVAL_MS: int = app_setting("CHAT_RENDER_INTERVAL_MS")
# An HTMX request whose CSRF token is stale (the user signed in again elsewhere) gets a fragment
# the page can show, not Django's full 403 page.
CSRF_FAILURE_VIEW = "assistants_app.web.session.csrf_failure"

# --- accounts (issue 12; assistants_app/services/accounts.py) ---
# Who may sign up: open | approval (staff approve new users in the admin) | closed (staff
# invitations only). On a fresh install the first account to sign up becomes the administrator.
CHAT_SIGNUP: str = app_setting("CHAT_SIGNUP").strip().lower()
if CHAT_SIGNUP not in {"open", "approval", "closed"}:
    raise ImproperlyConfigured("CHAT_SIGNUP must be 'open', 'approval' or 'closed'")
TEMPLATES[0]["OPTIONS"]["context_processors"].append("assistants_app.web.accounts.account_links")  # type: ignore[index]
