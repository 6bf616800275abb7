"""Absences: recorded by the admin or the department's sales head, checked, cancelled (kept), and
announced as ``absence_changed``."""

from __future__ import annotations

import pytest

from crm_platform.errors import Forbidden, ValidationFailed

from .support import contract_payload, identity

pytestmark = pytest.mark.integration


def test_absences_are_recorded_changed_cancelled_and_announced(directory, sql):
    dept = directory.department()
    other = directory.department(name="Продажи Казань", regions=("RU-TA",))
    manager = directory.user("ivanov", department_id=dept["id"])
    stranger = directory.user("petrov", department_id=other["id"])
    head = identity("sales_head", department_id=dept["id"])

    absence = directory.call("add_absence", manager["id"], {
        "kind": "vacation", "starts_on": "2026-12-01", "ends_on": "2026-12-14"}, caller=head)
    assert absence["kind"] == "vacation"
    with pytest.raises(Forbidden):
        directory.call("add_absence", stranger["id"], {
            "kind": "sick_leave", "starts_on": "2026-12-01", "ends_on": "2026-12-02"},
            caller=head)
    with pytest.raises(ValidationFailed) as exc:
        directory.call("add_absence", manager["id"], {
            "kind": "holiday", "starts_on": "2026-12-05", "ends_on": "2026-12-01"})
    assert set(exc.value.fields) == {"kind"}
    with pytest.raises(ValidationFailed) as exc:
        directory.call("add_absence", manager["id"], {
            "kind": "vacation", "starts_on": "2026-12-05", "ends_on": "2026-12-01"})
    assert set(exc.value.fields) == {"ends_on"}

    directory.call("update_absence", absence["id"], {"ends_on": "2026-12-10"}, caller=head)
    listed = directory.call("list_absences", since="2026-11-01", caller=head)
    assert [(a["user_id"], a["ends_on"]) for a in listed] == [(manager["id"], "2026-12-10")]
    directory.call("update_absence", absence["id"], {"cancelled": True})
    assert directory.call("list_absences", since="2026-11-01") == []

    payloads = [contract_payload(r) for r in sql.outbox("absence_changed")]
    assert [(str(p["user_id"]), p["ends_on"].isoformat(), p["cancelled"]) for p in payloads] == [
        (manager["id"], "2026-12-14", False), (manager["id"], "2026-12-10", False),
        (manager["id"], "2026-12-10", True)]
    assert sql.scalar("SELECT count(*) FROM absences") == 1
