"""pylti1p3's ``ToolConfAbstract`` over the database.

pylti1p3 looks registrations up through this class (launch validation, and the Advantage
service connectors that sign client assertions).  Lookups are always by issuer *and*
client_id when the caller knows the client_id: one issuer may have many clients.
"""
from __future__ import annotations

from pylti1p3.deployment import Deployment as LtiDeployment
from pylti1p3.registration import Registration as LtiRegistration
from pylti1p3.tool_config import ToolConfAbstract

from ..extensions import db
from . import keys
from .models import Deployment, Registration


def to_pylti_registration(reg: Registration) -> LtiRegistration:
    kid, _ = keys.signing_key()
    tool_key = keys.ensure_tool_key()
    out = (
        LtiRegistration()
        .set_issuer(reg.issuer)
        .set_client_id(reg.client_id)
        .set_auth_login_url(reg.auth_login_url)
        .set_auth_token_url(reg.auth_token_url)
        .set_key_set_url(reg.key_set_url)
        .set_key_set(reg.key_set)
        .set_tool_private_key(tool_key.private_pem)
    )
    if reg.auth_audience:
        out.set_auth_audience(reg.auth_audience)
    return out


class DatabaseToolConf(ToolConfAbstract):
    def __init__(self):
        super().__init__()

    def check_iss_has_one_client(self, iss: str) -> bool:
        # Never assume one client per issuer: the launch always names its client.
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss, *args, **kwargs):
        regs = db.session.execute(db.select(Registration).filter_by(issuer=iss, active=True)).scalars().all()
        return to_pylti_registration(regs[0]) if len(regs) == 1 else None

    def find_registration_by_params(self, iss, client_id, *args, **kwargs):
        reg = db.session.execute(
            db.select(Registration).filter_by(issuer=iss, client_id=client_id, active=True)
        ).scalar_one_or_none()
        return to_pylti_registration(reg) if reg else None

    def find_deployment(self, iss, deployment_id):
        return None  # ambiguous without a client_id; see find_deployment_by_params

    def find_deployment_by_params(self, iss, deployment_id, client_id, *args, **kwargs):
        dep = db.session.execute(
            db.select(Deployment)
            .join(Registration)
            .where(
                Registration.issuer == iss,
                Registration.client_id == client_id,
                Deployment.deployment_id == deployment_id,
                Deployment.active.is_(True),
            )
        ).scalar_one_or_none()
        return LtiDeployment().set_deployment_id(dep.deployment_id) if dep else None

    def get_jwks(self, iss=None, client_id=None, **kwargs):
        return keys.published_jwks()["keys"]
