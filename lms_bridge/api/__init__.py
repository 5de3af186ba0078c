"""The JSON API (``/api/v1``): marshmallow schemas at the edge, an OpenAPI 3.1 description.

* ``schemas.py``: what requests may say and responses say;
* ``views.py``: thin views over :mod:`lms_bridge.packages.catalogue`;
* ``openapi.py``: the description, generated from the schemas (``GET /api/v1/openapi.json``).
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from . import views  # noqa: F401  (routes register on bp)
