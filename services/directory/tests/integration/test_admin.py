"""The operator command that creates the first admin, against the real PostgreSQL (and the service
that then lets the admin in)."""

from __future__ import annotations

import pytest

from services.directory import admin

from .support import contract_payload

pytestmark = pytest.mark.integration


def test_ensure_admin_is_idempotent(directory_db, sql):
    assert admin.ensure_admin(directory_db, "admin", "first-password") is True
    assert admin.ensure_admin(directory_db, "admin", "second-password") is False

    [user] = sql.rows("SELECT id, username, role, active, department_id, password_hash "
                      "FROM users")
    assert (user["username"], user["role"], user["active"]) == ("admin", "admin", True)
    assert user["department_id"] is None
    assert user["password_hash"].startswith("$argon2")
    [row] = sql.outbox("user_changed")
    payload = contract_payload(row)
    assert payload["user_id"] == user["id"]
    assert (payload["username"], payload["role"], payload["regions"]) == ("admin", "admin", [])


def test_the_ensured_admin_logs_in_with_the_first_password(directory_db, directory):
    admin.ensure_admin(directory_db, "admin", "first-password")
    admin.ensure_admin(directory_db, "admin", "second-password")

    result = directory.call("authenticate", "admin", "first-password", caller=None)

    assert result["role"] == "admin" and result["username"] == "admin"


def test_main_reads_the_environment(directory_db, sql, monkeypatch, capsys):
    monkeypatch.setenv("CRM_ADMIN_USERNAME", " Root ")
    monkeypatch.setenv("CRM_ADMIN_PASSWORD", "root-password")

    assert admin.main(["ensure-admin", "--url", directory_db]) == 0
    assert admin.main(["ensure-admin", "--url", directory_db]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out == ["admin user 'root' created", "admin user 'root' already exists"]
    assert sql.scalar("SELECT username FROM users") == "root"


def test_republish_announces_the_whole_organisation_again(directory, sql, directory_db):
    from services.directory.admin import republish

    dept = directory.department("Отдел для повтора", regions=["RU-SVE"])
    directory.user("m.repeat", role="manager", department_id=dept["id"])
    before = len(sql.outbox())

    assert republish(directory_db) == sql.count("departments") + sql.count("users")

    again = sql.outbox()[before:]
    assert [row["type"] for row in again].count("department_changed") == 1
    users_again = [row["envelope"]["payload"] for row in again if row["type"] == "user_changed"]
    [repeat] = [u for u in users_again if u["username"] == "m.repeat"]
    assert repeat["regions"] == ["RU-SVE"] and repeat["department_id"] == dept["id"]
