"""Every service's migrations apply to an empty database and roll back to nothing."""

import pytest
import sqlalchemy as sa
from alembic import command

from crm_platform.migrate import SERVICES_WITH_DB, alembic_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service", SERVICES_WITH_DB)
def test_migrations_go_up_and_down(service, test_databases):
    url = test_databases.url_for(service)  # migrated to head
    engine = sa.create_engine(url)
    tables = set(sa.inspect(engine).get_table_names())
    assert {"outbox", "processed_events", "alembic_version"} <= tables

    command.downgrade(alembic_config(service, url), "base")
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    command.upgrade(alembic_config(service, url), "head")
    assert set(sa.inspect(engine).get_table_names()) == tables
    engine.dispose()
