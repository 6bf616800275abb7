"""Back-off, mailbox settings and secrets, access rules."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from crm_platform.errors import ValidationFailed
from crm_platform.identity import Identity
from services.mail.domain.access import can_manage_mailbox, can_see_message, holds_mailbox
from services.mail.domain.backoff import next_attempt, retry_delay
from services.mail.domain.mailboxes import check_mailbox, resolve_secret

DEPT, OTHER_DEPT = str(uuid.uuid4()), str(uuid.uuid4())
M1, M2, HEAD = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
manager = Identity(M1, "manager", department_id=DEPT)
colleague = Identity(M2, "manager", department_id=DEPT)
head = Identity(HEAD, "sales_head", department_id=DEPT)
other_head = Identity(str(uuid.uuid4()), "sales_head", department_id=OTHER_DEPT)
director = Identity(str(uuid.uuid4()), "director")
admin = Identity(str(uuid.uuid4()), "admin")
own_box = {"kind": "personal", "owner_id": M1, "department_id": DEPT}
shared_box = {"kind": "shared", "owner_id": None, "department_id": DEPT}


def test_backoff_doubles_up_to_the_cap():
    assert [retry_delay(n, 60, 3600) for n in range(0, 9)] == [
        0, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_attempt(now, 3, 10, 100) == now + timedelta(seconds=40)
    assert retry_delay(10_000) == 3600          # no overflow


VALID = {"address": "M.Ural.1@RoofCRM.ru", "kind": "personal", "owner_id": M1,
         "imap_host": "imap.roofcrm.ru", "login": "m.ural.1", "secret_ref": "env:MAIL_SECRET_M1"}


def test_mailbox_settings_with_defaults():
    values = check_mailbox(VALID)
    assert values["address"] == "m.ural.1@roofcrm.ru"
    assert values["imap_port"] == 993 and values["imap_tls"] is True
    assert values["sent_folder"] == "Sent" and values["owner_id"] == uuid.UUID(M1)


def test_mailbox_errors_are_named_by_field():
    with pytest.raises(ValidationFailed) as err:
        check_mailbox({**VALID, "secret_ref": "hunter2", "imap_port": 70000,
                       "kind": "team", "password": "x"})
    assert set(err.value.fields) == {"secret_ref", "imap_port", "kind", "password"}
    with pytest.raises(ValidationFailed) as err:
        check_mailbox({**VALID, "kind": "shared", "owner_id": None})
    assert set(err.value.fields) == {"department_id"}


def test_update_merges_into_current():
    current = check_mailbox(VALID)
    assert check_mailbox({"imap_port": 143, "imap_tls": False}, current)["imap_port"] == 143


def test_secret_comes_from_the_environment_only():
    assert resolve_secret("env:MAIL_SECRET_X", {"MAIL_SECRET_X": "pw"}) == "pw"
    with pytest.raises(LookupError):
        resolve_secret("env:MAIL_SECRET_X", {})
    with pytest.raises(LookupError):
        resolve_secret("file:/etc/shadow", {"x": "y"})


def test_mailbox_holders():
    assert holds_mailbox(manager, own_box) and not holds_mailbox(colleague, own_box)
    assert holds_mailbox(colleague, shared_box) and not holds_mailbox(other_head, shared_box)


def test_client_messages_follow_client_access():
    client = {"owner_id": M2, "department_id": DEPT}
    assert can_see_message(colleague, client, [])
    assert not can_see_message(manager, client, [])
    assert can_see_message(manager, client, [own_box])      # in own mailbox
    assert can_see_message(head, client, []) and not can_see_message(other_head, client, [])
    assert can_see_message(director, client, [])
    assert not can_see_message(admin, client, [own_box])    # no personal data for the admin


def test_unmatched_messages_only_for_mailbox_holders():
    assert can_see_message(manager, None, [own_box])
    assert not can_see_message(head, None, [own_box])
    assert not can_see_message(director, None, [own_box])
    assert can_see_message(colleague, None, [shared_box])


def test_who_manages_a_mailbox():
    assert can_manage_mailbox(admin, shared_box) and can_manage_mailbox(manager, own_box)
    assert not can_manage_mailbox(colleague, own_box)
    assert can_manage_mailbox(head, shared_box) and not can_manage_mailbox(colleague, shared_box)
