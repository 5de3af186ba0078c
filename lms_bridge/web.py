"""Small web helpers shared by every blueprint: public URLs, error pages, CSRF, headers."""
from __future__ import annotations

import hmac
import json
import logging
import secrets
import uuid
from urllib.parse import urlsplit

from flask import Response, abort, current_app, render_template, request, session, url_for

log = logging.getLogger("lms_bridge")


def public_url(endpoint: str, **values) -> str:
    """Absolute URL as platforms must use it: PUBLIC_BASE_URL when set, else this request's host."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if base:
        return base + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def public_host() -> str:
    base = current_app.config.get("PUBLIC_BASE_URL")
    return urlsplit(base).netloc if base else request.host


def support_reference() -> str:
    return uuid.uuid4().hex[:12]


def log_event(event: str, level: int = logging.INFO, **fields) -> None:
    """One structured (JSON) log line per noteworthy event."""
    log.log(level, json.dumps({"event": event, **fields}, default=str, sort_keys=True))


def error_page(status: int, title: str, message: str, hint: str = "", code: str = "", reference: str | None = None,
               **extra) -> Response:
    """An HTML page for people, with JSON for API clients that ask for it."""
    reference = reference or support_reference()
    if request.accept_mimetypes.best == "application/json":
        body = {"error": code or "error", "message": message, "hint": hint, "reference": reference}
        return Response(json.dumps(body), status=status, mimetype="application/json")
    html = render_template("error.html", status=status, title=title, message=message, hint=hint, code=code,
                           reference=reference, **extra)
    return Response(html, status=status, mimetype="text/html")


# -- CSRF for operator forms (synchroniser token in the server-signed session) -------------


def csrf_token() -> str:
    token = session.get("_csrf")
    if not token:
        token = session["_csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    expected = session.get("_csrf")
    given = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not expected or not hmac.compare_digest(expected, given):
        abort(400, description="The form expired or did not come from this site (CSRF check failed). Reload the page and try again.")


def install(app) -> None:
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.after_request
    def security_headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        # Launch tokens travel in URLs: never leak them to other sites.
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        return resp

    @app.errorhandler(400)
    def _bad_request(err):
        return error_page(400, "Bad request", getattr(err, "description", "The request was not understood."), code="bad_request")

    @app.errorhandler(403)
    def _forbidden(err):
        return error_page(403, "Not allowed", getattr(err, "description", "You may not see this page."), code="forbidden")

    @app.errorhandler(404)
    def _not_found(err):
        return error_page(404, "Not found", "There is nothing at this address.", code="not_found")

    @app.errorhandler(405)
    def _method(err):
        return error_page(405, "Method not allowed", "This address does not accept that kind of request.", code="method_not_allowed")

    @app.errorhandler(413)
    def _too_large(err):
        return error_page(413, "Too large", "The upload is larger than this server accepts.", code="too_large")

    @app.errorhandler(500)
    def _server_error(err):
        ref = support_reference()
        log_event("server.error", logging.ERROR, reference=ref, path=request.path)
        return error_page(500, "Something went wrong", "The tool hit an unexpected error.",
                          "Try again; if it keeps happening, give the support reference to your administrator.",
                          code="server_error", reference=ref)
