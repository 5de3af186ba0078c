"""The Deep Linking 2.0 response service on a real database (SQLite or PostgreSQL, per
LMS_BRIDGE_TEST_BACKEND): settings read from the request (DL 2.0 §4.4.1), what is refused
(accept_types, accept_multiple), the LtiDeepLinkingResponse claims (§4.5) and content items (§3.2),
the signature against the tool's JWKS, and one response per request."""
from __future__ import annotations

import secrets
from pathlib import Path

import jwt
import pytest

from tests.support.db_app import database_app

ROOT = Path(__file__).resolve().parents[3]
NATIVE = ROOT / "mooc_packages" / "hydrogen-fcev-basics-native"
C = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
ISSUER = "https://moodle.example.org"
TOOL = "https://tool.example.org"


@pytest.fixture(scope="module")
def app():
    with database_app(PUBLIC_BASE_URL=TOOL) as app:
        with app.app_context():
            from lms_bridge.extensions import db
            from lms_bridge.lti.models import Registration
            from lms_bridge.packages.service import import_package

            import_package(NATIVE)
            db.session.add(Registration(issuer=ISSUER, client_id="tool-client-7", auth_login_url=ISSUER + "/auth"))
            db.session.commit()
            db.session.remove()
        yield app


@pytest.fixture
def ctx(app):
    with app.test_request_context(base_url=TOOL):
        yield app
        from lms_bridge.extensions import db

        db.session.rollback()


def launch(**settings):
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Registration
    from lms_bridge.lti.state import LaunchSession

    reg = db.session.execute(db.select(Registration).filter_by(issuer=ISSUER)).scalar_one()
    base = {"deep_link_return_url": ISSUER + "/mod/lti/contentitem_return.php?course=2&id=1&sesskey=abc",
            "accept_types": ["ltiResourceLink"], "accept_presentation_document_targets": ["frame", "iframe", "window"],
            "accept_multiple": True, "auto_create": False, "data": "opaque-" + secrets.token_hex(4)}
    base.update(settings)
    claims = {"nonce": secrets.token_hex(8), C + "deployment_id": "3", C + "message_type": "LtiDeepLinkingRequest",
              DL + "deep_linking_settings": {k: v for k, v in base.items() if v is not None}}
    return LaunchSession(token=secrets.token_urlsafe(16), registration_id=reg.id, deployment_pk=1, user_pk=None,
                         context_pk=None, resource_link_pk=None, message_type="LtiDeepLinkingRequest",
                         roles=["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"], claims=claims)


def course_and_modules():
    from lms_bridge.extensions import db
    from lms_bridge.packages.models import Course, CourseVersion

    course = db.session.execute(db.select(Course)).scalars().first()
    version = db.session.get(CourseVersion, course.current_version_id)
    return course, {m.identifier: m for m in version.all_modules}


def item(course, module=None, title="Item", score=10.0):
    from lms_bridge.grading.deep_linking import ResourceLinkItem

    return ResourceLinkItem(course=course, module=module, title=title, text="About it", score_maximum=score)


def verified(token: str) -> dict:
    """The JWT checked as a platform checks it: against the tool's published key set."""
    from lms_bridge.lti.keys import published_jwks

    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in published_jwks()["keys"] if k["kid"] == kid)
    return jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience=ISSUER, issuer="tool-client-7")


def test_settings_are_read_as_the_spec_says(ctx):
    from lms_bridge.grading.deep_linking import DeepLinkingSettings

    s = DeepLinkingSettings.of(launch())
    assert s.accepts_resource_links and s.accept_multiple and s.line_items and s.has_data
    assert s.return_url.endswith("sesskey=abc")
    # accept_multiple absent means one item; accept_lineitem false means no line items; no data, no echo.
    s = DeepLinkingSettings.of(launch(accept_multiple=None, accept_lineitem=False, data=None))
    assert not s.accept_multiple and not s.line_items and not s.has_data
    assert not DeepLinkingSettings.of(launch(accept_types=["link", "html"])).accepts_resource_links


