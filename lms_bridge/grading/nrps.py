"""Names and Role Provisioning Services 2.0, tool side (1EdTech LTI NRPS 2.0).

The roster of a context comes from its ``context_memberships_url`` (the NRPS claim of a launch,
NRPS §3.6.1.1, recorded on :class:`~lms_bridge.lti.models.Context`):

* ``GET`` with ``Accept: application/vnd.ims.lti-nrps.v2.membershipcontainer+json`` (NRPS §2.2)
  and a bearer token holding only the scope ``contextmembership.readonly`` (Security Framework
  §4.1, from :mod:`lms_bridge.grading.tokens`);
* paging: every page's ``Link: <...>; rel="next"`` is followed (NRPS §2.4.2) until there is none,
  only on the origin of the memberships URL (the bearer token never goes to another host), and
  within :data:`MAX_PAGES`;
* ``rlid`` (NRPS §3) optionally narrows the roster to the members who can reach one resource link.

The tool keeps the last roster of each context (:class:`RosterMember`, :class:`Roster`): the
teacher's dashboard shows members who never launched, with the names the platform shared (their
:class:`~lms_bridge.lti.models.User` rows are created or completed, never blanked), and still
shows the last roster, with the error, when the platform cannot be reached. A full fetch replaces
the stored roster (members who left the course disappear); ``Inactive`` members are kept with their
status, ``Deleted`` ones are dropped. (NRPS ``rel="differences"`` links are not used: a full fetch
is what every platform supports, Moodle included.)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..http_client import session as http_session
from ..http_client import timeout as http_timeout
from ..lti import directory
from ..lti.launch import NRPS_CLAIM
from ..lti.models import Context, User, utcnow
from ..lti.roles import normalize
from ..web import log_event
from . import tokens
from .ags import parse_link_header, with_query

log = logging.getLogger("lms_bridge.grading.nrps")

NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
MEMBERSHIPS_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
MAX_PAGES = 200
ROSTER_MAX_AGE = timedelta(minutes=5)  # dashboards re-fetch a roster older than this
STATUSES = ("Active", "Inactive", "Deleted")


# --------------------------------------------------------------------------- stored roster


class Roster(db.Model):
    """When a context's roster was last fetched, from where, and the last error."""

    __tablename__ = "gr_roster"

    id = db.Column(db.Integer, primary_key=True)
    context_pk = db.Column(db.Integer, db.ForeignKey("lti_context.id", ondelete="CASCADE"), nullable=False,
                           unique=True)
    memberships_url = db.Column(db.String(1000), nullable=False)
    synced_at = db.Column(db.DateTime, nullable=True)
    member_count = db.Column(db.Integer, nullable=False, default=0)
    page_count = db.Column(db.Integer, nullable=False, default=0)
    last_error = db.Column(db.Text, nullable=True)
    error_at = db.Column(db.DateTime, nullable=True)


class RosterMember(db.Model):
    """A member of a context as the platform's roster says (NRPS §2.3: ``status``, ``roles``)."""

    __tablename__ = "gr_roster_member"
    __table_args__ = (db.UniqueConstraint("context_pk", "user_pk"),)

    id = db.Column(db.Integer, primary_key=True)
    context_pk = db.Column(db.Integer, db.ForeignKey("lti_context.id", ondelete="CASCADE"), nullable=False)
    user_pk = db.Column(db.Integer, db.ForeignKey("lti_user.id", ondelete="CASCADE"), nullable=False, index=True)
    status = db.Column(db.String(20), nullable=False, default="Active")
    roles = db.Column(db.JSON, nullable=False, default=list)
    synced_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    user = db.relationship("User")


# --------------------------------------------------------------------------- the client


