"""The shared store behaves the same on the database and on Redis (whichever backend runs)."""
from __future__ import annotations

import concurrent.futures
import time

import pytest


@pytest.fixture(scope="module")
def store(live_server):
    with live_server.app.app_context():
        from lms_bridge.shared_store import store as current

        yield current()


def test_put_get_take(store):
    store.put("t:a", {"x": 1}, 60)
    assert store.get("t:a") == {"x": 1}
    assert store.take("t:a") == {"x": 1}
    assert store.take("t:a") is None and store.get("t:a") is None


def test_add_only_once_until_expiry(store):
    assert store.add("t:nonce", 1, 60) is True
    assert store.add("t:nonce", 1, 60) is False
    assert store.add("t:short", 1, 1) is True
    time.sleep(2.1)
    assert store.get("t:short") is None
    assert store.add("t:short", 1, 60) is True, "an expired key can be claimed again"


def test_take_is_atomic_under_concurrency(store, live_server):
    store.put("t:race", "prize", 60)

    def grab(_):
        with live_server.app.app_context():
            from lms_bridge.shared_store import store as s

            return s().take("t:race")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(grab, range(8)))
    assert results.count("prize") == 1


def test_incr(store):
    assert store.incr("t:count", 60) == 1
    assert store.incr("t:count", 60) == 2
