"""``flask --app wsgi <command>``: what an operator does from a shell."""
from __future__ import annotations

import json

import click
from flask import current_app

from .credentials.cli import register_cli as register_credentials_cli
from .extensions import db
from .outbox.cli import register as register_outbox_cli
from .packages.cli import register_cli as register_package_cli


def register_cli(app) -> None:
    register_package_cli(app)
    register_outbox_cli(app)
    register_credentials_cli(app)
    @app.cli.command("register-platform")
    @click.option("--issuer", required=True, help="The platform's issuer (Moodle: the site URL, no trailing slash).")
    @click.option("--client-id", required=True)
    @click.option("--deployment-id", "deployment_ids", multiple=True, help="Deployment id to activate (repeatable).")
    @click.option("--auth-login-url", required=True, help="OIDC authentication endpoint (Moodle: /mod/lti/auth.php).")
    @click.option("--token-url", default="", help="OAuth2 token endpoint (Moodle: /mod/lti/token.php).")
    @click.option("--jwks-url", default=None, help="Platform key set URL (Moodle: /mod/lti/certs.php).")
    @click.option("--public-key-file", type=click.File(), default=None,
                  help="A JWKS JSON file or a PEM public key, for platforms registered without a key set URL.")
    @click.option("--audience", default=None, help="Token endpoint audience, when it is not the token URL.")
    @click.option("--name", default="")
    @click.option("--auto-activate-deployments/--no-auto-activate-deployments", default=None)
    def register_platform(issuer, client_id, deployment_ids, auth_login_url, token_url, jwks_url, public_key_file,
                          audience, name, auto_activate_deployments):
        """Register a platform by hand (idempotent; prints what it stored)."""
        from .lti.registration import RegistrationError, upsert_registration

        key_set = _read_key_set(public_key_file.read()) if public_key_file else None
        try:
            reg = upsert_registration(issuer=issuer, client_id=client_id, auth_login_url=auth_login_url,
                                      auth_token_url=token_url, key_set_url=jwks_url, key_set=key_set,
                                      auth_audience=audience, name=name, deployment_ids=deployment_ids,
                                      auto_activate_deployments=auto_activate_deployments)
        except RegistrationError as exc:
            raise click.ClickException(str(exc))
        click.echo(json.dumps(_describe(reg), indent=2))

    @app.cli.command("list-registrations")
    def list_registrations():
        """Every registration with its deployments."""
        from .lti.models import Registration

        regs = db.session.execute(db.select(Registration).order_by(Registration.id)).scalars()
        click.echo(json.dumps([_describe(r) for r in regs], indent=2))

    @app.cli.command("activate-deployment")
    @click.option("--registration", "registration_id", type=int, required=True)
    @click.option("--deployment-id", required=True)
    @click.option("--deactivate", is_flag=True)
    def activate_deployment(registration_id, deployment_id, deactivate):
        """Activate (or deactivate) a deployment, recording it if it is new."""
        from .lti.models import Deployment, Registration

        reg = db.session.get(Registration, registration_id)
        if reg is None:
            raise click.ClickException(f"no registration {registration_id}")
        dep = db.session.execute(db.select(Deployment).filter_by(registration_id=reg.id, deployment_id=deployment_id)).scalar_one_or_none()
        if dep is None:
            dep = Deployment(registration_id=reg.id, deployment_id=deployment_id, name=f"Deployment {deployment_id}")
            db.session.add(dep)
        dep.active = not deactivate
        db.session.commit()
        click.echo(f"deployment {deployment_id} of registration {reg.id}: {'active' if dep.active else 'inactive'}")

    @app.cli.command("rotate-keys")
    @click.option("--grace-days", type=int, default=None, help="How long the old key stays published (default KEY_ROTATION_GRACE_DAYS).")
    @click.option("--bits", type=int, default=2048)
    def rotate_keys(grace_days, bits):
        """Rotate the tool key: the new key signs, the old one stays published for the grace period."""
        from .lti import keys

        new, retired = keys.rotate(grace_days, bits)
        click.echo(f"new signing key: {new.kid}")
        for key in retired:
            click.echo(f"retired: {key.kid}")

    @app.cli.command("ensure-key")
    def ensure_key():
        """Create the tool's first signing key if there is none."""
        from .lti import keys

        click.echo(f"signing key: {keys.ensure_tool_key().kid}")

    @app.cli.command("create-operator")
    @click.argument("username")
    @click.password_option(help="At least 10 characters.")
    def create_operator(username, password):
        """Create or reset a local operator account for the admin pages."""
        from .admin.models import Operator

        op = db.session.execute(db.select(Operator).filter_by(username=username)).scalar_one_or_none() or Operator(username=username)
        try:
            op.set_password(password)
        except ValueError as exc:
            raise click.ClickException(str(exc))
        db.session.add(op)
        db.session.commit()
        click.echo(f"operator {username} saved")

    @app.cli.command("purge-state")
    def purge_state():
        """Delete expired shared state (states, nonces, launch tokens) from the database store."""
        n = current_app.extensions["lms_bridge.store"].purge_expired()
        click.echo(f"purged {n} expired entries")

    @app.cli.command("tool-config")
    def tool_config():
        """Print the values an LMS administrator needs (as /lti/config does)."""
        from .lti.registration import tool_urls

        base = current_app.config.get("PUBLIC_BASE_URL") or "http://127.0.0.1:8000"
        with current_app.test_request_context(base_url=base):
            click.echo(json.dumps(tool_urls(), indent=2))


def _read_key_set(text: str) -> dict:
    text = text.strip()
    if text.startswith("{"):
        data = json.loads(text)
        return data if "keys" in data else {"keys": [data]}
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    # A PEM key has no kid: a pasted single key then verifies whatever kid the platform names.
    return {"keys": [json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(load_pem_public_key(text.encode())))]}


def _describe(reg) -> dict:

    return {
        "id": reg.id, "name": reg.name, "issuer": reg.issuer, "client_id": reg.client_id,
        "auth_login_url": reg.auth_login_url, "auth_token_url": reg.auth_token_url, "key_set_url": reg.key_set_url,
        "key_set": bool(reg.key_set), "active": reg.active, "source": reg.source,
        "auto_activate_deployments": reg.auto_activate_deployments,
        "deployments": [{"deployment_id": d.deployment_id, "active": d.active} for d in reg.deployments],
    }
