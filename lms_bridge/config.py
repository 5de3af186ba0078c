"""Settings, read once from the environment.

With nothing set, lms_bridge runs on its embedded default: SQLite under ``instance/``,
shared state kept in the same database, background work in-process, and the development
platform switched on.  Production sets ``LMS_BRIDGE_ENV=production``, ``DATABASE_URL``
(PostgreSQL), ``REDIS_URL`` and ``SECRET_KEY``.
"""
from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


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


# --------------------------------------------------------------------------- content origin

LOOPBACK_TOOL_HOSTS = ("127.0.0.1", "localhost")
# Second loopback addresses tried, in order, for package content when nothing is configured.
LOOPBACK_CONTENT_HOSTS = ("::1", "127.0.0.2")
_OFF = {"0", "off", "false", "no"}
_bindable: dict[str, bool] = {}


def loopback_bindable(host: str) -> bool:
    """Whether this machine can listen on the loopback address ``host`` (``::1`` needs IPv6 on ``lo``,
    ``127.0.0.2`` a Linux-style ``127.0.0.0/8`` loopback). Cached per process."""
    if host not in _bindable:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
            _bindable[host] = True
        except OSError:
            _bindable[host] = False
    return _bindable[host]


def _url_origin(url: str | None) -> str | None:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def _split_bind(bind: str) -> tuple[str, int] | None:
    """(host, port) of a gunicorn ``HOST:PORT`` / ``[V6]:PORT`` bind, None for unix sockets and the like."""
    if not bind or bind.startswith(("unix:", "fd://")):
        return None
    parts = urlsplit("//" + bind)
    try:
        return (parts.hostname or ""), int(parts.port or 8000)
    except ValueError:
        return None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class ContentOrigin:
    """Where package content is served from (see ``lms_bridge/packages/content.py``).

    ``base_url`` is the separate content origin, or None when content shares the tool's origin
    (``mode`` ``"same-origin"``: trusted content only). ``source`` says why: ``configured``
    (``CONTENT_BASE_URL``), ``loopback`` (the development default: another loopback address of this
    machine, same port), ``off`` (``CONTENT_ISOLATION=off``), ``same-as-tool`` (``CONTENT_BASE_URL``
    is the tool's own origin), ``unavailable`` (no second loopback address, or a tool URL that is
    not on loopback). ``bind`` is the extra address gunicorn must listen on (loopback content only).
    """

    base_url: str | None
    mode: str
    source: str
    tool_origin: str | None = None
    bind: str | None = None
    note: str = ""

    @property
    def separate(self) -> bool:
        return self.base_url is not None


def content_origin(environ=None, *, bindable=None) -> ContentOrigin:
    """Resolve the content origin from the environment (``CONTENT_BASE_URL``, ``CONTENT_ISOLATION``,
    ``PUBLIC_BASE_URL``, ``BIND``/``PORT``, ``LMS_BRIDGE_ENV``). Raises RuntimeError on settings that
    cannot work. Pure apart from the ``bindable`` probe, so gunicorn.conf.py can call it too."""
    env = os.environ if environ is None else environ
    bindable = bindable or loopback_bindable
    production = env.get("LMS_BRIDGE_ENV", "development").lower() == "production"
    public = (env.get("PUBLIC_BASE_URL") or "").rstrip("/") or None
    configured = (env.get("CONTENT_BASE_URL") or "").rstrip("/") or None
    main_bind = env.get("BIND") or f"127.0.0.1:{env.get('PORT') or '8000'}"
    if (env.get("CONTENT_ISOLATION") or "on").strip().lower() in _OFF:
        return ContentOrigin(None, "same-origin", "off", _url_origin(public),
                             note="CONTENT_ISOLATION=off: package content is served from the tool's own origin "
                                  "and can script the player page (trusted content only)")
    if configured:
        if _url_origin(configured) is None:
            raise RuntimeError(f"CONTENT_BASE_URL must be an http(s) URL, not {configured!r}")
        if not public:
            raise RuntimeError("CONTENT_BASE_URL needs PUBLIC_BASE_URL set too (the content origin names the "
                               "tool as the only origin that may frame it and receive its messages)")
        if _url_origin(configured) == _url_origin(public):
            return ContentOrigin(None, "same-origin", "same-as-tool", _url_origin(public),
                                 note="CONTENT_BASE_URL is the tool's own origin: package content can script "
                                      "the player page (trusted content only)")
        return ContentOrigin(configured, "separate", "configured", _url_origin(public),
                             bind=_extra_bind(configured, main_bind))
    if production:
        raise RuntimeError("LMS_BRIDGE_ENV=production needs CONTENT_BASE_URL (a second host name serving only "
                           "package content), or CONTENT_ISOLATION=off for trusted content only")
    # Development default: the same server on a second loopback address of this machine.
    bind = _split_bind(main_bind)
    tool = public or (f"http://{_url_host(bind[0])}:{bind[1]}" if bind else None)
    parts = urlsplit(tool or "")
    why = ""
    if not bind:
        why = f"BIND={main_bind!r} is no TCP address"
    elif parts.scheme != "http" or parts.hostname not in LOOPBACK_TOOL_HOSTS:
        why = f"the tool ({tool}) is not http://127.0.0.1 or http://localhost"
    elif (parts.port or 80) != bind[1]:
        why = f"the tool's port ({parts.port or 80}) is not the port gunicorn listens on ({bind[1]})"
    else:
        for host in LOOPBACK_CONTENT_HOSTS:
            if bindable(host):
                base = f"http://{_url_host(host)}:{bind[1]}"
                return ContentOrigin(base, "separate", "loopback", _url_origin(tool),
                                     bind=_extra_bind(base, main_bind))
        why = "this machine has no second loopback address (neither ::1 nor 127.0.0.2 can be bound)"
    return ContentOrigin(None, "same-origin", "unavailable", _url_origin(public),
                         note=f"package content is served from the tool's own origin ({why}): it can script the "
                              "player page; set CONTENT_BASE_URL to a second host name (or enable IPv6 on lo)")


