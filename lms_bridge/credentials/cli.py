"""Operator commands for credentials (``flask --app wsgi ...``).

* ``issuer-profile create|update|list|seed|rotate-key``: who issues, with which connectors;
* ``issuer-profile course COURSE``: the per-course override (profile, connectors, settings);
* ``completions list``: the completion records;
* ``credentials list|revoke``: issued credentials, and revocation (sets the status list bit);
* ``deliveries list|retry``: deliveries to issuers, and putting parked ones back in line.

Connector settings are given as ``--set connector.key=value`` (values are JSON when they parse as
JSON: ``--set webhook.jws=true``), see ``issuer-profile connectors`` for what each connector takes.
"""
from __future__ import annotations

import json

import click

from ..extensions import db

# The source projects of the shipped course packages (mooc_packages/): one issuer profile each.
SEED_PROFILES = (
    {"slug": "albatts", "source_project": "ALBATTS", "name": "ALBATTS",
     "description": "Micro-credentials for the courses of the ALBATTS project (batteries), issued through lms_bridge."},
    {"slug": "drives", "source_project": "DRIVES", "name": "DRIVES",
     "description": "Micro-credentials for the courses of the DRIVES project (automotive), issued through lms_bridge."},
    {"slug": "trireme", "source_project": "TRIREME", "name": "TRIREME",
     "description": "Micro-credentials for the courses of the TRIREME project (mobility), issued through lms_bridge."},
)


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _apply_settings(current: dict, pairs: tuple[str, ...], unset: tuple[str, ...] = ()) -> dict:
    settings = json.loads(json.dumps(current or {}))
    for pair in pairs:
        key, sep, value = pair.partition("=")
        name, dot, field = key.partition(".")
        if not sep or not dot or not name or not field:
            raise click.BadParameter(f"{pair!r}: write connector.key=value, e.g. webhook.url=https://hub.example/hook",
                                     param_hint="--set")
        settings.setdefault(name, {})[field] = _value(value)
    for key in unset:
        name, _, field = key.partition(".")
        settings.get(name, {}).pop(field, None)
    return settings


