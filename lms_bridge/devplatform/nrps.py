"""Names and Role Provisioning Services 2.0, platform side (1EdTech LTI NRPS 2.0).

``GET .../contexts/<ctx>/memberships`` answers a membership container (NRPS §2.2,
media type ``application/vnd.ims.lti-nrps.v2.membershipcontainer+json``) with the
course's members, their status and roles (§2.3), and their names and e-mail only when the
tool's registration asked for those claims (as Moodle does) and the user is not anonymous.
Filters: ``role`` (§2.4.1, full URI or short context role name) and ``rlid`` (§3, the
members who can reach that resource link: here everyone in the course).  Paging with
``limit``/``from`` and a ``Link: <...>; rel="next"`` header (§2.4.2); like Canvas, the platform
can also page on its own when the tool asks for no ``limit`` (:func:`set_page_size`, for tests).
"""
from __future__ import annotations

from ..lti.roles import MEMBERSHIP
from ..shared_store import store
from . import platform
from .ags import ServiceError, check_context, next_link, paging
from .models import DevClient

MEMBERSHIPS_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
PAGE_SIZE_KEY = "devplatform:nrps:page-size"


def set_page_size(size: int | None, ttl: int = 24 * 3600) -> None:
    """Page rosters at ``size`` members when the tool asks for no ``limit`` (None: one page)."""
    if size is None:
        store().delete(PAGE_SIZE_KEY)
    elif isinstance(size, int) and not isinstance(size, bool) and size > 0:
        store().put(PAGE_SIZE_KEY, size, ttl)
    else:
        raise ValueError("the page size must be a positive integer")


def memberships(client: DevClient, context_id: str, args) -> tuple[dict, str | None]:
    check_context(context_id)
    if args.get("rlid"):
        if not any(link.resource_link_id == args["rlid"] for link in platform.links(client.client_id)):
            raise ServiceError(404, f"Not Found: resource link {args['rlid']} is not an activity of this tool.")
    allowed = platform.client_claims(client)
    role = args.get("role")
    if role and "#" not in role and "/" not in role:
        role = MEMBERSHIP + role
    members = []
    for user in sorted(platform.USERS.values(), key=lambda u: int(u["sub"])):
        if role and role not in user["roles"]:
            continue
        member = {"status": "Active", "user_id": user["sub"], "roles": list(user["roles"])}
        if not user.get("anonymous"):
            names = {"name": platform.full_name(user), "given_name": user.get("given_name"),
                     "family_name": user.get("family_name"), "email": user.get("email")}
            member.update({k: v for k, v in names.items() if v and k in allowed})
        members.append(member)
    limit, start = paging(args)
    limit = limit or store().get(PAGE_SIZE_KEY)
    page = members[start:start + limit] if limit else members[start:]
    url = platform.platform_url("devplatform.memberships", context_id=context_id)
    container = {
        "id": url + f"?type_id={client.id}",
        "context": {"id": platform.COURSE["id"], "label": platform.COURSE["label"], "title": platform.COURSE["title"]},
        "members": page,
    }
    return container, next_link(url, args, limit, start, len(members))
