"""The OAuth2 token cache and the AGS client over real HTTP against a scripted local platform, on a
real database and shared store (SQLite, or PostgreSQL + Redis per LMS_BRIDGE_TEST_BACKEND): tokens
requested once per scope set and shared, single flight under concurrency, refreshed before expiry
while the old one keeps serving, platform refusals explained; failures sorted into transient ones
(retry later, honouring Retry-After) and refusals an operator must fix; Link-header paging."""
from __future__ import annotations

import concurrent.futures
import socket
import time

import pytest

from tests.support.db_app import database_app

from .platform_stub import StubPlatform

SCORE = {"userId": "4", "scoreGiven": 5, "scoreMaximum": 10, "activityProgress": "Completed",
         "gradingProgress": "FullyGraded", "timestamp": "2026-11-21T09:00:00.000+00:00"}


@pytest.fixture(scope="module")
def app():
    with database_app(HTTP_TIMEOUT="1") as app:
        yield app


@pytest.fixture
def stub(app):
    with app.app_context():
        from lms_bridge.extensions import db
        from lms_bridge.lti.keys import ensure_tool_key, published_jwks

        ensure_tool_key()
        jwks = published_jwks()
        db.session.remove()
    platform = StubPlatform(jwks)
    yield platform
    platform.close()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app
        from lms_bridge.extensions import db

        db.session.remove()


def lineitem(stub, n=1):
    return f"{stub.url}/lineitems/{n}/lineitem?type_id=9"


# -- tokens -------------------------------------------------------------------------------------


def test_one_token_per_scope_set_cached_and_shared(ctx, stub):
    from lms_bridge.grading import ags, tokens
    from lms_bridge.shared_store import store

    reg = stub.registration("shared-client")
    for _ in range(50):
        assert ags.post_score(reg, lineitem(stub), SCORE) == 200
    assert stub.token_requests == 1 and stub.token_scopes == [[ags.SCOPE_SCORE]]  # only the scope it needs
    assert len(stub.scores) == 50 and stub.scores[0]["query"] == "type_id=9"
    key = tokens.cache_key(reg.issuer, reg.client_id, [ags.SCOPE_SCORE])
    assert store().get(key)["value"] in stub.tokens
    # Another process sees the shared token: nothing is asked of the platform.
    tokens._local.clear()
    ags.post_score(reg, lineitem(stub), SCORE)
    assert stub.token_requests == 1
    # Another scope set, another token; another client of the same issuer (Canvas), another token.
    ags.list_line_items(reg, stub.url + "/lineitems")
    assert stub.token_requests == 2 and stub.token_scopes[-1] == [ags.SCOPE_LINEITEM_READONLY]
    ags.post_score(stub.registration("other-client"), lineitem(stub), SCORE)
    assert stub.token_requests == 3
    assert tokens.cache_key("i", "c", ["b", "a", "a"]) == tokens.cache_key("i", "c", ["a", "b"])


def test_single_flight_under_concurrency(app, stub):
    """Twelve threads with no token: one request to the platform, all twelve scores delivered."""
    reg = stub.registration("concurrent-client")
    stub.token_delay = 0.3

    def post(_):
        with app.app_context():
            from lms_bridge.grading import ags

            return ags.post_score(reg, lineitem(stub), SCORE)

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        assert list(pool.map(post, range(12))) == [200] * 12
    assert stub.token_requests == 1 and len(stub.scores) == 12


def test_refreshed_before_expiry_while_the_old_token_serves(ctx, stub):
    from lms_bridge.grading import ags, tokens

    stub.expires_in = 32  # refresh margin is 30 s: due for refresh after 2 s, valid for 32 s
    reg = stub.registration("refresh-client")
    ags.post_score(reg, lineitem(stub), SCORE)
    first = tokens.access_token(reg, [ags.SCOPE_SCORE])
    time.sleep(2.2)
    # Due for refresh: one request, and the new token is used from now on.
    second = tokens.access_token(reg, [ags.SCOPE_SCORE])
    assert second.value != first.value and stub.token_requests == 2
    # While another worker holds the refresh lock, the still valid token keeps serving.
    from lms_bridge.shared_store import store

    time.sleep(2.2)
    key = tokens.cache_key(reg.issuer, reg.client_id, [ags.SCOPE_SCORE])
    assert store().add(key + ":lock", "another-worker", 30)
    assert tokens.access_token(reg, [ags.SCOPE_SCORE]).value == second.value and stub.token_requests == 2
    store().delete(key + ":lock")


def test_a_refused_old_token_is_replaced_once(ctx, stub, monkeypatch):
    from lms_bridge.grading import ags, tokens

    reg = stub.registration("revoked-client")
    ags.post_score(reg, lineitem(stub), SCORE)
    stub.tokens.clear()  # the platform forgot every token
    monkeypatch.setattr(ags, "RETRY_401_AFTER", 0.0)
    assert ags.post_score(reg, lineitem(stub), SCORE) == 200
    assert stub.token_requests == 2
    # A 401 with a brand-new token is the platform refusing grades: no third token, a clear error.
    monkeypatch.setattr(ags, "RETRY_401_AFTER", 3600.0)
    stub.answers.append((401, "Unauthorized", {}))
    with pytest.raises(ags.AgsError) as err:
        ags.post_score(reg, lineitem(stub), SCORE)
    assert not err.value.transient and err.value.status == 401
    assert "Accept grades from the tool" in str(err.value) and stub.token_requests == 2
    assert tokens.requests_made() >= 2


