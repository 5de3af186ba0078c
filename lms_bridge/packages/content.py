"""Serving package content: ``GET /content/<version id>/<path>``.

Only regular files inside the version's storage folder are served: no ``..``, empty, dot-file
or backslash segments, no absolute paths, nothing that resolves (symlinks included) outside the
folder, and never the files a version keeps private (quiz sources with their answers, native
manifests and metadata sidecars: ``CourseVersion.private_paths``; Canvas ``non_cc_assessments``
and ``.qti`` files). Anything else is a plain 404.

Every response carries:

* ``Content-Type`` from the file name (``text/javascript`` for scripts, ``application/octet-stream``
  when unknown) and ``X-Content-Type-Options: nosniff``, so nothing is sniffed into HTML or script;
* ``Content-Security-Policy``: ``default-src 'self'``; scripts and styles from the content's own
  origin plus ``'unsafe-inline'`` (SCORM and cmi5 content is full of inline script; no
  ``'unsafe-eval'``); images, media and fonts also from ``data:``/``blob:``; ``connect-src 'self'``
  (no fetch or XHR to other origins), plus the tool's origin for cmi5 packages, whose AUs talk
  to the tool's xAPI endpoints; ``object-src 'none'``; ``base-uri``/``form-action 'self'``;
  ``frame-ancestors`` the content origin itself (the SCORM runtime page frames SCOs), the tool's
  origin and the origins of registered platforms (see below);
* ``Cross-Origin-Resource-Policy``: ``cross-origin`` when content has its own origin (the player
  page, on the tool's origin and often on another site, shows native lessons' images and media
  from it; the files are public anyway: served to anyone without credentials), ``same-origin``
  when content shares the tool's origin;
* ``Cache-Control: public, max-age=3600`` with ETag/Last-Modified revalidation and Range support
  (a version's files never change; ids are never reused);
* ``Referrer-Policy: no-referrer`` (set for every response by :mod:`lms_bridge.web`).

``frame-ancestors`` is checked by browsers against every ancestor frame, not only the parent: a
player page running inside an LMS iframe (Moodle "embed", Canvas, the development platform)
makes the LMS an ancestor of the content frame too. So the list holds the tool origin, the origins
of the active registrations' issuer and OIDC login URLs (so the development platform works), and
``CONTENT_FRAME_ANCESTORS`` (space-separated CSP sources, e.g. ``https://*.instructure.com`` for
Canvas cloud, whose frames are on each school's own domain).

Origins: cookies and launch tokens
----------------------------------
Content must never read the tool's cookies or launch tokens, so by default it is served from an
origin of its own (:func:`lms_bridge.config.content_origin` decides which):

* ``CONTENT_BASE_URL=https://content.example.org`` (required in production): a second host name
  for the same application, preferably on another registrable domain (a same-site content host
  can still send the tool's ``SameSite=Lax`` cookies along with requests it cannot read).
* Nothing set, in development: the same server on a second loopback address of this machine, the
  same port: the tool at ``http://127.0.0.1:8000``, the development platform at
  ``http://localhost:8000``, content at ``http://[::1]:8000`` (or ``http://127.0.0.2:8000`` without
  IPv6). gunicorn.conf.py listens there too. Three different sites, as in production.

Then content is served ONLY on that host: ``/content/`` and ``/content-runtime/`` on the tool's
host answer 404, and the content host answers 404 for everything else (no ``/lti``, ``/admin``,
``/launch``, ``/player``, ``/api``...) except the few static files the SCORM runtime page loads
(:data:`CONTENT_HOST_STATIC`). The player frames content with ``allow-same-origin`` safely: the
content origin holds no tool cookie (they are host-only), and the browser's same-origin policy
keeps content out of the player page and its launch token. SCOs find their SCORM API on the
runtime page, on the content origin too (:mod:`lms_bridge.player.runtime`).

Same-origin mode, for trusted content only: ``CONTENT_ISOLATION=off``, or ``CONTENT_BASE_URL`` set
to the tool's own URL (or, in development, no second loopback address: a warning is logged).
Content is then served under ``/content/`` on the tool's origin and can script the player page.

:func:`content_url` builds the URL of a package file (absolute on the content origin when it has one).
"""
from __future__ import annotations

import logging
import mimetypes
import os
import posixpath
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    has_request_context,
    request,
    send_file,
)

from ..extensions import db
from .models import CourseVersion
from .service import storage_root

bp = Blueprint("content", __name__)
log = logging.getLogger("lms_bridge.content")

CACHE_SECONDS = 3600
ANCESTOR_CACHE_SECONDS = 60
_URL_SAFE = "/!$&'()*+,;=:@-._~"

