"""Which origin package content gets (lms_bridge.config.content_origin), and what gunicorn listens on
for it: the development default on a second loopback address, its fallbacks, same-origin mode, and
the settings refused at start-up. No server needed, apart from one in-process app for the warning."""
from __future__ import annotations

import logging
import runpy
from pathlib import Path

import pytest

from lms_bridge import config
from lms_bridge.config import content_bind, content_origin

ROOT = Path(__file__).resolve().parents[2]
TOOL = {"PUBLIC_BASE_URL": "http://127.0.0.1:8000", "BIND": "127.0.0.1:8000"}


def only(*hosts):
    return lambda host: host in hosts


def test_development_default_is_ipv6_loopback_on_the_same_port():
    resolved = content_origin(TOOL, bindable=only("::1", "127.0.0.2"))
    assert (resolved.base_url, resolved.mode, resolved.source) == ("http://[::1]:8000", "separate", "loopback")
    assert resolved.bind == "[::1]:8000" and resolved.tool_origin == "http://127.0.0.1:8000"
    # Nothing set at all: make run's defaults.
    assert content_origin({}, bindable=only("::1")).base_url == "http://[::1]:8000"
    assert content_origin({"PORT": "9000"}, bindable=only("::1")).base_url == "http://[::1]:9000"
    assert content_origin({"PUBLIC_BASE_URL": "http://localhost:8000", "BIND": "localhost:8000"},
                          bindable=only("::1")).base_url == "http://[::1]:8000"


def test_without_ipv6_127_0_0_2_then_same_origin_with_a_reason():
    second = content_origin(TOOL, bindable=only("127.0.0.2"))
    assert second.base_url == "http://127.0.0.2:8000" and second.bind == "127.0.0.2:8000"
    none = content_origin(TOOL, bindable=only())
    assert (none.base_url, none.mode, none.source) == (None, "same-origin", "unavailable")
    assert "no second loopback address" in none.note and "CONTENT_BASE_URL" in none.note


@pytest.mark.parametrize("env, why", [
    ({"PUBLIC_BASE_URL": "https://tool.example.org", "BIND": "0.0.0.0:8000"}, "is not http://127.0.0.1"),
    ({"BIND": "0.0.0.0:8000"}, "is not http://127.0.0.1"),
    ({"PUBLIC_BASE_URL": "http://127.0.0.1:8080", "BIND": "127.0.0.1:8000"}, "is not the port gunicorn listens on"),
    ({"BIND": "unix:/run/lms_bridge.sock"}, "is no TCP address"),
])
def test_no_loopback_default_when_the_browser_could_not_reach_it(env, why):
    resolved = content_origin(env, bindable=only("::1", "127.0.0.2"))
    assert resolved.base_url is None and resolved.source == "unavailable" and why in resolved.note


def test_configured_content_origin():
    env = {"PUBLIC_BASE_URL": "https://tool.example.org", "CONTENT_BASE_URL": "https://content.example.net/"}
    resolved = content_origin(env)
    assert (resolved.base_url, resolved.source, resolved.bind) == ("https://content.example.net", "configured", None)
    # A loopback IP literal is listened on too; a host name is the reverse proxy's business.
    local = content_origin({**TOOL, "CONTENT_BASE_URL": "http://127.0.0.3:8000"})
    assert local.base_url == "http://127.0.0.3:8000" and local.bind == "127.0.0.3:8000"


@pytest.mark.parametrize("env, source", [
    ({**TOOL, "CONTENT_ISOLATION": "off"}, "off"),
    ({**TOOL, "CONTENT_ISOLATION": "0", "CONTENT_BASE_URL": "http://[::1]:8000"}, "off"),
    ({**TOOL, "CONTENT_BASE_URL": "http://127.0.0.1:8000/"}, "same-as-tool"),
    ({"LMS_BRIDGE_ENV": "production", "CONTENT_ISOLATION": "off"}, "off"),
])
def test_same_origin_mode_is_explicit(env, source):
    resolved = content_origin(env, bindable=only("::1"))
    assert (resolved.base_url, resolved.mode, resolved.source) == (None, "same-origin", source)
    assert "trusted content only" in resolved.note


@pytest.mark.parametrize("env, message", [
    ({"LMS_BRIDGE_ENV": "production", "PUBLIC_BASE_URL": "https://tool.example.org"}, "needs CONTENT_BASE_URL"),
    ({"CONTENT_BASE_URL": "https://content.example.net"}, "needs PUBLIC_BASE_URL"),
    ({"PUBLIC_BASE_URL": "https://tool.example.org", "CONTENT_BASE_URL": "content.example.net"}, "http(s) URL"),
])
def test_settings_that_cannot_work_are_refused(env, message):
    with pytest.raises(RuntimeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        content_origin(env)
    assert content_bind(env) is None, "gunicorn.conf.py never raises: the app reports the error"


@pytest.mark.parametrize("bind, content, extra", [
    ("127.0.0.1:8000", "http://[::1]:8000", "[::1]:8000"),
    ("0.0.0.0:8000", "http://[::1]:8000", "[::1]:8000"),
    ("[::]:8000", "http://[::1]:8000", None),             # dual-stack wildcard already covers it
    ("0.0.0.0:8000", "http://127.0.0.2:8000", None),
    ("127.0.0.1:8000", "http://127.0.0.2:8000", "127.0.0.2:8000"),
    ("127.0.0.1:8000", "http://[::1]:9000", "[::1]:9000"),
    ("127.0.0.1:8000", "https://content.example.net", None),
])
def test_extra_bind(bind, content, extra):
    assert config._extra_bind(content, bind) == extra


def test_gunicorn_listens_on_the_content_origin(monkeypatch):
    monkeypatch.setattr(config, "_bindable", {"::1": True})
    for key in ("CONTENT_BASE_URL", "CONTENT_ISOLATION", "LMS_BRIDGE_ENV"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PUBLIC_BASE_URL", "http://127.0.0.1:8123")
    monkeypatch.setenv("BIND", "127.0.0.1:8123")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"] == ["127.0.0.1:8123", "[::1]:8123"]
    monkeypatch.setenv("CONTENT_ISOLATION", "off")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"] == ["127.0.0.1:8123"]


def test_this_machine_probe_is_consistent():
    config._bindable.clear()
    assert config.loopback_bindable("::1") == config.loopback_bindable("::1")
    assert config.loopback_bindable("192.0.2.1") is False  # not an address of this machine


def test_no_second_loopback_falls_back_to_same_origin_with_a_warning(monkeypatch, caplog):
    from tests.support.db_app import database_app

    monkeypatch.setattr(config, "_bindable", {"::1": False, "127.0.0.2": False})
    with caplog.at_level(logging.INFO, logger="lms_bridge.content"), database_app() as app:
        assert app.config["CONTENT_BASE_URL"] is None and app.config["CONTENT_ISOLATION"] == "same-origin"
        warnings = [r for r in caplog.records if r.name == "lms_bridge.content" and r.levelno == logging.WARNING]
        assert warnings and "no second loopback address" in warnings[0].getMessage()
        # ...and the player still works on the tool's own origin.
        from lms_bridge.player import runtime

        with app.test_request_context(base_url=app.config["PUBLIC_BASE_URL"]):
            url = runtime.runtime_url(1, "abc", "scorm2004")
            assert url == app.config["PUBLIC_BASE_URL"] + "/content-runtime/1/abc?v=scorm2004"
            assert runtime.frame_origin() == app.config["PUBLIC_BASE_URL"]
        assert app.test_client().get("/content-runtime/1/abc?v=scorm2004").status_code == 200
