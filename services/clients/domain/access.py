"""Who may see and change which client (enforced by the service on every call).

manager     own clients (read and edit); pool clients of the own department (read only, may claim)
sales_head  every client of the own department
director    every client
integration every client (machine accounts: ERP, PBX, mail matching)
admin       manages the system but does not browse personal data
"""

from __future__ import annotations

from crm_platform.errors import Forbidden
from crm_platform.identity import Identity

READ_ALL = ("director", "integration")


def can_read(identity: Identity, client: dict) -> bool:
    if identity.role in READ_ALL:
        return True
    if identity.role == "sales_head":
        return _same_department(identity, client)
    if identity.role == "manager":
        if client["owner_id"] is not None:
            return str(client["owner_id"]) == identity.user_id
        return _same_department(identity, client)  # the department's pool
    return False


def can_edit(identity: Identity, client: dict) -> bool:
    if identity.role in ("director", "integration"):
        return True
    if identity.role == "sales_head":
        return _same_department(identity, client)
    if identity.role == "manager":
        return client["owner_id"] is not None and str(client["owner_id"]) == identity.user_id
    return False


def _same_department(identity: Identity, client: dict) -> bool:
    return (identity.department_id is not None and client["department_id"] is not None
            and str(client["department_id"]) == identity.department_id)


def require_read(identity: Identity, client: dict) -> None:
    if not can_read(identity, client):
        raise Forbidden("Нет доступа к этому клиенту", code="client_access_denied")


def require_edit(identity: Identity, client: dict) -> None:
    if not can_edit(identity, client):
        if can_read(identity, client):
            raise Forbidden("Клиент в общем пуле: сначала возьмите его в работу",
                            code="client_read_only")
        raise Forbidden("Нет доступа к этому клиенту", code="client_access_denied")


def visibility_filter(identity: Identity, clients_table):
    """A SQL condition selecting the clients ``identity`` may read (None: all of them)."""
    import sqlalchemy as sa

    c = clients_table.c
    if identity.role in READ_ALL:
        return None
    if identity.role == "sales_head" and identity.department_id:
        return c.department_id == identity.department_id
    if identity.role == "manager":
        own = c.owner_id == identity.user_id
        if identity.department_id:
            return sa.or_(own, sa.and_(c.owner_id.is_(None),
                                       c.department_id == identity.department_id))
        return own
    return sa.false()
