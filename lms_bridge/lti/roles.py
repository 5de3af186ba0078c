"""LTI role vocabularies (LTI Core §A.2): full URIs, short names, and what they allow here."""
from __future__ import annotations

from dataclasses import dataclass

MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
INSTITUTION = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#"
SYSTEM = "http://purl.imsglobal.org/vocab/lis/v2/system/person#"

INSTRUCTOR_ROLES = {
    MEMBERSHIP + "Instructor",
    MEMBERSHIP + "ContentDeveloper",
    MEMBERSHIP + "Administrator",
    MEMBERSHIP + "Instructor#TeachingAssistant",
    "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant",
}
ADMIN_ROLES = {INSTITUTION + "Administrator", SYSTEM + "Administrator", SYSTEM + "SysAdmin"}
LEARNER_ROLES = {MEMBERSHIP + "Learner", MEMBERSHIP + "Learner#Learner", INSTITUTION + "Student", INSTITUTION + "Learner"}

# Short (deprecated but still sent) names are context roles (LTI Core §A.2.3.1).
SHORT_NAMES = {"Learner", "Instructor", "ContentDeveloper", "Administrator", "Mentor", "Manager", "Member", "Officer", "TeachingAssistant"}


def normalize(roles) -> list[str]:
    """Full role URIs; short names expanded, blanks and non-strings dropped, order kept."""
    out: list[str] = []
    for role in roles or []:
        if not isinstance(role, str) or not role.strip():
            continue
        role = role.strip()
        if role in SHORT_NAMES:
            role = MEMBERSHIP + role
        if role not in out:
            out.append(role)
    return out


@dataclass(frozen=True)
class RoleSet:
    roles: tuple[str, ...]

    @classmethod
    def of(cls, roles) -> "RoleSet":
        return cls(tuple(normalize(roles)))

    @property
    def is_admin(self) -> bool:
        return any(r in ADMIN_ROLES for r in self.roles)

    @property
    def is_instructor(self) -> bool:
        return any(r in INSTRUCTOR_ROLES for r in self.roles)

    @property
    def is_learner(self) -> bool:
        """Learners, and anyone without a teaching role (no role at all, unknown roles)."""
        return not self.is_instructor

    @property
    def label(self) -> str:
        if self.is_instructor:
            return "Instructor"
        if any(r in LEARNER_ROLES for r in self.roles):
            return "Learner"
        return "Participant" if self.roles else "No role"
