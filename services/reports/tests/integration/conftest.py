"""The reports service running against the real RabbitMQ and PostgreSQL, the organisation and a
month of events arriving as the producers would send them (see ``scenario``)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from crm_platform.organisation import departments_table, staff_table
from crm_platform.testing import ReplicatedOrg, ServiceCaller, SqlReader
from services.reports.service import ReportsService

from .scenario import Ids, make_waiter, publish_scenario


@dataclass
class Reports:
    org: ReplicatedOrg
    ids: Ids
    sql: SqlReader
    svc: ServiceCaller
    container: object
    url: str
    sent: dict

    def report(self, name, as_user="director", **params):
        return self.svc.call("get_report", name, params, as_user=as_user)


@pytest.fixture
def reports(service_db, service_config, container_factory, rabbit_config, test_databases):
    """The reports service with the scenario applied."""
    org_metadata = sa.MetaData()
    staff_table(org_metadata), departments_table(org_metadata)
    # The organisation's source of truth: a database of its own standing in for the directory's.
    org = ReplicatedOrg(test_databases.blank("org_source", org_metadata))
    url = service_db("reports")
    sql = SqlReader(url)
    container = container_factory(ReportsService, service_config(
        db_url=url, EVENT_BATCH_MAX_WAIT_MS=20, REPORTS_METRICS_SECONDS=0))
    container.start()
    ids = Ids()
    sent = publish_scenario(rabbit_config["AMQP_URI"], org, ids, make_waiter(sql))
    yield Reports(org, ids, sql, ServiceCaller(container, org, "director"), container, url, sent)
    sql.dispose()
    with org.engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE staff, departments"))
    org.dispose()
