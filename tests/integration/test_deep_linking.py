"""Deep Linking 2.0 and link binding over real HTTP against gunicorn and the development platform:
the teacher's picker (search, preview, selection), the signed LtiDeepLinkingResponse that the
platform verifies with the tool's JWKS, the placed link opening the chosen course for learners with
its gradebook column; accept_multiple / accept_types, the echoed data claim, refused and replayed
submissions; and a link made without Deep Linking bound on its first instructor launch."""
from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import jwt
import pytest
import requests

from tests.integration.test_devplatform import (
    AGS_CLAIM,
    DL,
    C,
    Browser,
    error_code,
    finish_launch,
    gradebook,
    parse,
    start_launch,
)
from tests.integration.test_player_common import MOOC, import_course, launch_learner, place_link

CLIENT_ID = "lms-bridge-dev"


@pytest.fixture(scope="module")
def native(live_server):
    return import_course(live_server, MOOC / "hydrogen-fcev-basics-native")


@pytest.fixture(scope="module")
def scorm(live_server):
    return import_course(live_server, MOOC / "battery-safety-ev-scorm2004")


# -- helpers ------------------------------------------------------------------------------------


def dl_launch(server, browser: Browser | None = None, **options):
    """A teacher's deep linking launch from the development platform; (browser, claims, landing page)."""
    browser = browser or Browser()
    fields, claims = start_launch(server, browser, message="deeplink", user="teacher", target="iframe", **options)
    page = finish_launch(server, browser, fields)
    return browser, claims, page


def teach_token(page) -> str:
    m = re.search(r'/teach/([A-Za-z0-9_-]+)/', page.text)
    assert m, page.text[:3000]
    return m.group(1)


def tool_claims(server, token: str) -> dict:
    """Verify a JWT the tool signed against the tool's published JWKS, as the platform does."""
    kid = jwt.get_unverified_header(token)["kid"]
    jwks = requests.get(server.url + "/.well-known/jwks.json").json()
    key = next(k for k in jwks["keys"] if k["kid"] == kid)
    return jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience=server.platform_url + "/devplatform",
                      issuer=CLIENT_ID)


def returned_form(page) -> dict:
    form = next(f for f in parse(page.text).forms if f.get("id") == "dl-return")
    return {"action": html.unescape(form["action"]), "jwt": form["fields"]["JWT"]}


def options(page, kind: str) -> dict[str, str]:
    """{label: value} of the selection inputs of a preview page; every input of type ``kind``."""
    found = re.findall(r'<input type="(checkbox|radio)" name="item" value="([^"]+)" id="item-[^"]+"[^>]*>\s*'
                       r'<label for="item-[^"]+">(?:<span class="visually-hidden">)?(Whole course|Module): (?:</span>)?([^<\n]+)',
                       page.text)
    assert found, page.text[:3000]
    assert {t for t, *_ in found} == {kind}, found
    return {html.unescape(title.strip()): value for _t, value, _k, title in found}


def preview(server, browser, token, course_id):
    resp = browser.get(f"{server.url}/teach/{token}/pick/courses/{course_id}")
    assert resp.status_code == 200, resp.text[:2000]
    return resp


def submit(server, browser, token, course_id, items: dict[str, tuple[str, str | None]]):
    data = {"item": list(items)}
    for key, (title, score) in items.items():
        data[f"title_{key}"] = title
        if score is not None:
            data[f"score_{key}"] = score
    return browser.post(f"{server.url}/teach/{token}/pick/courses/{course_id}", data=data)


def module_value(page, title_start: str, kind: str) -> str:
    return next(v for t, v in options(page, kind).items() if t.startswith(title_start))


# -- the whole flow -----------------------------------------------------------------------------


