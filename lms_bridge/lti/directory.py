"""Registrations and deployments as launches read them, cached in the shared store.

Every login and launch needs the platform's registration and the deployment.  Reading them
from Redis (production) keeps the database off the launch path; with the database as shared
store (embedded default) they are read from their tables directly.  The
cache is never stale for long and never per process: any committed change to a Registration
or Deployment, through any worker, bumps a generation number that is part of every cache key,
so all workers and hosts miss and re-read at once.  Entries also expire after ``TTL``.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from flask import g, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..extensions import db
from ..shared_store import DatabaseStore, store
from .models import Deployment, Registration

TTL = 300
GENERATION_KEY = "directory:generation"
GENERATION_TTL = 30 * 24 * 3600  # far beyond TTL, so a reset counter never meets old entries


@dataclass(frozen=True)
class RegistrationInfo:
    """The registration fields a launch needs (duck-types :class:`Registration` for reading)."""

    id: int
    issuer: str
    client_id: str
    name: str
    auth_login_url: str
    auth_token_url: str
    auth_audience: str | None
    key_set_url: str | None
    key_set: dict | None
    active: bool
    auto_activate_deployments: bool

    @classmethod
    def of(cls, reg: Registration) -> "RegistrationInfo":
        return cls(**{f: getattr(reg, f) for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class DeploymentInfo:
    id: int
    deployment_id: str
    active: bool


def _generation() -> int:
    # Read once per request: a launch looks up its registration and deployment in one go.
    if has_request_context() and "directory_generation" in g:
        return g.directory_generation
    value = store().get(GENERATION_KEY)
    generation = int(value) if value is not None else 0
    if has_request_context():
        g.directory_generation = generation
    return generation


def _caching() -> bool:
    # With the database as shared store a cache entry costs as much as the query it saves.
    return not isinstance(store(), DatabaseStore)


def _get(key: str):
    return store().get(key) if _caching() else None


def _put(key: str, value, ttl: int) -> None:
    if _caching():
        store().put(key, value, ttl)


def _key(kind: str, *parts) -> str:
    if not _caching():
        return ""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"directory:{_generation()}:{kind}:{digest}"


def registration(registration_id: int) -> RegistrationInfo | None:
    key = _key("reg", registration_id)
    cached = _get(key)
    if cached is not None:
        return RegistrationInfo(**cached) if cached else None
    reg = db.session.get(Registration, registration_id)
    info = RegistrationInfo.of(reg) if reg else None
    _put(key, asdict(info) if info else {}, TTL)
    return info


def registrations_for(issuer: str, client_id: str | None) -> list[RegistrationInfo]:
    """Registrations of an issuer (and client_id, when given); at most two are read."""
    key = _key("lookup", issuer, client_id or "")
    cached = _get(key)
    if cached is not None:
        return [RegistrationInfo(**r) for r in cached]
    q = db.select(Registration).where(Registration.issuer == issuer)
    if client_id:
        q = q.where(Registration.client_id == client_id)
    regs = [RegistrationInfo.of(r) for r in db.session.execute(q.order_by(Registration.id).limit(2)).scalars()]
    _put(key, [asdict(r) for r in regs], TTL)
    return regs


def issuer_known(issuer: str) -> bool:
    return bool(registrations_for(issuer, None))


def deployment(registration_id: int, deployment_id: str) -> DeploymentInfo | None:
    key = _key("dep", registration_id, deployment_id)
    cached = _get(key)
    if cached is not None:
        return DeploymentInfo(**cached) if cached else None
    dep = db.session.execute(
        db.select(Deployment).filter_by(registration_id=registration_id, deployment_id=deployment_id)
    ).scalar_one_or_none()
    info = DeploymentInfo(dep.id, dep.deployment_id, dep.active) if dep else None
    if info is not None:  # unknown deployments are not cached: the launch records them at once
        _put(key, asdict(info), TTL)
    return info


def invalidate() -> None:
    """Make every cached entry obsolete on every worker (call after committing a change)."""
    if _caching():
        generation = store().incr(GENERATION_KEY, GENERATION_TTL)
        if has_request_context():
            g.directory_generation = generation


# Any committed change to registrations or deployments, wherever it is made, invalidates the cache.
@event.listens_for(Session, "before_flush")
def _note_changes(session, _flush_context, _instances):
    if any(isinstance(o, (Registration, Deployment)) for o in (*session.new, *session.dirty, *session.deleted)):
        session.info["directory_changed"] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session):
    if session.info.pop("directory_changed", False):
        invalidate()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session):
    session.info.pop("directory_changed", None)
