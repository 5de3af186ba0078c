from lms_bridge.lti.roles import ADMIN_ROLES, MEMBERSHIP, RoleSet, normalize


def test_normalize_expands_short_names_and_drops_blanks():
    assert normalize(["Learner", "", None, "  ", "Learner", "http://x/y#Z"]) == [MEMBERSHIP + "Learner", "http://x/y#Z"]
    assert normalize(None) == [] and normalize([]) == []


def test_role_sets():
    assert RoleSet.of(["Instructor"]).is_instructor and not RoleSet.of(["Instructor"]).is_learner
    assert RoleSet.of([]).is_learner and RoleSet.of([""]).label == "No role"
    assert RoleSet.of(["http://example.org/unknown"]).label == "Participant"
    assert RoleSet.of([next(iter(ADMIN_ROLES))]).is_admin
    ta = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"
    assert RoleSet.of([ta]).is_instructor
