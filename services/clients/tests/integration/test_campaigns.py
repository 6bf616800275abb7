"""General campaigns in the clients service against its real database: states and who may change
what, the call channel through the reactivation path, the scheduled start by the timer, and
``campaign_changed`` for the reports. (Sending, unsubscribing and bounces end to end with the mail
service: services/mail/tests/integration/test_campaigns.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest

from crm_platform.clock import utcnow
from crm_platform.errors import Conflict, NotFound, ValidationFailed
from crm_platform.testing import ServiceCaller
from services.clients.service import ClientsService

from .test_facts import add_client, outbox_events

pytestmark = pytest.mark.integration

ACTIVE = {"field": "status", "op": "eq", "value": "active"}


@pytest.fixture
def svc(container_factory, clients_config, org):
    container = container_factory(ClientsService, {
        **clients_config, "CAMPAIGN_UNSUBSCRIBE_SECRET": "clients-test-secret-0123456789"})
    container.start()
    return ServiceCaller(container, org, "head.ural")


def test_a_call_campaign_is_scheduled_then_started_by_the_timer(svc, org):
    mine = [add_client(org, "Альфа"), add_client(org, "Бета", owner="m.ural.2")]
    add_client(org, "Волга", owner="m.volga.1")                   # another department
    draft = svc.create_campaign({"name": "Обзвон", "goal": "reactivation", "channels": ["calls"],
                                 "filter": ACTIVE, "budget": "5000",
                                 "starts_at": (utcnow() + timedelta(hours=1)).isoformat()})
    assert draft["state"] == "draft" and draft["budget"] == "5000.00"
    cid = draft["campaign_id"]
    with pytest.raises(NotFound):
        svc.call("get_campaign", cid, as_user="head.volga")
    updated = svc.update_campaign(cid, {"budget": "7500.50", "utm_campaign": "obzvon"})
    assert updated["budget"] == "7500.50" and updated["utm_campaign"] == "obzvon"
    with pytest.raises(ValidationFailed) as caught:
        svc.update_campaign(cid, {"ends_at": (utcnow() - timedelta(days=1)).isoformat()})
    assert "ends_at" in caught.value.fields

    assert svc.change_campaign_state(cid, "scheduled")["state"] == "scheduled"
    svc.call("start_scheduled_campaigns", as_user=None)            # not yet due
    assert svc.get_campaign(cid)["state"] == "scheduled"
    svc.update_campaign(cid, {"starts_at": (utcnow() - timedelta(minutes=1)).isoformat()})
    svc.call("start_scheduled_campaigns", as_user=None)
    assert svc.get_campaign(cid)["state"] == "running"
    calls = [p for p in outbox_events(org, "reactivation_call_requested")
             if p["campaign_id"] == cid]
    assert sorted(p["client_id"] for p in calls) == sorted(mine)  # the head's department only
    with pytest.raises(Conflict):
        svc.update_campaign(cid, {"budget": "1"})                 # running: no edits
    assert svc.change_campaign_state(cid, "finished")["state"] == "finished"
    with pytest.raises(Conflict):
        svc.change_campaign_state(cid, "running")

    changes = [p for p in outbox_events(org, "campaign_changed") if p["campaign_id"] == cid]
    assert [p["state"] for p in changes] == ["draft", "draft", "scheduled", "scheduled",
                                             "running", "finished"]
    assert changes[-1]["budget"] == "7500.50"
    report = svc.campaign_report(cid)                              # the reactivation report
    assert report["targets"] == 2


def test_an_email_campaign_needs_its_template_and_a_segment(svc, org):
    add_client(org, "Альфа")
    with pytest.raises(ValidationFailed) as caught:
        svc.create_campaign({"name": "Без сегмента", "goal": "event"})
    assert "segment_id" in caught.value.fields
    draft = svc.create_campaign({"name": "Письмо", "goal": "event", "filter": ACTIVE})
    with pytest.raises(ValidationFailed) as caught:
        svc.change_campaign_state(draft["campaign_id"], "running")
    assert set(caught.value.fields) == {"email_subject", "email_body", "mailbox_id"}
    assert svc.get_campaign(draft["campaign_id"])["state"] == "draft"   # nothing half-done
    with pytest.raises(ValidationFailed):
        svc.change_campaign_state(draft["campaign_id"], "scheduled")    # no starts_at