class RosterError(Exception):
    """The roster could not be fetched; the message says what happened and what to do."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class _MemberSchema(Schema):
    """One member of a membership container (NRPS §2.3); unknown fields are ignored."""

    class Meta:
        unknown = EXCLUDE

    user_id = fields.String(required=True, validate=validate.Length(min=1, max=255))
    status = fields.String(load_default="Active")
    roles = fields.List(fields.Raw(), load_default=list)
    name = fields.String(load_default=None, allow_none=True)
    given_name = fields.String(load_default=None, allow_none=True)
    family_name = fields.String(load_default=None, allow_none=True)
    email = fields.String(load_default=None, allow_none=True)


@dataclass
class Member:
    user_id: str
    status: str
    roles: list[str]
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None


@dataclass
class Membership:
    """A fetched roster: every member of every page, and how many pages it took."""

    context: dict
    members: list[Member] = field(default_factory=list)
    pages: int = 0
    skipped: int = 0


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _refusal(status: int, url: str) -> str:
    if status in (401, 403):
        return (f"The platform refused the roster request (HTTP {status}). Allow the tool to read the roster: "
                "in Moodle, edit the tool's configuration and set \"IMS LTI Names and Role Provisioning\" to "
                "\"Use this service to retrieve members' information\"; in other LMSs, grant the Names and Role "
                "Provisioning service.")
    if status == 404:
        return f"The platform has no roster at {url} (HTTP 404): launch the tool again from the course."
    return f"The platform answered the roster request with HTTP {status}; try again later."


def fetch_memberships(url: str, bearer: str, *, rlid: str | None = None, role: str | None = None) -> Membership:
    """Every member of a context (NRPS §2.2), following ``rel="next"`` pages. Raises RosterError."""
    headers = {"Accept": MEMBERSHIPS_TYPE, "Authorization": "Bearer " + bearer}
    extra = {k: v for k, v in (("rlid", rlid), ("role", role)) if v}
    next_url: str | None = with_query(url, extra)
    origin = _origin(url)
    seen: set[str] = set()
    result = Membership(context={})
    schema = _MemberSchema()
    while next_url:
        if next_url in seen:
            raise RosterError(f"The platform's roster pages loop back to {next_url}.")
        if len(seen) >= MAX_PAGES:
            raise RosterError(f"The platform's roster has more than {MAX_PAGES} pages; lms_bridge stopped there.")
        seen.add(next_url)
        try:
            resp = http_session().get(next_url, headers=headers, timeout=http_timeout(), allow_redirects=False)
        except requests.RequestException as exc:
            raise RosterError(f"The platform's roster service could not be reached ({exc.__class__.__name__}); "
                              "try again later.") from exc
        if resp.status_code != 200:
            raise RosterError(_refusal(resp.status_code, next_url), resp.status_code)
        try:
            body = resp.json()
        except ValueError as exc:
            raise RosterError("The platform's roster answer is not JSON.") from exc
        if not isinstance(body, dict) or not isinstance(body.get("members"), list):
            raise RosterError("The platform's roster answer has no members list (NRPS §2.2).")
        result.pages += 1
        if isinstance(body.get("context"), dict) and not result.context:
            result.context = body["context"]
        for raw in body["members"]:
            try:
                data = schema.load(raw if isinstance(raw, dict) else {})
            except ValidationError:
                result.skipped += 1  # a member without a user id cannot be shown
                continue
            status = data["status"] if data["status"] in STATUSES else "Active"
            result.members.append(Member(user_id=data["user_id"], status=status, roles=normalize(data["roles"]),
                                         name=data["name"], given_name=data["given_name"],
                                         family_name=data["family_name"], email=data["email"]))
        link = parse_link_header(resp.headers.get("Link"), next_url).get("next")
        if link and _origin(link) != origin:
            raise RosterError(f"The platform's next roster page {link} is on another host; lms_bridge does not "
                              "send its access token there.")
        next_url = link or None
    return result


# --------------------------------------------------------------------------- sync


def memberships_url(launch) -> str | None:
    """The context's NRPS endpoint: from the launch's claim, else as recorded for the context."""
    claim = launch.claims.get(NRPS_CLAIM)
    if isinstance(claim, dict) and isinstance(claim.get("context_memberships_url"), str):
        return claim["context_memberships_url"]
    if launch.context_pk is not None:
        ctx = db.session.get(Context, launch.context_pk)
        return ctx.memberships_url if ctx is not None else None
    return None


def _fetch(registration_id: int, url: str) -> Membership:
    """The roster with an access token holding the NRPS scope only (Security Framework §4.1, cached
    by :mod:`.tokens`); once more with a new token when the platform no longer takes the cached one."""
    registration = directory.registration(registration_id)
    if registration is None:
        raise RosterError("The platform's registration is no longer in lms_bridge.")
    for attempt in (1, 2):
        try:
            token = tokens.access_token(registration, [NRPS_SCOPE])
        except tokens.TokenError as exc:
            raise RosterError(f"The platform gave no access token for the roster: {exc}") from exc
        try:
            return fetch_memberships(url, token.value)
        except RosterError as exc:
            if exc.status != 401 or attempt == 2:
                raise
            tokens.discard(registration, token)
    raise AssertionError("unreachable")


def roster(context_pk: int) -> Roster | None:
    return db.session.execute(db.select(Roster).filter_by(context_pk=context_pk)).scalar_one_or_none()


def is_stale(row: Roster | None) -> bool:
    """Due for a fetch: nothing tried within ROSTER_MAX_AGE (a failure waits as long as a success,
    so a platform that is down does not slow every dashboard view down to the HTTP timeout)."""
    tried = [t for t in (row.synced_at, row.error_at) if t is not None] if row is not None else []
    return not tried or utcnow() - max(tried) > ROSTER_MAX_AGE


def sync(launch, *, force: bool = False) -> Roster | None:
    """Fetch and store the roster of the launch's context when it is stale (or ``force``).

    Returns the stored roster row (None when the context offers no NRPS). A failure is recorded
    on the row (``last_error``) and the previous members stay; raises nothing.
    """
    if launch.context_pk is None:
        return None
    url = memberships_url(launch)
    if not url:
        return None
    row = roster(launch.context_pk)
    if not force and not is_stale(row):
        return row
    db.session.rollback()  # no transaction stays open across the HTTP calls
    try:
        fetched = _fetch(launch.registration_id, url)
    except RosterError as exc:
        log_event("nrps.roster.failed", logging.WARNING, context=launch.context_pk, error=str(exc))
        return _record_error(launch.context_pk, url, str(exc))
    _store(launch.registration_id, launch.context_pk, url, fetched)
    log_event("nrps.roster.synced", context=launch.context_pk, members=len(fetched.members), pages=fetched.pages,
              skipped=fetched.skipped)
    return roster(launch.context_pk)


def _roster_row(context_pk: int, url: str) -> Roster:
    row = roster(context_pk)
    if row is None:
        try:
            with db.session.begin_nested():
                row = Roster(context_pk=context_pk, memberships_url=url, member_count=0, page_count=0)
                db.session.add(row)
        except IntegrityError:  # another request created it first
            row = roster(context_pk)
    return row


def _record_error(context_pk: int, url: str, message: str) -> Roster:
    row = _roster_row(context_pk, url)
    row.last_error, row.error_at, row.memberships_url = message[:2000], utcnow(), url
    db.session.commit()
    return row


_USER_FIELDS = {"name": 255, "given_name": 255, "family_name": 255, "email": 320}


def _users(registration_id: int, members: list[Member]) -> dict[str, User]:
    """The User rows of these members (by ``sub``), created when missing; names completed, never blanked."""
    subs = [m.user_id for m in members]
    found: dict[str, User] = {}
    for start in range(0, len(subs), 500):
        chunk = subs[start:start + 500]
        found.update({u.sub: u for u in db.session.execute(
            db.select(User).filter(User.registration_id == registration_id, User.sub.in_(chunk))).scalars()})
    for member in members:
        user = found.get(member.user_id)
        # Cut to the columns' sizes: a platform's overlong name must not fail the whole roster.
        values = {k: (getattr(member, k) or "")[:size] or None for k, size in _USER_FIELDS.items()}
        if user is None:
            user = User(registration_id=registration_id, sub=member.user_id, **values)
            try:
                with db.session.begin_nested():
                    db.session.add(user)
            except IntegrityError:  # the member launched at this moment
                user = db.session.execute(db.select(User).filter_by(registration_id=registration_id,
                                                                    sub=member.user_id)).scalar_one()
            found[member.user_id] = user
        else:
            for key, value in values.items():
                if value and getattr(user, key) != value:
                    setattr(user, key, value)
    return found


def _store(registration_id: int, context_pk: int, url: str, fetched: Membership) -> None:
    """Replace the context's stored roster with ``fetched``, in one transaction."""
    now = utcnow()
    db.session.rollback()
    # The transaction's first statement locks the roster row (the write lock on SQLite), so two
    # refreshes of one context write one after the other and the second sees the first's rows.
    locked = db.session.execute(db.update(Roster).where(Roster.context_pk == context_pk).values(synced_at=now))
    row = _roster_row(context_pk, url)
    if not locked.rowcount:
        db.session.execute(db.update(Roster).where(Roster.id == row.id).values(synced_at=now))
    present = {}
    for member in fetched.members:
        if member.status != "Deleted":
            present[member.user_id] = member  # a member listed twice: the last entry wins
    users = _users(registration_id, list(present.values()))
    keep = {users[sub].id: m for sub, m in present.items()}
    existing = {r.user_pk: r for r in db.session.execute(
        db.select(RosterMember).filter_by(context_pk=context_pk)).scalars()}
    for user_pk, stale in existing.items():
        if user_pk not in keep:
            db.session.delete(stale)
    for user_pk, member in keep.items():
        current = existing.get(user_pk)
        if current is None:
            db.session.add(RosterMember(context_pk=context_pk, user_pk=user_pk, status=member.status,
                                        roles=member.roles, synced_at=now))
        else:
            current.status, current.roles, current.synced_at = member.status, member.roles, now
    row = db.session.get(Roster, row.id)
    row.memberships_url, row.synced_at, row.member_count, row.page_count = url, now, len(keep), fetched.pages
    row.last_error = None
    row.error_at = None
    db.session.commit()


def members(context_pk: int) -> list[RosterMember]:
    """The stored roster of a context, with users loaded."""
    from sqlalchemy.orm import joinedload

    return list(db.session.execute(
        db.select(RosterMember).filter_by(context_pk=context_pk).options(joinedload(RosterMember.user))
    ).scalars())
