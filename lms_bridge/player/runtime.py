"""The SCORM runtime page, served on the content origin, and CORS for the tool's endpoints it calls.

Why a page of its own
---------------------
A SCO finds its LMS by walking ``window.parent`` (and ``opener``) looking for ``window.API``
(SCORM 1.2 RTE §3.2) or ``window.API_1484_11`` (SCORM 2004 RTE §3.1.2), and it can only inspect
windows of its own origin. When package content has its own origin (the default, see
:mod:`lms_bridge.packages.content`), an API on the player page (tool origin) is out of its reach,
and putting content on the tool's origin would let it read the player page and its launch token.
So the player frames this page, **on the content origin**::

    LMS page ─ player page (tool origin: launch token)
                 └─ iframe#content-frame sandbox="allow-scripts allow-same-origin ..."
                      runtime page  /content-runtime/<attempt>/<activity_key>?v=scorm2004  (content origin)
                        scorm-again: window.API_1484_11 / window.API, commits to the tool (CORS)
                        └─ iframe#sco-frame: the SCO  /content/<version>/<href>  (content origin)

The SCO's discovery finds the API one frame up; the player page is another origin, which the
browser keeps out of reach of everything on the content origin (``allow-same-origin`` only gives
the frames their real, content, origin: that is why it is safe there).

The runtime page holds no secret in its URL and none in its HTML: the player hands it its
configuration (cmi start values, commit URL, the per-attempt commit token of :mod:`.tokens`, the
SCO's URL) by ``postMessage``, only to a frame of the content origin that asked for it, and the
runtime accepts it only from its parent window on the tool's origin
(``static/player/scorm-host.js`` and ``static/player/content-runtime.js``). The commit token is
the only secret the content side ever holds: it lets a SCO write its own attempt's progress,
which SCORM lets it do anyway. The runtime tells the player when a commit changed something
(``lms_bridge.runtime.committed``) so the player refreshes its progress bar from the server; the
player trusts nothing else in those messages (a SCO can forge them: it shares the runtime's origin).

Commits are cross-origin ``POST`` requests to ``/player/api/attempts/.../scorm/commit`` (a
synchronous XHR with ``Authorization: Bearer``, preflighted; on ``Terminate`` a ``sendBeacon`` with
a ``text/plain`` body). :func:`cors` answers them for the content origin only, without
``Access-Control-Allow-Credentials``: the token is the credential, cookies are never used.

In same-origin mode (``CONTENT_ISOLATION=off``, trusted content only) the same page is served on the
tool's origin and everything works the same way, without isolation.
"""
from __future__ import annotations

import functools
import re

from flask import Blueprint, Response, make_response, render_template, request, url_for

from ..packages.content import (
    content_base_url,
    content_origin,
    frame_ancestors,
    not_found,
    on_content_host,
    tool_origin,
)
from ..web import public_url

bp = Blueprint("runtime", __name__)

BUNDLES = {"scorm12": "vendor/scorm-again/scorm12.min.js", "scorm2004": "vendor/scorm-again/scorm2004.min.js"}
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
PREFLIGHT_MAX_AGE = 600


def runtime_url(attempt_id: int, activity_key: str, scorm_version: str) -> str:
    """Absolute URL of the runtime page for one activity of one attempt, on the content origin."""
    values = {"attempt_id": attempt_id, "activity_key": activity_key, "v": scorm_version}
    base = content_base_url()
    if base:
        return base + url_for("player.runtime.page", **values)
    return public_url("player.runtime.page", **values)


def frame_origin() -> str:
    """The origin the player's content frame has: the content origin, or the tool's own."""
    return content_origin() or tool_origin()


def runtime_security_policy() -> str:
    """Scripts and styles of this server only (no inline code at all), commits to the tool only,
    SCOs framed from the content origin only."""
    tool = tool_origin()
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        f"connect-src 'self' {tool}",
        "frame-src 'self'",
        "child-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors " + " ".join(frame_ancestors(include_self=False)),
    ])


@bp.get("/content-runtime/<int:attempt_id>/<activity_key>")
def page(attempt_id: int, activity_key: str):
    if content_base_url() and not on_content_host():
        return not_found()  # on the tool's origin it would give content a same-origin path to the player
    scorm_version = request.args.get("v", "scorm2004")
    if scorm_version not in BUNDLES or not _KEY.fullmatch(activity_key):
        return not_found()
    html = render_template("player/runtime.html", tool_origin=tool_origin(), attempt_id=attempt_id,
                           activity_key=activity_key, scorm_version=scorm_version, bundle=BUNDLES[scorm_version])
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = runtime_security_policy()
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


# --------------------------------------------------------------------------- CORS


def allowed_origin(origin: str | None) -> bool:
    """Whether a cross-origin caller may read the tool's runtime endpoints: the content origin only."""
    allowed = content_origin()
    return bool(origin and allowed and origin.lower() == allowed)


def add_cors(resp: Response, *, methods: str, headers: str, allow=allowed_origin) -> Response:
    """CORS headers for the request's ``Origin`` when ``allow`` accepts it (never with credentials)."""
    origin = request.headers.get("Origin")
    resp.headers.add("Vary", "Origin")
    if allow(origin):
        resp.headers["Access-Control-Allow-Origin"] = origin
        if request.method == "OPTIONS":
            resp.headers["Access-Control-Allow-Methods"] = methods
            resp.headers["Access-Control-Allow-Headers"] = headers
            resp.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    return resp


def cors(*, methods: str = "POST", headers: str = "Authorization, Content-Type"):
    """Decorate a view (whose route accepts OPTIONS) to answer preflights and CORS for the content origin."""
    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if request.method == "OPTIONS":
                resp = Response(status=204)
            else:
                resp = make_response(view(*args, **kwargs))
            return add_cors(resp, methods=methods + ", OPTIONS", headers=headers)
        return wrapper
    return decorate

