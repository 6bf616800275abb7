"""The demo data's lead-intake step (tools/demo.py ``load_lead_intake``) against the running
directory, clients, deals and gateway: a web form per department, distribution on for the ural
one, the consents and a draft campaign over a saved segment — and a second run creates nothing."""

from __future__ import annotations

import pytest
from rich.progress import Progress

from crm_platform.testing import SqlReader, wait_for
from gateway.service import GatewayService
from services.clients.service import ClientsService
from services.deals.service import DealsService
from services.directory.service import DirectoryService
from tools import demo

from .conftest import ADMIN_PASSWORD, ADMIN_USERNAME

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(container_factory, service_config, directory_db, service_db):
    clients_db, deals_db = service_db("clients"), service_db("deals")
    container_factory(DirectoryService, service_config(db_url=directory_db)).start()
    container_factory(ClientsService, service_config(db_url=clients_db)).start()
    container_factory(DealsService, service_config(db_url=deals_db,
                                                   REACTION_SCAN_SECONDS=0)).start()
    config = service_config()
    container_factory(GatewayService, config).start()
    api = demo.Api(f"http://{config['WEB_SERVER_ADDRESS']}")
    api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    clients_sql, deals_sql = SqlReader(clients_db), SqlReader(deals_db)
    yield api, clients_sql, deals_sql
    api.http.close()
    clients_sql.dispose()
    deals_sql.dispose()


def test_the_demo_creates_forms_distribution_consents_and_a_draft_campaign_once(stack):
    api, clients_sql, deals_sql = stack
    with Progress(disable=True) as progress:
        demo.load_organisation(api, progress, 1)
        # The services learn the organisation from the directory's events.
        wait_for(lambda: deals_sql.scalar("SELECT count(*) FROM departments") == 6 and
                 deals_sql.scalar("SELECT count(*) FROM departments "
                                  "WHERE head_user_id IS NOT NULL") == 6 and
                 clients_sql.scalar("SELECT count(*) FROM staff WHERE role = 'sales_head'") == 6,
                 timeout=30, message="the organisation in deals and clients")
        first = demo.load_lead_intake(api, progress, 1)
        again = demo.load_lead_intake(api, progress, 1)
    # 2 consent texts, 6 forms, 1 distribution, 3 consents, 1 segment, 1 campaign.
    assert (first, again) == (14, 0)

    forms = api.get("/api/v1/lead-forms")
    forms = forms["items"] if isinstance(forms, dict) else forms
    assert len(forms) == 6 and all(f["allowed_origins"] == [demo.DEMO_SITE] for f in forms)
    assert all(f["consent_text_version_id"] for f in forms)
    departments = {d["name"]: d["id"] for d in api.get("/api/v1/departments")}
    enabled = {name for name, dept_id in departments.items()
               if api.get(f"/api/v1/departments/{dept_id}/lead-distribution")["enabled"]}
    assert enabled == {"Уральский отдел"}
    assert clients_sql.scalar("SELECT count(*) FROM consents") == 3
    [campaign] = clients_sql.rows("SELECT name, state, goal, segment_id, budget FROM campaigns")
    assert (campaign["name"], campaign["state"], campaign["goal"]) == (
        demo.DEMO_CAMPAIGN, "draft", "new_product")
    assert campaign["segment_id"] is not None and str(campaign["budget"]) == "50000.00"
