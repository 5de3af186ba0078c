"""Development platform endpoints (being written)."""
from flask import Blueprint

bp = Blueprint("devplatform", __name__, url_prefix="/devplatform")


@bp.get("/")
def home():
    return "development platform"