def test_teacher_picks_a_course_and_the_learner_opens_it(live_server, native, scorm):
    browser, claims, page = dl_launch(live_server)
    settings = claims[DL + "deep_linking_settings"]
    assert 'data-view="deep_linking"' in page.text and 'data-state="picker"' in page.text
    assert "sesskey=" in page.text and 'id="search-form"' in page.text
    token = teach_token(page)

    # Search: words, then a filter; the course is found, the other one is not.
    found = browser.get(f"{live_server.url}/teach/{token}/pick", params={"q": "fuel cell"})
    assert found.status_code == 200
    assert f'data-course-id="{native["course_id"]}"' in found.text
    assert f'data-course-id="{scorm["course_id"]}"' not in found.text
    # As the search form sends it: every field, the unused ones empty.
    by_project = browser.get(f"{live_server.url}/teach/{token}/pick", params={
        "q": "", "skill": "", "eqf_level": "4", "language": "", "source_project": "TRIREME"})
    assert by_project.status_code == 200 and 'id="search-errors"' not in by_project.text
    assert f'data-course-id="{native["course_id"]}"' in by_project.text
    assert f'data-course-id="{scorm["course_id"]}"' not in by_project.text
    everything = browser.get(f"{live_server.url}/teach/{token}/pick", params={"q": " ", "skill": "", "eqf_level": ""})
    assert everything.status_code == 200 and f'data-course-id="{scorm["course_id"]}"' in everything.text

    # Preview: structure, outcomes, skills, EQF and workload; checkboxes (Moodle accepts several).
    page = preview(live_server, browser, token, native["course_id"])
    for text in ("Hydrogen fuel-cell vehicle basics", "Learning outcomes", "Describe the properties of hydrogen",
                 "Skills (ESCO)", "EQF level", "6 hours", "Module 2: The vehicle and the workshop",
                 "How a PEM fuel cell works"):
        assert text in html.unescape(page.text), text
    choices = options(page, "checkbox")
    assert choices["Hydrogen fuel-cell vehicle basics"] == "course" and len(choices) == 4

    title = "Hydrogen basics (graded)"
    resp = submit(live_server, browser, token, native["course_id"], {"course": (title, "40")})
    assert resp.status_code == 200, resp.text[:2000]
    assert 'data-state="returning"' in resp.text and "return.js" in resp.text
    form = returned_form(resp)
    assert form["action"] == settings["deep_link_return_url"]

    response = tool_claims(live_server, form["jwt"])
    assert response[C + "message_type"] == "LtiDeepLinkingResponse" and response[C + "version"] == "1.3.0"
    assert response[C + "deployment_id"] == claims[C + "deployment_id"]
    assert response[DL + "data"] == settings["data"]  # echoed unchanged
    assert response["nonce"] and response["exp"] > response["iat"]
    [item] = response[DL + "content_items"]
    assert item["type"] == "ltiResourceLink" and item["title"] == title
    assert item["url"] == live_server.url + "/lti/launch" and item["text"].startswith("An introduction to hydrogen")
    assert item["custom"] == {"course": "TRIREME|urn:lms-bridge:mooc:hydrogen-fcev-basics"}
    assert item["lineItem"] == {"scoreMaximum": 40.0, "label": title, "tag": "lms_bridge",
                                "resourceId": "TRIREME|urn:lms-bridge:mooc:hydrogen-fcev-basics"}

    # The browser posts it to the platform, which checks it against the tool's JWKS and places the link.
    placed = requests.post(form["action"], data={"JWT": form["jwt"]})
    assert placed.status_code == 200, placed.text[:2000]
    assert "Content added" in placed.text and title in placed.text and "Added from lms_bridge" in placed.text
    link_id = re.search(r'data-resource-link-id="(\d+)"', placed.text).group(1)
    book = gradebook(live_server)
    link = next(l for l in book["links"] if l["resource_link_id"] == link_id)
    assert link["custom"] == item["custom"] and link["title"] == title
    line_item = next(i for i in book["line_items"] if i["id"] == link["line_item_id"])
    assert line_item["score_maximum"] == 40 and line_item["label"] == title and line_item["tag"] == "lms_bridge"
    assert line_item["resource_id"] == item["lineItem"]["resourceId"]

    # The learner's launch of the new link opens that course, with its gradebook column in the AGS claim.
    learner = Browser()
    fields, learner_claims = start_launch(live_server, learner, user="learner", link=link_id, target="window")
    assert learner_claims[C + "custom"]["course"] == item["custom"]["course"]
    assert f"/lineitems/{line_item['id']}/lineitem?" in learner_claims[AGS_CLAIM]["lineitem"]
    page = finish_launch(live_server, learner, fields)
    assert 'data-state="playing"' in page.text and "Hydrogen as an energy carrier" in page.text

    # One response per request: the same session cannot send a second one.
    again = submit(live_server, browser, token, native["course_id"], {"course": (title, "40")})
    assert again.status_code == 409 and error_code(again) == "already_returned"
    assert "already sent" in again.text


# -- what the platform accepts ------------------------------------------------------------------


