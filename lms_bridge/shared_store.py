"""State shared by every worker and host: OIDC state, consumed nonces, launch tokens, caches.

One small interface, two implementations: the database (embedded default, and any deployment
without Redis) and Redis.  Never a per-process dictionary: a launch may start on one gunicorn
worker and finish on another host.

Every operation commits on its own (autocommit connection or a single Redis command), so a
consumed nonce stays consumed even when the request that consumed it later fails.
"""
from __future__ import annotations

import json
import random
import time
from typing import Any, Protocol

import sqlalchemy as sa

from .extensions import db


class SharedStore(Protocol):
    def put(self, key: str, value: Any, ttl: int) -> None: ...
    def get(self, key: str) -> Any | None: ...
    def take(self, key: str) -> Any | None:
        """Return the value and delete it, atomically: exactly one caller gets it."""
    def add(self, key: str, value: Any, ttl: int) -> bool:
        """Store only when the key is absent (or expired); True when this call stored it."""
    def delete(self, key: str) -> None: ...
    def incr(self, key: str, ttl: int) -> int:
        """Increment a counter that expires ``ttl`` seconds after its creation."""


class SharedState(db.Model):
    """Rows of the database-backed shared store (expiry as epoch seconds)."""

    __tablename__ = "shared_state"
    key = db.Column(db.String(255), primary_key=True)
    value = db.Column(db.Text, nullable=False)
    expires_at = db.Column(db.Float, nullable=False, index=True)


def _insert_for(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


class DatabaseStore:
    """SharedStore on the application database, one autocommit statement per operation."""

    PURGE_EVERY = 200  # purge expired rows on about one write in this many

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.table = SharedState.__table__
        self.insert = _insert_for(engine.dialect.name)

    def _maybe_purge(self, conn) -> None:
        if random.randrange(self.PURGE_EVERY) == 0:
            conn.execute(self.table.delete().where(self.table.c.expires_at <= time.time()))

    def put(self, key, value, ttl):
        stmt = self.insert(self.table).values(key=key, value=json.dumps(value), expires_at=time.time() + ttl)
        stmt = stmt.on_conflict_do_update(
            index_elements=[self.table.c.key],
            set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
            self._maybe_purge(conn)

    def get(self, key):
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.c.value).where(t.c.key == key, t.c.expires_at > time.time())
            ).first()
        return json.loads(row[0]) if row else None

    def take(self, key):
        t = self.table
        with self.engine.begin() as conn:
            row = conn.execute(t.delete().where(t.c.key == key).returning(t.c.value, t.c.expires_at)).first()
        if row is None or row[1] <= time.time():
            return None
        return json.loads(row[0])

    def add(self, key, value, ttl):
        now = time.time()
        stmt = self.insert(self.table).values(key=key, value=json.dumps(value), expires_at=now + ttl)
        # An expired row may be reclaimed; a live one wins and this call loses.
        stmt = stmt.on_conflict_do_update(
            index_elements=[self.table.c.key],
            set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at},
            where=self.table.c.expires_at <= now,
        ).returning(self.table.c.key)
        with self.engine.begin() as conn:
            stored = conn.execute(stmt).first() is not None
            self._maybe_purge(conn)
        return stored

    def delete(self, key):
        with self.engine.begin() as conn:
            conn.execute(self.table.delete().where(self.table.c.key == key))

    def incr(self, key, ttl):
        now = time.time()
        t = self.table
        stmt = self.insert(t).values(key=key, value="1", expires_at=now + ttl)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.key],
            set_={
                "value": sa.case(
                    (t.c.expires_at <= now, "1"),
                    else_=sa.cast(sa.cast(t.c.value, sa.Integer) + 1, sa.Text),
                ),
                "expires_at": sa.case((t.c.expires_at <= now, now + ttl), else_=t.c.expires_at),
            },
        ).returning(t.c.value)
        with self.engine.begin() as conn:
            return int(conn.execute(stmt).scalar_one())

    def purge_expired(self) -> int:
        with self.engine.begin() as conn:
            return conn.execute(self.table.delete().where(self.table.c.expires_at <= time.time())).rowcount


class RedisStore:
    """SharedStore on Redis; every operation is a single atomic command."""

    def __init__(self, url: str, prefix: str = "lms_bridge:"):
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix

    def _k(self, key: str) -> str:
        return self.prefix + key

    def put(self, key, value, ttl):
        self.redis.set(self._k(key), json.dumps(value), ex=max(1, int(ttl)))

    def get(self, key):
        raw = self.redis.get(self._k(key))
        return json.loads(raw) if raw is not None else None

    def take(self, key):
        raw = self.redis.getdel(self._k(key))
        return json.loads(raw) if raw is not None else None

    def add(self, key, value, ttl):
        return bool(self.redis.set(self._k(key), json.dumps(value), ex=max(1, int(ttl)), nx=True))

    def delete(self, key):
        self.redis.delete(self._k(key))

    def incr(self, key, ttl):
        pipe = self.redis.pipeline()
        pipe.incr(self._k(key))
        pipe.expire(self._k(key), max(1, int(ttl)), nx=True)
        return int(pipe.execute()[0])

    def purge_expired(self) -> int:
        return 0  # Redis expires keys itself


def make_store(app) -> SharedStore:
    if app.config.get("REDIS_URL"):
        return RedisStore(app.config["REDIS_URL"], prefix=app.config.get("REDIS_PREFIX", "lms_bridge:"))
    return DatabaseStore(db.engine)


def store() -> SharedStore:
    """The store of the current application."""
    from flask import current_app

    return current_app.extensions["lms_bridge.store"]
