"""Fixtures for the credential library tests: an issuer key, a micro-credential built the way the
application builds one, and the 1EdTech OB 3.0 specification examples (tests/fixtures/openbadges3/)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lms_bridge.credentials import ob3, statuslist
from lms_bridge.credentials.keys import generate_issuer_key

SPEC_EXAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "openbadges3"
# The specification's examples are valid 2010/2022 -> 2030 (some); verify them at a fixed date.
SPEC_NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
ISSUED = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
ISSUER_ID = "https://lms.example.org/credentials/issuers/battery-academy"
STATUS_LIST = "https://lms.example.org/credentials/status/1"


@pytest.fixture
def issuer_key():
    # The verification method is the issuer profile URL + "#" + kid: a JWKS lookup matches it by kid.
    return generate_issuer_key(kid="key-1", verification_method=f"{ISSUER_ID}#key-1")


@pytest.fixture
def achievement():
    return ob3.build_achievement(
        id="https://lms.example.org/achievements/hv-battery-safety",
        name="High-voltage battery safety",
        description="Works safely on the high-voltage battery systems of electric vehicles.",
        criteria_narrative="Complete all modules and score at least 60% in the final assessment.",
        skills=[
            ("http://data.europa.eu/esco/skill/84cc8c9d-db57-42ec-8948-9b632bf06124", "battery chemistry"),
            ("http://data.europa.eu/esco/skill/6122d586-5978-431f-8e7a-96e61fc1f3fc", "wear appropriate protective gear"),
        ],
        eqf_level=4,
        ects=2,
        in_language="en",
        field_of_study="Automotive engineering",
        tags=["electromobility", "safety"],
        pass_mark=60,
    )


def make_credential(achievement: dict, *, valid_from=ISSUED, valid_until=None, status_index=7, **extra) -> dict:
    """A micro-credential as the application issues it on completion."""
    return ob3.build_credential(
        credential_id="urn:uuid:0b7d8a52-4f7a-4a8e-9c43-0f1c2b3d4e5f",
        issuer=ob3.build_profile(ISSUER_ID, "Battery Academy", url="https://battery-academy.example.org"),
        achievement=achievement,
        identities=[
            ob3.recipient_identity("emailAddress", "Ada.Lovelace@Example.org", "4f1a9c"),
            ob3.recipient_identity("ltiUserId", "lti-user-42", "77b0e2"),
        ],
        valid_from=valid_from,
        valid_until=valid_until,
        name="High-voltage battery safety",
        results=[ob3.build_result(85, result_description=achievement["resultDescription"][0]["id"])],
        evidence=[ob3.build_evidence(id="https://lms.example.org/completions/42", name="Completion record")],
        credential_status=statuslist.status_entry(STATUS_LIST, status_index) if status_index is not None else None,
        awarded_date=valid_from,
        **extra,
    )


@pytest.fixture
def credential(achievement):
    return make_credential(achievement, valid_until=ISSUED + timedelta(days=3 * 365))
