"""Real servers for the tests: a fresh database (SQLite or PostgreSQL), Redis, and gunicorn.

The backend comes from ``LMS_BRIDGE_TEST_BACKEND``: ``sqlite`` (embedded default) or
``postgres`` (PostgreSQL + Redis, the production path).  PostgreSQL is reached at
``TEST_PG_URL`` (default postgresql://postgres@127.0.0.1:5432/test) and Redis at
``TEST_REDIS_URL`` (default redis://127.0.0.1:6379/0).
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def backend() -> str:
    return os.environ.get("LMS_BRIDGE_TEST_BACKEND", "sqlite")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Database:
    url: str
    redis_url: str | None
    redis_prefix: str
    _drop: callable = None

    def drop(self):
        if self._drop:
            self._drop()


def fresh_database(tmp: Path) -> Database:
    prefix = f"lms_bridge_test_{secrets.token_hex(4)}:"
    if backend() == "postgres":
        import psycopg

        admin_url = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
        name = "lms_bridge_test_" + secrets.token_hex(6)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = admin_url.rsplit("/", 1)[0]

        def drop():
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        return Database(f"{base}/{name}", os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"), prefix, drop)
    return Database(f"sqlite:///{tmp / 'lms_bridge.sqlite3'}", None, prefix)


@dataclass
class LiveServer:
    """A gunicorn server running the real app, and an in-process app on the same database."""

    url: str
    platform_url: str
    env: dict
    tmp: Path
    workers: int
    proc: subprocess.Popen | None = None
    app: object = None
    db: Database | None = None
    log_path: Path | None = None
    extra: dict = field(default_factory=dict)
    # Where package content is served: a second loopback origin of the same gunicorn by default
    # (http://[::1]:PORT, lms_bridge/config.py content_origin), the tool's own URL in same-origin mode.
    content_url: str = ""

    def start(self):
        self.log_path = self.tmp / f"gunicorn-{int(time.time() * 1000)}.log"
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + self.log_path.read_text())
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200 and self._content_up():
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not start:\n" + self.log_path.read_text())

    def _content_up(self) -> bool:
        if not self.content_url or self.content_url == self.url:
            return True
        probe = self.content_url + "/static/player/content-runtime.js"
        return requests.get(probe, timeout=1).status_code == 200

    @property
    def content_isolated(self) -> bool:
        return bool(self.content_url) and self.content_url != self.url

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def restart(self):
        self.stop()
        return self.start()

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path else ""


def server_env(db: Database, port: int, tmp: Path, workers: int = 2, **overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMS_BRIDGE_", "DATABASE_URL", "REDIS_"))}
    env.update({
        "DATABASE_URL": db.url,
        "LMS_BRIDGE_INSTANCE": str(tmp / "instance"),
        "SECRET_KEY": "test-secret-" + secrets.token_hex(8),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "DEVPLATFORM_BASE_URL": f"http://localhost:{port}",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "ACCESS_LOG": "",
        "LOG_LEVEL": "INFO",
        "REDIS_PREFIX": db.redis_prefix,
    })
    if db.redis_url:
        env["REDIS_URL"] = db.redis_url
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def migrate(env: dict) -> None:
    res = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError("migration failed:\n" + res.stdout + res.stderr)


def make_app(env: dict):
    """An in-process app with the server's settings, for seeding and inspecting the database."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        from lms_bridge import create_app

        return create_app()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def launch_server(workers: int = 2, **overrides) -> LiveServer:
    tmp = Path(tempfile.mkdtemp(prefix="lms_bridge_test_"))
    db = fresh_database(tmp)
    port = free_port()
    env = server_env(db, port, tmp, workers, **overrides)
    migrate(env)
    server = LiveServer(url=env["PUBLIC_BASE_URL"], platform_url=env["DEVPLATFORM_BASE_URL"], env=env, tmp=tmp,
                        workers=workers, db=db)
    server.app = make_app(env)
    server.content_url = (server.app.config.get("CONTENT_BASE_URL") or server.url).rstrip("/")
    return server.start()
