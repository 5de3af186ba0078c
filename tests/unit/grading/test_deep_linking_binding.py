"""What a deep link (or an instructor's choice) names, on a real database: the ``course`` custom
parameter round-trips to the same course, ``resourceId`` stays short, and a link without custom
parameters is bound once by :func:`lms_bridge.player.binding.bind` and resolved from the stored
choice, custom parameters winning."""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.support.db_app import database_app

ROOT = Path(__file__).resolve().parents[3]
NATIVE = ROOT / "mooc_packages" / "hydrogen-fcev-basics-native"
C = "https://purl.imsglobal.org/spec/lti/claim/"


@pytest.fixture(scope="module")
def app():
    with database_app() as app:
        with app.app_context():
            from lms_bridge.extensions import db
            from lms_bridge.packages.service import import_package

            import_package(NATIVE)
            db.session.remove()
        yield app


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app
        from lms_bridge.extensions import db

        db.session.rollback()


def the_course():
    from lms_bridge.extensions import db
    from lms_bridge.packages.models import Course

    return db.session.execute(db.select(Course)).scalars().first()


def resource_link():
    """A registration, deployment, user and resource link as a launch records them."""
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Deployment, Registration, ResourceLink, User

    reg = Registration(issuer="https://lms-" + secrets.token_hex(3) + ".example.org", client_id="c",
                       auth_login_url="https://lms.example.org/auth")
    db.session.add(reg)
    db.session.flush()
    dep = Deployment(registration_id=reg.id, deployment_id="1", active=True)
    user = User(registration_id=reg.id, sub="teacher-1")
    db.session.add_all([dep, user])
    db.session.flush()
    link = ResourceLink(deployment_id=dep.id, resource_link_id="rl-" + secrets.token_hex(3))
    db.session.add(link)
    db.session.commit()
    return reg, dep, user, link


def launch_for(reg, dep, user, link, custom=None):
    from lms_bridge.lti.state import LaunchSession

    return LaunchSession(token=secrets.token_urlsafe(8), registration_id=reg.id, deployment_pk=dep.id,
                         user_pk=user.id, context_pk=None, resource_link_pk=link.id,
                         message_type="LtiResourceLinkRequest", roles=[], claims={C + "custom": custom or {}})


def test_course_reference_round_trips(ctx):
    from lms_bridge.extensions import db
    from lms_bridge.packages.models import Course
    from lms_bridge.player.binding import course_ref, find_course, resource_id

    course = the_course()
    ref = course_ref(course)
    assert ref == "TRIREME|urn:lms-bridge:mooc:hydrogen-fcev-basics" and find_course(ref).id == course.id
    # A second course with the same identifier from another project: both stay distinct.
    twin = Course(source_project="DRIVES", package_identifier=course.package_identifier)
    db.session.add(twin)
    db.session.flush()
    assert course_ref(twin) == "DRIVES|urn:lms-bridge:mooc:hydrogen-fcev-basics"
    assert find_course(course_ref(twin)).id == twin.id and find_course(ref).id == course.id
    # Identifiers that cannot be told from an id fall back to the id.
    numeric = Course(source_project="", package_identifier="12345")
    db.session.add(numeric)
    db.session.flush()
    assert course_ref(numeric) == str(numeric.id)
    long = Course(source_project="", package_identifier="urn:x:" + "y" * 400)
    db.session.add(long)
    db.session.flush()
    rid = resource_id(long)
    assert rid.startswith("lms_bridge:") and len(rid) < 100 and rid == resource_id(long)
    db.session.rollback()


def test_a_link_is_bound_once_and_custom_parameters_win(ctx):
    from lms_bridge.extensions import db
    from lms_bridge.packages.models import Module
    from lms_bridge.player.binding import AlreadyBound, LinkBinding, bind, resolve

    reg, dep, user, link = resource_link()
    launch = launch_for(reg, dep, user, link)
    assert resolve(launch) is None  # not set up yet
    course = the_course()
    module = db.session.execute(db.select(Module).filter_by(version_id=course.current_version_id,
                                                            identifier="m2-vehicle-workshop")).scalar_one()
    bind(launch, course, module)
    found = resolve(launch)
    assert found.course.id == course.id and found.module.identifier == "m2-vehicle-workshop"
    assert found.origin == "stored"
    with pytest.raises(AlreadyBound):
        bind(launch, course, None)
    assert resolve(launch).module.identifier == "m2-vehicle-workshop"
    row = db.session.execute(db.select(LinkBinding).filter_by(resource_link_pk=link.id)).scalar_one()
    assert row.chosen_by == user.id and row.chosen_at is not None
    # The link's own custom parameters (set in the LMS) win over the stored choice.
    named = launch_for(reg, dep, user, link, custom={"course": str(course.id)})
    assert resolve(named).module is None and resolve(named).origin == "custom"


def test_removing_the_course_unbinds_the_link(ctx):
    from lms_bridge.extensions import db
    from lms_bridge.packages.models import Course
    from lms_bridge.player.binding import LinkBinding, bind, resolve

    reg, dep, user, link = resource_link()
    spare = Course(source_project="", package_identifier="urn:spare:" + secrets.token_hex(3))
    db.session.add(spare)
    db.session.commit()
    db.session.add(LinkBinding(resource_link_pk=link.id, course_id=spare.id))
    db.session.commit()
    launch = launch_for(reg, dep, user, link)
    from lms_bridge.player.binding import BindingError

    with pytest.raises(BindingError):  # a course without a version cannot be opened
        resolve(launch)
    db.session.delete(spare)
    db.session.commit()
    assert resolve(launch) is None
    bind(launch, the_course())
    assert resolve(launch).course.id == the_course().id