def test_accept_multiple_false_allows_one_item_only(live_server, native):
    browser, claims, page = dl_launch(live_server, dl_accept_multiple="0")
    assert claims[DL + "deep_linking_settings"]["accept_multiple"] is False
    assert "takes one item here" in page.text
    token = teach_token(page)
    page = preview(live_server, browser, token, native["course_id"])
    radios = options(page, "radio")
    m1, m2 = module_value(page, "Module 1", "radio"), module_value(page, "Module 2", "radio")
    assert set(radios.values()) == {"course", m1, m2, module_value(page, "Module 3", "radio")}
    # Two items by a crafted request: refused, and the request can still be answered.
    two = submit(live_server, browser, token, native["course_id"], {m1: ("One", "10"), m2: ("Two", "10")})
    assert two.status_code == 400 and "accepts one item only" in two.text and 'id="selection-errors"' in two.text
    one = submit(live_server, browser, token, native["course_id"], {m2: ("Workshop module", "25")})
    assert one.status_code == 200, one.text[:2000]
    [item] = tool_claims(live_server, returned_form(one)["jwt"])[DL + "content_items"]
    assert item["custom"] == {"course": "TRIREME|urn:lms-bridge:mooc:hydrogen-fcev-basics",
                              "module": "m2-vehicle-workshop"}
    assert item["lineItem"]["resourceId"] == "TRIREME|urn:lms-bridge:mooc:hydrogen-fcev-basics#m2-vehicle-workshop"


def test_several_modules_become_several_links(live_server, native):
    browser, _claims, page = dl_launch(live_server)
    token = teach_token(page)
    page = preview(live_server, browser, token, native["course_id"])
    m1, m3 = module_value(page, "Module 1", "checkbox"), module_value(page, "Module 3", "checkbox")
    resp = submit(live_server, browser, token, native["course_id"],
                  {m1: ("Fuel cells", "10"), m3: ("Assessment", "50")})
    assert resp.status_code == 200, resp.text[:2000]
    form = returned_form(resp)
    items = tool_claims(live_server, form["jwt"])[DL + "content_items"]
    assert [(i["title"], i["custom"]["module"], i["lineItem"]["scoreMaximum"]) for i in items] == [
        ("Fuel cells", "m1-hydrogen-fuel-cells", 10.0), ("Assessment", "m3-mobility-assessment", 50.0)]
    placed = requests.post(form["action"], data={"JWT": form["jwt"]})
    assert placed.status_code == 200 and len(re.findall(r'data-resource-link-id="\d+"', placed.text)) == 2
    # A learner launch of the module link opens that module only.
    link_id = re.findall(r'data-resource-link-id="(\d+)"', placed.text)[1]
    _b, page = launch_learner(live_server, link_id)
    text = html.unescape(page.text)
    assert 'data-state="playing"' in text
    assert "Module 3: Hydrogen mobility and assessment" in text and "How a PEM fuel cell works" not in text


def test_no_line_item_when_the_platform_ignores_them(live_server, native):
    browser, claims, page = dl_launch(live_server, dl_accept_lineitem="0")
    assert claims[DL + "deep_linking_settings"]["accept_lineitem"] is False
    token = teach_token(page)
    page = preview(live_server, browser, token, native["course_id"])
    assert 'name="score_course"' not in page.text and "no maximum score is asked" in page.text
    resp = submit(live_server, browser, token, native["course_id"], {"course": ("Hydrogen", None)})
    [item] = tool_claims(live_server, returned_form(resp)["jwt"])[DL + "content_items"]
    assert "lineItem" not in item and item["custom"]["course"]


def test_accept_types_without_resource_links_is_a_clear_page(live_server, native):
    browser = Browser()
    fields, claims = start_launch(live_server, browser, message="deeplink", user="teacher", target="window",
                                  dl_accept_types="link,html")
    assert claims[DL + "deep_linking_settings"]["accept_types"] == ["link", "html"]
    page = browser.post(live_server.url + "/lti/launch", data=fields)
    assert page.status_code == 400 and error_code(page) == "deep_linking_types"
    assert "does not accept LTI resource links" in page.text and 'id="search-form"' not in page.text
    # The platform's own launch page refuses option values it does not know.
    bad = browser.get(live_server.platform_url + "/devplatform/launch",
                      params={"message": "deeplink", "user": "teacher", "dl_accept_types": "video"})
    assert bad.status_code == 400 and error_code(bad) == "bad_deep_linking_options"


def test_cancel_returns_nothing_to_the_platform(live_server, native):
    browser, claims, page = dl_launch(live_server)
    token = teach_token(page)
    back = browser.post(f"{live_server.url}/teach/{token}/pick/none")
    assert back.status_code == 200 and "Nothing is added" in back.text
    form = returned_form(back)
    response = tool_claims(live_server, form["jwt"])
    assert response[DL + "content_items"] == []
    assert response[DL + "data"] == claims[DL + "deep_linking_settings"]["data"]
    shown = requests.post(form["action"], data={"JWT": form["jwt"]})
    assert shown.status_code == 200 and "No content was added" in shown.text
    # Answered: neither a selection nor another cancel is sent now.
    assert submit(live_server, browser, token, native["course_id"], {"course": ("x", "1")}).status_code == 409
    assert browser.post(f"{live_server.url}/teach/{token}/pick/none").status_code == 409


