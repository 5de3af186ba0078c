"""Content serving rules in-process: which files, which headers, and the separate content origin."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lms_bridge.extensions import db
from lms_bridge.packages import content, service
from tests.support.db_app import database_app

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "packages"
TOOL = "https://tool.example.org"
CONTENT = "https://content.example.net"


@pytest.fixture(scope="module")
def app():
    # Same-origin mode unless a test sets CONTENT_BASE_URL (the development default would put
    # content on http://[::1]:PORT: tests/integration/test_content_origin.py covers it over HTTP).
    with database_app(CONTENT_ISOLATION="off") as app:
        yield app


@pytest.fixture(scope="module")
def versions(app, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("content")
    native = tmp / "native"
    shutil.copytree(FIXTURES / "native" / "hv_safety_basics", native)
    (native / "media" / ".secret").write_text("dot files are never served")
    with app.app_context():
        n = service.import_package(native)
        s = service.import_package(FIXTURES / "scorm12" / "golf_runtime_basic_calls")
        cc = service.import_package(FIXTURES / "cc" / "instructure_ccviewer" / "all-question-types")
        return {"native": n.id, "scorm": s.id, "cc": cc.id}


@pytest.fixture
def version(app, versions):
    def get(name):
        return db.session.get(content.CourseVersion, versions[name])

    with app.app_context():
        yield get


@pytest.mark.parametrize("path, served", [
    ("lessons/01-hazards.md", True),
    ("media/hv-warning.svg", True),
    ("course.yaml", False),                      # manifest (embeds settings)
    ("COURSE.YAML", False),
    ("quizzes/safety-check.yaml", False),        # quiz source with answers
    ("media/.secret", False),
    ("media", False),                            # folders are not files
    ("../1/course.yaml", False), ("lessons/../course.yaml", False), ("./course.yaml", False),
    ("lessons//01-hazards.md", False), ("/etc/passwd", False), ("lessons\\01-hazards.md", False),
    ("lessons/01-hazards.md\x00.png", False), ("", False), ("missing.html", False),
])
def test_resolve_file(version, path, served):
    assert (content.resolve_file(version("native"), path) is not None) is served


def test_canvas_question_sources_are_private(version):
    cc = version("cc")
    quiz = next(a for a in cc.activities if a.kind == "quiz")
    assert content.resolve_file(cc, quiz.file) is None
    assert content.resolve_file(cc, "non_cc_assessments/iaa8f9f400b29e514ea8d28fd7ed067f4.xml.qti") is None


def test_symlinks_out_of_the_folder_are_refused(version, tmp_path):
    scorm = version("scorm")
    outside = tmp_path / "outside.html"
    outside.write_text("secret")
    link = service.version_dir(scorm) / "shared" / "link.html"
    link.symlink_to(outside)
    try:
        assert content.resolve_file(scorm, "shared/link.html") is None
    finally:
        link.unlink()


@pytest.mark.parametrize("name, mime", [
    ("a.js", "text/javascript"), ("a.css", "text/css"), ("a.html", "text/html"), ("a.svg", "image/svg+xml"),
    ("a.woff2", "font/woff2"), ("a.mp4", "video/mp4"), ("a.json", "application/json"),
    ("a.unknownext", "application/octet-stream"), ("noext", "application/octet-stream"),
])
def test_mime_types(name, mime):
    assert content.mime_type(name) == mime


def test_headers_same_origin(app, versions):
    client = app.test_client()
    resp = client.get(f"/content/{versions['scorm']}/shared/launchpage.html")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self' 'unsafe-inline'" in csp
    assert "connect-src 'self'" in csp and "object-src 'none'" in csp and "unsafe-eval" not in csp
    tool_origin = app.config["PUBLIC_BASE_URL"]
    assert f"frame-ancestors {tool_origin}" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert resp.headers["Cache-Control"] == "public, max-age=3600"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "Set-Cookie" not in resp.headers
    again = client.get(f"/content/{versions['scorm']}/shared/launchpage.html",
                       headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304
    partial = client.get(f"/content/{versions['scorm']}/shared/launchpage.html", headers={"Range": "bytes=0-9"})
    assert partial.status_code == 206 and len(partial.data) == 10


def test_frame_ancestors_name_registered_platforms(app, versions):
    from lms_bridge.lti.models import Registration

    with app.app_context():
        db.session.add(Registration(issuer="https://moodle.example.edu", client_id="c1",
                                    auth_login_url="https://moodle.example.edu/mod/lti/auth.php"))
        db.session.commit()
    content._ancestors.clear()
    app.config["CONTENT_FRAME_ANCESTORS"] = "https://*.instructure.com"
    try:
        csp = app.test_client().get(f"/content/{versions['scorm']}/shared/launchpage.html").headers[
            "Content-Security-Policy"]
    finally:
        app.config["CONTENT_FRAME_ANCESTORS"] = ""
        content._ancestors.clear()
    ancestors = csp.split("frame-ancestors ")[1].split(";")[0].split()
    assert ancestors[0] == app.config["PUBLIC_BASE_URL"]
    assert "https://moodle.example.edu" in ancestors and "https://*.instructure.com" in ancestors


def test_separate_content_origin(app, versions):
    saved = dict(app.config)
    app.config.update(PUBLIC_BASE_URL=TOOL, CONTENT_BASE_URL=CONTENT)
    try:
        tool = app.test_client()
        url = f"/content/{versions['scorm']}/shared/launchpage.html"
        assert tool.get(url, base_url=TOOL).status_code == 404, "never on the tool's origin"
        on_content = tool.get(url, base_url=CONTENT)
        assert on_content.status_code == 200
        assert f"frame-ancestors {TOOL}" in on_content.headers["Content-Security-Policy"]
        assert tool.get("/healthz", base_url=CONTENT).status_code == 404, "the content host serves content only"
        assert tool.get("/api/v1/courses", base_url=CONTENT).status_code == 404
        assert tool.get("/healthz", base_url=TOOL).status_code == 200
        with app.test_request_context(base_url=TOOL):
            v = db.session.get(content.CourseVersion, versions["scorm"])
            assert content.content_url(v, "shared/launchpage.html?x=1") == f"{CONTENT}{url}?x=1"
    finally:
        app.config.clear()
        app.config.update(saved)


def test_content_url_same_origin(app, versions):
    with app.test_request_context():
        v = db.session.get(content.CourseVersion, versions["scorm"])
        v.content_root = "My Course"
        try:
            assert content.content_url(v, "a%20b.html#x") == (
                f"{app.config['PUBLIC_BASE_URL']}/content/{v.id}/My%20Course/a%20b.html#x")
        finally:
            db.session.rollback()
