"""A small real AGS platform for unit tests of the client (token endpoint and AGS endpoints over real
HTTP, see local_http.py), whose answers a test scripts: it checks the tool's client assertions with
the tool's public keys, counts token requests, and answers score posts as told (Moodle's 200 ``null``,
or failures)."""
from __future__ import annotations

import json
import secrets
import threading
import time

import jwt
from flask import Flask, Response, request

from .local_http import LocalServer


class StubPlatform:
    def __init__(self, jwks: dict, *, expires_in: int = 3600):
        self.jwks = jwks
        self.expires_in = expires_in
        self.token_requests = 0
        self.token_scopes: list[list[str]] = []
        self.tokens: dict[str, list[str]] = {}
        self.scores: list[dict] = []
        self.headers: list[dict] = []
        self.answers: list[tuple[int, str, dict]] = []  # scripted answers for the next score posts
        self.token_answers: list[tuple[int, str, dict]] = []
        self.token_delay = 0.0
        self.lock = threading.Lock()
        self.app = self._app()
        self.server = LocalServer(self.app)
        self.url = self.server.url

    def close(self):
        self.server.close()

    def registration(self, client_id: str = "stub-client"):
        from lms_bridge.lti.directory import RegistrationInfo

        return RegistrationInfo(id=1, issuer=self.url, client_id=client_id, name="stub", auth_login_url=self.url + "/auth",
                                auth_token_url=self.url + "/token", auth_audience=None, key_set_url=None, key_set=None,
                                active=True, auto_activate_deployments=False)

    def _app(self) -> Flask:
        app = Flask("stub_platform")

        @app.post("/token")
        def token():
            with self.lock:
                self.token_requests += 1
                scripted = self.token_answers.pop(0) if self.token_answers else None
            if self.token_delay:
                time.sleep(self.token_delay)
            if scripted:
                status, body, headers = scripted
                return Response(body, status=status, headers=headers)
            assertion = request.form["client_assertion"]
            header = jwt.get_unverified_header(assertion)
            key = next(k for k in self.jwks["keys"] if k["kid"] == header["kid"])
            claims = jwt.decode(assertion, jwt.PyJWK(key).key, algorithms=["RS256"], audience=self.url + "/token")
            assert claims["iss"] == claims["sub"] and claims["jti"]
            assert request.form["grant_type"] == "client_credentials"
            scopes = request.form["scope"].split()
            value = secrets.token_hex(16)
            with self.lock:
                self.tokens[value] = scopes
                self.token_scopes.append(scopes)
            return {"access_token": value, "token_type": "Bearer", "expires_in": self.expires_in, "scope": " ".join(scopes)}

        @app.post("/lineitems/<int:item>/lineitem/scores")
        def scores(item):
            bearer = (request.headers.get("Authorization") or "")[len("Bearer "):]
            if bearer not in self.tokens:
                return Response("invalid token", status=401)
            with self.lock:
                self.headers.append(dict(request.headers))
                scripted = self.answers.pop(0) if self.answers else None
            if scripted:
                status, body, headers = scripted
                if status == 0:  # a slow platform: sleep, then answer normally
                    time.sleep(float(body))
                else:
                    return Response(body, status=status, headers=headers)
            with self.lock:
                self.scores.append({"item": item, "query": request.query_string.decode(), **json.loads(request.data)})
            return Response("null", status=200, mimetype="application/vnd.ims.lis.v1.score+json")

        @app.get("/lineitems")
        def lineitems():
            # Three pages with relative "next" links, whatever filters are asked for (a platform
            # that ignores them: the client filters again).
            page = int(request.args.get("page", "1"))
            items = [{"id": f"{self.url}/lineitems/{n}/lineitem?type_id=9", "label": f"Item {n}", "scoreMaximum": 10,
                      "resourceLinkId": f"link-{n % 3}", "resourceId": f"res-{n % 2}", "tag": "grade"}
                     for n in range(page * 2 - 1, page * 2 + 1)]
            headers = {"Link": f'</lineitems?type_id=9&page={page + 1}>; rel="next"'} if page < 3 else {}
            return Response(json.dumps(items), headers=headers, mimetype="application/vnd.ims.lis.v2.lineitemcontainer+json")

        return app
