"""Tokens from the company's OIDC provider: RS256, keys fetched from a real JWKS endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from crm_platform.errors import Unauthenticated
from crm_platform.identity import Identity
from gateway.auth import TokenAuthority

ISSUER = "https://sso.example.test/realms/roofcrm"
AUDIENCE = "roofcrm-api"
KID = "sso-key-1"
EC_KID = "sso-ec-key"
LOCAL_SECRET = "unit-test-secret-0123456789"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signing_key():
    return rsa_key()


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def jwks_server(signing_key, ec_key):
    """A JWKS document on a real HTTP server on 127.0.0.1 (green under eventlet)."""
    rsa_jwk = RSAAlgorithm.to_jwk(signing_key.public_key(), as_dict=True)
    ec_jwk = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    document = json.dumps({"keys": [
        {**rsa_jwk, "kid": KID, "use": "sig", "alg": "RS256"},
        {**ec_jwk, "kid": EC_KID, "use": "sig", "alg": "ES256"},
    ]}).encode()
    requests_seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            requests_seen.append(self.path)
            if self.path != "/certs":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}/certs"
    server.requests_seen = requests_seen
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def authority(jwks_server):
    return TokenAuthority("", jwks_url=jwks_server.url, issuer=ISSUER, audience=AUDIENCE,
                          local_login=False)


def sso_claims(**overrides) -> dict:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300,
              "sub": "f3e2d1c0-0000-4000-8000-000000000001", "preferred_username": "petrov",
              "name": "Петров Пётр", "crm_role": "sales_head",
              "crm_department_id": "5d1c4c1e-2f4a-4e0e-8a3b-7c9d2e1f0a11",
              "crm_regions": ["RU-SPE", "RU-LEN"]}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sso_token(key, kid=KID, algorithm="RS256", **overrides) -> str:
    headers = {"kid": kid} if kid else {}
    return jwt.encode(sso_claims(**overrides), key, algorithm=algorithm, headers=headers)


def rejected(authority, token) -> str:
    with pytest.raises(Unauthenticated) as caught:
        authority.verify(f"Bearer {token}")
    return caught.value.code


def test_valid_sso_token_gives_the_identity(authority, signing_key, jwks_server):
    identity = authority.verify(f"Bearer {sso_token(signing_key)}")

    assert identity == Identity(
        user_id="f3e2d1c0-0000-4000-8000-000000000001", role="sales_head", username="petrov",
        full_name="Петров Пётр", department_id="5d1c4c1e-2f4a-4e0e-8a3b-7c9d2e1f0a11",
        regions=("RU-SPE", "RU-LEN"))
    assert "/certs" in jwks_server.requests_seen


def test_roles_list_instead_of_crm_role(authority, signing_key):
    token = sso_token(signing_key, crm_role=None, roles=["uma_authorization", "manager"],
                      crm_department_id=None, crm_regions=None)

    identity = authority.verify(f"Bearer {token}")

    assert identity.role == "manager"
    assert identity.department_id is None
    assert identity.regions == ()


def test_crm_role_wins_over_roles_list(authority, signing_key):
    token = sso_token(signing_key, crm_role="director", roles=["admin"])

    assert authority.verify(f"Bearer {token}").role == "director"


def test_es256_key_from_the_same_jwks(authority, ec_key):
    token = sso_token(ec_key, kid=EC_KID, algorithm="ES256")

    assert authority.verify(f"Bearer {token}").username == "petrov"


def test_wrong_audience(authority, signing_key):
    assert rejected(authority, sso_token(signing_key, aud="another-app")) == "invalid_token"


def test_missing_audience(authority, signing_key):
    assert rejected(authority, sso_token(signing_key, aud=None)) == "invalid_token"


def test_wrong_issuer(authority, signing_key):
    assert rejected(authority, sso_token(signing_key, iss="https://evil.example")) \
        == "invalid_token"


def test_unknown_kid(authority, signing_key):
    assert rejected(authority, sso_token(signing_key, kid="rotated-away")) == "invalid_token"


def test_token_without_kid(authority, signing_key):
    assert rejected(authority, sso_token(signing_key, kid=None)) == "invalid_token"


def test_signed_by_another_key_with_a_known_kid(authority):
    assert rejected(authority, sso_token(rsa_key())) == "invalid_token"


def test_expired_sso_token(authority, signing_key):
    past = int(time.time()) - 600
    assert rejected(authority, sso_token(signing_key, iat=past - 300, exp=past)) \
        == "token_expired"


def test_sso_token_without_crm_role(authority, signing_key):
    token = sso_token(signing_key, crm_role=None, roles=["offline_access"])

    assert rejected(authority, token) == "invalid_token"


def test_public_key_as_hmac_secret_is_refused(authority, signing_key):
    """Algorithm confusion: an HS256 token "signed" with the provider's public key."""
    pem = signing_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode()) + "."
                     + b64(json.dumps(sso_claims(crm_role="admin")).encode()))
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()

    assert rejected(authority, f"{signing_input}.{b64(signature)}") == "invalid_token"


def test_local_token_refused_when_only_sso_is_allowed(authority):
    token, _ = TokenAuthority(LOCAL_SECRET).issue({"user_id": "u1", "role": "admin"})

    assert rejected(authority, token) == "invalid_token"


def test_local_and_sso_tokens_side_by_side(jwks_server, signing_key):
    both = TokenAuthority(LOCAL_SECRET, jwks_url=jwks_server.url, issuer=ISSUER,
                          audience=AUDIENCE)
    local, _ = both.issue({"user_id": "u1", "role": "admin", "username": "admin"})

    assert both.verify(f"Bearer {local}").username == "admin"
    assert both.verify(f"Bearer {sso_token(signing_key)}").username == "petrov"


def test_rs256_token_without_jwks_configured_is_refused(signing_key):
    local_only = TokenAuthority(LOCAL_SECRET)

    assert rejected(local_only, sso_token(signing_key)) == "invalid_token"


def test_unreachable_jwks_is_an_invalid_token_not_a_crash(signing_key):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    authority = TokenAuthority("", jwks_url=f"http://127.0.0.1:{port}/certs", issuer=ISSUER,
                               audience=AUDIENCE, local_login=False)

    assert rejected(authority, sso_token(signing_key)) == "invalid_token"