# -- refusals -----------------------------------------------------------------------------------


def test_bad_submissions_are_refused_with_clear_errors(live_server, native, scorm):
    browser, _claims, page = dl_launch(live_server)
    token = teach_token(page)
    page = preview(live_server, browser, token, native["course_id"])
    m1 = module_value(page, "Module 1", "checkbox")
    url = f"{live_server.url}/teach/{token}/pick/courses/{native['course_id']}"
    cases = [
        ({}, "Choose the whole course or at least one module"),
        ({"item": "course", "title_course": "  ", "score_course": "10"}, "Give a title"),
        ({"item": "course", "title_course": "x" * 300, "score_course": "10"}, "Give a title"),
        ({"item": "course", "title_course": "Hydrogen", "score_course": "abc"}, "Not a valid number"),
        ({"item": "course", "title_course": "Hydrogen", "score_course": "0"}, "must be a number above 0"),
        ({"item": "course", "title_course": "Hydrogen", "score_course": "-5"}, "must be a number above 0"),
        ({"item": "course", "title_course": "Hydrogen", "score_course": "nan"}, "Special numeric values"),
        ({"item": "course", "title_course": "Hydrogen", "score_course": ""}, "give a maximum score"),
        ({"item": "m999999999", "title_m999999999": "Elsewhere", "score_m999999999": "5"},
         "is not a part of this course"),
        ({"item": "../etc", "title_../etc": "x", "score_../etc": "5"}, "not a choice of this course"),
    ]
    for data, message in cases:
        resp = browser.post(url, data=data)
        assert resp.status_code == 400, (data, resp.text[:500])
        assert message in html.unescape(resp.text), (data, message)
    # What the teacher typed stays in the form.
    kept = browser.post(url, data={"item": ["course", m1], "title_course": "My title", "score_course": "12",
                                   f"title_{m1}": "", f"score_{m1}": "3"})
    assert kept.status_code == 400 and 'value="My title"' in kept.text and 'value="12"' in kept.text
    assert re.search(rf'value="{m1}" id="item-{m1}"\s+checked', kept.text)
    # A module of another course is not a part of this one.
    other = preview(live_server, browser, token, scorm["course_id"])
    foreign = next(v for v in options(other, "checkbox").values() if v != "course")
    resp = browser.post(url, data={"item": foreign, f"title_{foreign}": "x", f"score_{foreign}": "1"})
    assert resp.status_code == 400 and "is not a part of this course" in resp.text
    assert browser.get(f"{live_server.url}/teach/{token}/pick/courses/999999").status_code == 404
    # Every refusal left the request answerable.
    ok = submit(live_server, browser, token, native["course_id"], {"course": ("Hydrogen", "10")})
    assert ok.status_code == 200
    jwt_value = returned_form(ok)["jwt"]
    assert tool_claims(live_server, jwt_value)[DL + "content_items"][0]["title"] == "Hydrogen"
    # Replays: another selection, or "return nothing", of the answered request.
    assert submit(live_server, browser, token, native["course_id"], {"course": ("Again", "10")}).status_code == 409
    assert browser.post(f"{live_server.url}/teach/{token}/pick/none").status_code == 409
    # And the platform takes the response once (its sesskey is used up after the first).
    form = returned_form(ok)
    assert requests.post(form["action"], data={"JWT": jwt_value}).status_code == 200
    assert requests.post(form["action"], data={"JWT": jwt_value}).status_code == 400


def test_picker_needs_a_deep_linking_launch(live_server, native):
    # A learner's resource link launch token does not open the picker.
    link = place_link(live_server, "Picker probe", course=native["course_id"])
    browser, page = launch_learner(live_server, link)
    learner_token = re.search(r'href="/player/([A-Za-z0-9_-]+)/activity/', page.text).group(1)
    resp = browser.get(f"{live_server.url}/teach/{learner_token}/pick")
    assert resp.status_code == 403 and error_code(resp) == "not_deep_linking"
    assert browser.post(f"{live_server.url}/teach/{learner_token}/pick/courses/{native['course_id']}",
                        data={"item": "course", "title_course": "x", "score_course": "1"}).status_code == 403
    assert browser.get(f"{live_server.url}/teach/not-a-token/pick").status_code == 404
    # A bad search parameter is explained on the page; the catalogue is still shown.
    _b, _c, page = dl_launch(live_server)
    token = teach_token(page)
    bad = requests.get(f"{live_server.url}/teach/{token}/pick", params={"eqf_level": "12"})
    assert bad.status_code == 400 and 'id="search-errors"' in bad.text and 'id="results"' in bad.text


