"""Post-launch pages.  They authenticate with the opaque launch token in the URL (never the
Flask cookie session), so they work in LMS iframes where third-party cookies are blocked."""
from __future__ import annotations

from flask import Blueprint, abort, render_template

from ..lti.launch import DL, C
from ..lti.roles import RoleSet
from ..lti.state import LaunchSession, load_launch_session

bp = Blueprint("player", __name__)


def launch_or_404(token: str) -> LaunchSession:
    launch = load_launch_session(token)
    if launch is None:
        abort(404)
    return launch


@bp.get("/launch/<token>")
def landing(token: str):
    launch = launch_or_404(token)
    role_set = RoleSet.of(launch.roles)
    if launch.message_type == "LtiDeepLinkingRequest":
        view = "deep_linking"
    elif role_set.is_instructor:
        view = "instructor"
    else:
        view = "learner"
    return render_template(
        "player/landing.html", launch=launch, roles=role_set, view=view, d=launch.display,
        deep_linking=launch.claims.get(DL + "deep_linking_settings") or {},
        presentation=launch.claims.get(C + "launch_presentation") or {},
    )
