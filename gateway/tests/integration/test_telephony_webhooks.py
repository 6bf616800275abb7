"""Cloud PBX webhooks through the gateway: no token, the request signature decides; a forged one is
401 and stores nothing; Zadarma's URL check and address range; a re-delivery changes nothing."""

from __future__ import annotations

import pytest

from crm_platform.testing import SqlReader
from services.telephony.service import TelephonyService
from services.telephony.tests import cloud_samples as samples

from .test_api import problem

pytestmark = pytest.mark.integration

KEY, SALT, SECRET = "mango-key", "mango-salt", "zadarma-secret"


@pytest.fixture
def telephony(api, container_factory, service_config, service_db):
    url = service_db("telephony")
    container_factory(TelephonyService, service_config(
        db_url=url, MANGO_API_KEY=KEY, MANGO_API_SALT=SALT, ZADARMA_SECRET=SECRET,
        ZADARMA_ALLOWED_IPS="127.0.0.1/32")).start()
    sql = SqlReader(url)
    yield sql
    sql.dispose()


def form_post(api, path, form, headers=None):
    return api.post(path, data=form, headers={
        "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})


def test_mango_events_are_taken_only_with_a_valid_signature(api, telephony):
    # Call legs (ringing, answered): they need nothing but the telephony service. Registering a
    # finished call (summary) asks the clients service, which this system does not run: the
    # telephony suite covers that with clients and deals running.
    sample = samples.mango_answered_inbound()
    legs = [samples.mango_form(leg, KEY, SALT) for leg in sample.legs]
    forged = dict(legs[0], json=legs[0]["json"].replace("1", "2", 1))
    problem(form_post(api, "/api/v1/telephony/mango/events/call", forged), 401)
    problem(form_post(api, "/api/v1/telephony/mango/events/call", {"json": legs[0]["json"]}),
            401)
    assert telephony.count("mango_legs") == 0
    for form in legs + legs:                          # each delivered twice
        ok = form_post(api, "/api/v1/telephony/mango/events/call", form)
        assert ok.status_code == 200 and ok.content == b"", ok.text
    assert telephony.count("mango_legs") == len(legs)
    problem(form_post(api, "/api/v1/telephony/mango/events/other", legs[0]), 422)


def test_zadarma_echo_signature_and_address_range(api, telephony):
    echo = api.get("/api/v1/telephony/zadarma?zd_echo=abc123")
    assert echo.status_code == 200 and echo.text == "abc123"
    problem(api.get("/api/v1/telephony/zadarma?zd_echo=<script>"), 422)
    # START, INTERNAL, ANSWER: everything before the end (which would register the call).
    requests = samples.zadarma_requests(samples.zadarma_answered_inbound(), SECRET)[:3]
    form, headers = requests[0]
    problem(form_post(api, "/api/v1/telephony/zadarma", form, {"Signature": "AAAA"}), 401)
    assert telephony.count("zadarma_events") == 0
    for form, headers in requests + requests:         # before the end; each delivered twice
        response = form_post(api, "/api/v1/telephony/zadarma", form, headers)
        assert response.status_code == 200, response.text
    assert telephony.count("zadarma_events") == len(requests)
