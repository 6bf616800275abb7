"""Operator commands of the directory service, run beside it (not through RPC): the very first
admin cannot be created through an API that needs an admin.

    python -m services.directory.admin ensure-admin   # CRM_ADMIN_USERNAME / CRM_ADMIN_PASSWORD
    python -m services.directory.admin republish      # announce every department and user again

``republish`` lets a service deployed after the organisation was entered (or one whose replica was
lost) catch up: consumers upsert from these events, so announcing again is harmless.
"""

from __future__ import annotations

import argparse
import sys
import uuid

import sqlalchemy as sa

from crm_platform.clock import utcnow
from crm_platform.config import env, service_db_url
from crm_platform.db import SessionFactory, make_engine
from crm_platform.outbox import emit

from . import domain
from .models import departments, users


def ensure_admin(url: str, username: str, password: str) -> bool:
    """Create the admin user unless a user with that name exists; True when created."""
    sessions = SessionFactory(make_engine(url, pool_size=1))
    try:
        with sessions.session() as session:
            exists = session.execute(
                sa.select(users.c.id).where(users.c.username == username)).first()
            if exists:
                return False
            now = utcnow()
            user = dict(id=uuid.uuid4(), username=username, full_name="Администратор CRM",
                        email=None, role="admin", department_id=None, extension=None,
                        mailbox=None, active=True, password_hash=domain.hash_password(password),
                        created_at=now, updated_at=now)
            session.execute(sa.insert(users).values(**user))
            emit(session, "directory", "user_changed", {
                "user_id": user["id"], "username": username, "full_name": user["full_name"],
                "email": None, "role": "admin", "department_id": None, "regions": [],
                "extension": None, "mailbox": None, "active": True,
            })
            return True
    finally:
        sessions.engine.dispose()


def republish(url: str) -> int:
    """Emit department_changed and user_changed for the whole organisation; returns how many."""
    sessions = SessionFactory(make_engine(url, pool_size=1))
    try:
        with sessions.session() as session:
            regions = {}
            count = 0
            for dept in session.execute(sa.select(departments)).mappings():
                regions[dept["id"]] = list(dept["regions"])
                emit(session, "directory", "department_changed", {
                    "department_id": dept["id"], "name": dept["name"],
                    "regions": list(dept["regions"]), "head_user_id": dept["head_user_id"]})
                count += 1
            for user in session.execute(sa.select(users)).mappings():
                emit(session, "directory", "user_changed", {
                    "user_id": user["id"], "username": user["username"],
                    "full_name": user["full_name"], "email": user["email"], "role": user["role"],
                    "department_id": user["department_id"],
                    "regions": regions.get(user["department_id"], []),
                    "extension": user["extension"], "mailbox": user["mailbox"],
                    "active": user["active"]})
                count += 1
            return count
    finally:
        sessions.engine.dispose()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="directory operator commands")
    parser.add_argument("command", choices=["ensure-admin", "republish"])
    parser.add_argument("--url", default=service_db_url("directory"))
    args = parser.parse_args(argv)
    if args.command == "republish":
        print(f"announced {republish(args.url)} departments and users again")
        return 0
    username = domain.normalise_username(env("CRM_ADMIN_USERNAME", "admin"))
    password = env("CRM_ADMIN_PASSWORD", "admin12345")
    created = ensure_admin(args.url, username, password)
    print(f"admin user {username!r} {'created' if created else 'already exists'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
