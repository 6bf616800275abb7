"""Helpers of the directory integration tests: callers, RPC calls, reading the database."""

from __future__ import annotations

import uuid

from nameko.testing.services import entrypoint_hook

from crm_platform.contracts import parse_envelope
from crm_platform.identity import IDENTITY_CONTEXT_KEY
from crm_platform.testing import SqlReader

ADMIN = {"user_id": str(uuid.uuid4()), "role": "admin", "username": "admin"}


def identity(role: str, user_id: str | None = None, **extra) -> dict:
    """A caller identity as the gateway puts it into the RPC context."""
    return {"user_id": str(user_id or uuid.uuid4()), "role": role,
            "username": extra.pop("username", role), **extra}


class Sql(SqlReader):
    """Reads the service's database behind its back."""

    def outbox(self, event_type: str | None = None) -> list[dict]:
        """Outbox rows in the order they were written: type, source, envelope, headers."""
        rows = self.rows("SELECT type, source, envelope, headers, published_at FROM outbox "
                         "ORDER BY id")
        return [dict(row) for row in rows if event_type in (None, row["type"])]

    def payloads(self, event_type: str) -> list[dict]:
        return [row["envelope"]["payload"] for row in self.outbox(event_type)]


class Directory:
    """RPCs of one running container, called as a given identity (admin unless told)."""

    def __init__(self, container):
        self.container = container

    def call(self, method: str, *args, caller: dict | None = ADMIN, **kwargs):
        context = {IDENTITY_CONTEXT_KEY: caller} if caller is not None else {}
        with entrypoint_hook(self.container, method, context_data=context) as hook:
            return hook(*args, **kwargs)

    # -- shortcuts -------------------------------------------------------------------------
    def department(self, name="Продажи Москва", regions=("RU-MOW",), **extra) -> dict:
        return self.call("create_department", {"name": name, "regions": list(regions), **extra})

    def user(self, username: str, role: str = "manager", department_id=None, **extra) -> dict:
        data = {"username": username, "full_name": extra.pop("full_name", f"User {username}"),
                "role": role, "department_id": department_id, **extra}
        return self.call("create_user", data)


def contract_payload(row: dict) -> dict:
    """The payload as a consumer would load it (raises when the row breaks its contract)."""
    return parse_envelope(row["envelope"]).payload