def test_a_resource_link_launch_is_not_a_deep_linking_request(ctx):
    from lms_bridge.grading.deep_linking import DeepLinkingError, DeepLinkingSettings

    other = launch()
    other.message_type = "LtiResourceLinkRequest"
    with pytest.raises(DeepLinkingError) as err:
        DeepLinkingSettings.of(other)
    assert err.value.code == "not_deep_linking" and err.value.status == 403


def test_what_the_platform_does_not_take_is_refused(ctx):
    from lms_bridge.grading.deep_linking import DeepLinkingError, DeepLinkingSettings, check_selection

    course, modules = course_and_modules()
    two = [item(course, modules["m1-hydrogen-fuel-cells"]), item(course, modules["m2-vehicle-workshop"])]
    with pytest.raises(DeepLinkingError) as err:
        check_selection(DeepLinkingSettings.of(launch(accept_multiple=False)), two)
    assert err.value.code == "one_item_only"
    with pytest.raises(DeepLinkingError) as err:
        check_selection(DeepLinkingSettings.of(launch(accept_types=["link"])), two[:1])
    assert err.value.code == "types_not_accepted"
    # Nothing chosen is always a valid answer (DL §4.5), and one item suits accept_multiple false.
    check_selection(DeepLinkingSettings.of(launch(accept_types=["link"])), [])
    check_selection(DeepLinkingSettings.of(launch(accept_multiple=False)), two[:1])


def test_the_response_is_signed_and_shaped_like_the_spec(ctx):
    from lms_bridge.grading.deep_linking import respond

    course, modules = course_and_modules()
    request = launch()
    signed = respond(request, [item(course, title="Whole course", score=40),
                               item(course, modules["m3-mobility-assessment"], title="Assessment", score=25.5)],
                     msg="Added")
    assert signed.return_url == request.claims[DL + "deep_linking_settings"]["deep_link_return_url"]
    claims = verified(signed.jwt)
    assert claims[C + "message_type"] == "LtiDeepLinkingResponse" and claims[C + "version"] == "1.3.0"
    assert claims[C + "deployment_id"] == "3" and claims[DL + "msg"] == "Added"
    assert claims[DL + "data"] == request.claims[DL + "deep_linking_settings"]["data"]
    assert claims["nonce"] and 0 < claims["exp"] - claims["iat"] <= 600
    whole, module = claims[DL + "content_items"]
    ref = "TRIREME|urn:lms-bridge:mooc:hydrogen-fcev-basics"
    assert whole == {"type": "ltiResourceLink", "title": "Whole course", "url": TOOL + "/lti/launch",
                     "text": "About it", "custom": {"course": ref},
                     "lineItem": {"scoreMaximum": 40, "label": "Whole course", "resourceId": ref, "tag": "lms_bridge"}}
    assert module["custom"] == {"course": ref, "module": "m3-mobility-assessment"}
    assert module["lineItem"]["resourceId"] == ref + "#m3-mobility-assessment"
    assert module["lineItem"]["scoreMaximum"] == 25.5


def test_no_line_item_when_ignored_and_data_echoed_exactly(ctx):
    from lms_bridge.grading.deep_linking import respond

    course, _ = course_and_modules()
    request = launch(accept_lineitem=False, data={"any": ["json", 1]})
    claims = verified(respond(request, [item(course)]).jwt)
    assert "lineItem" not in claims[DL + "content_items"][0]
    assert claims[DL + "data"] == {"any": ["json", 1]}
    claims = verified(respond(launch(data=None), []).jwt)
    assert DL + "data" not in claims and claims[DL + "content_items"] == []


def test_one_response_per_request(ctx):
    from lms_bridge.grading.deep_linking import DeepLinkingError, respond, was_claimed

    course, _ = course_and_modules()
    request = launch()
    assert not was_claimed(request)
    respond(request, [item(course)])
    assert was_claimed(request)
    with pytest.raises(DeepLinkingError) as err:
        respond(request, [item(course)])
    assert err.value.code == "already_returned" and err.value.status == 409
    # A refused selection does not use the request up.
    fresh = launch(accept_multiple=False)
    with pytest.raises(DeepLinkingError):
        respond(fresh, [item(course), item(course)])
    assert not was_claimed(fresh)
    respond(fresh, [item(course)])
