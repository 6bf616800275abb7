"""Local bearer tokens: issued and verified by the gateway itself (HS256)."""

from __future__ import annotations

import time

import jwt
import pytest

from crm_platform.errors import Unauthenticated
from crm_platform.identity import Identity
from gateway.auth import LOCAL_AUDIENCE, LOCAL_ISSUER, TokenAuthority, identity_from_claims

SECRET = "unit-test-secret-0123456789"
USER = {"user_id": "0b7c3a52-7c1e-4a57-9a55-3f4f1c2a1b10", "username": "ivanov",
        "full_name": "Иванов Иван", "role": "manager",
        "department_id": "5d1c4c1e-2f4a-4e0e-8a3b-7c9d2e1f0a11", "regions": ["RU-MOW", "RU-MOS"]}


@pytest.fixture
def authority():
    return TokenAuthority(SECRET, ttl_seconds=600)


def local_token(secret=SECRET, **overrides) -> str:
    """A token shaped like the gateway's own, with any claim changed or removed (None)."""
    now = int(time.time())
    claims = {"iss": LOCAL_ISSUER, "aud": LOCAL_AUDIENCE, "iat": now, "nbf": now,
              "exp": now + 600, "sub": USER["user_id"], "preferred_username": "ivanov",
              "name": "Иванов Иван", "crm_role": "manager", "crm_regions": ["RU-MOW"]}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret, algorithm="HS256")


def rejected(authority, header) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        authority.verify(header)
    assert caught.value.status == 401
    return caught.value


def test_issue_then_verify_gives_back_the_identity(authority):
    token, ttl = authority.issue(USER)

    assert ttl == 600
    assert authority.verify(f"Bearer {token}") == Identity(
        user_id=USER["user_id"], role="manager", username="ivanov", full_name="Иванов Иван",
        department_id=USER["department_id"], regions=("RU-MOW", "RU-MOS"))


def test_issued_token_carries_the_documented_claims(authority):
    token, _ = authority.issue(USER)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=LOCAL_AUDIENCE)

    assert claims["iss"] == LOCAL_ISSUER
    assert claims["sub"] == USER["user_id"]
    assert claims["crm_role"] == "manager"
    assert claims["crm_department_id"] == USER["department_id"]
    assert claims["crm_regions"] == ["RU-MOW", "RU-MOS"]
    assert claims["exp"] - claims["iat"] == 600


def test_identity_without_department_roundtrips(authority):
    token, _ = authority.issue({"user_id": "u-admin", "username": "admin", "role": "admin"})

    identity = authority.verify(f"Bearer {token}")

    assert identity == Identity(user_id="u-admin", role="admin", username="admin")
    assert identity.department_id is None and identity.regions == ()


def test_scheme_is_case_insensitive_and_whitespace_tolerated(authority):
    token, _ = authority.issue(USER)

    assert authority.verify(f"bearer  {token} ").user_id == USER["user_id"]


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header(authority, header):
    assert rejected(authority, header).code == "missing_token"


@pytest.mark.parametrize("header", ["Basic YWRtaW46YWRtaW4=", "Token abc", "Bearer", "Bearer   ",
                                    "abc.def.ghi"])
def test_not_a_bearer_header(authority, header):
    assert rejected(authority, header).code == "invalid_token"


@pytest.mark.parametrize("token", ["garbage", "not.a.jwt", "a.b", "eyJhbGciOiJIUzI1NiJ9.x.y"])
def test_garbage_token(authority, token):
    assert rejected(authority, f"Bearer {token}").code == "invalid_token"


def test_token_signed_with_another_secret(authority):
    token, _ = TokenAuthority("another-secret-another-secret").issue(USER)

    assert rejected(authority, f"Bearer {token}").code == "invalid_token"


def test_tampered_token(authority):
    token, _ = authority.issue(USER)
    header, payload, signature = token.split(".")
    forged = jwt.encode({**jwt.decode(token, options={"verify_signature": False}),
                         "crm_role": "admin"}, "x" * 32, algorithm="HS256").split(".")[1]

    assert rejected(authority, f"Bearer {header}.{forged}.{signature}").code == "invalid_token"


def test_expired_token(authority):
    past = int(time.time()) - 3600
    token = local_token(iat=past - 600, nbf=past - 600, exp=past)

    assert rejected(authority, f"Bearer {token}").code == "token_expired"


@pytest.mark.parametrize("claim", ["crm_role", "sub", "exp"])
def test_token_without_a_required_claim(authority, claim):
    assert rejected(authority, f"Bearer {local_token(**{claim: None})}").code == "invalid_token"


@pytest.mark.parametrize("overrides", [{"crm_role": "janitor"}, {"aud": "someone-else"},
                                       {"iss": "someone-else"}, {"nbf": int(time.time()) + 3600}])
def test_token_with_wrong_claims(authority, overrides):
    assert rejected(authority, f"Bearer {local_token(**overrides)}").code == "invalid_token"


def test_unsigned_token_is_refused(authority):
    now = int(time.time())
    token = jwt.encode({"sub": "u", "crm_role": "admin", "exp": now + 60, "iss": LOCAL_ISSUER,
                        "aud": LOCAL_AUDIENCE}, None, algorithm="none")

    assert rejected(authority, f"Bearer {token}").code == "invalid_token"


def test_hs512_token_is_refused(authority):
    token = jwt.encode(jwt.decode(local_token(), options={"verify_signature": False}), SECRET,
                       algorithm="HS512")

    assert rejected(authority, f"Bearer {token}").code == "invalid_token"


def test_without_local_login_nothing_is_issued():
    sso_only = TokenAuthority("", local_login=False)

    with pytest.raises(Unauthenticated) as caught:
        sso_only.issue(USER)
    assert caught.value.code == "local_login_disabled"


def test_without_local_login_local_tokens_are_refused():
    sso_only = TokenAuthority(SECRET, local_login=False)

    assert rejected(sso_only, f"Bearer {local_token()}").code == "invalid_token"


@pytest.mark.parametrize("secret", ["", "short", "fifteen-chars!!"])
def test_short_secret_is_refused(secret):
    with pytest.raises(ValueError, match="16"):
        TokenAuthority(secret)


def test_sixteen_char_secret_is_enough():
    TokenAuthority("sixteen-chars!!!")


def test_roles_list_maps_to_the_first_known_role():
    identity = identity_from_claims({"sub": "u1", "roles": ["offline_access", "director",
                                                             "admin"]})

    assert identity.role == "director"


def test_roles_list_without_a_crm_role_is_refused():
    with pytest.raises(Unauthenticated) as caught:
        identity_from_claims({"sub": "u1", "roles": ["offline_access"]})
    assert caught.value.code == "invalid_token"


@pytest.mark.parametrize("roles", [None, 5, {"admin": True}, "admin"])
def test_malformed_roles_claim_is_an_invalid_token_not_a_crash(roles):
    with pytest.raises(Unauthenticated) as caught:
        identity_from_claims({"sub": "u1", "roles": roles})
    assert caught.value.code == "invalid_token"


def test_null_roles_claim_through_verify(authority):
    claims = jwt.decode(local_token(crm_role=None), options={"verify_signature": False})
    token = jwt.encode({**claims, "roles": None}, SECRET, algorithm="HS256")

    assert rejected(authority, f"Bearer {token}").code == "invalid_token"
