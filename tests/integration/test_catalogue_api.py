"""The catalogue API and package content over real HTTP (gunicorn), after a CLI import of the vendored samples.

Every JSON response is checked against the OpenAPI 3.1 description the server publishes.
"""
from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.integration.test_keys_and_state import flask_cmd

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "packages"
SAMPLES = {
    "com.scorm.golfsamples.runtime.basicruntime.12": "scorm12/golf_runtime_basic_calls",
    "com.scorm.golfsamples.contentpackaging.multioscosinglefile.12":
        "scorm12/golf_cp_one_file_per_sco_zip/golf_cp_one_file_per_sco_scorm12.zip",
    "com.scorm.golfsamples.runtime.basicruntime.20043rd": "scorm2004/golf_runtime_basic_calls_3rd",
    "com.scorm.golfsamples.contentpackaging.metadata.20043rd":
        "scorm2004/golf_cp_metadata_3rd_zip/golf_cp_metadata_2004_3rd.zip",
    "https://w3id.org/xapi/cmi5/catapult/lts/course/geology-intro-preposttest":
        "cmi5/catapult_pre_post_test_framed_zip/pre_post_test_framed.zip",
    "ife6c3152cbc3f055b596a033fad66b4c": "cc/instructure_ccviewer/course-1",
    "urn:lms-bridge:test:hv-safety-basics": "native/hv_safety_basics",
}
HV_SKILL = "http://data.europa.eu/esco/skill/00000000-0000-4000-8000-000000000001"


# --------------------------------------------------------------------------- a small JSON Schema check


