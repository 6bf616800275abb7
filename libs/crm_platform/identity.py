"""Who is calling: the identity the gateway puts into the RPC context, and the checks services make.

The gateway verifies the bearer token and sets ``crm_identity`` in the nameko context; nameko copies
context data into message headers, so it reaches every service the request touches. Services never
trust the HTTP layer alone: each RPC that touches data reads the identity through ``Caller`` and
checks it, and a call without identity is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from nameko.extensions import DependencyProvider

from .errors import Forbidden, Unauthenticated

IDENTITY_CONTEXT_KEY = "crm_identity"

# dispatcher: manages the fleet, transport orders and trips (logistics); driver: a driver's own
# login for the driver page (sees and updates only the trips the logistics service gives them).
ROLES = ("manager", "sales_head", "director", "admin", "integration", "dispatcher", "driver")


@dataclass(frozen=True)
class Identity:
    user_id: str
    role: str
    username: str = ""
    full_name: str = ""
    department_id: str | None = None
    regions: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.role not in ROLES:
            raise Unauthenticated(f"unknown role {self.role!r}")
        object.__setattr__(self, "regions", tuple(self.regions or ()))

    def to_context(self) -> dict:
        data = asdict(self)
        data["regions"] = list(self.regions)
        # AMQP header tables cannot carry None.
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_context(cls, data: dict) -> Identity:
        try:
            return cls(
                user_id=str(data["user_id"]),
                role=str(data["role"]),
                username=str(data.get("username", "")),
                full_name=str(data.get("full_name", "")),
                department_id=data.get("department_id"),
                regions=tuple(data.get("regions") or ()),
            )
        except (KeyError, TypeError) as exc:
            raise Unauthenticated("malformed caller identity") from exc

    def has_role(self, *roles: str) -> bool:
        return self.role in roles


def require_role(identity: Identity, *roles: str) -> Identity:
    if not identity.has_role(*roles):
        raise Forbidden(
            "Недостаточно прав для этого действия",
            code="role_required",
            extra={"required_roles": list(roles), "role": identity.role},
        )
    return identity


class CallerAccessor:
    def __init__(self, worker_ctx):
        self._worker_ctx = worker_ctx

    @property
    def present(self) -> bool:
        return IDENTITY_CONTEXT_KEY in self._worker_ctx.data

    @property
    def identity(self) -> Identity:
        """The caller; raises ``Unauthenticated`` when the call carries no identity."""
        data = self._worker_ctx.data.get(IDENTITY_CONTEXT_KEY)
        if not data:
            raise Unauthenticated("Вызов без удостоверения пользователя отклонён")
        return Identity.from_context(data)

    def require(self, *roles: str) -> Identity:
        """The caller, who must hold one of ``roles`` (any signed-in caller when none given)."""
        identity = self.identity
        return require_role(identity, *roles) if roles else identity

    def act_as(self, identity: Identity) -> None:
        """Attach ``identity`` to this worker so that the RPCs it makes carry it (gateway)."""
        self._worker_ctx.data[IDENTITY_CONTEXT_KEY] = identity.to_context()


class Caller(DependencyProvider):
    """``self.caller.identity`` inside an entrypoint."""

    def get_dependency(self, worker_ctx):
        return CallerAccessor(worker_ctx)
