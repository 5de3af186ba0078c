"""A scriptable LTI platform for the tests: signs any id_token we want, good or bad.

The development platform (lms_bridge.devplatform) only makes valid launches; the
certification's negative cases need a platform that misbehaves on purpose.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

C = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
ADMIN = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"
DROP = object()  # an override value that removes the claim


class Key:
    def __init__(self, kid: str | None = None):
        self.kid = kid or secrets.token_hex(6)
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        return jwk


class JwksServer:
    """Serves a platform key set over real HTTP and counts how often it was fetched."""

    def __init__(self):
        self.keys: list[Key] = []
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches += 1
                body = json.dumps({"keys": [k.jwk() for k in outer.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


class SimPlatform:
    def __init__(self, server, issuer: str | None = None, client_id: str | None = None, deployment_id: str = "dep-1",
                 jwks: JwksServer | None = None, auto_activate: bool = False):
        self.server = server
        self.issuer = issuer or f"https://lms-{secrets.token_hex(3)}.example.org"
        self.client_id = client_id or "client-" + secrets.token_hex(4)
        self.deployment_id = deployment_id
        self.key = Key()
        self.jwks = jwks
        if jwks:
            jwks.keys.append(self.key)
        from lms_bridge.lti.registration import upsert_registration

        with server.app.app_context():
            reg = upsert_registration(
                issuer=self.issuer, client_id=self.client_id, auth_login_url=self.issuer + "/mod/lti/auth.php",
                auth_token_url=self.issuer + "/mod/lti/token.php",
                key_set_url=jwks.url if jwks else None, key_set=None if jwks else {"keys": [self.key.jwk()]},
                deployment_ids=[deployment_id], name="Sim " + self.issuer, auto_activate_deployments=auto_activate,
            )
            self.registration_id = reg.id

    # -- login --------------------------------------------------------------------------
    def login(self, http: requests.Session, method: str = "GET", **params):
        data = {"iss": self.issuer, "login_hint": "user-1", "target_link_uri": self.server.url + "/lti/launch",
                "client_id": self.client_id, "lti_message_hint": json.dumps({"cmid": 7}),
                "lti_deployment_id": self.deployment_id}
        data.update({k: v for k, v in params.items() if v is not DROP})
        for k in [k for k, v in params.items() if v is DROP]:
            data.pop(k, None)
        path = params.pop("_path", "/lti/login") if "_path" in params else "/lti/login"
        if method == "GET":
            resp = http.get(self.server.url + path, params=data, allow_redirects=False)
        else:
            resp = http.post(self.server.url + path, data=data, allow_redirects=False)
        return resp

    def login_state(self, http: requests.Session, **params) -> tuple[str, str]:
        resp = self.login(http, **params)
        assert resp.status_code == 302, resp.text
        query = parse_qs(urlsplit(resp.headers["Location"]).query)
        return query["state"][0], query["nonce"][0]

    # -- id_token -----------------------------------------------------------------------
    def claims(self, _nonce: str, **overrides) -> dict:
        now = int(time.time())
        body = {
            "iss": self.issuer, "aud": self.client_id, "sub": "user-1", "nonce": _nonce, "iat": now, "exp": now + 60,
            "name": "Ada Learner", "given_name": "Ada", "family_name": "Learner", "email": "ada@example.org",
            C + "version": "1.3.0", C + "message_type": "LtiResourceLinkRequest", C + "deployment_id": self.deployment_id,
            C + "target_link_uri": self.server.url + "/lti/launch", C + "roles": [LEARNER],
            C + "resource_link": {"id": "link-1", "title": "Battery safety"},
            C + "context": {"id": "course-1", "label": "EV101", "title": "EV technicians", "type": ["CourseSection"]},
            C + "launch_presentation": {"document_target": "iframe"},
        }
        for key, value in overrides.items():
            key = key.replace("__", "/") if key.startswith("lti_") else key
            full = C + key[4:] if key.startswith("lti_") else key
            if value is DROP:
                body.pop(full, None)
            else:
                body[full] = value
        return body

    def sign(self, claims: dict, key: Key | None = None, headers: dict | None = None, alg: str = "RS256") -> str:
        """Sign ``claims``; header entries set to DROP are left out (e.g. no kid)."""
        key = key or self.key
        header = {"typ": "JWT", "alg": alg, "kid": key.kid}
        header.update(headers or {})
        header = {k: v for k, v in header.items() if v is not DROP}
        segments = [_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode())]
        signing_input = ".".join(segments).encode()
        if alg == "none":
            signature = b""
        elif alg.startswith("HS"):
            # The classic confusion attack: the platform's *public* key used as an HMAC secret.
            import hashlib
            import hmac

            from cryptography.hazmat.primitives import serialization

            secret = key.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)
            signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
        else:
            signature = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).sign(signing_input, key.private)
        return ".".join(segments + [_b64(signature)])

    def post_launch(self, http: requests.Session, state: str, id_token: str, **extra):
        # Browsers send Secure cookies to http://127.0.0.1 (a secure context); Python's cookie jar
        # does not, so send the jar's cookies the way a browser would.
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
        return http.post(self.server.url + "/lti/launch", data={"state": state, "id_token": id_token, **extra},
                         headers={"Cookie": cookie} if cookie else {}, allow_redirects=False)

    def launch(self, http: requests.Session | None = None, key: Key | None = None, headers: dict | None = None,
               **overrides):
        """Full round trip: login, sign claims (with overrides), post the launch. Returns the launch response."""
        http = http or requests.Session()
        state, nonce = self.login_state(http)
        token = self.sign(self.claims(nonce, **overrides), key=key, headers=headers)
        return self.post_launch(http, state, token)


def _b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def error_code(resp) -> str | None:
    import re

    m = re.search(r'id="error-code">([^<]+)<', resp.text)
    return m.group(1) if m else None
