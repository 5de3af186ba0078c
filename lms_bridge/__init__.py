"""lms_bridge: an LTI 1.3 / LTI Advantage tool that brings open skills courses into every LMS."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import load_config
from .extensions import db, migrate

__version__ = "0.1.0"


def create_app(config: dict | None = None) -> Flask:
    """Application factory: settings from the environment, then ``config`` overrides (tests)."""
    instance_path = Path(os.environ.get("LMS_BRIDGE_INSTANCE", Path(__file__).resolve().parent.parent / "instance"))
    app = Flask(__name__, instance_path=str(instance_path), instance_relative_config=True)
    app.config.update(load_config(instance_path))
    if config:
        app.config.update(config)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s")

    if app.config["TRUSTED_PROXIES"]:
        # Behind a TLS-terminating proxy: trust its X-Forwarded-* so URLs and cookies say https.
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"))
    _import_models()

    with app.app_context():
        from .extensions import tune_sqlite
        from .shared_store import make_store

        if db.engine.dialect.name == "sqlite":
            tune_sqlite(db.engine)
        app.extensions["lms_bridge.store"] = make_store(app)

    from . import web

    web.install(app)

    from .admin.views import bp as admin_bp
    from .lti.views import bp as lti_bp
    from .player.views import bp as player_bp

    app.register_blueprint(lti_bp)
    app.register_blueprint(player_bp)
    app.register_blueprint(admin_bp)
    from .grading.views import bp as grading_bp

    app.register_blueprint(grading_bp)
    from .api import bp as api_bp
    from .packages.content import bp as content_bp

    app.register_blueprint(api_bp)
    app.register_blueprint(content_bp)
    from .credentials.admin import bp as credentials_admin_bp
    from .credentials.views import bp as credentials_bp

    app.register_blueprint(credentials_bp)
    app.register_blueprint(credentials_admin_bp)
    if app.config["DEVPLATFORM_ENABLED"]:
        from .devplatform.cli import register_cli as register_devplatform_cli
        from .devplatform.views import bp as dev_bp

        app.register_blueprint(dev_bp)
        register_devplatform_cli(app)

    from .cli import register_cli

    register_cli(app)
    _wire_delivery()

    @app.get("/healthz")
    def healthz():
        db.session.execute(db.text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    @app.get("/")
    def index():
        from flask import render_template

        from .lti.registration import tool_urls

        return render_template("index.html", urls=tool_urls(), devplatform=app.config["DEVPLATFORM_ENABLED"])

    return app


def _wire_delivery() -> None:
    """Progress events -> subscribers (grading, credentials) -> outbox -> workers (see DESIGN)."""
    from .outbox import service as outbox_service
    from .outbox import worker as outbox_worker
    from .player import events

    outbox_service.on_enqueued_commit(outbox_worker.kick)
    events.on_committed(outbox_worker.kick)
    outbox_service.register_pump(events.relay, events.pending)
    from .grading import passback as _passback  # noqa: F401  (the ags.score handler and its progress subscriber)


def _import_models() -> None:
    """Import every model module so Alembic and create_all see all tables."""
    from . import shared_store  # noqa: F401
    from .admin import models as _admin  # noqa: F401
    from .credentials import models as _credentials  # noqa: F401
    from .devplatform import models as _dev  # noqa: F401
    from .grading import models as _grading  # noqa: F401
    from .grading import nrps as _rosters  # noqa: F401  (Roster, RosterMember)
    from .lti import models as _lti  # noqa: F401
    from .outbox import models as _outbox  # noqa: F401
    from .packages import models as _packages  # noqa: F401
    from .player import binding as _binding  # noqa: F401  (LinkBinding)
    from .player import models as _player  # noqa: F401
