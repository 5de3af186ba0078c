"""The micro-credential in a real browser: a learner who completes a course inside the platform's
iframe sees the credential panel appear in the player, opens the credential page (skills, EQF level,
downloads, a verification address to copy), and the public verification page says it is valid."""
from __future__ import annotations

import pytest

from tests.browser.test_player_browser import NATIVE_COURSE, _answers, go, launch
from tests.integration.test_keys_and_state import flask_cmd
from tests.integration.test_player_common import import_course, place_link


@pytest.fixture(scope="module")
def course(live_server):
    res = flask_cmd(live_server, "issuer-profile", "seed")  # what `make run` does
    assert res.returncode == 0, res.stderr
    info = import_course(live_server, NATIVE_COURSE)
    return {**info, "link": place_link(live_server, "Hydrogen basics, with a credential", course=info["course_id"])}


def test_completed_course_shows_a_verifiable_credential(live_server, page, course):
    tool = launch(page, live_server, course["link"])
    assert tool.is_hidden("#credential-panel")
    for _lesson in [a for a in course["activities"] if a["kind"] == "lesson"]:
        go(tool, "#next-link")
    quiz = next(a for a in course["activities"] if a["kind"] == "quiz")
    for q in _answers(live_server, course["version_id"], quiz["identifier"])["questions"]:
        name = "q-" + q["identifier"]
        if q["kind"] in ("single", "true_false"):
            tool.check(f'input[name="{name}"][value="{next(c for c in q["choices"] if c["correct"])["identifier"]}"]')
        elif q["kind"] == "multiple":
            for c in q["choices"]:
                if c["correct"]:
                    tool.check(f'input[name="{name}"][value="{c["identifier"]}"]')
        elif q["kind"] == "fill_in":
            tool.fill(f'input[name="{name}"]', q["answers"][0])
    with tool.expect_navigation():
        tool.click("#quiz-submit")
    assert tool.is_visible("#course-complete")

    # The panel polls until the outbox worker has issued the credential, then offers it.
    tool.wait_for_selector("#credential-panel-link", state="visible", timeout=30000)
    with tool.expect_navigation():
        tool.click("#credential-panel-link")
    tool.wait_for_selector("#credential-page[data-state=issued]")
    assert tool.inner_text("#eqf-level").startswith("4") or tool.inner_text("#eqf-level")[0].isdigit()
    assert tool.locator("#skills li").count() >= 1
    for fmt in ("png", "svg", "json", "jwt"):
        assert tool.is_visible(f"#download-{fmt}")
    verify_url = tool.input_value("#verify-url")
    assert verify_url.startswith(live_server.url + "/credentials/") and verify_url.endswith("/verify")

    # Anyone can open the verification address: a page of its own, no launch, no cookie.
    checker = page.context.new_page()
    checker.goto(verify_url)
    assert checker.get_attribute("#verify-view", "data-ok") == "true"
    checks = checker.inner_text("#checks")
    for word in ("signature", "issuer", "revo"):
        assert word in checks.lower(), checks
    checker.close()
