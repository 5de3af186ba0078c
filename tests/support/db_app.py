"""An in-process app on a fresh, migrated database of the selected backend (no gunicorn).

For unit tests of services that need the database: SQLite in a temporary folder, or a fresh
PostgreSQL database (+ Redis) when ``LMS_BRIDGE_TEST_BACKEND=postgres``. The instance folder
(package storage included) is ``<tmp>/instance``.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.servers import (
    free_port,
    fresh_database,
    make_app,
    migrate,
    server_env,
)


@contextmanager
def database_app(**overrides) -> Iterator[object]:
    tmp = Path(tempfile.mkdtemp(prefix="lms_bridge_dbapp_"))
    database = fresh_database(tmp)
    env = server_env(database, free_port(), tmp, **overrides)
    # Alembic in a subprocess: its logging set-up would otherwise reconfigure this process's loggers.
    migrate(env)
    app = make_app(env)
    try:
        yield app
    finally:
        from lms_bridge.extensions import db

        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()
        shutil.rmtree(tmp, ignore_errors=True)
