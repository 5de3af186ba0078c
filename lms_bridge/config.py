"""Settings, read once from the environment.

With nothing set, lms_bridge runs on its embedded default: SQLite under ``instance/``,
shared state kept in the same database, background work in-process, and the development
platform switched on.  Production sets ``LMS_BRIDGE_ENV=production``, ``DATABASE_URL``
(PostgreSQL), ``REDIS_URL`` and ``SECRET_KEY``.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key(instance_path: Path) -> str:
    """SECRET_KEY from the environment, else one generated once and kept in instance/.

    A key that changes on every start would sign out operators at each restart and break
    sessions across gunicorn workers, so the embedded default persists it.
    """
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = instance_path / "secret_key"
    instance_path.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def load_config(instance_path: Path) -> dict:
    env = os.environ.get("LMS_BRIDGE_ENV", "development").lower()
    production = env == "production"
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance_path / 'lms_bridge.sqlite3'}"
    if database_url.startswith("postgres://"):  # Heroku-style URLs
        database_url = "postgresql://" + database_url[len("postgres://"):]
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
    if production and not os.environ.get("SECRET_KEY"):
        raise RuntimeError("LMS_BRIDGE_ENV=production needs SECRET_KEY set in the environment")
    engine_options: dict = {"pool_pre_ping": True}
    if database_url.startswith("sqlite"):
        # Several gunicorn workers share one SQLite file: wait for locks instead of failing.
        engine_options = {"connect_args": {"timeout": 30}}
    return {
        "ENV_NAME": env,
        "SECRET_KEY": _secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        # Key prefix in Redis, so several lms_bridge instances can share one Redis.
        "REDIS_PREFIX": os.environ.get("REDIS_PREFIX", "lms_bridge:"),
        "DEVPLATFORM_BASE_URL": (os.environ.get("DEVPLATFORM_BASE_URL") or "").rstrip("/") or None,
        # Public base URL as LMSs reach the tool (https://tool.example.org); when unset the
        # request's own host is used, which is right for local trials behind no proxy.
        "PUBLIC_BASE_URL": (os.environ.get("PUBLIC_BASE_URL") or "").rstrip("/") or None,
        "TRUSTED_PROXIES": int(os.environ.get("TRUSTED_PROXIES", "1" if production else "0")),
        "DEVPLATFORM_ENABLED": _bool(os.environ.get("DEVPLATFORM_ENABLED"), not production),
        # Seconds of clock skew allowed on iat/exp/nbf of platform JWTs.
        "LTI_LEEWAY_SECONDS": int(os.environ.get("LTI_LEEWAY_SECONDS", "10")),
        # How long OIDC state lives between login initiation and launch.
        "LTI_STATE_TTL": int(os.environ.get("LTI_STATE_TTL", "600")),
        # Lifetime of the opaque launch token the player uses after a launch.
        "LAUNCH_TOKEN_TTL": int(os.environ.get("LAUNCH_TOKEN_TTL", str(4 * 3600))),
        # Platform JWKS cache lifetime; an unknown kid re-fetches at once (rate limited).
        "PLATFORM_JWKS_TTL": int(os.environ.get("PLATFORM_JWKS_TTL", "600")),
        "HTTP_TIMEOUT": float(os.environ.get("HTTP_TIMEOUT", "10")),
        # open: any platform may register dynamically; approval: registrations wait for an
        # operator; off: /lti/register refuses.
        "DYNAMIC_REGISTRATION": os.environ.get("DYNAMIC_REGISTRATION", "open").lower(),
        "KEY_ROTATION_GRACE_DAYS": int(os.environ.get("KEY_ROTATION_GRACE_DAYS", "7")),
        "TOOL_NAME": os.environ.get("TOOL_NAME", "lms_bridge"),
        "TOOL_DESCRIPTION": os.environ.get(
            "TOOL_DESCRIPTION",
            "Open skills courses (MOOCs and micro-credentials) from European skills projects, inside your LMS.",
        ),
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SECURE": production,
        "MAX_CONTENT_LENGTH": int(os.environ.get("MAX_UPLOAD_BYTES", str(512 * 1024 * 1024))),
        # Course packages: where their files are stored (default instance/packages), and the
        # separate origin package content is served from in production (lms_bridge/packages/content.py).
        "PACKAGE_STORAGE_DIR": os.environ.get("PACKAGE_STORAGE_DIR") or None,
        "CONTENT_BASE_URL": (os.environ.get("CONTENT_BASE_URL") or "").rstrip("/") or None,
        # Extra CSP frame-ancestors sources for package content (e.g. https://*.instructure.com).
        "CONTENT_FRAME_ANCESTORS": os.environ.get("CONTENT_FRAME_ANCESTORS", ""),
    }
