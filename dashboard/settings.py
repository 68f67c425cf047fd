"""Settings, read from the environment.

Every variable is listed in README.md. Local defaults make `make run` work with no
configuration; with DEBUG off, start-up refuses a missing SECRET_KEY or ALLOWED_HOSTS.
"""

from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from dashboard.cloud import projects as cloud_projects
from dashboard.env import env_bool, env_float, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("DASHBOARD_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off.")
    SECRET_KEY = "insecure-local-development-key-never-used-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not ALLOWED_HOSTS and not DEBUG:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when DEBUG is off.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_tasks_db",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Early, so refusals made by the middleware below get the headers too; static files
    # (served above) stay cacheable.
    "dashboard.security.SecurityHeadersMiddleware",
    # Under /api/, refusals and errors answered by anything below are problem documents.
    "dashboard.api.problems.ProblemMiddleware",
    "dashboard.security.RejectNulMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "dashboard.security.MethodNotAllowedPageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "dashboard.sso.SSOMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context_processors.dashboard",
            ],
            "builtins": ["dashboard.templatetags.dashboard_tags"],
        },
    },
]


def _database_from_url(url: str) -> dict:
    """Turn postgres://user:pass@host:port/name (or sqlite:///path) into a DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
            "CONN_HEALTH_CHECKS": True,
        }
    if parsed.scheme == "sqlite":
        return _sqlite(Path(unquote(parsed.path)))
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parsed.scheme!r} is not supported.")


def _sqlite(path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # WAL lets the web server read while the worker writes; IMMEDIATE avoids the
        # "database is locked" upgrade deadlock between two writers.
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        "TEST": {"NAME": VAR_DIR / "test.sqlite3"},
    }


DATABASE_URL = env_secret("DATABASE_URL")
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no var/ yet
DATABASES = {
    "default": _database_from_url(DATABASE_URL)
    if DATABASE_URL
    else _sqlite(VAR_DIR / "dashboard.sqlite3")
}

AUTH_PASSWORD_VALIDATORS: list[dict] = []  # no passwords: identity comes from SSO

# The language follows the browser (Accept-Language) until someone picks one in the navigation
# (remembered in the language cookie); dates and numbers follow the language. Catalogs live in
# locale/ as .po sources; `manage.py compiletranslations` builds the .mo files (not committed).
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
# For a browser that asks for no language offered, and for notification e-mails.
LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
if LANGUAGE_CODE not in dict(LANGUAGES):
    raise ImproperlyConfigured(f"LANGUAGE_CODE must be one of {[code for code, _ in LANGUAGES]}")
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_HTTPONLY = True  # only the server reads it
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_SECURE = not DEBUG
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

TASKS = {
    "default": {
        "BACKEND": env_str("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        # Any queue: each configured project has its own (dashboard.projects.queue_for).
        "QUEUES": [],
    }
}

# --- Security -------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers and kubelets probe /healthz over plain HTTP; a redirect would fail the probe.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_REFERRER_POLICY = "same-origin"
# Error reports and DEBUG pages hide the cloud keys too (Django's pattern misses AK and SK).
DEFAULT_EXCEPTION_REPORTER_FILTER = "dashboard.logscrub.ExceptionReporterFilter"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
# Pages hand the token to htmx through hx-headers; no script needs to read the cookie.
CSRF_COOKIE_HTTPONLY = True
CSRF_FAILURE_VIEW = "dashboard.sso.csrf_failure"
# The __Host- prefix binds a cookie to this exact host over HTTPS (no Domain, Path=/).
SESSION_COOKIE_NAME = "sessionid" if DEBUG else "__Host-sessionid"
CSRF_COOKIE_NAME = "csrftoken" if DEBUG else "__Host-csrftoken"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "frame-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}

# --- Identity and roles -----------------------------------------------------------------
# Local demo identity: honoured only with DEBUG on and only for loopback clients.
DASHBOARD_DEV_USER = env_str("DASHBOARD_DEV_USER")
DASHBOARD_DEV_GROUPS = env_list("DASHBOARD_DEV_GROUPS", ["dashboard-admins"])
# A second demo identity (DEBUG and loopback only) to try approvals as another person.
DASHBOARD_DEV_SECOND_USER = env_str("DASHBOARD_DEV_SECOND_USER")
DASHBOARD_DEV_SECOND_GROUPS = env_list("DASHBOARD_DEV_SECOND_GROUPS", ["dashboard-approvers"])
SSO_USER_HEADER = env_str("SSO_USER_HEADER", "X-Forwarded-User")
SSO_EMAIL_HEADER = env_str("SSO_EMAIL_HEADER", "X-Forwarded-Email")
SSO_GROUPS_HEADER = env_str("SSO_GROUPS_HEADER", "X-Forwarded-Groups")
TRUSTED_PROXY_CIDRS = env_list("TRUSTED_PROXY_CIDRS")
SSO_JWT_HEADER = env_str("SSO_JWT_HEADER")
SSO_JWT_JWKS_URL = env_str("SSO_JWT_JWKS_URL")
SSO_JWT_JWKS_FILE = env_str("SSO_JWT_JWKS_FILE")
SSO_JWT_ISSUER = env_str("SSO_JWT_ISSUER")
SSO_JWT_AUDIENCE = env_str("SSO_JWT_AUDIENCE")
SSO_JWT_GROUPS_CLAIM = env_str("SSO_JWT_GROUPS_CLAIM", "groups")
# Cloudflare Access, Pomerium and IAP all put the person's address in "email".
SSO_JWT_USER_CLAIM = env_str("SSO_JWT_USER_CLAIM", "email")
# Role name -> SSO groups that grant it. A user's roles are recomputed on every request.
ROLE_GROUPS = {
    "viewer": env_list("ROLE_VIEWER_GROUPS", ["dashboard-viewers"]),
    "operator": env_list("ROLE_OPERATOR_GROUPS", ["dashboard-operators"]),
    "approver": env_list("ROLE_APPROVER_GROUPS", ["dashboard-approvers"]),
    "admin": env_list("ROLE_ADMIN_GROUPS", ["dashboard-admins"]),
}
# Rollouts touching these server groups (by name or id) need a second person's approval.
PROTECTED_SERVER_GROUPS = env_list("PROTECTED_SERVER_GROUPS")
# Where "Sign out" sends the browser once the dashboard's session has ended: the proxy's own
# sign-out (oauth2-proxy: /oauth2/sign_out). A path on this site or an https:// URL.
SSO_SIGN_OUT_URL = env_str("SSO_SIGN_OUT_URL", "/oauth2/sign_out")
if not (
    (SSO_SIGN_OUT_URL.startswith("/") and not SSO_SIGN_OUT_URL.startswith(("//", "/\\")))
    or (urlparse(SSO_SIGN_OUT_URL).scheme == "https" and urlparse(SSO_SIGN_OUT_URL).hostname)
):
    raise ImproperlyConfigured("SSO_SIGN_OUT_URL must be a path (/…) or an https:// URL.")
# Refusal rows one client address may add to the append-only audit table per minute; the rest
# are logged and counted (dashboard.audit.refusal).
AUDIT_REFUSALS_PER_MINUTE = env_int("AUDIT_REFUSALS_PER_MINUTE", 20, minimum=1)
# A service token stops working while its creator has not been seen holding a role for this
# many days (0: never): someone removed at the proxy is never seen again. dashboard/roles.py
TOKEN_CREATOR_UNSEEN_DAYS = env_int("TOKEN_CREATOR_UNSEEN_DAYS", 30, minimum=0)
# The automation API (/api/v1/): requests one caller (a token or a person) may make a minute
# (0: no limit), and how long an Idempotency-Key's first answer is kept for its repeats.
API_REQUESTS_PER_MINUTE = env_int("API_REQUESTS_PER_MINUTE", 120, minimum=0)
API_IDEMPOTENCY_TTL_SECONDS = env_int("API_IDEMPOTENCY_TTL_SECONDS", 86400, minimum=60)

# --- Cloud ------------------------------------------------------------------------------
HUAWEICLOUD = {
    "AK": env_secret("HUAWEICLOUD_SDK_AK"),
    "SK": env_secret("HUAWEICLOUD_SDK_SK"),
    "SECURITY_TOKEN": env_secret("HUAWEICLOUD_SDK_SECURITY_TOKEN"),
    "PROJECT_ID": env_str("HUAWEICLOUD_SDK_PROJECT_ID"),
    "REGION": env_str("HUAWEICLOUD_REGION", "cn-north-4"),
    "WORKSPACEAPP_ENDPOINT": env_str("HUAWEICLOUD_WORKSPACEAPP_ENDPOINT"),
    "WORKSPACE_ENDPOINT": env_str("HUAWEICLOUD_WORKSPACE_ENDPOINT"),
    "IMS_ENDPOINT": env_str("HUAWEICLOUD_IMS_ENDPOINT"),
    "IAM_ENDPOINT": env_str("HUAWEICLOUD_IAM_ENDPOINT"),
    "IAM_USER": env_str("HUAWEICLOUD_IAM_USER"),
    "IAM_PASSWORD": env_secret("HUAWEICLOUD_IAM_PASSWORD"),
    "IAM_DOMAIN": env_str("HUAWEICLOUD_IAM_DOMAIN"),
    "CONNECT_TIMEOUT": env_float("HUAWEICLOUD_CONNECT_TIMEOUT", 5.0, minimum=0.1),
    "READ_TIMEOUT": env_float("HUAWEICLOUD_READ_TIMEOUT", 30.0, minimum=0.1),
    "RETRY_DEADLINE": env_float("HUAWEICLOUD_RETRY_DEADLINE", 60.0, minimum=0.0),
    "VERIFY_TLS": env_bool("HUAWEICLOUD_VERIFY_TLS", True),
}
# Several projects (regions) in one dashboard: a TOML file listing them (README, "Several
# projects"). Without it the variables above describe the one project, named after its region.
CLOUD_PROJECTS_FILE = env_str("CLOUD_PROJECTS_FILE")
CLOUD_PROJECTS = cloud_projects.load(CLOUD_PROJECTS_FILE) if CLOUD_PROJECTS_FILE else ()

# --- Inventory and rollouts ---------------------------------------------------------------
SYNC_INTERVAL_SECONDS = env_int("SYNC_INTERVAL_SECONDS", 300, minimum=0)
SYNC_CALLS_IN_FLIGHT = env_int("SYNC_CALLS_IN_FLIGHT", 4, minimum=1)
ROLLOUT_MAX_SERVERS = env_int("ROLLOUT_MAX_SERVERS", 5000, minimum=1)
# Named safety presets on the rollout form; "custom" shows the loose fields instead. Amounts
# are a count ("1") or a share ("10%"); minutes for soak, session wait and logoff warning.
ROLLOUT_PRESETS = {
    "careful": {
        "label": "Careful",
        "canary": "1",
        "canary_signoff": True,
        "wave_size": "10%",
        "soak_minutes": 0,
        "failure_budget": "1",
        "session_policy": "wait_logoff",
        "session_wait_minutes": 15,
        "logoff_delay_minutes": 5,
    },
    "standard": {
        "label": "Standard",
        "canary": "2",
        "canary_signoff": False,
        "wave_size": "25%",
        "soak_minutes": 0,
        "failure_budget": "5%",
        "session_policy": "wait_logoff",
        "session_wait_minutes": 15,
        "logoff_delay_minutes": 5,
    },
}
ROLLOUT_DEFAULT_PRESET = env_str("ROLLOUT_DEFAULT_PRESET", "careful")
if ROLLOUT_DEFAULT_PRESET not in (*ROLLOUT_PRESETS, "custom"):
    raise ImproperlyConfigured(
        f"ROLLOUT_DEFAULT_PRESET must be one of {[*ROLLOUT_PRESETS, 'custom']}"
    )
ROLLOUT_CALLS_IN_FLIGHT = env_int("ROLLOUT_CALLS_IN_FLIGHT", 4, minimum=1)
ROLLOUT_REFRESH_SECONDS = env_float("ROLLOUT_REFRESH_SECONDS", 5.0, minimum=0.0)
ROLLOUT_JOB_SLOW_SECONDS = env_int("ROLLOUT_JOB_SLOW_SECONDS", 1800, minimum=1)
# An unconfirmed plan (and the confirm token its page carries) expires after this long.
PLAN_TTL_SECONDS = env_int("PLAN_TTL_SECONDS", 1800, minimum=60)
WORKER_HEARTBEAT_MAX_AGE = env_int("WORKER_HEARTBEAT_MAX_AGE", 60, minimum=1)
# Batch-change-image calls a server may get when the cloud proved it did not accept the last.
ROLLOUT_SEND_ATTEMPTS = env_int("ROLLOUT_SEND_ATTEMPTS", 3, minimum=1)
# A paused or halted rollout with no job in flight is looked at this often.
ROLLOUT_IDLE_TICK_SECONDS = env_float("ROLLOUT_IDLE_TICK_SECONDS", 60.0, minimum=1.0)
# A worker silent for this many of its heartbeat intervals is dead: its running tasks go back.
WORKER_STALE_BEATS = env_int("WORKER_STALE_BEATS", 3, minimum=2)
# Upstream protection (dashboard/cloud/limits.py): calls per second per API class, shared by
# every worker ("read=10,operate=2,job=10,ims=10,iam=2"; 0 = unpaced), and the breaker.
CLOUD_RATE_LIMITS = env_str("CLOUD_RATE_LIMITS", "")
CLOUD_BREAKER_FAILURES = env_int("CLOUD_BREAKER_FAILURES", 5, minimum=1)
CLOUD_BREAKER_COOLDOWN = env_float("CLOUD_BREAKER_COOLDOWN", 30.0, minimum=0.0)

# --- Logging ----------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "scrub": {"()": "dashboard.logscrub.ScrubSecretsFilter"},
        "refusal": {"()": "dashboard.logscrub.RefusalWithoutTraceback"},
    },
    "formatters": {
        "line": {
            "()": "dashboard.logscrub.OneLineFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "line", "filters": ["scrub"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's defaults attach their own (unscrubbed) handlers to these two; an empty
        # list removes them, so every line goes through the root's scrubbing handler.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        # A 403 is logged in one line, without the traceback of its PermissionDenied.
        "django.request": {"filters": ["refusal"]},
        "django.security": {"level": "INFO"},
        "urllib3": {"level": "WARNING"},
    },
}

# --- Notifications ------------------------------------------------------------------------
# Rollout events sent by the worker (dashboard/notify.py) to a JSON webhook and by e-mail.
NOTIFY_ALL_EVENTS = (
    "started",
    "halted",
    "failed",
    "completed",
    "awaiting_approval",
    "cancelled",
    "signoff_needed",
)
DASHBOARD_BASE_URL = env_str("DASHBOARD_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# The URL may carry a token (chat webhooks do): read like a secret, logs show its host only.
NOTIFY_WEBHOOK_URL = env_secret("NOTIFY_WEBHOOK_URL")
if NOTIFY_WEBHOOK_URL and urlparse(NOTIFY_WEBHOOK_URL).scheme not in {"http", "https"}:
    raise ImproperlyConfigured("NOTIFY_WEBHOOK_URL must be an http:// or https:// URL.")
NOTIFY_WEBHOOK_SECRET = env_secret("NOTIFY_WEBHOOK_SECRET")
NOTIFY_WEBHOOK_TIMEOUT = env_float("NOTIFY_WEBHOOK_TIMEOUT", 5.0, minimum=0.1)
NOTIFY_EMAILS = env_list("NOTIFY_EMAILS")
NOTIFY_EVENTS = env_list("NOTIFY_EVENTS", list(NOTIFY_ALL_EVENTS))
if unknown_events := sorted(set(NOTIFY_EVENTS) - set(NOTIFY_ALL_EVENTS)):
    raise ImproperlyConfigured(
        f"NOTIFY_EVENTS names unknown events {unknown_events}; known: {list(NOTIFY_ALL_EVENTS)}"
    )
# E-mail goes through Django 6.1's MAILERS (the EMAIL_* settings are deprecated there); the
# environment variables keep their familiar EMAIL_* names.
email_backend = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
email_options: dict = {}
if email_backend == "django.core.mail.backends.smtp.EmailBackend":
    email_options = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 25, minimum=1),
        "username": env_str("EMAIL_HOST_USER"),
        "password": env_secret("EMAIL_HOST_PASSWORD"),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "use_ssl": env_bool("EMAIL_USE_SSL", False),
        "timeout": env_float("EMAIL_TIMEOUT", 10.0, minimum=0.1),
    }
    if email_options["use_tls"] and email_options["use_ssl"]:
        raise ImproperlyConfigured("Set EMAIL_USE_TLS or EMAIL_USE_SSL, not both.")
MAILERS = {"default": {"BACKEND": email_backend, "OPTIONS": email_options}}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "dashboard@localhost")
