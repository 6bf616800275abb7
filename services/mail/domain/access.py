"""Who sees which message (pure; the store turns the same rules into SQL).

A message matched to a client is visible like the client: a manager sees those of own clients, a
sales head those of clients of the department, a director all. Everyone also sees the messages of
the mailboxes they hold (own personal mailbox; their department's shared one). A message matched
to no client is visible to its mailboxes' holders only. The admin sees no personal data.
"""

from __future__ import annotations

from crm_platform.errors import Forbidden
from crm_platform.identity import Identity

READ_ROLES = ("manager", "sales_head", "director", "integration")


def require_reader(identity: Identity) -> Identity:
    if identity.role not in READ_ROLES:
        raise Forbidden("Переписка с клиентами недоступна этой роли", code="role_required",
                        extra={"required_roles": list(READ_ROLES), "role": identity.role})
    return identity


def holds_mailbox(identity: Identity, mailbox: dict) -> bool:
    if mailbox.get("kind") == "shared":
        return bool(identity.department_id) and \
            str(mailbox.get("department_id")) == str(identity.department_id)
    return str(mailbox.get("owner_id")) == str(identity.user_id)


def sees_client(identity: Identity, owner_id, department_id) -> bool:
    if identity.role in ("director", "integration"):
        return True
    if identity.role == "sales_head":
        return bool(identity.department_id) and str(department_id) == str(identity.department_id)
    if identity.role == "manager":
        return owner_id is not None and str(owner_id) == str(identity.user_id)
    return False


def can_see_message(identity: Identity, client: dict | None, mailboxes: list[dict]) -> bool:
    """``client``: the replica row of the message's client (None: unmatched); ``mailboxes``:
    the mailboxes it was found in or sent from."""
    if identity.role not in READ_ROLES:
        return False
    if any(holds_mailbox(identity, m) for m in mailboxes):
        return True
    if client is None:
        return False
    return sees_client(identity, client.get("owner_id"), client.get("department_id"))


def can_manage_mailbox(identity: Identity, mailbox: dict) -> bool:
    """Admin: any mailbox; a user: own personal mailbox (a sales head: the department's
    shared one too)."""
    if identity.role == "admin":
        return True
    if mailbox.get("kind") == "personal":
        return str(mailbox.get("owner_id")) == str(identity.user_id)
    return identity.role == "sales_head" and holds_mailbox(identity, mailbox)
