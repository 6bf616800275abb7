"""The append-only audit of reads and changes, and the unusual-reading alert."""

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

pytestmark = pytest.mark.integration


def test_reads_and_changes_are_audited(svc, org):
    client = svc.call("create_client", {"short_name": "Стальные конструкции",
                                        "phones": ["+7 343 222-33-44"]})["client"]
    svc.call("get_client", client["id"])
    svc.call("update_client", client["id"], {"segment": "застройщик"})

    trail = svc.call("client_audit", client["id"], as_user="head.ural")
    assert [(e["action"], e["user_id"]) for e in reversed(trail)] == [
        ("create", org.id("m.ural.1")), ("read", org.id("m.ural.1")),
        ("update", org.id("m.ural.1"))]
    assert trail[0]["fields"] == ["segment"]
    assert "phones" in trail[1]["fields"]  # a read of personal data says so


def test_managers_do_not_see_the_audit(svc):
    from crm_platform.errors import Forbidden

    client = svc.call("create_client", {"short_name": "Профиль-М"})["client"]
    with pytest.raises(Forbidden):
        svc.call("client_audit", client["id"])


def test_the_audit_log_cannot_be_rewritten(svc, org, clients_db):
    svc.call("create_client", {"short_name": "Теплоизоляция"})
    engine = sa.create_engine(clients_db)
    try:
        for statement in ("UPDATE audit_log SET action = 'nothing'", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()
    assert org.scalar("SELECT count(*) FROM audit_log WHERE action = 'create'") == 1


def test_reading_far_above_the_usual_rate_alerts_the_sales_head(svc, org):
    # CARD_READ_ALERT_FLOOR=20 in the test config; no history, so today's 20 reads are "far above".
    client = svc.call("create_client", {"short_name": "Водосточные системы"})["client"]
    for _ in range(25):
        svc.call("get_client", client["id"])

    alerts = org.rows("SELECT envelope FROM outbox WHERE type = 'card_reading_alert'")
    assert len(alerts) == 1  # once a day, not once per read
    payload = alerts[0]["envelope"]["payload"]
    assert payload["user_id"] == org.id("m.ural.1")
    assert payload["head_user_id"] == org.id("head.ural")
    assert payload["reads_today"] == 20
