"""The course catalogue: search and filters over the current version of every course.

* Full text: every word of ``q`` (or ``"quoted phrase"``) must occur in the course's search
  document: title, description, keywords, learning outcomes, ESCO skill and occupation labels,
  authors and source project, compared case- and accent-insensitively (``Sicherheit`` finds
  ``SICHERHEIT``, ``securite`` finds ``sécurité``). The document is built once per version at
  import (and again when skill labels change), so the query is a plain ``LIKE`` on one column,
  the same on SQLite and PostgreSQL. (For catalogues of many thousands of courses, a pg_trgm
  index on ``pkg_course_version.search_text`` keeps it fast.)
* Filters: ESCO skill or occupation URIs (a course must name every one given), EQF levels (any
  of), languages (any of; ``en`` matches ``en``, ``en-GB``, ``en-US``), source projects (any
  of, case-insensitive), and a workload range in hours (courses without a declared workload are
  left out when a range is given).
* Pagination: ``page`` (from 1) and ``per_page``; sort by title, import date, EQF level or
  workload.

Views parse the query with :mod:`lms_bridge.api.schemas` and call :func:`search_courses`,
:func:`course_detail` or :func:`skill_facets`.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import contains_eager, selectinload

from ..extensions import db
from . import esco
from .models import Course, CourseVersion, Module, Skill, course_version_skill

SORTS = ("title", "-title", "imported_at", "-imported_at", "eqf_level", "-eqf_level", "workload_hours",
         "-workload_hours")
MAX_TERMS = 12


def normalise_text(value: str | None) -> str:
    """Case-folded, accent-stripped, whitespace-collapsed text (search documents and terms)."""
    if not value:
        return ""
    folded = unicodedata.normalize("NFKD", value.casefold())
    stripped = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(stripped.split())


def search_document(version: CourseVersion, skills: list[Skill] | None = None) -> str:
    """The text searched for a course version (see the module docstring); ``skills`` defaults to its own."""
    parts: list[str | None] = [version.title, version.description, " ".join(version.keywords or [])]
    parts += [o.text for o in version.learning_outcomes]
    parts += [s.label for s in (version.skills if skills is None else skills)]
    parts += [a.get("name") for a in version.authors or [] if isinstance(a, dict)]
    if version.course is not None:
        parts.append(version.course.source_project)
    return "\n".join(normalise_text(p) for p in parts if p)


def search_terms(q: str | None) -> list[str]:
    """Words and ``"quoted phrases"`` of a query, normalised; at most :data:`MAX_TERMS`."""
    if not q:
        return []
    terms = []
    for phrase, word in re.findall(r'"([^"]*)"|(\S+)', q):
        term = normalise_text(phrase or word)
        if term and term not in terms:
            terms.append(term)
    return terms[:MAX_TERMS]


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass
class CourseQuery:
    q: str | None = None
    skills: list[str] = field(default_factory=list)
    eqf_levels: list[int] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    source_projects: list[str] = field(default_factory=list)
    workload_min: float | None = None
    workload_max: float | None = None
    page: int = 1
    per_page: int = 20
    sort: str = "title"


@dataclass
class FacetValue:
    value: object
    count: int


@dataclass
class CoursePage:
    items: list[CourseVersion]
    total: int
    page: int
    per_page: int
    facets: dict[str, list[FacetValue]] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return (self.total + self.per_page - 1) // self.per_page if self.per_page else 0


def _current_versions():
    return select(CourseVersion).join(Course, Course.current_version_id == CourseVersion.id)


def _filtered(query: CourseQuery):
    stmt = _current_versions()
    conditions = []
    for term in search_terms(query.q):
        conditions.append(CourseVersion.search_text.like(_like_pattern(term), escape="\\"))
    for uri in dict.fromkeys(esco.canonical_uri(u) for u in query.skills):
        conditions.append(exists().where(
            course_version_skill.c.version_id == CourseVersion.id,
            course_version_skill.c.skill_id == Skill.id,
            Skill.uri == uri,
        ))
    if query.eqf_levels:
        conditions.append(CourseVersion.eqf_level.in_(sorted(set(query.eqf_levels))))
    if query.languages:
        lang = func.lower(CourseVersion.language)
        conditions.append(or_(*[
            or_(lang == code.lower(), lang.like(_like_pattern(code.lower())[1:-1] + "-%", escape="\\"))
            for code in query.languages
        ]))
    if query.source_projects:
        conditions.append(func.lower(Course.source_project).in_([p.lower() for p in query.source_projects]))
    if query.workload_min is not None:
        conditions.append(CourseVersion.workload_hours >= query.workload_min)
    if query.workload_max is not None:
        conditions.append(CourseVersion.workload_hours <= query.workload_max)
    return stmt.where(and_(*conditions)) if conditions else stmt


def _order(stmt, sort: str):
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    column = {
        "title": func.lower(CourseVersion.title),
        "imported_at": CourseVersion.imported_at,
        "eqf_level": CourseVersion.eqf_level,
        "workload_hours": CourseVersion.workload_hours,
    }[key]
    ordered = column.desc() if descending else column.asc()
    if key in ("eqf_level", "workload_hours"):
        ordered = ordered.nulls_last()
    return stmt.order_by(ordered, Course.id)


def search_courses(query: CourseQuery, *, with_facets: bool = True) -> CoursePage:
    """One page of current course versions matching ``query`` (and facet counts over all matches)."""
    if query.sort not in SORTS:
        raise ValueError(f"unknown sort {query.sort!r}")
    filtered = _filtered(query)
    total = db.session.execute(select(func.count()).select_from(filtered.subquery())).scalar_one()
    stmt = _order(filtered, query.sort).options(
        contains_eager(CourseVersion.course), selectinload(CourseVersion.skills),
    ).limit(query.per_page).offset((query.page - 1) * query.per_page)
    items = list(db.session.execute(stmt).unique().scalars())
    facets = _facets(filtered) if with_facets else {}
    return CoursePage(items=items, total=total, page=query.page, per_page=query.per_page, facets=facets)


def _facets(filtered) -> dict[str, list[FacetValue]]:
    ids = filtered.with_only_columns(CourseVersion.id).subquery()
    out: dict[str, list[FacetValue]] = {}
    for name, column in (("eqf_level", CourseVersion.eqf_level), ("language", CourseVersion.language)):
        rows = db.session.execute(
            select(column, func.count()).where(CourseVersion.id.in_(select(ids.c.id)), column.is_not(None))
            .group_by(column).order_by(column)
        )
        out[name] = [FacetValue(value, count) for value, count in rows]
    rows = db.session.execute(
        select(Course.source_project, func.count()).join(CourseVersion, Course.current_version_id == CourseVersion.id)
        .where(CourseVersion.id.in_(select(ids.c.id)), Course.source_project != "")
        .group_by(Course.source_project).order_by(Course.source_project)
    )
    out["source_project"] = [FacetValue(value, count) for value, count in rows]
    rows = db.session.execute(
        select(Skill.uri, func.count()).join(course_version_skill, course_version_skill.c.skill_id == Skill.id)
        .where(course_version_skill.c.version_id.in_(select(ids.c.id)))
        .group_by(Skill.uri).order_by(func.count().desc(), Skill.uri)
    )
    out["skill"] = [FacetValue(value, count) for value, count in rows]
    return out


def course_detail(course_id: int) -> CourseVersion | None:
    """The current version of a course with its structure, outcomes, skills and versions loaded."""
    stmt = _current_versions().where(Course.id == course_id).options(
        contains_eager(CourseVersion.course).selectinload(Course.versions),
        selectinload(CourseVersion.skills),
        selectinload(CourseVersion.learning_outcomes),
        selectinload(CourseVersion.all_modules).selectinload(Module.modules),
        selectinload(CourseVersion.all_modules).selectinload(Module.activities),
        selectinload(CourseVersion.modules),
    )
    return db.session.execute(stmt).unique().scalar_one_or_none()


@dataclass
class SkillFacet:
    skill: Skill
    course_count: int

    @property
    def uri(self) -> str:
        return self.skill.uri

    @property
    def label(self) -> str | None:
        return self.skill.label

    @property
    def kind(self) -> str:
        return self.skill.kind


def skill_facets(kind: str | None = None, q: str | None = None) -> list[SkillFacet]:
    """ESCO skills and occupations named by current course versions, with how many courses name each.

    ``kind`` keeps ``skill`` or ``occupation`` only; ``q`` filters on label or URI (case-insensitive).
    """
    count = func.count(CourseVersion.id)
    stmt = (
        select(Skill, count)
        .join(course_version_skill, course_version_skill.c.skill_id == Skill.id)
        .join(CourseVersion, CourseVersion.id == course_version_skill.c.version_id)
        .join(Course, Course.current_version_id == CourseVersion.id)
        .group_by(Skill.id)
        .order_by(count.desc(), func.lower(func.coalesce(Skill.label, Skill.uri)))
    )
    if kind:
        stmt = stmt.where(Skill.kind == kind)
    if q:
        pattern = _like_pattern(q.lower())
        stmt = stmt.where(or_(func.lower(Skill.label).like(pattern, escape="\\"),
                              func.lower(Skill.uri).like(pattern, escape="\\")))
    return [SkillFacet(skill, n) for skill, n in db.session.execute(stmt)]