def _extra_bind(content_base: str, main_bind: str) -> str | None:
    """The address gunicorn must also listen on for a content origin on a loopback IP literal
    (``http://[::1]:8000``), unless the main bind already covers it. Host names are the proxy's business."""
    parts = urlsplit(content_base)
    host = parts.hostname or ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not ip.is_loopback:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    main = _split_bind(main_bind)
    covered = main is not None and main[1] == port and (
        main[0] == host or main[0] in ("::", "") or (main[0] == "0.0.0.0" and ip.version == 4))
    if covered:
        return None
    return f"{_url_host(host)}:{port}"


def content_bind(environ=None) -> str | None:
    """For gunicorn.conf.py: the extra listening address of the content origin, or None (never raises:
    a bad setting is reported by the app itself when it starts)."""
    try:
        return content_origin(environ).bind
    except RuntimeError:
        return None


def _outbox_worker(production: bool) -> str:
    """OUTBOX_WORKER, defaulting to RQ in production with Redis, in-process threads otherwise."""
    value = (os.environ.get("OUTBOX_WORKER") or "").strip().lower()
    if not value:
        value = "rq" if production and os.environ.get("REDIS_URL") else "inprocess"
    if value not in ("inprocess", "rq", "off"):
        raise RuntimeError(f"OUTBOX_WORKER must be inprocess, rq or off, not {value!r}")
    if value == "rq" and not os.environ.get("REDIS_URL"):
        raise RuntimeError("OUTBOX_WORKER=rq needs REDIS_URL")
    return value


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
    content = content_origin(os.environ)
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
        # The separate origin package content is served from (CONTENT_BASE_URL, or in development a
        # second loopback address of this machine), None when content shares the tool's origin.
        "CONTENT_BASE_URL": content.base_url,
        # "separate" or "same-origin" (CONTENT_ISOLATION=off, or no second origin available).
        "CONTENT_ISOLATION": content.mode,
        "CONTENT_ORIGIN": content,
        # Extra CSP frame-ancestors sources for package content (e.g. https://*.instructure.com).
        "CONTENT_FRAME_ANCESTORS": os.environ.get("CONTENT_FRAME_ANCESTORS", ""),
        # Durable delivery (lms_bridge/outbox): who delivers (inprocess: a thread per web worker,
        # the embedded default; rq: `flask outbox-worker` processes on Redis; off), how often idle
        # workers look for work, retry backoff (base x 2^(attempt-1), capped) and when to park.
        "OUTBOX_WORKER": _outbox_worker(production),
        "OUTBOX_POLL_SECONDS": float(os.environ.get("OUTBOX_POLL_SECONDS", "2")),
        "OUTBOX_BACKOFF_BASE": float(os.environ.get("OUTBOX_BACKOFF_BASE", "5")),
        "OUTBOX_BACKOFF_MAX": float(os.environ.get("OUTBOX_BACKOFF_MAX", "3600")),
        "OUTBOX_MAX_ATTEMPTS": int(os.environ.get("OUTBOX_MAX_ATTEMPTS", "20")),
        "OUTBOX_LEASE_SECONDS": float(os.environ.get("OUTBOX_LEASE_SECONDS", "120")),
        "OUTBOX_BATCH": int(os.environ.get("OUTBOX_BATCH", "20")),
        "OUTBOX_QUEUE": os.environ.get("OUTBOX_QUEUE", "lms_bridge-outbox"),
    }