# -- a link made without Deep Linking ------------------------------------------------------------


def choose_form_value(page, start: str) -> str:
    return next(v for t, v in options(page, "radio").items() if t.startswith(start))


def test_unbound_link_is_set_up_by_the_first_instructor_launch(live_server, native):
    link = place_link(live_server, "Hydrogen activity added by hand")
    _b, page = launch_learner(live_server, link)
    assert 'data-state="not-set-up"' in page.text and "is not set up yet" in page.text

    teacher, page = launch_learner(live_server, link, user="teacher")
    assert 'data-view="instructor"' in page.text and 'data-state="choose"' in page.text
    assert '<span id="role">Instructor</span>' in page.text and "does not open a course yet" in page.text
    token = teach_token(page)
    found = teacher.get(f"{live_server.url}/teach/{token}/choose", params={"q": "hydrogen"})
    assert f'data-course-id="{native["course_id"]}"' in found.text
    page = teacher.get(f"{live_server.url}/teach/{token}/choose/courses/{native['course_id']}")
    assert page.status_code == 200 and 'name="title_course"' not in page.text  # the LMS made the column
    module = choose_form_value(page, "Module 2")
    url = f"{live_server.url}/teach/{token}/choose/courses/{native['course_id']}"
    assert teacher.post(url, data={}).status_code == 400
    assert teacher.post(url, data={"item": ["course", module]}).status_code == 400  # one choice only
    chosen = teacher.post(url, data={"item": module})
    assert chosen.status_code == 303 and chosen.headers["Location"].endswith(f"/teach/{token}/dashboard")
    board = teacher.get(live_server.url + urlsplit(chosen.headers["Location"]).path)
    assert board.status_code == 200 and 'data-state="dashboard"' in board.text
    assert "Module 2: The vehicle and the workshop" in html.unescape(board.text)

    # The learner now opens the chosen module.
    _b, page = launch_learner(live_server, link)
    text = html.unescape(page.text)
    assert 'data-state="playing"' in text and "The fuel-cell electric vehicle powertrain" in text
    assert "How a PEM fuel cell works" not in text

    # The choice stands: a later choice (a second teacher's stale page) does not move it.
    assert teacher.post(url, data={"item": "course"}).status_code == 303
    _b, page = launch_learner(live_server, link)
    assert "How a PEM fuel cell works" not in html.unescape(page.text)
    # The next instructor launch opens the dashboard.
    _t, page = launch_learner(live_server, link, user="teacher")
    assert 'data-state="dashboard"' in page.text


def test_chooser_leaves_links_named_by_the_lms_alone(live_server, native, scorm):
    link = place_link(live_server, "Named by custom", course=scorm["course_id"])
    teacher, page = launch_learner(live_server, link, user="teacher")
    assert 'data-state="dashboard"' in page.text and "Battery safety" in page.text
    token = teach_token(page)
    resp = teacher.post(f"{live_server.url}/teach/{token}/choose/courses/{native['course_id']}",
                        data={"item": "course"})
    assert resp.status_code == 409 and error_code(resp) == "bound_by_lms"
    # A learner's token cannot reach the chooser or the dashboard.
    learner, page = launch_learner(live_server, link)
    learner_token = re.search(r'href="/player/([A-Za-z0-9_-]+)/activity/', page.text).group(1)
    for path in ("/choose", "/dashboard", "/dashboard.csv"):
        assert learner.get(f"{live_server.url}/teach/{learner_token}{path}").status_code == 403


def test_instructor_of_a_link_to_a_removed_course_is_told_what_to_do(live_server):
    link = place_link(live_server, "Gone course", course="urn:no-such-course")
    teacher, page = launch_learner(live_server, link, user="teacher")
    assert page.status_code == 200 and 'data-state="dashboard"' in page.text
    assert 'id="binding-error"' in page.text and "urn:no-such-course" in html.unescape(page.text)
    assert "custom parameter" in page.text
    token = urlsplit(page.url).path.rsplit("/", 1)[1]  # the landing page: /launch/<token>
    csv_export = teacher.get(f"{live_server.url}/teach/{token}/dashboard.csv")
    assert csv_export.status_code == 404 and error_code(csv_export) == "not_bound"
