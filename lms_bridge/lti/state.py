"""Launch state shared by every worker: OIDC state and nonce, pending Platform Storage checks,
and the opaque launch tokens the player uses after a launch.

Nothing here goes into the Flask cookie session: the browser holds only random handles.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from flask import current_app

from ..shared_store import store

STATE_PREFIX = "oidc-state:"
NONCE_PREFIX = "oidc-nonce:"
PENDING_PREFIX = "oidc-pending:"
LAUNCH_PREFIX = "launch:"


def new_state(record: dict) -> tuple[str, dict]:
    """Create OIDC state (LTI Security Framework §5.1.1.1): state, nonce and a browser binding."""
    state = secrets.token_urlsafe(32)
    record = {**record, "nonce": secrets.token_urlsafe(32), "binding": secrets.token_urlsafe(24), "created": time.time()}
    store().put(STATE_PREFIX + state, record, current_app.config["LTI_STATE_TTL"])
    return state, record


def peek_state(state: str) -> dict | None:
    return store().get(STATE_PREFIX + state)


def update_state(state: str, record: dict) -> None:
    store().put(STATE_PREFIX + state, record, current_app.config["LTI_STATE_TTL"])


def take_state(state: str) -> dict | None:
    """Consume the state: only the first caller, on any worker, gets it."""
    return store().take(STATE_PREFIX + state)


def consume_nonce(registration_id: int, nonce: str, ttl: int) -> bool:
    """True the first time a nonce is seen for this registration (OIDC Core §3.1.3.7, step 11)."""
    return store().add(f"{NONCE_PREFIX}{registration_id}:{nonce}", 1, max(ttl, 60))


def park_pending(form: dict) -> str:
    """Keep a posted id_token server-side while the browser asks platform storage for the binding."""
    handle = secrets.token_urlsafe(24)
    store().put(PENDING_PREFIX + handle, form, 120)
    return handle


def take_pending(handle: str) -> dict | None:
    return store().take(PENDING_PREFIX + handle)


@dataclass
class LaunchSession:
    """What the player knows after a launch, found by the opaque launch token."""

    token: str
    registration_id: int
    deployment_pk: int
    user_pk: int
    context_pk: int | None
    resource_link_pk: int | None
    message_type: str
    roles: list[str]
    claims: dict = field(repr=False)
    display: dict = field(default_factory=dict)  # names and titles for pages, so they need no queries

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d.pop("token")
        return d


def create_launch_session(**values) -> LaunchSession:
    token = secrets.token_urlsafe(32)
    session = LaunchSession(token=token, **values)
    store().put(LAUNCH_PREFIX + token, session.to_dict(), current_app.config["LAUNCH_TOKEN_TTL"])
    return session


def load_launch_session(token: str) -> LaunchSession | None:
    if not token or len(token) > 100:
        return None
    data = store().get(LAUNCH_PREFIX + token)
    return LaunchSession(token=token, **data) if data else None
