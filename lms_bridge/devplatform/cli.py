"""``flask --app wsgi devplatform-setup``: register the development platform and the tool
with each other, and ``devplatform-rotate-key``: give the platform a new signing key."""
from __future__ import annotations

import json

import click
from flask import current_app


def _context(base_url: str | None):
    """A request context on the tool's base URL, so platform and tool URLs come out right."""
    base = (base_url or current_app.config.get("PUBLIC_BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
    return current_app.test_request_context(base_url=base)


def register_cli(app) -> None:
    @app.cli.command("devplatform-setup")
    @click.option("--base-url", default=None,
                  help="The tool's public base URL (default PUBLIC_BASE_URL, else http://127.0.0.1:8000). "
                       "The platform then lives on DEVPLATFORM_BASE_URL or the same URL with 127.0.0.1 and "
                       "localhost swapped.")
    def devplatform_setup(base_url):
        """Register the development platform with the tool and the tool with it (idempotent)."""
        from . import platform

        with _context(base_url):
            client = platform.ensure_registered()
            conf = client.tool_configuration
            click.echo(json.dumps({
                "platform": platform.platform_url("devplatform.home"),
                "issuer": platform.issuer(),
                "client_id": client.client_id,
                "deployment_id": client.deployment_id,
                "auth_login_url": platform.platform_url("devplatform.auth"),
                "auth_token_url": platform.platform_url("devplatform.token"),
                "key_set_url": platform.platform_url("devplatform.jwks"),
                "tool_initiate_login_uri": conf["initiate_login_uri"],
                "tool_redirect_uris": conf["redirect_uris"],
                "tool_jwks_uri": conf["jwks_uri"],
                "signing_kid": platform.current_key().kid,
            }, indent=2))

    @app.cli.command("devplatform-place-link")
    @click.option("--title", required=True, help="The activity's title in the platform's course.")
    @click.option("--custom", "custom", multiple=True, metavar="KEY=VALUE",
                  help="A custom parameter sent with every launch of the link, e.g. course=3 (repeatable).")
    @click.option("--base-url", default=None, help="The tool's public base URL (as for devplatform-setup).")
    def devplatform_place_link(title, custom, base_url):
        """Place an activity (resource link) in the development course, with custom parameters."""
        from ..extensions import db
        from . import platform
        from .views import parse_custom

        with _context(base_url):
            client = platform.ensure_registered()
            try:
                params = parse_custom("\n".join(custom))
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--custom")
            link = platform.place_link(client, title=title, target_link_uri=client.tool_configuration["target_link_uri"],
                                       custom=params)
            db.session.commit()
            click.echo(json.dumps({"resource_link_id": link.resource_link_id, "title": link.title, "custom": link.custom,
                                   "launch": platform.platform_url("devplatform.launch", link=link.resource_link_id,
                                                                   user="learner")}, indent=2))

    @app.cli.command("devplatform-rotate-key")
    def devplatform_rotate_key():
        """Give the development platform a new signing key (the old ones stay published)."""
        from . import platform

        click.echo(f"new platform signing key: {platform.rotate_key().kid}")
