"""Dynamic Registration end to end in a browser: the platform opens the tool's registration page in
an iframe, the tool registers over HTTP and closes with the org.imsglobal.lti.close postMessage,
and the new registration launches."""
from __future__ import annotations

import re

from tests.browser import frames
from tests.browser.test_launch_browser import wait_for_view


def test_dynamic_registration_then_launch(live_server, page):
    page.goto(f"{live_server.platform_url}/devplatform/dynamic-registration")
    page.click("button:has-text('Register')")
    frame = page.frame_locator("#dr-frame")
    frame.locator("text=lms_bridge is registered").wait_for(timeout=15000)
    frame.locator("#close").click()
    page.wait_for_selector("#dr-finished h2:has-text('Registration finished')", timeout=10000)
    assert page.locator("#dr-frame").count() == 0, "the platform closed the tool's frame"
    text = page.inner_text("#dr-finished")
    client_id = re.search(r"client id (\S+),", text).group(1)
    assert client_id != "lms-bridge-dev"
    # The tool stored the new registration (a second client of the same issuer) and its deployment.
    from lms_bridge.extensions import db
    from lms_bridge.lti.models import Registration

    with live_server.app.app_context():
        reg = db.session.execute(db.select(Registration).filter_by(client_id=client_id)).scalar_one()
        assert reg.source == "dynamic" and reg.active and [d.active for d in reg.deployments] == [True]
    # And the new client can launch right away.
    page.goto(f"{live_server.platform_url}/devplatform/launch?client={client_id}&user=learner&target=iframe")
    page.wait_for_selector("iframe#tool-frame")
    assert wait_for_view(frames.tool_frame(page)) == "learner"
