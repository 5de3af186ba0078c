"""Outbound HTTP: one pooled session per process, a timeout on every call."""
from __future__ import annotations

import email.utils
import time

import requests
from flask import current_app

USER_AGENT = "lms_bridge (LTI 1.3 tool)"
_session: requests.Session | None = None


class OutboundError(Exception):
    """An outbound call failed; ``status`` is the HTTP status when there was an answer."""

    def __init__(self, url: str, message: str, status: int | None = None):
        super().__init__(f"{url}: {message}")
        self.url = url
        self.status = status


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` (RFC 9110 §10.2.3): delay seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def session() -> requests.Session:
    global _session
    if _session is None:
        _session = requests.Session()
        _session.headers["User-Agent"] = USER_AGENT
    return _session


def timeout() -> float:
    try:
        return float(current_app.config["HTTP_TIMEOUT"])
    except RuntimeError:  # outside an application context
        return 10.0


def get_json(url: str, headers: dict | None = None) -> dict:
    """GET a JSON object; every failure becomes an :class:`OutboundError` saying what happened."""
    try:
        resp = session().get(url, headers=headers or {}, timeout=timeout(), allow_redirects=True)
    except requests.RequestException as exc:
        raise OutboundError(url, f"could not connect ({exc.__class__.__name__})") from exc
    if resp.status_code != 200:
        raise OutboundError(url, f"answered HTTP {resp.status_code}", resp.status_code)
    try:
        data = resp.json()
    except ValueError as exc:
        ctype = resp.headers.get("Content-Type", "")
        raise OutboundError(url, f"answered {ctype or 'something'} that is not JSON", resp.status_code) from exc
    if not isinstance(data, dict):
        raise OutboundError(url, "answered JSON that is not an object", resp.status_code)
    return data


def post_json(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict | None]:
    try:
        resp = session().post(url, json=body, headers=headers or {}, timeout=timeout())
    except requests.RequestException as exc:
        raise OutboundError(url, f"could not connect ({exc.__class__.__name__})") from exc
    try:
        data = resp.json()
    except ValueError:
        data = None
    return resp.status_code, data if isinstance(data, dict) else None
