"""Content isolation in a real browser: a hostile SCO (tests/fixtures/packages/hostile_sco) tries to
read the player page (and its launch token), the LMS page, the tool's cookies and the tool's
endpoints, and reports what it got through the SCORM API (cmi.suspend_data). Played through the
SCORM runtime page on the content origin (the default, http://[::1]:PORT here), it gets nothing;
in same-origin mode (CONTENT_ISOLATION=off, trusted content only) the same probes do find the
launch token and the cookie, which shows they are not toothless."""
from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest

from tests.browser import frames
from tests.browser.test_player_browser import content_frame
from tests.integration.test_player_common import (
    FIXTURES,
    attempt_rows,
    import_course,
    place_link,
)
from tests.support.servers import launch_server

HOSTILE = FIXTURES / "hostile_sco"
COOKIE = {"name": "tool_secret", "value": "cookie-of-the-tool-origin"}


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def hostile_link(server) -> str:
    course = import_course(server, HOSTILE)
    assert course["format"] == "scorm2004" and [a["kind"] for a in course["activities"]] == ["sco"]
    return place_link(server, "Hostile SCO", course=course["course_id"])


def launch(page, server, link: str, target: str):
    """Launch the hostile course as a learner; returns the player (a frame of the platform's page,
    or a page of its own for a new-window launch)."""
    page.context.add_cookies([{**COOKIE, "url": server.url}])  # a script-readable cookie on the tool origin
    url = f"{server.platform_url}/devplatform/launch?user=learner&target={target}&link={link}"
    if target == "window":
        with page.context.expect_page() as new_page:
            page.goto(url)
        tool = new_page.value
    else:
        page.goto(url)
        tool = frames.tool_frame(page, "#launch-view[data-state=playing]")
    try:
        tool.wait_for_selector("#launch-view[data-state=playing]", timeout=30000)
    except Exception as exc:  # say where the launch got stuck (frame URLs only: content() can hang there)
        urls = "\n".join(f"{f.name!r} {f.url}" for f in (page.context.pages[-1].frames))
        raise AssertionError(f"no player at {tool.url}:\n{urls}\n{server.log()[-3000:]}") from exc
    return tool


def stored_report(server, link: str) -> tuple[dict, dict]:
    """What the SCO committed: (its report, parsed from cmi.suspend_data; its progress row)."""
    rows = attempt_rows(server, link=link)
    assert len(rows["progress"]) == 1, rows
    row = rows["progress"][0]
    assert row["suspend"], "the SCO reported nothing through the SCORM API"
    return json.loads(row["suspend"]), row


def play(page, server, link: str, target: str) -> tuple[dict, str, object]:
    tool = launch(page, server, link, target)
    token = re.search(r"/launch/([A-Za-z0-9_-]+)", tool.url).group(1)
    sco = content_frame(tool)
    sco.wait_for_function("() => document.body.getAttribute('data-reported') !== null", timeout=20000)
    assert sco.get_attribute("body", "data-reported") == "yes", "the SCO did not find the SCORM API"
    report, row = stored_report(server, link)
    assert report == sco.evaluate("() => window.HOSTILE_REPORT")
    assert row["completion"] == "completed"
    return report, token, tool


@pytest.fixture(scope="module")
def hostile(live_server):
    assert live_server.content_isolated, "live_server serves content from its own origin by default"
    return hostile_link(live_server)


@pytest.mark.parametrize("target", ["iframe", "window"])
def test_hostile_sco_obtains_nothing(live_server, page, hostile, target):
    report, token, tool = play(page, live_server, hostile, target)
    content = origin(live_server.content_url)
    # The player framed the runtime page on the content origin; the SCO runs there too.
    frame_src = tool.get_attribute("iframe#content-frame", "src")
    assert frame_src.startswith(content + "/content-runtime/") and token not in frame_src
    assert tool.get_attribute("iframe#content-frame", "sandbox").startswith(
        "allow-scripts allow-same-origin allow-forms allow-popups")
    assert report["own_origin"] == content and report["tool_origin"] == live_server.url

    text = json.dumps(report)
    assert token not in text, "the launch token reached the content"
    assert COOKIE["value"] not in text, "the tool's cookie reached the content"
    probes = report["probes"]
    # No cookies, no referrer on the content origin.
    for name in ("document.cookie", "parent.document.cookie", "document.referrer", "parent.document.referrer"):
        assert probes[name] == {"ok": True, "value": ""}, (name, probes[name])
    # The runtime page (same origin as the SCO) is readable, and holds nothing of the player.
    assert probes["parent.document"]["ok"] and "content-runtime.js" in probes["parent.document"]["value"]
    # The player page, the LMS page and their storage are out of reach.
    for name in ("parent.parent.document", "parent.parent.document.cookie", "parent.parent.location.href",
                 "parent.parent.localStorage", "top.document", "top.location.href"):
        assert probes[name] == {"ok": False, "error": "SecurityError"}, (name, probes[name])
    # Every request to the tool with credentials fails: the SCO's CSP refuses the connection, and the
    # runtime page's fetch gets no CORS grant for a credentialed request.
    assert len(report["fetches"]) == 8
    for result in report["fetches"]:
        assert result["ok"] is False, result
    # Posing as the runtime page, the SCO can make the player hand over the runtime configuration:
    # the per-attempt commit token (the one secret the content side holds anyway), never the launch token.
    assert report["configs_seen"], "the forged ready message was not answered"
    for seen in report["configs_seen"]:
        assert token not in seen


def test_normal_course_still_records_through_the_content_origin(live_server, page, hostile):
    """The SCO's commit went cross-origin to the tool (CORS for the content origin): the progress
    bar of the player follows."""
    tool = launch(page, live_server, hostile, "iframe")
    sco = content_frame(tool)
    sco.wait_for_function("() => document.body.getAttribute('data-reported') === 'yes'", timeout=20000)
    tool.wait_for_function("() => document.getElementById('progress-bar').getAttribute('aria-valuenow') === '100'")
    assert tool.is_visible("#course-complete")


@pytest.fixture(scope="module")
def same_origin_server():
    server = launch_server(workers=1, CONTENT_ISOLATION="off")
    yield server
    server.stop()
    server.db.drop()


def test_same_origin_mode_is_for_trusted_content_only(same_origin_server, page):
    """The control: with CONTENT_ISOLATION=off, the same SCO reads the player page, its launch token
    and the tool's cookie. This is why isolation is the default."""
    server = same_origin_server
    assert not server.content_isolated and "CONTENT_ISOLATION=off" in server.log()
    link = hostile_link(server)
    report, token, tool = play(page, server, link, "window")
    assert tool.get_attribute("iframe#content-frame", "src").startswith(server.url + "/content-runtime/")
    assert report["own_origin"] == server.url
    probes = report["probes"]
    assert probes["parent.parent.document"]["ok"] and token in probes["parent.parent.document"]["value"]
    assert COOKIE["value"] in probes["document.cookie"]["value"]
