"""Rules of the organisation directory (no nameko here)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from crm_platform.errors import ValidationFailed

# Roles that work inside one department and must belong to one.
DEPARTMENT_ROLES = ("manager", "sales_head")

_hasher = PasswordHasher()
# Verified against when the user does not exist, so that "no such user" costs the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def normalise_username(username: str) -> str:
    return (username or "").strip().lower()


def check_role_placement(role: str, department_id) -> None:
    if role in DEPARTMENT_ROLES and department_id is None:
        raise ValidationFailed(
            "Менеджер и руководитель отдела продаж должны состоять в отделе",
            fields={"department_id": ["обязателен для ролей manager и sales_head"]},
        )


def check_regions(requested: list[str], known: set[str]) -> None:
    unknown = sorted(set(requested) - known)
    if unknown:
        raise ValidationFailed(
            "Неизвестные регионы: " + ", ".join(unknown),
            fields={"regions": [f"неизвестный код региона {code}" for code in unknown]},
        )


def identity_for(user: dict, department: dict | None) -> dict:
    """The identity the gateway signs into tokens and services read from the RPC context."""
    return {
        "user_id": str(user["id"]),
        "username": user["username"],
        "full_name": user["full_name"],
        "role": user["role"],
        "department_id": str(user["department_id"]) if user["department_id"] else None,
        "regions": list(department["regions"]) if department else [],
    }