# Types the platform's mimetypes table gets wrong or lacks.
_TYPES = {
    ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json", ".css": "text/css",
    ".html": "text/html", ".htm": "text/html", ".xhtml": "application/xhtml+xml", ".svg": "image/svg+xml",
    ".xml": "application/xml", ".xsd": "application/xml", ".woff": "font/woff", ".woff2": "font/woff2",
    ".ttf": "font/ttf", ".otf": "font/otf", ".eot": "application/vnd.ms-fontobject", ".wasm": "application/wasm",
    ".vtt": "text/vtt", ".srt": "text/plain", ".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm",
    ".ogv": "video/ogg", ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".ogg": "audio/ogg", ".oga": "audio/ogg",
    ".wav": "audio/wav", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp", ".avif": "image/avif", ".ico": "image/x-icon", ".pdf": "application/pdf",
    ".txt": "text/plain", ".md": "text/plain", ".csv": "text/csv", ".swf": "application/octet-stream",
}

_ALWAYS_PRIVATE_DIRS = {"non_cc_assessments"}
_ALWAYS_PRIVATE_SUFFIXES = (".qti",)


def mime_type(path: str) -> str:
    suffix = posixpath.splitext(path)[1].lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


# --------------------------------------------------------------------------- origins


def _origin(url: str) -> str | None:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


_resolved: dict[tuple, tuple[str | None, str | None, str | None]] = {}


def _resolve() -> tuple[str | None, str | None, str | None]:
    """(base URL, origin, host) of the separate content origin, or Nones; parsed once per setting
    (this runs on every request)."""
    config = current_app.config
    key = (config.get("CONTENT_BASE_URL"), config.get("PUBLIC_BASE_URL"))
    found = _resolved.get(key)
    if found is None:
        base = (key[0] or "").rstrip("/")
        tool = _origin(key[1] or "")
        if not base or (tool and tool == _origin(base)):
            found = (None, None, None)
        else:
            found = (base, _origin(base), urlsplit(base).netloc.lower())
        _resolved[key] = found
    return found


def content_base_url() -> str | None:
    """The content origin's base URL (no trailing slash), or None when content shares the tool's origin."""
    return _resolve()[0]


def content_origin() -> str | None:
    """The content origin (``scheme://host[:port]``), or None when content shares the tool's origin."""
    return _resolve()[1]


def _content_host() -> str | None:
    return _resolve()[2]


def on_content_host() -> bool:
    """Whether this request came to the separate content origin."""
    host = _content_host()
    return bool(host) and has_request_context() and request.host.lower() == host


def tool_origin() -> str:
    """The tool's origin: PUBLIC_BASE_URL's, else the one the development default was derived
    from, else (same-origin content only) this request's."""
    configured = _origin(current_app.config.get("PUBLIC_BASE_URL") or "")
    if configured:
        return configured
    resolved = current_app.config.get("CONTENT_ORIGIN")
    if content_base_url() and resolved is not None and resolved.tool_origin:
        return resolved.tool_origin
    return f"{request.scheme}://{request.host}".lower()


def resource_policy() -> str:
    """``Cross-Origin-Resource-Policy`` of content responses: the player page (tool origin) shows
    lesson images and media from a separate content origin; on a shared origin, same-origin."""
    return "cross-origin" if content_base_url() else "same-origin"