def check(instance, schema: dict, spec: dict, where: str = "$") -> None:
    """Validate ``instance`` against the subset of JSON Schema 2020-12 the description uses."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return check(instance, spec["components"]["schemas"][name], spec, where)
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                return check(instance, option, spec, where)
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: matches no anyOf option: {errors}")
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        python = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list,
                  "object": dict, "null": type(None)}
        ok = any(isinstance(instance, python[t]) and not (t in ("integer", "number") and isinstance(instance, bool))
                 for t in types)
        assert ok, f"{where}: {instance!r} is not of type {types}"
    if "enum" in schema:
        assert instance in schema["enum"], f"{where}: {instance!r} not in {schema['enum']}"
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        if "minimum" in schema:
            assert instance >= schema["minimum"], where
        if "maximum" in schema:
            assert instance <= schema["maximum"], where
    if isinstance(instance, dict) and "properties" in schema:
        for key in schema.get("required", []):
            assert key in instance, f"{where}: missing {key!r}"
        if schema.get("additionalProperties") is False:
            extra = set(instance) - set(schema["properties"])
            assert not extra, f"{where}: undocumented {sorted(extra)}"
        for key, value in instance.items():
            if key in schema["properties"]:
                check(value, schema["properties"][key], spec, f"{where}.{key}")
    if isinstance(instance, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, value in instance.items():
            check(value, schema["additionalProperties"], spec, f"{where}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for n, item in enumerate(instance):
            check(item, schema["items"], spec, f"{where}[{n}]")


def response_schema(spec: dict, path: str, status: int) -> dict:
    return spec["paths"][path]["get"]["responses"][str(status)]["content"]["application/json"]["schema"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def imported(live_server) -> dict[str, int]:
    """The vendored samples, imported with the operator command; identifier -> course id."""
    result = flask_cmd(live_server, "import-packages", *[str(FIXTURES / p) for p in SAMPLES.values()])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("imported   ") + result.stdout.count("unchanged  ") == len(SAMPLES)
    listing = json.loads(flask_cmd(live_server, "list-packages", "--json").stdout)
    ids = {c["identifier"]: c["id"] for c in listing}
    return {identifier: ids[identifier] for identifier in SAMPLES}


@pytest.fixture(scope="module")
def spec(live_server) -> dict:
    resp = requests.get(live_server.url + "/api/v1/openapi.json")
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/json")
    return resp.json()


@pytest.fixture
def api(live_server, spec):
    def get(path: str, params=None, status: int = 200, template: str | None = None):
        resp = requests.get(live_server.url + path, params=params)
        assert resp.status_code == status, resp.text
        assert resp.headers["Content-Type"].startswith("application/json")
        check(resp.json(), response_schema(spec, template or path, status), spec)
        return resp.json()

    return get


def titles(body) -> set[str]:
    return {item["title"] for item in body["items"]}


# --------------------------------------------------------------------------- the API


def test_openapi_describes_every_endpoint(spec):
    assert spec["openapi"] == "3.1.0"
    assert set(spec["paths"]) == {"/api/v1/courses", "/api/v1/courses/{course_id}", "/api/v1/skills",
                                  "/api/v1/verify", "/api/v1/openapi.json"}
    params = {p["name"]: p for p in spec["paths"]["/api/v1/courses"]["get"]["parameters"]}
    assert set(params) == {"q", "skill", "eqf_level", "language", "source_project", "workload_min", "workload_max",
                           "page", "per_page", "sort"}
    assert params["eqf_level"]["schema"] == {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 8}}
    assert params["per_page"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    assert "-imported_at" in params["sort"]["schema"]["enum"]
    assert spec["components"]["schemas"]["Module"]["properties"]["modules"]["items"] == {
        "$ref": "#/components/schemas/Module"}


def test_list_search_and_filters(imported, api):
    everything = api("/api/v1/courses", {"per_page": 100})
    assert {item["id"] for item in everything["items"]} >= set(imported.values())
    assert everything["total"] >= len(imported) and everything["page"] == 1
    golf = api("/api/v1/courses", {"q": "golf"})
    assert titles(golf) >= {"Golf Explained", "Golf Explained - Run-time Basic Calls",
                            "Golf Explained - CP One File Per SCO"}
    assert all("golf" in (i["title"] + (i["description"] or "") + " ".join(i["keywords"])).lower()
               for i in golf["items"])
    assert titles(api("/api/v1/courses", {"q": "GEOLOGY"})) == {"Introduction to Geology - Pre/Post Test"}
    hv = api("/api/v1/courses", {"q": "high voltage", "eqf_level": 4, "language": "en",
                                 "source_project": "lms_bridge test fixtures", "skill": HV_SKILL,
                                 "workload_min": 1, "workload_max": 2})
    assert [i["id"] for i in hv["items"]] == [imported["urn:lms-bridge:test:hv-safety-basics"]]
    item = hv["items"][0]
    assert item["skills"] == [{"uri": HV_SKILL, "label": None, "kind": "skill"}]
    assert item["occupations"][0]["kind"] == "occupation" and item["url"] == f"/api/v1/courses/{item['id']}"
    assert api("/api/v1/courses", {"q": "high voltage", "eqf_level": 5})["total"] == 0
    us = api("/api/v1/courses", {"language": "en-US"})
    assert imported["https://w3id.org/xapi/cmi5/catapult/lts/course/geology-intro-preposttest"] in {
        i["id"] for i in us["items"]}
    facets = everything["facets"]
    assert {"value": 4, "count": 1} in facets["eqf_level"] or any(f["value"] == 4 for f in facets["eqf_level"])
    assert any(f["value"] == HV_SKILL for f in facets["skill"])


def test_pagination(imported, api):
    first = api("/api/v1/courses", {"per_page": 2, "page": 1, "sort": "title"})
    second = api("/api/v1/courses", {"per_page": 2, "page": 2, "sort": "title"})
    assert len(first["items"]) == 2 and first["pages"] == (first["total"] + 1) // 2
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}
    names = [i["title"].lower() for i in first["items"] + second["items"]]
    assert names == sorted(names)


@pytest.mark.parametrize("params, field", [
    ({"page": "0"}, "page"),
    ({"per_page": "500"}, "per_page"),
    ({"eqf_level": "9"}, "eqf_level"),
    ({"eqf_level": "four"}, "eqf_level"),
    ({"skill": "https://example.org/skill"}, "skill"),
    ({"language": "english!"}, "language"),
    ({"workload_min": "5", "workload_max": "1"}, "workload_min"),
    ({"workload_min": "-1"}, "workload_min"),
    ({"sort": "price"}, "sort"),
    ({"colour": "red"}, "colour"),
    ({"page": ["1", "2"]}, "page"),
])
def test_bad_query_parameters_are_400_json(api, params, field):
    body = api("/api/v1/courses", params, status=400)
    assert body["error"] == "bad_request" and field in body["errors"]
    assert body["errors"][field] and all(isinstance(m, str) for m in body["errors"][field])


def test_course_detail(imported, api, live_server):
    course_id = imported["urn:lms-bridge:test:hv-safety-basics"]
    body = api(f"/api/v1/courses/{course_id}", template="/api/v1/courses/{course_id}")
    assert body["id"] == course_id and body["format"] == "native" and body["eqf_level"] == 4
    assert body["learning_outcomes"][0].startswith("Explain why voltages above 60 V")
    assert body["prerequisites"] and body["completion"]["pass_mark"] == 0.8
    assert [m["identifier"] for m in body["modules"]] == ["m1", "m2"]
    quiz = body["modules"][1]["activities"][0]
    assert quiz["kind"] == "quiz" and quiz["question_count"] >= 1 and quiz["url"] is None
    assert "quiz" not in quiz and "html" not in quiz, "answers and bodies stay on the server"
    link = body["modules"][1]["activities"][1]
    assert link["kind"] == "weblink" and link["url"] == "https://osha.europa.eu/en" and link["required"] is False
    assert [v["current"] for v in body["versions"]] == [True] and body["activity_count"] == 4

    golf = api(f"/api/v1/courses/{imported['com.scorm.golfsamples.contentpackaging.multioscosinglefile.12']}",
               template="/api/v1/courses/{course_id}")
    modules = golf["modules"]
    assert len(modules) == 4 and sum(len(m["activities"]) for m in modules) == 18
    first = modules[0]["activities"][0]
    assert first["url"].startswith(live_server.content_url + f"/content/{golf['version_id']}/")
    page = requests.get(first["url"])
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")


def test_unknown_course_and_endpoint_are_404_json(api, live_server):
    body = api("/api/v1/courses/987654", status=404, template="/api/v1/courses/{course_id}")
    assert body["error"] == "not_found"
    resp = requests.get(live_server.url + "/api/v1/nothing-here")
    assert resp.status_code == 404 and resp.json()["error"] == "not_found"


def test_skills(imported, api):
    body = api("/api/v1/skills")
    hv = next(i for i in body["items"] if i["uri"] == HV_SKILL)
    assert hv["kind"] == "skill" and hv["course_count"] >= 1 and body["total"] == len(body["items"])
    occupations = api("/api/v1/skills", {"kind": "occupation"})
    assert occupations["items"] and {i["kind"] for i in occupations["items"]} == {"occupation"}
    assert api("/api/v1/skills", {"kind": "hobby"}, status=400)["errors"]["kind"]


def test_api_is_public_and_cors_readable(live_server, imported):
    resp = requests.get(live_server.url + "/api/v1/courses", headers={"Origin": "https://elsewhere.example"})
    assert resp.status_code == 200 and resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Set-Cookie" not in resp.headers


# --------------------------------------------------------------------------- content


def raw_get(live_server, path: str) -> http.client.HTTPResponse:
    """A GET whose path is sent exactly as written (no client-side dot-segment removal)."""
    parts = urlsplit(live_server.content_url)  # package content has its own origin
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def version_id(api, course_id: int) -> int:
    return api(f"/api/v1/courses/{course_id}", template="/api/v1/courses/{course_id}")["version_id"]


def test_content_headers(live_server, imported, api):
    v = version_id(api, imported["com.scorm.golfsamples.runtime.basicruntime.12"])
    resp = requests.get(f"{live_server.content_url}/content/{v}/shared/launchpage.html")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "'unsafe-inline'" in csp and "connect-src 'self'" in csp
    assert f"frame-ancestors {live_server.url}" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cross-Origin-Resource-Policy"] == "cross-origin"  # the player shows lesson media
    assert "max-age=3600" in resp.headers["Cache-Control"] and "Set-Cookie" not in resp.headers
    js = requests.get(f"{live_server.content_url}/content/{v}/shared/scormfunctions.js")
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")


def test_content_traversal_and_private_files_are_refused(live_server, imported, api):
    golf = version_id(api, imported["com.scorm.golfsamples.runtime.basicruntime.12"])
    hv = version_id(api, imported["urn:lms-bridge:test:hv-safety-basics"])
    assert raw_get(live_server, f"/content/{hv}/lessons/01-hazards.md").status == 200
    for path in [
        f"/content/{golf}/../{hv}/lessons/01-hazards.md",
        f"/content/{golf}/shared/../../{hv}/lessons/01-hazards.md",
        f"/content/{golf}/%2e%2e/{hv}/lessons/01-hazards.md",
        f"/content/{golf}/..%2f{hv}%2flessons%2f01-hazards.md",
        f"/content/{golf}/..%5c{hv}%5clessons%5c01-hazards.md",
        f"/content/{golf}//etc/passwd",
        f"/content/{golf}/%2fetc%2fpasswd",
        f"/content/{golf}/shared/%00launchpage.html",
        f"/content/{hv}/course.yaml",
        f"/content/{hv}/quizzes/safety-check.yaml",
        f"/content/{hv}/lessons",
        "/content/999999/index.html",
    ]:
        resp = raw_get(live_server, path)
        if resp.status == 308:  # Werkzeug merges "//": the redirect stays inside the same version folder
            location = urlsplit(resp.getheader("Location")).path
            assert location.startswith(f"/content/{golf}/") and ".." not in location, location
            resp = raw_get(live_server, location)
        assert resp.status in (400, 404), (path, resp.status)
        assert resp.getheader("X-Content-Type-Options") == "nosniff"