def _connectors(text: str | None) -> list[str] | None:
    if text is None:
        return None
    from . import connectors

    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        try:
            connectors.get(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--connectors") from None
    return names


def _describe(profile) -> dict:
    from . import issuer

    secret_keys = {"secret", "client_secret", "token"}
    settings = {name: {k: ("***" if k in secret_keys and v else v) for k, v in (values or {}).items()}
                for name, values in (profile.settings or {}).items()}
    return {"slug": profile.slug, "name": profile.name, "id": issuer.issuer_id(profile), "url": profile.url,
            "email": profile.email, "source_project": profile.source_project, "default": profile.is_default,
            "kid": profile.kid, "connectors": profile.connectors, "settings": settings,
            "validity_days": profile.validity_days, **issuer.issuer_urls(profile)}


def _warn_problems(profile, override=None) -> None:
    from . import connectors

    names = override.connectors if override is not None and override.connectors is not None else profile.connectors
    for problem in connectors.check_all(list(names or []), profile, override):
        click.echo(f"warning: {problem}", err=True)


def _profile(slug: str):
    from .issuer import profile_by_slug

    profile = profile_by_slug(slug)
    if profile is None:
        raise click.ClickException(f"no issuer profile {slug!r} (see `flask issuer-profile list`)")
    return profile


def register_cli(app) -> None:
    profile_options = [
        click.option("--name"), click.option("--url"), click.option("--email"), click.option("--description"),
        click.option("--source-project", help="Course packages' source project this profile issues for."),
        click.option("--default/--no-default", "is_default", default=None, help="Issue for courses no other profile covers."),
        click.option("--connectors", help="Comma-separated: builtin, webhook, open_badge_factory, edc."),
        click.option("--set", "settings", multiple=True, help="connector.key=value (repeatable)."),
        click.option("--unset", multiple=True, help="connector.key (repeatable)."),
        click.option("--validity-days", type=int, help="Credentials expire this many days after issue (0: never)."),
    ]

    def with_profile_options(fn):
        for option in reversed(profile_options):
            fn = option(fn)
        return fn

    @app.cli.group("issuer-profile")
    def issuer_profile():
        """Issuer profiles: who issues credentials for which courses, through which connectors."""

    @issuer_profile.command("create")
    @click.argument("slug")
    @with_profile_options
    def create(slug, name, url, email, description, source_project, is_default, connectors, settings, unset,
               validity_days):
        """Create an issuer profile (with a new Ed25519 signing key)."""
        from .issuer import new_profile, profile_by_slug

        if profile_by_slug(slug) is not None:
            raise click.ClickException(f"issuer profile {slug!r} exists; use `issuer-profile update {slug}`")
        if not slug.replace("-", "").isalnum() or slug != slug.lower():
            raise click.BadParameter("use lower-case letters, digits and dashes", param_hint="SLUG")
        profile = new_profile(slug=slug, name=name or slug, url=url, email=email, description=description,
                              source_project=source_project, is_default=bool(is_default),
                              connectors=_connectors(connectors) or ["builtin"],
                              settings=_apply_settings({}, settings, unset), validity_days=validity_days or None)
        db.session.commit()
        _warn_problems(profile)
        click.echo(json.dumps(_describe(profile), indent=2))

    @issuer_profile.command("update")
    @click.argument("slug")
    @with_profile_options
    def update(slug, name, url, email, description, source_project, is_default, connectors, settings, unset,
               validity_days):
        """Change an issuer profile (only what is given)."""
        profile = _profile(slug)
        for field, value in (("name", name), ("url", url), ("email", email), ("description", description),
                             ("source_project", source_project)):
            if value is not None:
                setattr(profile, field, value or None)
        if is_default is not None:
            profile.is_default = is_default
        if connectors is not None:
            profile.connectors = _connectors(connectors)
        if settings or unset:
            profile.settings = _apply_settings(profile.settings, settings, unset)
        if validity_days is not None:
            profile.validity_days = validity_days or None
        db.session.commit()
        _warn_problems(profile)
        click.echo(json.dumps(_describe(profile), indent=2))

    @issuer_profile.command("list")
    def list_profiles():
        """Every issuer profile as JSON (secrets masked)."""
        from .models import IssuerProfile

        profiles = db.session.execute(db.select(IssuerProfile).order_by(IssuerProfile.slug)).scalars()
        click.echo(json.dumps([_describe(p) for p in profiles], indent=2))

    @issuer_profile.command("seed")
    def seed():
        """One profile per source project of the shipped courses (ALBATTS, DRIVES, TRIREME) and the
        default profile; existing ones are left as they are."""
        from .issuer import ensure_default_profile, new_profile, profile_by_slug
        from .models import IssuerProfile

        for spec in SEED_PROFILES:
            taken = db.session.execute(db.select(IssuerProfile).filter_by(source_project=spec["source_project"])
                                       ).scalar_one_or_none()
            if taken is not None or profile_by_slug(spec["slug"]) is not None:
                click.echo(f"{spec['slug']}: exists")
                continue
            new_profile(**spec, connectors=["builtin"])
            click.echo(f"{spec['slug']}: created")
        ensure_default_profile()
        db.session.commit()

    @issuer_profile.command("rotate-key")
    @click.argument("slug")
    def rotate(slug):
        """New signing key for a profile; earlier public keys stay published, so credentials stay valid."""
        from .issuer import rotate_key

        profile = _profile(slug)
        kid = rotate_key(profile)
        db.session.commit()
        click.echo(f"{slug}: new signing key {kid}")

    @issuer_profile.command("connectors")
    def list_connectors():
        """The connectors and the settings each takes."""
        from . import connectors

        for name in connectors.names():
            connector = connectors.get(name)
            click.echo(f"{name}: {connector.label}")
            for key, meaning in connector.setting_help.items():
                click.echo(f"    {name}.{key}: {meaning}")

    @issuer_profile.command("course")
    @click.argument("course_id", type=int)
    @click.option("--profile", "slug", help="Issuer profile for this course ('' to use the source project's).")
    @click.option("--connectors", help="Connectors for this course ('' to use the profile's).")
    @click.option("--set", "settings", multiple=True, help="connector.key=value for this course only.")
    @click.option("--unset", multiple=True)
    def course_override(course_id, slug, connectors, settings, unset):
        """Per-course override: another profile, other connectors, course-only settings (an OBF badge id)."""
        from ..packages.models import Course
        from .completion import issuer_profile_for
        from .models import CourseIssuing

        course = db.session.get(Course, course_id)
        if course is None:
            raise click.ClickException(f"no course {course_id} (see `flask list-packages`)")
        override = db.session.get(CourseIssuing, course_id) or CourseIssuing(course_id=course_id, settings={})
        db.session.add(override)
        if slug is not None:
            override.issuer_profile_id = _profile(slug).id if slug else None
        if connectors is not None:
            override.connectors = _connectors(connectors) if connectors else None
        if settings or unset:
            override.settings = _apply_settings(override.settings, settings, unset)
        db.session.flush()
        db.session.refresh(override)
        profile = issuer_profile_for(course.source_project, override)
        db.session.commit()
        _warn_problems(profile, override)
        click.echo(json.dumps({"course": course_id, "profile": profile.slug,
                               "connectors": override.connectors if override.connectors is not None else profile.connectors,
                               "settings": override.settings}, indent=2))

    @app.cli.group("completions")
    def completions():
        """Completion records (one per learner and course version)."""

    @completions.command("list")
    @click.option("--course", "course_id", type=int)
    @click.option("--json", "as_json", is_flag=True, help="Full completion records as JSON.")
    def list_completions(course_id, as_json):
        from .completion import completion_record
        from .models import Completion

        query = db.select(Completion).order_by(Completion.id)
        if course_id is not None:
            query = query.filter_by(course_id=course_id)
        rows = db.session.execute(query).scalars().all()
        if as_json:
            click.echo(json.dumps([completion_record(c) for c in rows], indent=2))
            return
        for c in rows:
            cred = c.credential
            state = "revoked" if cred is not None and cred.revoked_at else "credential" if cred is not None else "-"
            score = f"{round(c.score_scaled * 100)}%" if c.score_scaled is not None else "-"
            click.echo(f"{c.id:>5}  {c.uuid}  {c.completed_at:%Y-%m-%d %H:%M}  {c.course_title[:40]:<40}  "
                       f"{(c.learner_name or c.learner_sub)[:24]:<24}  {score:>5}  {state}")

    @app.cli.group("credentials")
    def credentials():
        """Issued Open Badges 3.0 credentials."""

    @credentials.command("list")
    @click.option("--course", "course_id", type=int)
    def list_credentials(course_id):
        from .issuer import external_url
        from .models import Completion, Credential

        query = db.select(Credential).join(Completion).order_by(Credential.id)
        if course_id is not None:
            query = query.where(Completion.course_id == course_id)
        for cred in db.session.execute(query).scalars():
            state = f"revoked {cred.revoked_at:%Y-%m-%d}" if cred.revoked_at else "valid"
            click.echo(f"{cred.uuid}  {cred.completion.course_title[:40]:<40}  {state:<18} "
                       f"{external_url('credentials.verify_page', credential_id=cred.uuid)}")

    @credentials.command("revoke")
    @click.argument("credential_id")
    @click.option("--reason", required=True, help="Why (kept with the credential).")
    def revoke(credential_id, reason):
        """Revoke a credential (its uuid or urn:uuid:...): its status list bit is set."""
        from .issuer import credential_by_uuid, revoke as revoke_credential

        cred = credential_by_uuid(credential_id)
        if cred is None:
            raise click.ClickException(f"no credential {credential_id}")
        if not revoke_credential(cred, reason):
            raise click.ClickException(f"credential {cred.urn} was already revoked ({cred.revocation_reason})")
        click.echo(f"revoked {cred.urn} (status list {cred.status_list_id}, index {cred.status_index})")

    @app.cli.group("deliveries")
    def deliveries():
        """Deliveries of completions to issuers (the credential.* messages of the outbox)."""

    @deliveries.command("list")
    @click.option("--state", "states", multiple=True,
                  type=click.Choice(["pending", "delivering", "delivered", "parked", "superseded"]))
    def list_deliveries(states):
        from ..outbox import counts, messages
        from .connectors import KIND_PREFIX

        click.echo("  ".join(f"{s}: {n}" for s, n in counts(KIND_PREFIX).items()))
        for m in messages(states=tuple(states) or None, kind_prefix=KIND_PREFIX, limit=200):
            click.echo(f"{m.id:>6}  {m.state:<10} {m.kind:<30} completion {m.dedupe_key.split(':')[0]:<6} "
                       f"attempts={m.attempts:<3} {m.target[:50]}"
                       + (f"\n        {m.last_status}: {m.last_error}" if m.last_error else ""))

    @deliveries.command("retry")
    @click.argument("message_id", type=int, required=False)
    @click.option("--all-parked", is_flag=True, help="Every parked credential delivery.")
    def retry(message_id, all_parked):
        """Put parked deliveries back in line (attempts start again)."""
        from ..outbox import OutboxMessage, retry as retry_message, retry_parked
        from .connectors import KIND_PREFIX

        if all_parked:
            click.echo(f"{retry_parked(KIND_PREFIX)} delivery(ies) back in line")
            return
        if message_id is None:
            raise click.UsageError("give a MESSAGE_ID (see `flask deliveries list --state parked`) or --all-parked")
        message = db.session.get(OutboxMessage, message_id)
        if message is None or not message.kind.startswith(KIND_PREFIX):
            raise click.ClickException(f"no credential delivery {message_id}")
        if not retry_message(message_id):
            raise click.ClickException(f"delivery {message_id} is {message.state}, not parked")
        click.echo(f"delivery {message_id} back in line")