def content_url(version: CourseVersion, href: str) -> str:
    """URL of a file of ``version`` (``href`` relative to the package root, percent-encoded as the
    importers give it, query and fragment kept)."""
    root = quote(version.content_root, safe=_URL_SAFE) + "/" if version.content_root else ""
    path = f"/content/{version.id}/{root}{href.lstrip('/')}"
    base = content_base_url()
    if base:
        return base + path
    public = (current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    return public + path


_ancestors: dict[str, tuple[float, list[str]]] = {}


def _platform_origins() -> list[str]:
    """Origins of active registrations (issuer and OIDC login URL), cached briefly per process."""
    key = current_app.config["SQLALCHEMY_DATABASE_URI"]
    cached = _ancestors.get(key)
    now = time.monotonic()
    if cached and cached[0] > now:
        return cached[1]
    from ..lti.models import Registration

    origins: list[str] = []
    rows = db.session.execute(
        db.select(Registration.issuer, Registration.auth_login_url).filter_by(active=True)
    )
    for issuer, login in rows:
        for url in (issuer, login):
            origin = _origin(url)
            if origin and origin not in origins:
                origins.append(origin)
    _ancestors[key] = (now + ANCESTOR_CACHE_SECONDS, origins)
    return origins


def frame_ancestors(*, include_self: bool = True) -> list[str]:
    """CSP frame-ancestors sources: the tool, the content origin itself when content has its own
    (the SCORM runtime page frames SCOs), the registered platforms and CONTENT_FRAME_ANCESTORS."""
    sources = [tool_origin()]
    if include_self and content_base_url():
        sources.append("'self'")
    for origin in _platform_origins():
        if origin not in sources:
            sources.append(origin)
    for extra in (current_app.config.get("CONTENT_FRAME_ANCESTORS") or "").split():
        if extra not in sources:
            sources.append(extra)
    return sources


def content_security_policy(*, connect_tool: bool = False) -> str:
    """The CSP of package files; ``connect_tool`` lets them fetch from the tool's origin (cmi5 AUs
    send xAPI statements there; the endpoints answer CORS for the content origin only)."""
    connect = "connect-src 'self'"
    if connect_tool and content_base_url():
        connect += " " + tool_origin()
    return "; ".join([
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "font-src 'self' data:",
        connect,
        "frame-src 'self'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors " + " ".join(frame_ancestors()),
    ])


# --------------------------------------------------------------------------- files


def resolve_file(version: CourseVersion, path: str) -> Path | None:
    """The file ``path`` (URL-decoded, relative to the version folder) names, or None if it may not be served."""
    if not path or "\x00" in path or "\\" in path or path.startswith("/"):
        return None
    parts = path.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    if any(part.lower() in _ALWAYS_PRIVATE_DIRS for part in parts[:-1]) or path.lower().endswith(_ALWAYS_PRIVATE_SUFFIXES):
        return None
    if path.lower() in {p.lower() for p in version.private_paths or []}:
        return None
    if not version.storage_path:
        return None
    root = Path(os.path.realpath(storage_root() / version.storage_path))
    candidate = root.joinpath(*parts)
    real = Path(os.path.realpath(candidate))
    if real == root or root not in real.parents or candidate.is_symlink():
        return None
    if not real.is_file():
        return None
    return real


# Static files the SCORM runtime page loads on the content host (nothing else of /static/ is served there).
CONTENT_HOST_STATIC = ("vendor/scorm-again/", "player/content-runtime.js", "player/content-runtime.css")
CONTENT_HOST_ENDPOINTS = ("content.serve", "player.runtime.page")


def not_found() -> Response:
    """The content host's 404: plain text, nothing of the tool's pages."""
    resp = Response("Not found\n", status=404, mimetype="text/plain")
    resp.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    resp.headers["Cross-Origin-Resource-Policy"] = resource_policy()
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _allowed_on_content_host() -> bool:
    if request.endpoint in CONTENT_HOST_ENDPOINTS:
        return True
    if request.endpoint == "static" and request.method in ("GET", "HEAD"):
        filename = (request.view_args or {}).get("filename") or ""
        parts = filename.split("/")
        if "\\" in filename or any(part in ("", ".", "..") for part in parts):
            return False
        return filename.startswith(CONTENT_HOST_STATIC[0]) or filename in CONTENT_HOST_STATIC[1:]
    return False


@bp.before_app_request
def _separate_content_origin():
    """The content host serves content, the SCORM runtime page and its scripts: nothing else."""
    if on_content_host() and not _allowed_on_content_host():
        return not_found()
    return None


@bp.record_once
def _announce(state) -> None:
    resolved = state.app.config.get("CONTENT_ORIGIN")
    if resolved is None:
        return
    if resolved.separate:
        log.info("package content is served from its own origin %s", resolved.base_url)
    elif resolved.source == "unavailable":
        log.warning(resolved.note)
    else:
        log.info(resolved.note)


@bp.get("/content/<int:version_id>/<path:path>")
def serve(version_id: int, path: str):
    host = _content_host()
    if host and request.host.lower() != host:
        abort(404)  # content is never served on the tool's origin when it has its own
    version = db.session.get(CourseVersion, version_id)
    if version is None:
        abort(404)
    file = resolve_file(version, path)
    if file is None:
        abort(404)
    response = send_file(file, mimetype=mime_type(path), conditional=True, etag=True, max_age=CACHE_SECONDS)
    response.cache_control.public = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = content_security_policy(connect_tool=version.format == "cmi5")
    response.headers["Cross-Origin-Resource-Policy"] = resource_policy()
    return response


@bp.errorhandler(404)
def _not_found(_err):
    return not_found()


@bp.after_request
def _content_headers_on_errors(response):
    # 404s and 304s of the content route carry the same protections as files.
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cross-Origin-Resource-Policy", resource_policy())
    return response
