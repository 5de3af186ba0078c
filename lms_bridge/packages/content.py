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
  (no fetch or XHR to other origins); ``object-src 'none'``; ``base-uri``/``form-action 'self'``;
  ``frame-ancestors`` the tool's origin and the origins of registered platforms (see below);
* ``Cross-Origin-Resource-Policy: same-origin``: other sites cannot embed the files;
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
Content must never read the tool's cookies or launch tokens. The player shows it in a sandboxed
iframe, and what the sandbox can promise depends on where content is served from:

* ``CONTENT_BASE_URL`` unset (the default, for development and for packages the operator trusts):
  content is served from the tool's own origin under ``/content/``. A sandbox without
  ``allow-same-origin`` gives it an opaque origin (no cookies, no access to the player page), but
  then the SCORM API in the parent frame is unreachable and ``Cross-Origin-Resource-Policy:
  same-origin`` blocks the content's own scripts and images; with ``allow-same-origin`` the
  content is same-origin with the tool and could read the player page and call the tool with the
  operator's cookie.
* ``CONTENT_BASE_URL=https://content.example.org`` (production): a second host name for the same
  application, on another site or at least another origin. Content is then served ONLY on that
  host (``/content/`` on the tool's host answers 404, and the content host answers 404 for
  everything else), the player can use ``allow-same-origin`` safely (the content origin holds no
  tool cookie: they are host-only), and the tool's cookies, session and launch tokens stay on the
  tool origin. ``PUBLIC_BASE_URL`` must be set too, so ``frame-ancestors`` names the tool.

:func:`content_url` builds the URL of a package file (absolute on ``CONTENT_BASE_URL`` when set).
"""
from __future__ import annotations

import mimetypes
import os
import posixpath
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from flask import Blueprint, abort, current_app, request, send_file

from ..extensions import db
from .models import CourseVersion
from .service import storage_root

bp = Blueprint("content", __name__)

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


def content_base_url() -> str | None:
    """``CONTENT_BASE_URL`` without a trailing slash, or None when content shares the tool's origin."""
    base = (current_app.config.get("CONTENT_BASE_URL") or "").rstrip("/")
    if not base:
        return None
    tool = _origin(current_app.config.get("PUBLIC_BASE_URL") or "")
    return None if tool and tool == _origin(base) else base


def _content_host() -> str | None:
    base = content_base_url()
    return urlsplit(base).netloc.lower() if base else None


def tool_origin() -> str:
    """The tool's origin: PUBLIC_BASE_URL's, else (same-origin content only) this request's."""
    configured = _origin(current_app.config.get("PUBLIC_BASE_URL") or "")
    if configured:
        return configured
    return f"{request.scheme}://{request.host}".lower()


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


def frame_ancestors() -> list[str]:
    sources = [tool_origin()]
    for origin in _platform_origins():
        if origin not in sources:
            sources.append(origin)
    for extra in (current_app.config.get("CONTENT_FRAME_ANCESTORS") or "").split():
        if extra not in sources:
            sources.append(extra)
    return sources


def content_security_policy() -> str:
    return "; ".join([
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
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


@bp.before_app_request
def _separate_content_origin():
    """With CONTENT_BASE_URL, the content host serves content and nothing else."""
    host = _content_host()
    if host and request.host.lower() == host and request.endpoint != "content.serve":
        abort(404)


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
    response.headers["Content-Security-Policy"] = content_security_policy()
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


@bp.after_request
def _content_headers_on_errors(response):
    # 404s and 304s of the content route carry the same protections as files.
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    return response
