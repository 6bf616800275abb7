"""Bearer tokens: issued here for local users (development, small installs), or verified against the
company's OIDC provider (``OIDC_JWKS_URL``) in production.

Both kinds carry the same claims, so one mapping turns either into an ``Identity``:

    sub                 user id
    preferred_username  login
    name                full name
    crm_role            manager | sales_head | director | admin | integration | dispatcher | driver
    crm_department_id   department id (managers and sales heads)
    crm_regions         region codes the department covers
"""

from __future__ import annotations

import time

import jwt
from nameko.extensions import DependencyProvider, SharedExtension

from crm_platform.errors import Unauthenticated
from crm_platform.identity import ROLES, Identity

LOCAL_ISSUER = "roofcrm"
LOCAL_AUDIENCE = "roofcrm-api"
LOCAL_ALGORITHM = "HS256"


def regions_claim(value) -> tuple[str, ...]:
    """``crm_regions`` as a list of codes; an IdP may send one code as a plain string."""
    if isinstance(value, str):
        return tuple(code.strip() for code in value.split(",") if code.strip())
    if isinstance(value, list):
        return tuple(str(code) for code in value)
    return ()


def identity_from_claims(claims: dict) -> Identity:
    role = claims.get("crm_role")
    if role is None:  # IdPs often send a list of roles; take the first one we know
        roles = claims.get("roles")
        role = next((r for r in roles if r in ROLES), None) if isinstance(roles, list) else None
    if not claims.get("sub") or role not in ROLES:
        raise Unauthenticated("В токене нет пользователя или роли CRM", code="invalid_token")
    return Identity(
        user_id=str(claims["sub"]),
        role=role,
        username=str(claims.get("preferred_username", "")),
        full_name=str(claims.get("name", "")),
        department_id=claims.get("crm_department_id"),
        regions=regions_claim(claims.get("crm_regions")),
    )


class TokenAuthority:
    """Issues local tokens and verifies any token; framework-free for unit tests."""

    def __init__(self, secret: str, ttl_seconds: int = 43200, jwks_url: str = "",
                 issuer: str = "", audience: str = "", local_login: bool = True):
        if local_login and (not secret or len(secret) < 16):
            raise ValueError("JWT_SECRET must be at least 16 characters")
        self.secret = secret
        self.ttl_seconds = ttl_seconds
        self.local_login = local_login
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None

    def issue(self, identity: dict) -> tuple[str, int]:
        if not self.local_login:
            raise Unauthenticated("Локальный вход отключён: войдите через SSO",
                                  code="local_login_disabled")
        now = int(time.time())
        claims = {
            "iss": LOCAL_ISSUER, "aud": LOCAL_AUDIENCE, "iat": now, "nbf": now,
            "exp": now + self.ttl_seconds,
            "sub": identity["user_id"], "preferred_username": identity.get("username", ""),
            "name": identity.get("full_name", ""), "crm_role": identity["role"],
            "crm_department_id": identity.get("department_id"),
            "crm_regions": identity.get("regions") or [],
        }
        return jwt.encode(claims, self.secret, algorithm=LOCAL_ALGORITHM), self.ttl_seconds

    def verify(self, authorization: str | None) -> Identity:
        if not authorization:
            raise Unauthenticated("Нужен заголовок Authorization: Bearer <токен>",
                                  code="missing_token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Ожидается схема Bearer", code="invalid_token")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("Токен не читается", code="invalid_token") from None
        try:
            if header.get("alg") == LOCAL_ALGORITHM:
                if not self.local_login:
                    raise Unauthenticated("Локальные токены отключены", code="invalid_token")
                claims = jwt.decode(token, self.secret, algorithms=[LOCAL_ALGORITHM],
                                    audience=LOCAL_AUDIENCE, issuer=LOCAL_ISSUER,
                                    options={"require": ["exp", "sub"]})
            elif self.jwks is not None:
                key = self.jwks.get_signing_key_from_jwt(token)
                claims = jwt.decode(
                    token, key.key, algorithms=["RS256", "RS384", "RS512", "ES256", "ES384"],
                    audience=self.audience or None, issuer=self.issuer or None,
                    options={"require": ["exp", "sub"], "verify_aud": bool(self.audience)},
                )
            else:
                raise Unauthenticated("Подпись токена не поддерживается", code="invalid_token")
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("Срок действия токена истёк", code="token_expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"Токен отклонён: {exc}", code="invalid_token") from None
        return identity_from_claims(claims)


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class Authority(SharedExtension):
    """The container's ``TokenAuthority``, built from config."""

    def setup(self):
        config = self.container.config
        self.authority = TokenAuthority(
            secret=str(config.get("JWT_SECRET") or ""),
            ttl_seconds=int(config.get("JWT_TTL_SECONDS") or 43200),
            jwks_url=str(config.get("OIDC_JWKS_URL") or ""),
            issuer=str(config.get("OIDC_ISSUER") or ""),
            audience=str(config.get("OIDC_AUDIENCE") or ""),
            local_login=_truthy(config.get("LOCAL_LOGIN", True)),
        )


class Tokens(DependencyProvider):
    """``self.tokens`` in the gateway: the container's shared ``TokenAuthority``."""

    authority = Authority()

    def get_dependency(self, worker_ctx):
        return self.authority.authority
