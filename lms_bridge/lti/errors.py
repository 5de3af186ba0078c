"""Typed launch failures: each has a stable code, an HTTP status and words for a person.

Status policy: 400 for a malformed or incomplete message, 401 when the message cannot be
trusted (signature, key, algorithm, time, nonce, state, audience), 403 when it is authentic
but the platform, client or deployment is not allowed to launch here.
"""
from __future__ import annotations


class LaunchError(Exception):
    def __init__(self, code: str, status: int, message: str, hint: str = ""):
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.hint = hint


def bad_request(code: str, message: str, hint: str = "") -> LaunchError:
    return LaunchError(code, 400, message, hint)


def untrusted(code: str, message: str, hint: str = "") -> LaunchError:
    return LaunchError(code, 401, message, hint)


def forbidden(code: str, message: str, hint: str = "") -> LaunchError:
    return LaunchError(code, 403, message, hint)


RELAUNCH_HINT = "Go back to your course in the LMS and open the activity again."
ADMIN_HINT = "Ask the LMS administrator to check the tool registration; the support reference helps them find this event."
