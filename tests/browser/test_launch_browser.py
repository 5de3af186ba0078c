"""Launches in a real browser: the development platform (http://localhost:PORT) embeds the tool
(http://127.0.0.1:PORT), a different site, exactly as an LMS does."""
from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.browser import frames


def tool_frame(page):
    return frames.tool_frame(page)


def wait_for_view(frame, timeout=30000):
    """The landing view of a frame found by :func:`tool_frame`, or of a new-window page."""
    try:
        frame.wait_for_selector("#launch-view", timeout=timeout)
    except Exception as exc:  # say where the launch got stuck (frame URLs only: content() can hang there)
        owner = getattr(frame, "page", None) or frame
        raise AssertionError(f"no launch view at {frame.url}:\n" + "\n".join(f.url for f in owner.frames)) from exc
    return frame.get_attribute("#launch-view", "data-view")


def state_cookies(context, server):
    return [c for c in context.cookies(server.url) if c["name"].startswith("lti_state_")]


@pytest.mark.parametrize("user,view,role", [("learner", "learner", "Learner"), ("teacher", "instructor", "Instructor")])
def test_iframe_launch_with_platform_storage(live_server, page, user, view, role):
    page.goto(f"{live_server.platform_url}/devplatform/launch?user={user}&target=iframe")
    frame = tool_frame(page)
    assert wait_for_view(frame) == view
    assert frame.inner_text("#role") == role
    assert frame.url.startswith(live_server.url + "/launch/")
    # The platform-storage path binds the state without any cookie.
    assert state_cookies(page.context, live_server) == []


def test_iframe_launch_with_cookies_when_storage_is_not_offered(live_server, page):
    page.goto(f"{live_server.platform_url}/devplatform/launch?user=learner&target=iframe&storage=0")
    assert wait_for_view(tool_frame(page)) == "learner"


def test_new_window_launch(live_server, page):
    with page.context.expect_page() as new_page_info:
        page.goto(f"{live_server.platform_url}/devplatform/launch?user=teacher&target=window")
    tool = new_page_info.value
    assert wait_for_view(tool) == "instructor"
    assert tool.url.startswith(live_server.url + "/launch/")


class _CookieProbe(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Set-Cookie", "probe=1; SameSite=None; Secure; Path=/")
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"probe")

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("storage", ["1", "0"])
def test_third_party_cookies_blocked_iframe_launch(live_server, blocked_cookies_page, storage):
    page = blocked_cookies_page
    probe = ThreadingHTTPServer(("127.0.0.1", 0), _CookieProbe)
    threading.Thread(target=probe.serve_forever, daemon=True).start()
    probe_url = f"http://127.0.0.1:{probe.server_address[1]}/"
    try:
        # First show that this browser really refuses ordinary third-party cookies in an iframe.
        page.goto(f"{live_server.platform_url}/devplatform/")
        page.evaluate("url => { const f = document.createElement('iframe'); f.src = url; document.body.appendChild(f); }",
                      probe_url)
        page.wait_for_function("() => document.querySelectorAll('iframe').length > 0")
        page.wait_for_timeout(500)
        assert [c for c in page.context.cookies(probe_url) if c["name"] == "probe"] == []
    finally:
        probe.shutdown()
    # The launch still works: by Platform Storage, or by a partitioned (CHIPS) cookie without it.
    page.goto(f"{live_server.platform_url}/devplatform/launch?user=learner&target=iframe&storage={storage}")
    frame = tool_frame(page)
    assert wait_for_view(frame) == "learner"
    assert frame.inner_text("#who") == "Lena Learner"


def test_deep_linking_launch(live_server, page):
    page.goto(f"{live_server.platform_url}/devplatform/launch?user=teacher&message=deeplink&target=iframe")
    frame = tool_frame(page)
    assert wait_for_view(frame) == "deep_linking"
    assert re.search(r"sesskey=", frame.inner_text("#launch-view"))


def test_admin_launch_reaches_scoped_admin_pages(live_server, page):
    page.goto(f"{live_server.platform_url}/devplatform/launch?user=admin&target=iframe")
    frame = tool_frame(page)
    wait_for_view(frame)
    href = frame.get_attribute("text=Administer lms_bridge for this platform", "href")
    assert href and href.startswith("/admin/?lt=")
    # Open the admin link the way the button does, in a page of its own.
    page.goto(live_server.url + href)
    page.wait_for_selector("#regs")
    assert "lms-bridge-dev" in page.inner_text("#main")
