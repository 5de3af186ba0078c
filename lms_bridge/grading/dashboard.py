"""The teacher's view of one activity: who is in the course, and how far each member got.

For a resource link bound to a course (or module) (:mod:`lms_bridge.player.binding`):

* **members**: the context's roster as Names and Role Provisioning last returned it
  (:mod:`.nrps`), including members who never launched, plus anyone who has an attempt here but
  is not (or no longer) on the roster; without NRPS, the members who launched;
* for each: status (``never_launched``, ``not_started``, ``in_progress``, ``completed``), overall
  progress in %, the course score (``Attempt.score_scaled``, the score sent to the gradebook),
  completion date, last activity, and progress per **module column** (done / total activities,
  "done" meaning what the player counts: the package's completion rule for that activity);
* the **distribution** of learners' progress per module in :data:`BINS` (never-launched learners
  count as not started), drawn as an SVG bar chart with a table alternative.

Module columns are the top-level modules of what the link opens (a bound module: itself), one
level down while there is a single module holding only modules (SCORM organisations).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime

from ..extensions import db
from ..lti.models import Membership, User
from ..lti.roles import RoleSet
from ..lti.state import LaunchSession
from ..packages.models import Activity, Module
from ..player import progress as progress_service
from ..player.binding import Binding
from ..player.models import Attempt
from . import nrps

# (key, label, lowest %, highest %) of the progress distribution.
BINS = (
    ("none", "Not started (0 %)", 0, 0),
    ("low", "1 to 24 %", 1, 24),
    ("some", "25 to 49 %", 25, 49),
    ("half", "50 to 74 %", 50, 74),
    ("most", "75 to 99 %", 75, 99),
    ("done", "Done (100 %)", 100, 100),
)
STATUS_LABELS = {"never_launched": "Never launched", "not_started": "Not started", "in_progress": "In progress",
                 "completed": "Completed"}


@dataclass(frozen=True)
class ModuleColumn:
    identifier: str
    title: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class ModuleCell:
    done: int
    total: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


@dataclass
class MemberRow:
    user_pk: int
    user_id: str
    name: str
    email: str | None
    roles: list[str]
    role_label: str
    learner: bool
    in_roster: bool
    roster_status: str | None
    status: str = "never_launched"
    percent: int = 0
    score: float | None = None
    completed_at: datetime | None = None
    last_active: datetime | None = None
    modules: list[ModuleCell] = field(default_factory=list)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def score_percent(self) -> float | None:
        return round(100 * self.score, 1) if self.score is not None else None


@dataclass(frozen=True)
class DistributionRow:
    column: ModuleColumn
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def segments(self) -> list[tuple[int, float, float, int]]:
        """(bin index, start, width, count) of the non-empty bins, as fractions of the bar."""
        out, start = [], 0.0
        for index, count in enumerate(self.counts):
            if count:
                width = count / self.total
                out.append((index, start, width, count))
                start += width
        return out


@dataclass
class Dashboard:
    binding: Binding
    columns: list[ModuleColumn]
    members: list[MemberRow]
    distribution: list[DistributionRow]
    roster: nrps.Roster | None
    nrps_offered: bool

    @property
    def learners(self) -> list[MemberRow]:
        return [m for m in self.members if m.learner]

    @property
    def launched(self) -> int:
        return sum(1 for m in self.learners if m.status != "never_launched")

    @property
    def completed(self) -> int:
        return sum(1 for m in self.learners if m.status == "completed")

    @property
    def average_score(self) -> float | None:
        scores = [m.score for m in self.learners if m.score is not None]
        return round(100 * sum(scores) / len(scores), 1) if scores else None


# --------------------------------------------------------------------------- structure


def _countable(activity: Activity) -> bool:
    return activity.visible and activity.kind != "unsupported"


def activity_keys(module: Module) -> list[str]:
    keys: list[str] = []
    for child in module.children():
        if isinstance(child, Module):
            if child.visible:
                keys += activity_keys(child)
        elif _countable(child):
            keys.append(child.activity_key)
    return keys


def module_columns(binding: Binding) -> list[ModuleColumn]:
    roots = [binding.module] if binding.module is not None else [m for m in binding.version.modules if m.visible]
    while len(roots) == 1:
        children = roots[0].children()
        sub = [c for c in children if isinstance(c, Module) and c.visible]
        if not sub or any(isinstance(c, Activity) and _countable(c) for c in children):
            break
        roots = sub
    columns = [ModuleColumn(m.identifier, m.title or m.identifier, tuple(activity_keys(m))) for m in roots]
    return [c for c in columns if c.keys]


def _tracked(binding: Binding, columns: list[ModuleColumn]) -> list[str]:
    """What the overall % counts: the required activities in scope, else every one in scope."""
    scope = [k for c in columns for k in c.keys]
    required = set(progress_service.course_rules(binding.version.id).required_keys)
    return [k for k in scope if k in required] or scope


# --------------------------------------------------------------------------- members


def _status(attempt: Attempt, summary: progress_service.Summary, tracked: list[str], whole_course: bool) -> str:
    if whole_course and attempt.completed_at is not None:
        return "completed"
    if tracked and all(summary.satisfied.get(k) for k in tracked):
        return "completed"
    started = any(s.completion_status not in ("not_attempted", "unknown") or s.success_status != "unknown"
                  for s in summary.states.values())
    return "in_progress" if started or any(summary.satisfied.values()) else "not_started"


def _counts_as_learner(roles: RoleSet, member: nrps.RosterMember | None) -> bool:
    """Learners are who the distribution counts: no teaching or admin role, not inactive in the course."""
    if roles.is_instructor or roles.is_admin:
        return False
    return member is None or member.status != "Inactive"


def _role_label(roles: RoleSet) -> str:
    return "Administrator" if roles.is_admin and not roles.is_instructor else roles.label


def _roles_by_user(context_pk: int | None, user_pks: list[int]) -> dict[int, list[str]]:
    if context_pk is None or not user_pks:
        return {}
    rows = db.session.execute(db.select(Membership.user_id, Membership.roles).where(
        Membership.context_pk == context_pk, Membership.user_id.in_(user_pks)))
    return {user_id: list(roles or []) for user_id, roles in rows}


def build(launch: LaunchSession, binding: Binding, roster_row: nrps.Roster | None = None,
          nrps_offered: bool = False) -> Dashboard:
    """The dashboard of the launch's resource link, from the stored roster and progress."""
    columns = module_columns(binding)
    tracked = _tracked(binding, columns)
    attempts = {a.user_pk: a for a in db.session.execute(db.select(Attempt).filter_by(
        course_id=binding.course.id, resource_link_pk=launch.resource_link_pk)).scalars()}
    roster_members = nrps.members(launch.context_pk) if launch.context_pk is not None else []
    on_roster = {m.user_pk: m for m in roster_members}
    extra_pks = [pk for pk in attempts if pk not in on_roster]
    users = {m.user_pk: m.user for m in roster_members}
    if extra_pks:
        users.update({u.id: u for u in db.session.execute(db.select(User).where(User.id.in_(extra_pks))).scalars()})
    launched_roles = _roles_by_user(launch.context_pk, extra_pks)

    rows: list[MemberRow] = []
    for user_pk, user in users.items():
        member = on_roster.get(user_pk)
        roles = member.roles if member is not None else launched_roles.get(user_pk, [])
        role_set = RoleSet.of(roles)
        row = MemberRow(user_pk=user_pk, user_id=user.sub, name=user.display_name, email=user.email, roles=roles,
                        role_label=_role_label(role_set), learner=_counts_as_learner(role_set, member),
                        in_roster=member is not None, roster_status=member.status if member is not None else None,
                        modules=[ModuleCell(0, len(c.keys)) for c in columns])
        attempt = attempts.get(user_pk)
        if attempt is not None:
            summary = progress_service.summary(attempt)
            row.modules = [ModuleCell(sum(1 for k in c.keys if summary.satisfied.get(k)), len(c.keys)) for c in columns]
            done = sum(1 for k in tracked if summary.satisfied.get(k))
            row.percent = round(100 * done / len(tracked)) if tracked else 0
            row.status = _status(attempt, summary, tracked, binding.module is None)
            if row.status == "completed":
                row.percent = 100
            row.score = attempt.score_scaled
            row.completed_at = attempt.completed_at
            row.last_active = attempt.updated_at
        rows.append(row)
    rows.sort(key=lambda r: (not r.learner, r.name.casefold(), r.user_id))
    return Dashboard(binding=binding, columns=columns, members=rows,
                     distribution=distribution(columns, [r for r in rows if r.learner]),
                     roster=roster_row, nrps_offered=nrps_offered)


def bin_of(percent: int) -> int:
    return next(i for i, (_k, _l, low, high) in enumerate(BINS) if low <= percent <= high)


def distribution(columns: list[ModuleColumn], learners: list[MemberRow]) -> list[DistributionRow]:
    out = []
    for index, column in enumerate(columns):
        counts = [0] * len(BINS)
        for member in learners:
            counts[bin_of(member.modules[index].percent)] += 1
        out.append(DistributionRow(column, tuple(counts)))
    return out


# --------------------------------------------------------------------------- CSV


def _cell(value) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        text = value.isoformat(timespec="seconds") + "Z"
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(board: Dashboard) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["user_id", "name", "email", "role", "on_roster", "status", "progress_percent", "score_percent",
                     "completed_at", "last_active",
                     *[f"{c.title} (% done)" for c in board.columns]])
    for m in board.members:
        writer.writerow([_cell(v) for v in (
            m.user_id, m.name, m.email, m.role_label, "yes" if m.in_roster else "no", m.status, m.percent,
            m.score_percent, m.completed_at, m.last_active, *[cell.percent for cell in m.modules])])
    return out.getvalue()