@pytest.mark.parametrize("answer, transient, says", [
    ((401, '{"error": "invalid_client", "error_description": "bad signature"}', {"Content-Type": "application/json"}),
     False, "invalid_client (bad signature); check the registration's client_id"),
    ((400, '{"error": "invalid_scope"}', {"Content-Type": "application/json"}), False, "enable the Assignment and Grade"),
    ((404, "<html>fix_jwks_alg(): Argument #1 ($jwks) must be of type array</html>", {"Content-Type": "text/html"}),
     False, "cURL blocked hosts list"),
    ((503, "down", {"Retry-After": "7"}), True, "HTTP 503"),
])
def test_token_endpoint_failures_are_explained(ctx, stub, answer, transient, says):
    from lms_bridge.grading import ags

    stub.token_answers.append(answer)
    with pytest.raises(ags.AgsError) as err:
        ags.post_score(stub.registration(f"failing-{answer[0]}"), lineitem(stub), SCORE)
    assert err.value.transient is transient and says in str(err.value)
    if answer[0] == 503:
        assert err.value.retry_after == 7.0


# -- score posts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("answer, transient, status, says", [
    ((429, "slow down", {"Retry-After": "3"}), True, 429, "HTTP 429"),
    ((500, "<h1>Internal Server Error</h1>", {}), True, 500, "Internal Server Error"),
    ((503, "", {}), True, 503, "HTTP 503"),
    ((400, "Incorrect score received", {}), False, 400, "Incorrect score received"),
    ((404, "not found", {}), False, 404, "was deleted?"),
    ((403, "insufficient_scope", {}), False, 403, "lacks the scope"),
])
def test_score_failures_are_sorted(ctx, stub, answer, transient, status, says):
    from lms_bridge.grading import ags

    stub.answers.append(answer)
    with pytest.raises(ags.AgsError) as err:
        ags.post_score(stub.registration("sorting"), lineitem(stub), SCORE)
    assert (err.value.transient, err.value.status) == (transient, status) and says in str(err.value)
    assert err.value.retry_after == (3.0 if status == 429 else None)


def test_timeouts_and_refused_connections_are_transient(ctx, stub):
    from lms_bridge.grading import ags

    reg = stub.registration("slow")
    stub.answers.append((0, "1.6", {}))  # answers after 1.6 s; HTTP_TIMEOUT is 1 s
    with pytest.raises(ags.AgsError) as err:
        ags.post_score(reg, lineitem(stub), SCORE)
    assert err.value.transient and "no answer within 1 s" in str(err.value)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(ags.AgsError) as err:
            ags.post_score(reg, f"http://127.0.0.1:{closed}/lineitems/1/lineitem", SCORE)
    assert err.value.transient and "could not connect" in str(err.value)


def test_idempotency_key_and_content_type(ctx, stub):
    from lms_bridge.grading import ags

    ags.post_score(stub.registration("headers"), lineitem(stub), SCORE, idempotency_key="row-1/t1")
    sent = stub.headers[-1]
    assert sent["Idempotency-Key"] == "row-1/t1" and sent["Content-Type"] == ags.SCORE_TYPE


def test_line_items_follow_link_headers_and_are_matched_here(ctx, stub):
    from lms_bridge.grading import ags

    reg = stub.registration("paging")
    everything = ags.list_line_items(reg, stub.url + "/lineitems?type_id=9")
    assert [i.label for i in everything] == [f"Item {n}" for n in range(1, 7)]
    # The platform ignores the filters: the client matches resourceLinkId and resourceId itself.
    found = ags.find_line_item(reg, stub.url + "/lineitems?type_id=9", resource_link_id="link-2", resource_id="res-1")
    assert found is not None and found.label == "Item 5"
    assert ags.find_line_item(reg, stub.url + "/lineitems", resource_link_id="link-9") is None
    with pytest.raises(ValueError):
        ags.find_line_item(reg, stub.url + "/lineitems", resource_link_id="")


def test_a_failed_refresh_keeps_the_valid_token(ctx, stub):
    from lms_bridge.grading import ags, tokens

    stub.expires_in = 32
    reg = stub.registration("refresh-fails")
    first = tokens.access_token(reg, [ags.SCOPE_SCORE])
    time.sleep(2.2)  # due for refresh, still valid
    stub.token_answers.append((503, "down", {}))
    assert tokens.access_token(reg, [ags.SCOPE_SCORE]) == first and stub.token_requests == 2
    assert ags.post_score(reg, lineitem(stub), SCORE) == 200  # and the next call refreshes it
    assert stub.token_requests == 3
